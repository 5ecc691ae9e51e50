//! The instances: version and update against the support matrix, edition, host
//! OS, Always On, master key, trace flags, collation (the update policy is `policy.rs`).

use super::collect::{Evidence, Facts};
use super::{F, blocked, facts, rows};
use crate::probe::sql::{Fields, Record};
use crate::profile::Profile;
use crate::report::{Finding, Severity, Side};

/// Minimum builds (shared/reference/mi-link-facts.md §0): (major, build, label).
const MINIMUM: &[(u32, u32, &str)] = &[
    (17, 1000, "SQL Server 2025 RTM (17.0.1000.7)"),
    (16, 1000, "SQL Server 2022 RTM (16.0.1000.6)"),
    (15, 4312, "SQL Server 2019 CU20 (15.0.4312.2)"),
    (14, 3490, "SQL Server 2017 CU31 and the Azure Connect pack (14.0.3490.10)"),
    (13, 7000, "SQL Server 2016 SP3 and the Azure Connect pack (13.0.7000.253)"),
];

fn version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    let major = it.next()??;
    it.next()?;
    Some((major, it.next()??))
}

pub(super) fn props<'a>(f: &Result<&'a Facts, (Severity, String)>, id: &str) -> Result<&'a Record, (Severity, String)> {
    let f = f.clone()?;
    rows(f, "props", id)?.first().ok_or((Severity::Error, "SERVERPROPERTY returned no row".into()))
}

/// SQL Server's version, edition, host and Always On, from SERVERPROPERTY.
fn sql_instance(
    sql: &Result<&Facts, (Severity, String)>,
    sp: &Result<&Record, (Severity, String)>,
    p: &Profile,
    out: &mut Vec<Finding>,
) {
    let s = Side::SqlServer;
    match &sp {
        Err(why) => {
            for id in ["instance-sql-version", "instance-sql-edition", "instance-sql-host-os", "instance-sql-hadr"] {
                out.push(blocked(id, s, why.clone()));
            }
        }
        Ok(r) => {
            out.push(sql_version(sql, r, p));

            let edition = r.str("edition").unwrap_or("");
            let ok = ["Enterprise", "Developer", "Standard"].iter().any(|e| edition.contains(e));
            let f = F::new("instance-sql-edition", s, if ok { Severity::Pass } else { Severity::Fail })
                .found(edition)
                .ev("edition", edition);
            out.push(if ok { f } else { f.remedy("The link needs Enterprise, Developer or Standard edition.") }.done());

            let (platform, distribution) = match sql.as_ref().ok().map(|f| rows(f, "host", "login-sql-permissions")) {
                Some(Ok([h, ..])) => (
                    h.str("host_platform").unwrap_or("").to_string(),
                    h.str("host_distribution").unwrap_or("").to_string(),
                ),
                // No sys.dm_os_host_info (2016): read it from @@VERSION ("… on Windows Server 2016 …").
                _ => {
                    let text = r.str("version_text").unwrap_or("");
                    let on = text.rsplit(" on ").next().unwrap_or("").trim().to_string();
                    (if on.contains("Linux") { "Linux".into() } else { "Windows".into() }, on)
                }
            };
            let major = version(r.str("version").unwrap_or("")).map(|x| x.0).unwrap_or(0);
            let f = F::new("instance-sql-host-os", s, Severity::Pass)
                .found(if distribution.is_empty() { platform.clone() } else { distribution.clone() })
                .ev("platform", platform.clone())
                .ev("distribution", distribution.clone());
            let f = if platform.eq_ignore_ascii_case("Linux") && major < 14 {
                f.severity(Severity::Fail)
                    .remedy("SQL Server 2016 on Linux does not exist for the link: Linux needs 2017 or later.")
            } else if distribution.contains("Windows 10") || distribution.contains("Windows 11") {
                f.severity(Severity::Fail)
                    .remedy("The link needs Windows Server (2012 or later) or Linux, not a client Windows.")
            } else {
                f
            };
            out.push(f.done());

            let hadr = r.int("hadr").unwrap_or(0);
            let mgr = r.int("hadr_manager").unwrap_or(0);
            let f =
                F::new("instance-sql-hadr", s, Severity::Pass).ev("IsHadrEnabled", hadr).ev("HadrManagerStatus", mgr);
            out.push(
                if hadr == 1 && mgr == 1 {
                    f.found("Always On enabled, HADR manager running")
                } else if hadr != 1 {
                    f.severity(Severity::Fail).found("Always On is not enabled").remedy(HADR_FIX)
                } else {
                    f.severity(Severity::Fail).found(format!("HADR manager status {mgr}, not running")).remedy(HADR_FIX)
                }
                .done(),
            );
        }
    }
}

/// The build against the support matrix; below 2022, the link's procedures too.
fn sql_version(sql: &Result<&Facts, (Severity, String)>, r: &Record, p: &Profile) -> Finding {
    let f = build(r, p);
    let major = version(r.str("version").unwrap_or("")).map_or(0, |v| v.0);
    let procs = sql.as_ref().ok().and_then(|f| f.first("link_procs"));
    match procs {
        Some(row) if (13..16).contains(&major) => {
            let missing: Vec<&str> = [
                ("add_issuer", "sp_certificate_add_issuer"),
                ("get_endpoint_certificate", "sp_get_endpoint_certificate"),
            ]
            .into_iter()
            .filter(|(k, _)| row.int(k).is_none())
            .map(|(_, name)| name)
            .collect();
            let f = f.ev("link_procedures", if missing.is_empty() { "present" } else { "missing" });
            if missing.is_empty() || f.current() == Severity::Fail {
                return f.done();
            }
            let pack = if major == 15 { "SQL Server 2019 CU20 or later" } else { "the Azure Connect pack" };
            f.severity(Severity::Fail)
                .ev("missing", missing.join(", "))
                .remedy(format!("{} missing: the build alone does not show it, but {pack} is not installed. Install it (it adds the procedures the link needs), then check again.", missing.join(" and ")))
                .done()
        }
        _ => f.done(),
    }
}

