//! The link's own findings: the distributed AG on each side (present,
//! connected, healthy, behind, split), seeding and the error log; and the
//! errors they carry, for the rules to read.

use super::kb;
use crate::checks::F;
use crate::checks::collect::{Facts, SideEvidence, Sql};
use crate::probe::sql::{Fields, Record};
use crate::report::{Finding, Severity, Side};

/// An error seen on a side: number (if any), text, where it came from.
#[derive(Debug, Clone)]
pub struct Seen {
    pub side: Side,
    pub number: Option<i64>,
    pub text: String,
    pub source: &'static str,
}

pub fn facts(s: &SideEvidence) -> Option<&Facts> {
    match &s.sql {
        Sql::Facts(f) => Some(f),
        _ => None,
    }
}

pub(super) fn rows<'a>(f: Option<&'a Facts>, q: &str) -> &'a [Record] {
    f.and_then(|f| f.rows(q)).and_then(|r| r.as_ref().ok()).map(|v| v.as_slice()).unwrap_or(&[])
}

/// The link evidence of both sides; with `dag`, one link's only (a pair can
/// have many: one per database, or one for several in multi-database mode).
#[derive(Clone)]
pub struct Link<'a> {
    pub sql: Option<&'a Facts>,
    pub mi: Option<&'a Facts>,
    pub dag: Option<String>,
}

impl<'a> Link<'a> {
    pub fn new(sql: Option<&'a Facts>, mi: Option<&'a Facts>) -> Link<'a> {
        Link { sql, mi, dag: None }
    }

    /// The same evidence, narrowed to one distributed AG.
    pub fn one(&self, dag: &str) -> Link<'a> {
        Link { dag: Some(dag.to_string()), ..self.clone() }
    }

    /// Every distributed AG either side has, sorted.
    pub fn dags(&self) -> Vec<String> {
        let mut out: Vec<String> = [Side::SqlServer, Side::ManagedInstance]
            .into_iter()
            .flat_map(|s| rows(self.side(s), "link_replicas"))
            .filter(|r| r.flag("is_distributed") == Some(true))
            .filter_map(|r| r.str("ag_name").map(str::to_string))
            .collect();
        out.sort_by_key(|d| d.to_ascii_lowercase());
        out.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        out
    }

    fn in_link(&self, r: &Record) -> bool {
        self.dag.as_deref().is_none_or(|d| r.str("ag_name").is_some_and(|n| n.eq_ignore_ascii_case(d)))
    }

    pub(super) fn side(&self, side: Side) -> Option<&'a Facts> {
        if side == Side::SqlServer { self.sql } else { self.mi }
    }

    /// The local replica's row of the distributed AG on a side.
    fn local(&self, side: Side) -> Option<&'a Record> {
        rows(self.side(side), "link_replicas")
            .iter()
            .find(|r| r.flag("is_distributed") == Some(true) && r.flag("is_local") == Some(true) && self.in_link(r))
    }

    pub(super) fn dag_rows(&self, side: Side) -> impl Iterator<Item = &'a Record> + '_ {
        rows(self.side(side), "link_replicas")
            .iter()
            .filter(move |r| r.flag("is_distributed") == Some(true) && self.in_link(r))
    }

    /// Each side's own rows of the link's databases (queues, lag, state).
    fn local_databases(&self) -> impl Iterator<Item = (Side, &'a Record)> + '_ {
        [Side::SqlServer, Side::ManagedInstance].into_iter().flat_map(move |side| {
            self.database_rows(side).filter(|r| r.flag("is_local") == Some(true)).map(move |r| (side, r))
        })
    }

    fn database_rows(&self, side: Side) -> impl Iterator<Item = &'a Record> + '_ {
        rows(self.side(side), "link_databases").iter().filter(move |r| self.in_link(r))
    }

    /// The databases of the link, as either side names them.
    pub fn databases(&self) -> Vec<String> {
        let mut out: Vec<String> = [Side::SqlServer, Side::ManagedInstance]
            .into_iter()
            .flat_map(|s| self.database_rows(s))
            .filter_map(|r| r.str("database_name").map(str::to_string))
            .collect();
        out.sort();
        out.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        out
    }

    /// A side's seeding rows of the link's databases.
    pub(super) fn seeding(&self, side: Side) -> Vec<&'a Record> {
        let dbs = self.databases();
        rows(self.side(side), "seeding")
            .iter()
            .filter(|r| {
                self.dag.is_none()
                    || r.str("local_database_name").is_some_and(|n| dbs.iter().any(|d| d.eq_ignore_ascii_case(n)))
            })
            .collect()
    }

    pub(super) fn rows(&self, side: Side, q: &str) -> &[Record] {
        rows(self.side(side), q)
    }

    pub fn exists(&self) -> bool {
        self.local(Side::SqlServer).is_some() || self.local(Side::ManagedInstance).is_some()
    }

    pub fn disconnected(&self, side: Side) -> bool {
        self.dag_rows(side).any(|r| r.str("connected_state_desc") == Some("DISCONNECTED"))
    }

    pub fn errors(&self) -> Vec<Seen> {
        let mut out = Vec::new();
        for side in [Side::SqlServer, Side::ManagedInstance] {
            for r in self.dag_rows(side) {
                if let Some(n) = r.int("last_connect_error_number") {
                    let text = r.str("last_connect_error_description").unwrap_or("").to_string();
                    out.push(Seen { side, number: Some(n), text, source: "last_connect_error" });
                }
            }
            for r in self.seeding(side) {
                let code = r.int("error_code").filter(|c| *c != 0).or(r.int("failure_code").filter(|c| *c != 0));
                if code.is_some() || r.int("failure_state").is_some_and(|f| f != 0) {
                    let text = r.str("failure_message").or(r.str("failure_state_desc")).unwrap_or("").to_string();
                    out.push(Seen { side, number: code, text, source: "seeding" });
                }
            }
            for r in rows(self.side(side), "errorlog") {
                let text = r.str("text").unwrap_or("").to_string();
                if !kb::explain(None, &text).is_empty() {
                    out.push(Seen { side, number: None, text, source: "errorlog" });
                }
            }
        }
        out
    }
}

