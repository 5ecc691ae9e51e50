//! `milink diagnose`: the pre-flight checks plus the link's own state (replicas,
//! errors, seeding, error log), then one most likely root cause first, with the
//! evidence from both, and the other candidates ranked.

pub mod kb;

use serde::Serialize;

use crate::checks::collect::{Evidence, Facts, SideEvidence, Sql};
use crate::checks::{self, F};
use crate::probe::sql::{Fields, Record};
use crate::profile::Profile;
use crate::report::{Finding, Report, Severity, Side};

#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub id: &'static str,
    pub confidence: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct RootCause {
    pub id: &'static str,
    pub summary: String,
    pub evidence: Vec<String>,
    pub remedy: String,
    pub confidence: &'static str,
    /// The other candidates, most likely first.
    pub candidates: Vec<Candidate>,
    /// Evidence that would have made the answer firmer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_evidence: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    #[serde(flatten)]
    pub report: Report,
    pub root_cause: Option<RootCause>,
}

impl Diagnosis {
    /// The root cause as the first section of a Markdown document.
    pub fn root_cause_markdown(&self) -> String {
        let d = self;
        let Some(rc) = &d.root_cause else {
            return "## Root cause\n\nNone: the link is connected and healthy.\n".into();
        };
        let mut s = format!("## Root cause\n\n**{}** (`{}`, {} confidence)\n\n", rc.summary, rc.id, rc.confidence);
        for e in &rc.evidence {
            s.push_str(&format!("- evidence: {}\n", e.replace('\n', " ")));
        }
        for m in &rc.missing_evidence {
            s.push_str(&format!("- missing: {}\n", m.replace('\n', " ")));
        }
        s.push_str(&format!("\nFix:\n\n```\n{}\n```\n", rc.remedy));
        if !rc.candidates.is_empty() {
            let other: Vec<String> = rc.candidates.iter().map(|c| format!("`{}` ({})", c.id, c.confidence)).collect();
            s.push_str(&format!("\nOther candidates: {}\n", other.join(", ")));
        }
        s
    }
}

/// An error seen on a side: number (if any), text, where it came from.
#[derive(Debug, Clone)]
struct Seen {
    side: Side,
    number: Option<i64>,
    text: String,
    source: &'static str,
}

fn facts(s: &SideEvidence) -> Option<&Facts> {
    match &s.sql {
        Sql::Facts(f) => Some(f),
        _ => None,
    }
}

fn rows<'a>(f: Option<&'a Facts>, q: &str) -> &'a [Record] {
    f.and_then(|f| f.rows(q)).and_then(|r| r.as_ref().ok()).map(|v| v.as_slice()).unwrap_or(&[])
}

struct Link<'a> {
    sql: Option<&'a Facts>,
    mi: Option<&'a Facts>,
}

