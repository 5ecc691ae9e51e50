//! `milink diagnose`: the pre-flight checks plus the link's own state (replicas,
//! errors, seeding, error log), then one most likely root cause first, with the
//! evidence from both, and the other candidates ranked.

mod definition;
pub mod judge;
pub mod kb;
mod link;
pub mod rules;
mod seeding;

use serde::Serialize;

use crate::checks;
use crate::checks::collect::Evidence;
use crate::probe::sql::Fields;
use crate::profile::Profile;
use crate::report::{Finding, Report, Severity, Side};
use judge::{Facts, Judged, Weight};
pub use link::{LAG_FAIL_S, LAG_WARN_S, QUEUE_FAIL_KB, QUEUE_WARN_KB};
use link::{Link, Seen};

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
    /// Where the fix is documented.
    pub doc_url: &'static str,
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

/// The rules against the report: each that holds is a candidate, the
/// weightiest the root cause. With none, an error the knowledge base knows
/// explains itself; with no such error either, the cause is unexplained.
fn correlate(findings: &[Finding], link: &Link<'_>, seen: &[Seen]) -> Option<RootCause> {
    let disconnected = link.disconnected(Side::SqlServer) || link.disconnected(Side::ManagedInstance);
    let broken = ["link-split-brain", "link-sync-health", "link-seeding", "link-lag"]
        .iter()
        .any(|id| findings.iter().any(|f| f.id == *id && f.severity == Severity::Fail))
        // A seeding that keeps starting over, while the link still looks connected.
        || findings.iter().any(|f| f.id == "link-seeding" && f.severity == Severity::Warn);
    // No link (link-present says so), or a connected, healthy one: nothing to explain.
    if !link.exists() || (!disconnected && !broken) {
        return None;
    }
    let facts = Facts::new(findings, seen, disconnected);
    let mut c: Vec<Judged> = rules::RULES.iter().filter_map(|r| r.judge(&facts)).collect();
    if c.is_empty() {
        c = kb_explains(&facts);
    }
    if c.is_empty() {
        c.push(Judged {
            id: "unexplained",
            weight: Weight::Fallback,
            summary: "The link is not healthy, and no evidence here explains why.".into(),
            evidence: facts.errors(),
            remedy: "Read both sides' error logs around the last connection error and run with --job-probes.".into(),
            doc: kb::TROUBLESHOOT,
            missing: vec!["MI → SQL Server and SQL Server → MI from the servers themselves (--job-probes)".into()],
        });
    }
    c.sort_by_key(|j| std::cmp::Reverse(j.weight));
    let mut it = c.into_iter();
    let best = it.next().expect("one candidate at least");
    Some(RootCause {
        id: best.id,
        summary: best.summary,
        evidence: best.evidence,
        remedy: best.remedy,
        doc_url: best.doc,
        confidence: best.weight.confidence(),
        candidates: it.map(|j| Candidate { id: j.id, confidence: j.weight.confidence() }).collect(),
        missing_evidence: best.missing,
    })
}

/// Errors the knowledge base knows and no rule placed: their meaning and fix.
/// A text pattern (an OS error inside a description) says more than the number around it.
fn kb_explains(f: &Facts<'_>) -> Vec<Judged> {
    let mut out: Vec<Judged> = Vec::new();
    for e in f.seen {
        for k in kb::explain(e.number, &e.text).into_iter().filter(|k| !k.causes.is_empty()) {
            if out.iter().any(|x| x.id == k.id) {
                continue;
            }
            let causes: Vec<&str> = k.causes.iter().map(|(what, _)| *what).collect();
            out.push(Judged {
                id: k.id,
                weight: if k.pattern.is_some() { Weight::TextOnly } else { Weight::NumberOnly },
                summary: format!("{} Likely: {}.", k.meaning, causes.join("; or ")),
                evidence: f.errors(),
                remedy: k.fix.to_string(),
                doc: k.doc,
                missing: vec![],
            });
        }
    }
    out
}

pub fn evaluate(ev: &Evidence, p: &Profile) -> Diagnosis {
    let mut findings = checks::evaluate(ev, p);
    let link = Link { sql: link::facts(&ev.sql), mi: link::facts(&ev.mi) };
    let seen = link.errors();
    link::link_findings(&link, &seen, &mut findings);
    if link.exists() {
        findings.push(seeding::finding(&link, &seen, time::OffsetDateTime::now_utc()));
        let mi_name = link.mi.and_then(|f| f.first("props")).and_then(|r| r.str("server_name"));
        let cx = definition::Context { arm: ev.arm.as_ref(), mi_name, mi_fqdn: &p.managed_instance.fqdn };
        definition::findings(&link, &cx, &mut findings);
    }
    let root_cause = correlate(&findings, &link, &seen);
    Diagnosis { report: Report::new(findings), root_cause }
}

pub async fn run(p: &Profile) -> Diagnosis {
    let ev = checks::collect::collect(p).await;
    evaluate(&ev, p)
}