/// `link-present`: the distributed AGs either side has; false when there are none.
pub fn present(all: &Link<'_>, out: &mut Vec<Finding>) -> bool {
    if !all.exists() {
        out.push(
            F::new("link-present", Side::Link, Severity::Warn)
                .found("no distributed availability group on either side")
                .ev("note", "no distributed availability group on either side: there is no link to diagnose yet (see milink check)")
                .done(),
        );
        return false;
    }
    let dags = all.dags();
    out.push(
        F::new("link-present", Side::Link, Severity::Pass)
            .found(if dags.len() == 1 { dags[0].clone() } else { format!("{} links: {}", dags.len(), dags.join(", ")) })
            .ev("distributed_ag", dags.join(", "))
            .ev("links", dags.len())
            .done(),
    );
    true
}

/// A finding of one link names it.
pub(super) fn of_link(f: F, link: &Link<'_>) -> F {
    match &link.dag {
        Some(d) => f.subject(d.clone()),
        None => f,
    }
}

/// One link's own findings: connected on each side, health, lag, roles.
pub fn link_findings(link: &Link<'_>, seen: &[Seen], out: &mut Vec<Finding>) {
    let mut push = |f: F| out.push(of_link(f, link).done());
    for side in [Side::SqlServer, Side::ManagedInstance] {
        if link.side(side).is_none() {
            push(F::skip("link-connected", side, "no SQL session to this side"));
            continue;
        }
        let mut f = F::new("link-connected", side, Severity::Pass).found("CONNECTED");
        if let Some(r) = link.local(side) {
            f = f.ev("role", r.str("role_desc").unwrap_or(""));
        }
        if link.disconnected(side) {
            f = f.severity(Severity::Fail).found("DISCONNECTED").ev("connected_state", "DISCONNECTED");
            if let Some(e) = seen.iter().find(|e| e.side == side && e.source == "last_connect_error") {
                let meaning: Vec<&str> = kb::explain(e.number, &e.text).iter().map(|k| k.meaning).collect();
                f = f
                    .ev("last_connect_error_number", e.number.unwrap_or(0))
                    .ev("last_connect_error_description", e.text.clone())
                    .ev("meaning", meaning.join(" "));
            }
        }
        push(f);
    }

    let unhealthy: Vec<String> = [Side::SqlServer, Side::ManagedInstance]
        .into_iter()
        .flat_map(|s| {
            // Each side's own row first.
            let mut rs: Vec<_> = link.database_rows(s).collect();
            rs.sort_by_key(|r| r.flag("is_local") == Some(false));
            rs.into_iter().map(move |r| (s, r))
        })
        .filter(|(_, r)| r.str("synchronization_health_desc") == Some("NOT_HEALTHY"))
        // A primary shows its partner's row too: each row says whose it is.
        .map(|(s, r)| {
            let state = r.str("synchronization_state_desc").unwrap_or("");
            if r.flag("is_local") == Some(false) {
                let other = if s == Side::SqlServer { Side::ManagedInstance } else { Side::SqlServer };
                format!("{} as {} sees it: {state}", other.as_str(), s.as_str())
            } else {
                format!("{}: {state}", s.as_str())
            }
        })
        .collect();
    // Queues and lag, as each side reports them (KB; seconds).
    let mut f = F::new("link-sync-health", Side::Link, Severity::Pass);
    for (side, r) in link.local_databases() {
        f = f.ev(
            &format!("{} queues", side.as_str()),
            format!(
                "{} sync, send {} KB, redo {} KB, lag {} s",
                r.str("synchronization_state_desc").unwrap_or(""),
                r.int("log_send_queue_size").unwrap_or(0),
                r.int("redo_queue_size").unwrap_or(0),
                r.int("secondary_lag_seconds").unwrap_or(0)
            ),
        );
    }
    push(if unhealthy.is_empty() {
        f.found("HEALTHY")
    } else {
        f.severity(Severity::Fail)
            .found(format!("NOT_HEALTHY ({})", unhealthy.join("; ")))
            .ev("not_healthy", unhealthy.join("; "))
    });

    push(lag(link));

    let roles: Vec<Option<&str>> = [Side::SqlServer, Side::ManagedInstance]
        .into_iter()
        .map(|s| link.local(s).and_then(|r| r.str("role_desc")))
        .collect();
    let f = F::new("link-split-brain", Side::Link, Severity::Pass)
        .ev("sql_server_role", roles[0].unwrap_or("unknown"))
        .ev("managed_instance_role", roles[1].unwrap_or("unknown"));
    push(if roles.iter().all(|r| *r == Some("PRIMARY")) {
        f.severity(Severity::Fail).found("both sides PRIMARY").remedy(
                "Split brain after a forced failover: back up the old primary first (tail-log backup if it was SQL Server, copy-only full if it was the MI), then on it: ALTER AVAILABILITY GROUP [<DAG>] SET (ROLE = SECONDARY); milink link reconcile --primary <side> --backup-to <folder or URL> does both and waits for the link.",
            )
    } else {
        f.found(format!(
            "SQL Server {}, managed instance {}",
            roles[0].unwrap_or("unknown"),
            roles[1].unwrap_or("unknown")
        ))
    });
}

