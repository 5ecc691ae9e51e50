//! `instance-sql-multidb`: whether SQL Server can carry a multi-database link
//! (preview; mi-link-facts §7): SQL Server 2022 CU27 or later, or 2025 CU9 or
//! later, Enterprise or Developer, `sys.sp_multidb_milink` there, and a link
//! name that follows the rules. Whether `EXEC sys.sp_multidb_milink 1` ran on
//! every replica cannot be read (UNCONFIRMED): the finding says so. The
//! instance's single-database links (ARM's `linkMode`) rule the mode out. With the
//! profile in multi-database mode a reason against is a failure; otherwise
//! the finding only informs.

use super::collect::Evidence;
use super::{F, blocked, facts};
use crate::probe::sql::Fields;
use crate::profile::{LinkMode, Profile, link_name_problem};
use crate::report::{Finding, Severity, Side};

/// (major, lowest cumulative update) that carry the mode.
const MINIMUM: &[(u32, u32, &str)] = &[(16, 27, "SQL Server 2022 CU27"), (17, 9, "SQL Server 2025 CU9")];

pub fn evaluate(ev: &Evidence, p: &Profile, out: &mut Vec<Finding>) {
    let id = "instance-sql-multidb";
    let s = Side::SqlServer;
    let sql = facts(&ev.sql, "login-sql");
    let multi = p.link.mode == LinkMode::Multi;
    let props = match super::instance::props(&sql, "login-sql-permissions") {
        // Only a planned multi-database link needs the answer.
        Err((_, why)) if !multi => return out.push(F::skip(id, s, why).done()),
        Err(why) => return out.push(blocked(id, s, why)),
        Ok(r) => r,
    };
    let version = props.str("version").unwrap_or("");
    let major = crate::probe::sql::product_version(version).0;
    let level = props.str("update_level").unwrap_or("");
    let cu: u32 = level.strip_prefix("CU").and_then(|n| n.trim().parse().ok()).unwrap_or(0);
    let edition = props.str("edition").unwrap_or("");
    let procedure = sql.as_ref().ok().and_then(|f| f.first("link_procs")).map(|r| r.int("multidb").is_some());
    let mut against = Vec::new();
    match MINIMUM.iter().find(|m| m.0 == major) {
        Some((_, min, label)) if cu < *min => against.push(format!("{version} {level} is older than {label}")),
        None => against.push(format!("{version} is not SQL Server 2022 or 2025")),
        _ => {}
    }
    if !(edition.contains("Enterprise") || edition.contains("Developer")) {
        against.push(format!("{edition} is not Enterprise or Developer"));
    }
    if procedure == Some(false) {
        against.push("sys.sp_multidb_milink does not exist here".into());
    }
    let name = p.link.multi_name(&p.sql_server.host);
    if multi && let Some(why) = link_name_problem(&name) {
        against.push(why);
    }
    let singles = single_links(ev);
    if multi && !singles.is_empty() {
        against.push(format!(
            "the instance has single-database links ({}): the two modes do not mix on one instance",
            singles.join(", ")
        ));
    }
    let f = F::new(id, s, Severity::Info).ev("mode", if multi { "multi" } else { "single" }).ev("preview", true).ev(
        "note",
        "whether EXEC sys.sp_multidb_milink 1 ran on every replica cannot be read (UNCONFIRMED): run it on each",
    );
    let f = if multi { f.ev("link_name", name) } else { f };
    out.push(
        match (against.is_empty(), multi) {
            (true, true) => f.severity(Severity::Pass).found("can carry a multi-database link (preview)"),
            (true, false) => f.found("could carry a multi-database link (preview); the profile asks for one link per database"),
            (false, true) => f
                .severity(Severity::Fail)
                .found(against.join("; "))
                .remedy("Multi-database mode (preview) needs SQL Server 2022 CU27+ or 2025 CU9+, Enterprise or Developer, EXEC sys.sp_multidb_milink 1 on every replica, and a lowercase link name without a leading or trailing hyphen; or use one link per database (link.mode = \"single\")."),
            (false, false) => f.found(format!("no multi-database link here (preview): {}", against.join("; "))),
        }
        .done(),
    );
}

/// The instance's links ARM shows as single-database ones (`linkMode` is read
/// only in the preview, so only when a multi-database link is planned).
fn single_links(ev: &Evidence) -> Vec<String> {
    let Some(Ok(facts)) = &ev.arm else { return Vec::new() };
    let dags = facts.dags.iter().flatten();
    dags.filter(|d| d["properties"]["linkMode"].as_str().is_some_and(|m| m.eq_ignore_ascii_case("SingleDatabase")))
        .filter_map(|d| d["name"].as_str().map(str::to_string))
        .collect()
}
