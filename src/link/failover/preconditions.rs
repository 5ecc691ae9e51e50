//! What must hold before the link's life changes anything, each named: a
//! command that fails one changes nothing and says every one that failed.

use serde::Serialize;

use super::view::View;
use super::{Cleanup, Side};
use crate::update_policy::{self, Direction, Policy, Verdict};

/// A precondition that does not hold: its name, why, and what would fix it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Refusal {
    pub check: &'static str,
    pub why: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.check, self.why)?;
        if let Some(fix) = &self.fix {
            write!(f, " ({fix})")?;
        }
        Ok(())
    }
}

fn refuse(check: &'static str, why: impl Into<String>, fix: Option<&str>) -> Refusal {
    Refusal { check, why: why.into(), fix: fix.map(str::to_string) }
}

/// The instance's update policy: ARM's `databaseFormat` when ARM answered,
/// else what T-SQL shows (UNCONFIRMED for 2022 against 2025).
pub fn policy(v: &View) -> Policy {
    match &v.arm.database_format {
        Some(f) => Policy::from_database_format(f),
        None => Policy::from_tsql(&v.mi.update_type, v.mi.version.0),
    }
}

/// Both sides readable, the link whole and in the roles a failover to `to`
/// starts from.
fn link(v: &View, to: Side, out: &mut Vec<Refusal>) {
    for (side, h) in [(Side::SqlServer, &v.sql), (Side::ManagedInstance, &v.mi)] {
        if let Some(why) = &h.unreadable {
            out.push(refuse("side-readable", format!("{} cannot be read: {why}", side.name()), None));
        }
    }
    if v.arm.unreadable.is_some() && to == Side::ManagedInstance {
        let why = v.arm.unreadable.clone().unwrap_or_default();
        out.push(refuse("arm-readable", format!("ARM cannot be read: {why}"), None));
    }
    if !out.is_empty() {
        return;
    }
    if !v.sql.dag || !(v.mi.dag || v.arm.dag) {
        out.push(refuse(
            "link-present",
            format!("the link {} is not there on both sides", v.dag),
            Some("milink link plan shows what is missing"),
        ));
        return;
    }
    if v.split_brain() {
        out.push(refuse(
            "link-roles",
            "both sides are PRIMARY (a split brain after a forced failover)",
            Some("milink link reconcile --primary <side> first"),
        ));
        return;
    }
    let from = v.half(to.other().is_sql());
    if !from.is("PRIMARY") || !v.half(to.is_sql()).is("SECONDARY") {
        out.push(refuse(
            "link-roles",
            format!(
                "{} is not the primary with {} its secondary (roles: SQL Server {}, managed instance {})",
                to.other().name(),
                to.name(),
                v.sql.role.as_deref().unwrap_or("unknown"),
                v.mi.role.as_deref().unwrap_or("unknown")
            ),
            None,
        ));
        return;
    }
    if from.connected != Some(true) || from.health.as_deref() != Some("HEALTHY") {
        out.push(refuse(
            "link-connected",
            format!(
                "the link must be CONNECTED and HEALTHY; it is {} and {}",
                if from.connected == Some(true) { "CONNECTED" } else { "DISCONNECTED" },
                from.health.as_deref().unwrap_or("of unknown health")
            ),
            Some("milink diagnose names the cause; a planned failover waits for a healthy link (a disaster calls for --forced)"),
        ));
    }
}

/// Everything a planned failover to `to` needs; empty when it may start.
pub fn planned(v: &View, to: Side, cleanup: Cleanup) -> Vec<Refusal> {
    let mut out = Vec::new();
    link(v, to, &mut out);
    if !out.is_empty() {
        return out;
    }
    let major = v.sql.version.0;
    let direction = if to.is_sql() { Direction::ToSqlServer } else { Direction::ToManagedInstance };
    match update_policy::allows(policy(v), major, direction) {
        Verdict::Allowed => {}
        verdict => out.push(Refusal {
            check: "update-policy",
            why: verdict.explain().unwrap_or_default(),
            fix: Some(format!("sources: {}", update_policy::SOURCES)),
        }),
    }
    if to == Side::ManagedInstance && major < 16 && cleanup == Cleanup::Keep {
        out.push(refuse(
            "link-kept-after-failover",
            "SQL Server 2019 and earlier cannot keep the link after a failover: failing over breaks it, with no failback",
            Some("run with --cleanup drop-dag (the documented cutover)"),
        ));
    }
    // T-SQL fails the link over only from SQL Server 2022 CU13 (16.0.4125).
    let tsql_on_sql = !v.arm.new_schema() && !to.is_sql();
    if tsql_on_sql && major >= 16 && v.sql.version < (16, 0, 4125) {
        out.push(refuse(
            "tsql-failover-version",
            format!(
                "the instance's ARM has no failover operation (api-version {}) and T-SQL failover needs SQL Server 2022 CU13 (16.0.4125.3); this is {}.{}.{}",
                v.arm.api, v.sql.version.0, v.sql.version.1, v.sql.version.2
            ),
            Some("install SQL Server 2022 CU13 or later"),
        ));
    }
    out
}

/// A forced failover needs only the side that takes over, readable and
/// secondary now.
pub fn forced(v: &View, to: Side) -> Vec<Refusal> {
    let h = v.half(to.is_sql());
    let mut out = Vec::new();
    if let Some(why) = &h.unreadable {
        out.push(refuse("side-readable", format!("{} cannot be read: {why}", to.name()), None));
        return out;
    }
    if !h.dag {
        out.push(refuse(
            "link-present",
            format!("{} has no distributed availability group {}", to.name(), v.dag),
            None,
        ));
    }
    if to.is_sql() && v.sql.version < (16, 0, 4125) {
        out.push(refuse(
            "tsql-failover-version",
            format!(
                "a forced failover to SQL Server runs T-SQL, which needs SQL Server 2022 CU13 (16.0.4125.3); this is {}.{}.{}",
                v.sql.version.0, v.sql.version.1, v.sql.version.2
            ),
            None,
        ));
    }
    out
}

/// A split brain to repair: both sides readable and PRIMARY.
pub fn reconcile(v: &View) -> Vec<Refusal> {
    let mut out = Vec::new();
    for (side, h) in [(Side::SqlServer, &v.sql), (Side::ManagedInstance, &v.mi)] {
        if let Some(why) = &h.unreadable {
            out.push(refuse("side-readable", format!("{} cannot be read: {why}", side.name()), None));
        }
    }
    if !out.is_empty() {
        return out;
    }
    let primaries = [&v.sql, &v.mi].iter().filter(|h| h.is("PRIMARY")).count();
    if primaries != 2 {
        out.push(refuse(
            "split-brain",
            match primaries {
                0 => "neither side is PRIMARY: there is nothing to reconcile".to_string(),
                _ => format!(
                    "only one side is PRIMARY (SQL Server {}, managed instance {}): there is no split brain",
                    v.sql.role.as_deref().unwrap_or("unknown"),
                    v.mi.role.as_deref().unwrap_or("unknown")
                ),
            },
            None,
        ));
    }
    out
}
