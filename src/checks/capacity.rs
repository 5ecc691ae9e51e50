//! `instance-mi-capacity`: the instance's database limit (100 on General
//! Purpose and Business Critical, 500 on Next-gen General Purpose; mi-link-facts
//! §7) against the databases it has and those the link would add, so a plan
//! that would pass it fails before it starts.

use super::collect::Evidence;
use super::{F, blocked, facts, rows};
use crate::probe::sql::Fields;
use crate::profile::Profile;
use crate::report::{Finding, Severity, Side};

const LIMIT: i64 = 100;
const LIMIT_NEXT_GEN: i64 = 500;

pub fn evaluate(ev: &Evidence, p: &Profile, out: &mut Vec<Finding>) {
    let id = "instance-mi-capacity";
    let s = Side::ManagedInstance;
    let dbs = match facts(&ev.mi, "login-mi").and_then(|f| rows(f, "databases", "login-mi-permissions")) {
        Err(why) => return out.push(blocked(id, s, why)),
        Ok(r) => r,
    };
    let names: Vec<&str> =
        dbs.iter().filter(|r| r.int("database_id").is_some_and(|i| i > 4)).filter_map(|r| r.str("name")).collect();
    let adding: Vec<String> =
        ev.databases(p).into_iter().filter(|d| !names.iter().any(|n| n.eq_ignore_ascii_case(d))).collect();
    // ARM knows Next-gen General Purpose; without it the lower limit is assumed.
    let arm = ev.arm.as_ref().and_then(|a| a.as_ref().ok());
    let next_gen = arm.and_then(|a| a.general_purpose_v2).unwrap_or(false);
    let limit = if next_gen { LIMIT_NEXT_GEN } else { LIMIT };
    let tier = match (arm.and_then(|a| a.tier.clone()), next_gen) {
        (_, true) => "Next-gen General Purpose".to_string(),
        (Some(t), _) => t,
        (None, _) => "unknown (no ARM read: the General Purpose / Business Critical limit is assumed)".into(),
    };
    let after = names.len() as i64 + adding.len() as i64;
    let f = F::new(id, s, Severity::Pass)
        .ev("databases", names.len())
        .ev("adding", adding.len())
        .ev("limit", limit)
        .ev("tier", tier)
        .found(format!("{after} of {limit} databases with the link's"));
    out.push(
        if after > limit {
            f.severity(Severity::Fail).remedy(format!(
                "The instance would hold {after} databases, over its limit of {limit}: link fewer databases at once, drop ones the instance no longer needs, or use another instance (Next-gen General Purpose holds 500)."
            ))
        } else {
            f
        }
        .done(),
    );
}
