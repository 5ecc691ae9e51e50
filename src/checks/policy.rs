//! The managed instance's update policy against the link's directions (the
//! matrix in `update_policy`, with its sources), and its license-free DR
//! setting (`hybridSecondaryUsage`) where ARM can be read.

use super::collect::Evidence;
use super::instance::props;
use super::{F, blocked, facts};
use crate::probe::sql::Fields;
use crate::profile::Profile;
use crate::report::{Finding, Severity, Side};
use crate::update_policy::{self, Direction, Policy, Verdict};

pub fn evaluate(ev: &Evidence, p: &Profile, out: &mut Vec<Finding>) {
    out.push(update_policy_finding(ev, p));
    out.push(hybrid_secondary(ev));
}

/// The major version, when ProductVersion reads.
fn major(v: &str) -> Option<u32> {
    Some(crate::probe::sql::product_version(v).0).filter(|m| *m > 0)
}

fn update_policy_finding(ev: &Evidence, p: &Profile) -> Finding {
    let id = "instance-mi-update-policy";
    let mi = facts(&ev.mi, "login-mi");
    let mp = match props(&mi, "login-mi-permissions") {
        Ok(r) => r,
        Err(why) => return blocked(id, Side::ManagedInstance, why),
    };
    let update_type = mp.str("update_type").unwrap_or("");
    let arm_format = match &ev.arm {
        Some(Ok(f)) => f.database_format.clone(),
        _ => None,
    };
    let (policy, from) = match &arm_format {
        Some(f) => (Policy::from_database_format(f), format!("ARM databaseFormat {f}")),
        None => (
            Policy::from_tsql(update_type, major(mp.str("version").unwrap_or("")).unwrap_or(0)),
            format!("ProductUpdateType {}", if update_type.is_empty() { "not reported" } else { update_type }),
        ),
    };
    let sql = facts(&ev.sql, "login-sql");
    let sql_major = props(&sql, "login-sql-permissions").ok().and_then(|r| major(r.str("version").unwrap_or("")));
    let failback = p.managed_instance.failback;
    let f = F::new(id, Side::ManagedInstance, Severity::Pass)
        .found(format!("{} ({from})", update_policy::capitalised(policy.name())))
        .ev("policy", serde_json::to_value(policy).unwrap_or_default())
        .ev("ProductUpdateType", update_type)
        .ev("failback", failback)
        .ev("sources", update_policy::SOURCES);
    let f = match arm_format {
        Some(fmt) => f.ev("databaseFormat", fmt),
        None => f,
    };
    let Some(major) = sql_major else {
        // SQL Server's version unknown: only what holds for every version.
        return match (policy, failback) {
            (Policy::AlwaysUpToDate, true) => f
                .severity(Severity::Fail)
                .remedy("Always-up-to-date never replicates back to SQL Server: set the update policy that matches SQL Server's version before creating the link (it cannot be undone).")
                .done(),
            _ => f.severity(Severity::Info).ev("note", "SQL Server's version could not be read").done(),
        };
    };
    let mut verdicts = vec![update_policy::allows(policy, major, Direction::ToManagedInstance)];
    if failback {
        verdicts.push(update_policy::allows(policy, major, Direction::ToSqlServer));
    }
    if let Some(refused) = verdicts.iter().find(|v| matches!(v, Verdict::Refused { .. })) {
        return f
            .severity(Severity::Fail)
            .ev("sql_server_major", major)
            .remedy(refused.explain().unwrap_or_default())
            .done();
    }
    if verdicts.iter().any(|v| matches!(v, Verdict::Unknown(_))) {
        return f.severity(Severity::Info).ev("note", "update policy not reported").done();
    }
    // No failback planned: say what the policy would not allow later.
    match update_policy::allows(policy, major, Direction::ToSqlServer) {
        Verdict::Refused { .. } if !failback => f
            .severity(Severity::Info)
            .ev("note", "SQL Server → managed instance works; there is no failback to SQL Server with this policy")
            .done(),
        _ => f.done(),
    }
}

/// `hybridSecondaryUsage`: Passive is a license-free DR secondary, which must
/// carry no workload; the service's own reading of how the instance is used is
/// `hybridSecondaryUsageDetected`.
fn hybrid_secondary(ev: &Evidence) -> Finding {
    let id = "instance-mi-hybrid-secondary";
    let facts = match &ev.arm {
        None => {
            return blocked(
                id,
                Side::ManagedInstance,
                (
                    Severity::Skip,
                    "the profile names no ARM resource ([arm] resource_id, or subscription_id and resource_group)"
                        .into(),
                ),
            );
        }
        Some(Err(why)) => {
            return blocked(id, Side::ManagedInstance, (Severity::Skip, format!("ARM could not be read: {why}")));
        }
        Some(Ok(f)) => f,
    };
    let usage = facts.hybrid_secondary_usage.clone().unwrap_or_else(|| "Active".into());
    let detected = facts.hybrid_secondary_usage_detected.clone();
    let f = F::new(id, Side::ManagedInstance, Severity::Info)
        .ev("hybridSecondaryUsage", usage.clone())
        .ev("hybridSecondaryUsageDetected", detected.clone().unwrap_or_default());
    let passive = usage.eq_ignore_ascii_case("Passive");
    match (passive, detected.as_deref()) {
        (true, Some(d)) if d.eq_ignore_ascii_case("Active") => f
            .severity(Severity::Warn)
            .found("Passive (license-free DR), but used as Active")
            .remedy("A passive DR secondary must carry no workload, yet the service sees this instance used actively (primary of a link, or read workload). Fail back, or set it Active: milink link mode --hybrid-secondary active.")
            .done(),
        (true, _) => f.found("Passive: a license-free disaster-recovery secondary").done(),
        (false, _) => f
            .found("Active")
            .ev("note", "a DR-only secondary can be license-free: milink link mode --hybrid-secondary passive")
            .done(),
    }
}