impl Link<'_> {
    fn side(&self, side: Side) -> Option<&Facts> {
        if side == Side::SqlServer { self.sql } else { self.mi }
    }

    /// The local replica's row of the distributed AG on a side.
    fn local(&self, side: Side) -> Option<&Record> {
        rows(self.side(side), "link_replicas")
            .iter()
            .find(|r| r.flag("is_distributed") == Some(true) && r.flag("is_local") == Some(true))
    }

    fn dag_rows(&self, side: Side) -> impl Iterator<Item = &Record> {
        rows(self.side(side), "link_replicas").iter().filter(|r| r.flag("is_distributed") == Some(true))
    }

    /// Each side's own rows of the link's databases (queues, lag, state).
    fn local_databases(&self) -> impl Iterator<Item = (Side, &Record)> {
        [Side::SqlServer, Side::ManagedInstance].into_iter().flat_map(move |side| {
            rows(self.side(side), "link_databases")
                .iter()
                .filter(|r| r.flag("is_local") == Some(true))
                .map(move |r| (side, r))
        })
    }

    fn exists(&self) -> bool {
        self.local(Side::SqlServer).is_some() || self.local(Side::ManagedInstance).is_some()
    }

    fn disconnected(&self, side: Side) -> bool {
        self.dag_rows(side).any(|r| r.str("connected_state_desc") == Some("DISCONNECTED"))
    }

    fn errors(&self) -> Vec<Seen> {
        let mut out = Vec::new();
        for side in [Side::SqlServer, Side::ManagedInstance] {
            for r in self.dag_rows(side) {
                if let Some(n) = r.int("last_connect_error_number") {
                    let text = r.str("last_connect_error_description").unwrap_or("").to_string();
                    out.push(Seen { side, number: Some(n), text, source: "last_connect_error" });
                }
            }
            for r in rows(self.side(side), "seeding") {
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

fn link_findings(link: &Link<'_>, seen: &[Seen], out: &mut Vec<Finding>) {
    if !link.exists() {
        out.push(
            F::new("link-present", Side::Link, Severity::Warn)
                .found("no distributed availability group on either side")
                .ev("note", "no distributed availability group on either side: there is no link to diagnose yet (see milink check)")
                .done(),
        );
        return;
    }
    let names: Vec<String> = [Side::SqlServer, Side::ManagedInstance]
        .into_iter()
        .filter_map(|s| link.local(s).and_then(|r| r.str("ag_name")).map(|n| format!("{}: {n}", s.as_str())))
        .collect();
    out.push(
        F::new("link-present", Side::Link, Severity::Pass)
            .found(names.join("; "))
            .ev("distributed_ag", names.join(", "))
            .done(),
    );

    for side in [Side::SqlServer, Side::ManagedInstance] {
        if link.side(side).is_none() {
            out.push(F::skip("link-connected", side, "no SQL session to this side").done());
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
        out.push(f.done());
    }

    let unhealthy: Vec<String> = [Side::SqlServer, Side::ManagedInstance]
        .into_iter()
        .flat_map(|s| rows(link.side(s), "link_databases").iter().map(move |r| (s, r)))
        .filter(|(_, r)| r.str("synchronization_health_desc") == Some("NOT_HEALTHY"))
        .map(|(s, r)| format!("{}: {}", s.as_str(), r.str("synchronization_state_desc").unwrap_or("")))
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
    out.push(
        if unhealthy.is_empty() {
            f.found("HEALTHY")
        } else {
            f.severity(Severity::Fail)
                .found(format!("NOT_HEALTHY ({})", unhealthy.join("; ")))
                .ev("not_healthy", unhealthy.join("; "))
        }
        .done(),
    );

    out.push(lag(link).done());

    let roles: Vec<Option<&str>> = [Side::SqlServer, Side::ManagedInstance]
        .into_iter()
        .map(|s| link.local(s).and_then(|r| r.str("role_desc")))
        .collect();
    let f = F::new("link-split-brain", Side::Link, Severity::Pass)
        .ev("sql_server_role", roles[0].unwrap_or("unknown"))
        .ev("managed_instance_role", roles[1].unwrap_or("unknown"));
    out.push(
        if roles.iter().all(|r| *r == Some("PRIMARY")) {
            f.severity(Severity::Fail).found("both sides PRIMARY").remedy(
                "Split brain after a forced failover: back up the old primary first (tail-log backup if it was SQL Server, copy-only full if it was the MI), then on it: ALTER AVAILABILITY GROUP [<DAG>] SET (ROLE = SECONDARY); milink link reconcile --primary <side> --backup-to <folder or URL> does both and waits for the link.",
            )
        } else {
            f.found(format!(
                "SQL Server {}, managed instance {}",
                roles[0].unwrap_or("unknown"),
                roles[1].unwrap_or("unknown")
            ))
        }
        .done(),
    );

    let seeding: Vec<&Seen> = seen.iter().filter(|e| e.source == "seeding").collect();
    let f = F::new("link-seeding", Side::Link, Severity::Pass);
    out.push(
        match seeding.first() {
            None => f.found("no seeding failure"),
            Some(e) => {
                let fixes: Vec<&str> = kb::explain(e.number, &e.text).iter().map(|k| k.fix).collect();
                f.severity(Severity::Fail)
                    .found(format!("failed on {} (error {})", e.side.as_str(), e.number.unwrap_or(0)))
                    .ev("side", e.side.as_str())
                    .ev("error", e.number.unwrap_or(0))
                    .ev("message", e.text.clone())
                    .remedy(if fixes.is_empty() {
                        "Read the seeding error on both sides; seeding restarts from scratch.".to_string()
                    } else {
                        fixes.join(" ")
                    })
            }
        }
        .done(),
    );

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

fn failed<'a>(findings: &'a [Finding], id: &str) -> Option<&'a Finding> {
    findings.iter().find(|f| f.id == id && matches!(f.severity, Severity::Fail))
}

fn state(findings: &[Finding], id: &str) -> Option<Severity> {
    findings.iter().find(|f| f.id == id).map(|f| f.severity)
}

fn says(f: &Finding) -> String {
    format!("{} {}: {}", f.id, f.severity.as_str(), crate::report::evidence_text(&f.evidence))
}

/// (score, id, summary, evidence, remedy, missing evidence)
type Found = (u32, &'static str, String, Vec<String>, String, Vec<String>);

fn add(
    c: &mut Vec<Found>,
    score: u32,
    id: &'static str,
    summary: &str,
    evidence: Vec<String>,
    remedy: &str,
    missing: Vec<String>,
) {
    c.push((score, id, summary.to_string(), evidence, remedy.to_string(), missing));
}

/// Candidates scored from the evidence; the best one is the root cause.
fn correlate(findings: &[Finding], link: &Link<'_>, seen: &[Seen]) -> Option<RootCause> {
    let disconnected = link.disconnected(Side::SqlServer) || link.disconnected(Side::ManagedInstance);
    let split = findings.iter().any(|f| f.id == "link-split-brain" && f.severity == Severity::Fail);
    let unhealthy = findings.iter().any(|f| f.id == "link-sync-health" && f.severity == Severity::Fail);
    let seeding = findings.iter().any(|f| f.id == "link-seeding" && f.severity == Severity::Fail);
    let behind = failed(findings, "link-lag");
    // No link (link-present says so), or a connected, healthy one: nothing to explain.
    if !link.exists() || (!disconnected && !split && !unhealthy && !seeding && behind.is_none()) {
        return None;
    }
    let kb_ids: Vec<&str> = seen.iter().flat_map(|e| kb::explain(e.number, &e.text)).map(|k| k.id).collect();
    let kb = |id: &str| kb_ids.contains(&id);
    let errors: Vec<String> = seen
        .iter()
        .map(|e| {
            format!(
                "{} {}: {} {}",
                e.side.as_str(),
                e.source,
                e.number.map(|n| n.to_string()).unwrap_or_default(),
                e.text
            )
        })
        .collect();
    let mut c: Vec<Found> = Vec::new();

    if split {
        let ev: Vec<String> =
            findings.iter().filter(|f| f.id == "link-split-brain").map(says).chain(errors.clone()).collect();
        add(
            &mut c,
            100,
            "split-brain",
            "Both sides are PRIMARY of the distributed availability group (split brain, after a forced failover).",
            ev,
            "Back up the old primary, then make it secondary: ALTER AVAILABILITY GROUP [<DAG>] SET (ROLE = SECONDARY) (milink link reconcile --primary <the side to keep> --backup-to <folder or URL> does both, then waits until the link is CONNECTED).",
            vec![],
        );
    }
    if let Some(f) = failed(findings, "cert-sql-endpoint-expiry")
        .filter(|f| f.evidence.get("days_left").and_then(|v| v.as_i64()).is_some_and(|d| d < 0))
    {
        add(
            &mut c,
            95,
            "sql-endpoint-cert-expired",
            "SQL Server's mirroring endpoint certificate has expired, so the managed instance no longer accepts its handshake.",
            vec![says(f)].into_iter().chain(errors.clone()).collect(),
            f.remedy.as_deref().unwrap_or(""),
            vec![],
        );
    }
    if kb("1801") {
        let ev = findings.iter().filter(|f| f.id == "database-mi-name-free").map(says);
        add(
            &mut c,
            90,
            "mi-database-exists",
            "Seeding failed because the managed instance already has a database of the same name (1801).",
            ev.chain(errors.clone()).collect(),
            "Drop or rename the managed instance's database of that name once you know nothing in it is needed, then drop and re-create the link (milink link remove, then apply).",
            vec![],
        );
    }
    if kb("1408") || kb("1412") {
        add(
            &mut c,
            90,
            "seeding-log-truncated",
            "A log backup truncated the log while the link was seeding (1408/1412): the seeded copy cannot catch up.",
            errors.clone(),
            "Drop and re-create the link, and pause log backups on SQL Server until seeding completes.",
            vec![],
        );
    }
    if let Some(f) = behind.filter(|_| !disconnected) {
        add(
            &mut c,
            60,
            "link-far-behind",
            "The link is connected but far behind: the secondary lags by an hour or more, or a queue holds 10 GB or more.",
            vec![says(f)],
            f.remedy.as_deref().unwrap_or(""),
            vec!["whether the queue grows or drains over time (milink watch)".to_string()],
        );
    }
    let mi_to_sql = state(findings, "network-mi-to-sql-5022");
    let sql_to_mi = state(findings, "network-sql-to-mi-5022");
    // A missing or stopped endpoint also makes the MI → SQL probe fail: it explains it better.
    let endpoint_down =
        failed(findings, "endpoint-sql-started").is_some() || failed(findings, "endpoint-sql-present").is_some();
    if mi_to_sql == Some(Severity::Fail) {
        let (score, missing) = match sql_to_mi {
            _ if endpoint_down => (40, vec![]),
            Some(Severity::Pass) => (92, vec![]),
            _ => (70, vec!["SQL Server → MI 5022 untested or failing too".to_string()]),
        };
        let mut ev: Vec<String> = findings
            .iter()
            .filter(|f| f.id == "network-mi-to-sql-5022" || f.id == "network-sql-to-mi-5022")
            .map(says)
            .collect();
        ev.extend(errors.clone());
        add(
            &mut c,
            score,
            "sql-inbound-5022-blocked",
            "SQL Server's inbound TCP 5022 is blocked for the managed instance: the managed instance cannot reach SQL Server's mirroring endpoint, while SQL Server reaches the managed instance.",
            ev,
            "Open inbound TCP 5022 on SQL Server (host firewall and every firewall between) from the whole managed instance subnet.",
            missing,
        );
    } else if mi_to_sql == Some(Severity::Skip) && disconnected && (kb("35201") || kb("os-10060") || kb("41986")) {
        add(
            &mut c,
            55,
            "sql-inbound-5022-blocked",
            "Likely a firewall dropping 5022 on the way to SQL Server (connection timeouts from the managed instance).",
            errors.clone(),
            "Open inbound TCP 5022 on SQL Server from the managed instance subnet.",
            vec!["MI → SQL Server 5022 was not tested: rerun with --job-probes".to_string()],
        );
    }
    if sql_to_mi == Some(Severity::Fail) || (disconnected && failed(findings, "network-mi-5022").is_some()) {
        let ev = findings
            .iter()
            .filter(|f| f.id == "network-sql-to-mi-5022" || f.id == "network-mi-5022")
            .map(says)
            .collect();
        add(
            &mut c,
            80,
            "mi-inbound-5022-blocked",
            "The managed instance's 5022 is not reachable from SQL Server (NSG or outbound firewall).",
            ev,
            "Allow inbound 5022 and 11000-11999 from SQL Server's IP in the MI subnet NSG, and outbound on SQL Server's side.",
            vec![],
        );
    }
    if let Some(f) = failed(findings, "endpoint-sql-started").or(failed(findings, "endpoint-sql-present")) {
        add(
            &mut c,
            95,
            "sql-endpoint-down",
            "SQL Server's mirroring endpoint is missing or not started.",
            vec![says(f)],
            f.remedy.as_deref().unwrap_or(""),
            vec![],
        );
    } else if kb("35204") {
        add(
            &mut c,
            80,
            "sql-endpoint-down",
            "A mirroring endpoint is stopped or disabled (35204).",
            errors.clone(),
            "ALTER ENDPOINT [<endpoint>] STATE = STARTED;",
            vec![],
        );
    }
    if kb("encryption-mismatch") || failed(findings, "endpoint-sql-encryption").is_some() {
        let ev = failed(findings, "endpoint-sql-encryption").map(says).into_iter().chain(errors.clone()).collect();
        add(
            &mut c,
            85,
            "encryption-mismatch",
            "The endpoints share no encryption algorithm: the link needs AES.",
            ev,
            "ALTER ENDPOINT [<endpoint>] FOR DATABASE_MIRRORING (ENCRYPTION = REQUIRED ALGORITHM AES);",
            vec![],
        );
    }
    // A failing check names the problem; the error number alone is weaker evidence.
    for (check, number, id, summary, fix) in [
        (
            "cert-mi-imported",
            "41974",
            "mi-cert-not-imported",
            "SQL Server does not hold the managed instance's current certificate under its FQDN.",
            "Import it: CREATE CERTIFICATE [<MI FQDN>] FROM BINARY = <sp_get_endpoint_certificate 4 on the MI>.",
        ),
        (
            "cert-sql-trusted-on-mi",
            "41973",
            "sql-cert-not-on-mi",
            "The managed instance does not trust SQL Server's endpoint certificate.",
            "Upload it with New-AzSqlInstanceServerTrustCertificate.",
        ),
    ] {
        match failed(findings, check) {
            Some(f) => {
                let score = if kb(number) { 90 } else { 75 };
                add(&mut c, score, id, summary, vec![says(f)], f.remedy.as_deref().unwrap_or(fix), vec![]);
            }
            None if kb(number) => add(&mut c, 80, id, &format!("{summary} ({number})"), errors.clone(), fix, vec![]),
            None => {}
        }
    }
    if let Some(f) = failed(findings, "database-log-space") {
        add(
            &mut c,
            60,
            "log-full",
            "The database's log is nearly full: replication stops at 100%.",
            vec![says(f)],
            f.remedy.as_deref().unwrap_or(""),
            vec![],
        );
    }
    // An error the knowledge base knows, with no rule above that places it: its meaning and fix.
    if c.is_empty() {
        for e in seen {
            for k in kb::explain(e.number, &e.text).into_iter().filter(|k| !k.causes.is_empty()) {
                if !c.iter().any(|x| x.1 == k.id) {
                    let causes: Vec<&str> = k.causes.iter().map(|(what, _)| *what).collect();
                    let summary = format!("{} Likely: {}.", k.meaning, causes.join("; or "));
                    // A text pattern (an OS error inside the description) says more than the number around it.
                    let score = if k.pattern.is_some() { 55 } else { 50 };
                    add(&mut c, score, k.id, &summary, errors.clone(), k.fix, vec![]);
                }
            }
        }
    }
    if c.is_empty() {
        add(
            &mut c,
            20,
            "unexplained",
            "The link is not healthy, and no evidence here explains why.",
            errors.clone(),
            "Read both sides' error logs around the last connection error and run with --job-probes.",
            vec!["MI → SQL Server and SQL Server → MI from the servers themselves (--job-probes)".to_string()],
        );
    }
    c.sort_by_key(|f| std::cmp::Reverse(f.0));
    let confidence = |s: u32| {
        if s >= 80 {
            "high"
        } else if s >= 50 {
            "medium"
        } else {
            "low"
        }
    };
    let mut it = c.into_iter();
    let (score, id, summary, evidence, remedy, missing_evidence) = it.next().expect("one candidate at least");
    Some(RootCause {
        id,
        summary,
        evidence,
        remedy,
        confidence: confidence(score),
        candidates: it.map(|(s, id, ..)| Candidate { id, confidence: confidence(s) }).collect(),
        missing_evidence,
    })
}

pub fn evaluate(ev: &Evidence, p: &Profile) -> Diagnosis {
    let mut findings = checks::evaluate(ev, p);
    let link = Link { sql: facts(&ev.sql), mi: facts(&ev.mi) };
    let seen = link.errors();
    link_findings(&link, &seen, &mut findings);
    let root_cause = correlate(&findings, &link, &seen);
    Diagnosis { report: Report::new(findings), root_cause }
}

pub async fn run(p: &Profile) -> Diagnosis {
    let ev = checks::collect::collect(p).await;
    evaluate(&ev, p)
}
