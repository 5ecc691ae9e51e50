//! `milink diagnose`: the pre-flight checks plus each link's own state
//! (replicas, errors, seeding, error log), then per broken link one most likely
//! root cause, with the evidence from both, and the other candidates ranked.
//! Findings every link shares (network, certificates, instances) come once.

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
    /// The link it explains (its distributed AG), when the pair has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(skip)]
    weight: Weight,
}

/// One link of the pair: healthy, or broken with its root cause.
#[derive(Debug, Clone, Serialize)]
pub struct LinkVerdict {
    pub link: String,
    pub databases: Vec<String>,
    pub healthy: bool,
    pub root_cause: Option<RootCause>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    #[serde(flatten)]
    pub report: Report,
    /// The weightiest root cause of any link (null when every link is healthy).
    pub root_cause: Option<RootCause>,
    /// Every link of the pair, broken ones first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkVerdict>,
}

impl Diagnosis {
    /// A report with no link part (what `check` makes).
    pub fn checks_only(report: Report) -> Diagnosis {
        Diagnosis { report, root_cause: None, links: Vec::new() }
    }

    /// The names of the links that are healthy.
    pub fn healthy_links(&self) -> Vec<&str> {
        self.links.iter().filter(|l| l.healthy).map(|l| l.link.as_str()).collect()
    }

    /// The root causes of every broken link, weightiest first.
    pub fn root_causes(&self) -> Vec<&RootCause> {
        self.links.iter().filter_map(|l| l.root_cause.as_ref()).collect()
    }
}

impl Diagnosis {
    /// The root causes as the first section of a Markdown document.
    pub fn root_cause_markdown(&self) -> String {
        let causes = self.root_causes();
        if causes.is_empty() {
            return match self.links.len() {
                0 | 1 => "## Root cause\n\nNone: the link is connected and healthy.\n".into(),
                n => format!("## Root cause\n\nNone: all {n} links are connected and healthy.\n"),
            };
        }
        let mut s = String::new();
        if self.links.len() > 1 {
            let healthy = self.healthy_links();
            s.push_str(&format!(
                "## Links\n\n{} links, {} broken; healthy: {}\n\n",
                self.links.len(),
                causes.len(),
                if healthy.is_empty() { "none".to_string() } else { healthy.join(", ") }
            ));
        }
        let named = self.links.len() > 1;
        for rc in causes {
            s.push_str(&cause_markdown(rc, named));
        }
        s
    }
}

/// `named`: the pair has several links, so the cause says whose it is.
fn cause_markdown(rc: &RootCause, named: bool) -> String {
    let of = rc.link.as_ref().filter(|_| named).map(|l| format!(" of {l}")).unwrap_or_default();
    let mut s = format!("## Root cause{of}\n\n**{}** (`{}`, {} confidence)\n\n", rc.summary, rc.id, rc.confidence);
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
        link: link.dag.clone(),
        weight: best.weight,
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
    let all = Link::new(link::facts(&ev.sql), link::facts(&ev.mi));
    let mut links: Vec<(Link<'_>, Vec<Seen>)> = Vec::new();
    if link::present(&all, &mut findings) {
        let mi_name = all.mi.and_then(|f| f.first("props")).and_then(|r| r.str("server_name"));
        let cx = definition::Context { arm: ev.arm.as_ref(), mi_name, mi_fqdn: &p.managed_instance.fqdn };
        let now = time::OffsetDateTime::now_utc();
        for dag in all.dags() {
            let one = all.one(&dag);
            let seen = one.errors();
            link::link_findings(&one, &seen, &mut findings);
            findings.push(seeding::finding(&one, &seen, now));
            definition::findings(&one, &cx, &mut findings);
            links.push((one, seen));
        }
        link::errorlog(&all.errors(), &mut findings);
    }
    let mut verdicts: Vec<LinkVerdict> = links.iter().map(|(one, seen)| verdict(&findings, one, seen)).collect();
    // Broken links first, the weightiest cause first; then the healthy ones by name.
    verdicts
        .sort_by_key(|v| (std::cmp::Reverse(v.root_cause.as_ref().map(|rc| rc.weight)), v.link.to_ascii_lowercase()));
    let root_cause = verdicts.first().and_then(|v| v.root_cause.clone());
    Diagnosis { report: Report::new(findings), root_cause, links: verdicts }
}

/// One link against the findings it shares with the others and its own.
fn verdict(findings: &[Finding], one: &Link<'_>, seen: &[Seen]) -> LinkVerdict {
    let dag = one.dag.clone().unwrap_or_default();
    let databases = one.databases();
    let mine = |f: &&Finding| match &f.subject {
        None => true,
        Some(s) => s.eq_ignore_ascii_case(&dag) || databases.iter().any(|d| d.eq_ignore_ascii_case(s)),
    };
    let relevant: Vec<Finding> = findings.iter().filter(mine).cloned().collect();
    let root_cause = correlate(&relevant, one, seen);
    LinkVerdict { healthy: root_cause.is_none(), link: dag, databases, root_cause }
}

pub async fn run(p: &Profile) -> Diagnosis {
    let ev = checks::collect::collect(p).await;
    evaluate(&ev, p)
}