/// The build against the support matrix.
fn build(r: &Record, p: &Profile) -> F {
    let s = Side::SqlServer;
    let v = r.str("version").unwrap_or("");
    let level = r.str("update_level").map(|l| format!(" {l}")).unwrap_or_default();
    let mut f = F::new("instance-sql-version", s, Severity::Pass)
        .found(format!("{v}{level}"))
        .ev("version", v)
        .ev("update_level", r.str("update_level").unwrap_or(""));
    match version(v) {
        None => f = f.severity(Severity::Error).ev("note", "unreadable ProductVersion"),
        Some((major, build)) => {
            match MINIMUM.iter().find(|m| m.0 == major) {
                None if major > 17 => {
                    f = f.severity(Severity::Info).ev("note", "newer than the support matrix milink knows")
                }
                None => f = f.severity(Severity::Fail).remedy(
                    "SQL Server 2014 and older have no distributed availability groups: upgrade to 2016 SP3 or later.",
                ),
                Some((_, min, label)) if build < *min => {
                    f = f.severity(Severity::Fail).ev("minimum", *label).remedy(format!("Install at least {label}."))
                }
                Some(_) if major == 16 && p.managed_instance.failback && build < 4095 => {
                    f = f
                        .severity(Severity::Fail)
                        .ev("minimum", "SQL Server 2022 CU10 (16.0.4095.4) for MI → SQL Server")
                        .remedy("Install SQL Server 2022 CU10 or later for failback to SQL Server.")
                }
                Some((_, _, label)) => f = f.ev("minimum", *label),
            }
        }
    }
    f
}

const HADR_FIX: &str = "Enable Always On availability groups (Configuration Manager, or Enable-SqlAlwaysOn; on Linux: mssql-conf set hadr.hadrenabled 1) and restart SQL Server.";

pub fn evaluate(ev: &Evidence, p: &Profile, out: &mut Vec<Finding>) {
    let sql = facts(&ev.sql, "login-sql");
    let mi = facts(&ev.mi, "login-mi");
    let sp = props(&sql, "login-sql-permissions");
    let mp = props(&mi, "login-mi-permissions");
    let s = Side::SqlServer;

    sql_instance(&sql, &sp, p, out);
    let f = match sql.clone().and_then(|f| rows(f, "master_key", "login-sql-permissions")) {
        Err(why) => blocked("instance-sql-master-key", s, why),
        Ok([]) => F::new("instance-sql-master-key", s, Severity::Fail)
            .found("no database master key in master")
            .remedy("USE [master]; CREATE MASTER KEY ENCRYPTION BY PASSWORD = N'<strong password>';")
            .done(),
        Ok(_) => F::new("instance-sql-master-key", s, Severity::Pass).found("present in master").done(),
    };
    out.push(f);

    let f = match sql.clone().and_then(|f| rows(f, "trace_flags", "login-sql-permissions")) {
        Err(why) => blocked("instance-sql-trace-flags", s, why),
        Ok(flags) => {
            let on: Vec<i64> =
                flags.iter().filter(|r| r.flag("global").unwrap_or(true)).filter_map(|r| r.int("traceflag")).collect();
            let list = on.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ");
            let mut f = F::new("instance-sql-trace-flags", s, Severity::Pass)
                .found(if list.is_empty() { "no global trace flags".to_string() } else { format!("enabled: {list}") })
                .ev("enabled", on.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(","));
            let mut advice = Vec::new();
            if !on.contains(&1800) {
                advice.push("-T1800: helps when the two sides' log disks have different sector sizes (512 B vs 4 KB)");
            }
            if !on.contains(&9567) {
                advice.push("-T9567: compresses the data stream during automatic seeding");
            }
            if !advice.is_empty() {
                f = f.severity(Severity::Info).remedy(format!(
                    "Recommended startup trace flags (add with SQL Server Configuration Manager, then restart): {}",
                    advice.join("; ")
                ));
            }
            f.done()
        }
    };
    out.push(f);

    let f = match (&sp, &mp) {
        (Ok(a), Ok(b)) => {
            let (ca, cb) = (a.str("collation").unwrap_or(""), b.str("collation").unwrap_or(""));
            let f = F::new("instance-collation-match", Side::Link, Severity::Pass)
                .ev("sql_server", ca)
                .ev("managed_instance", cb);
            if ca.eq_ignore_ascii_case(cb) {
                f.found(format!("both {ca}"))
            } else {
                f.severity(Severity::Warn).found(format!("SQL Server {ca}, managed instance {cb}")).remedy("The collations differ: server-name casing and comparisons can break the link. Use the same instance collation on both sides (the managed instance's is chosen at creation).")
            }
            .done()
        }
        (Err(why), _) | (_, Err(why)) => blocked("instance-collation-match", Side::Link, why.clone()),
    };
    out.push(f);
}