/// `link-errorlog`: the mirroring lines of both error logs (the endpoint is shared by every link).
pub fn errorlog(seen: &[Seen], out: &mut Vec<Finding>) {
    let lines: Vec<String> =
        seen.iter().filter(|e| e.source == "errorlog").map(|e| format!("{}: {}", e.side.as_str(), e.text)).collect();
    let f = F::new("link-errorlog", Side::Link, Severity::Pass);
    out.push(
        if lines.is_empty() {
            f.found("no endpoint errors")
        } else {
            f.severity(Severity::Warn)
                .found(format!("{} endpoint error lines", lines.len()))
                .ev("lines", lines.join(" | "))
        }
        .done(),
    );
}

/// Lag past these is a warning, then a failure: minutes behind is a slow
/// moment, an hour behind loses an hour of data on a failover.
pub const LAG_WARN_S: i64 = 300;
pub const LAG_FAIL_S: i64 = 3600;
pub const QUEUE_WARN_KB: i64 = 1_048_576;
pub const QUEUE_FAIL_KB: i64 = 10_485_760;

/// How far behind the secondary is, from the local rows of each side.
fn lag(link: &Link<'_>) -> F {
    let mut f = F::new("link-lag", Side::Link, Severity::Pass);
    let (mut lag_s, mut send_kb, mut redo_kb) = (0i64, 0i64, 0i64);
    for (_, r) in link.local_databases() {
        lag_s = lag_s.max(r.int("secondary_lag_seconds").unwrap_or(0));
        send_kb = send_kb.max(r.int("log_send_queue_size").unwrap_or(0));
        redo_kb = redo_kb.max(r.int("redo_queue_size").unwrap_or(0));
    }
    f = f
        .found(format!("{} behind; send queue {send_kb} KB, redo queue {redo_kb} KB", human_seconds(lag_s)))
        .ev("secondary_lag_seconds", lag_s)
        .ev("log_send_queue_kb", send_kb)
        .ev("redo_queue_kb", redo_kb);
    let severity = if lag_s >= LAG_FAIL_S || send_kb.max(redo_kb) >= QUEUE_FAIL_KB {
        Severity::Fail
    } else if lag_s >= LAG_WARN_S || send_kb.max(redo_kb) >= QUEUE_WARN_KB {
        Severity::Warn
    } else {
        return f;
    };
    let queue = if redo_kb > send_kb {
        "The redo queue is the larger: the managed instance receives the log but cannot replay it fast enough (its tier's log and IO limits, or a long redo of index maintenance)."
    } else {
        "The send queue is the larger: SQL Server produces log faster than the link carries it (bandwidth or latency between the sites, or a bulk load or index rebuild on SQL Server)."
    };
    f.severity(severity).remedy(format!(
        "The secondary is {} behind. {queue} Meanwhile SQL Server's log cannot be truncated (log_reuse_wait AVAILABILITY_REPLICA). Run milink watch to see whether it grows or drains.",
        human_seconds(lag_s)
    ))
}

fn human_seconds(s: i64) -> String {
    match s {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}
