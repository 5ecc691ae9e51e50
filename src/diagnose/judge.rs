//! How a rule of `rules.rs` is held against a report: its routes' conditions
//! on the findings, the link's errors and its state, the first route that
//! holds giving the rule its weight; then the candidates ranked.

use serde::Serialize;

use super::kb;
use super::link::Seen;
use crate::report::{Finding, Severity};

/// How much a route's match says. A route the report's own findings confirm
/// weighs more than one an error number or text alone matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Weight {
    /// Nothing else explains a link whose state is wrong this way.
    Fallback = 20,
    /// Evidence that points here, while another cause explains it better.
    Weak = 40,
    /// An error's number alone, as the knowledge base reads it.
    NumberOnly = 50,
    /// An error's text alone (an OS error inside a description says more than its number).
    TextOnly = 55,
    Plausible = 60,
    Supported = 70,
    Probable = 75,
    Likely = 80,
    Strong = 85,
    /// The errors and the report's own findings agree.
    Confirmed = 90,
    /// Confirmed from both directions (one side's probe fails, the other's passes).
    Firm = 92,
    /// A failing check that alone breaks the link.
    Decisive = 95,
    /// The report shows it outright.
    Certain = 100,
}

impl Weight {
    pub fn confidence(self) -> &'static str {
        match self {
            w if w >= Weight::Likely => "high",
            w if w >= Weight::NumberOnly => "medium",
            _ => "low",
        }
    }
}

/// What the link looks like, as the report's link findings say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkIs {
    Disconnected,
    Connected,
}

/// One condition of a route.
#[derive(Debug, Clone, Copy)]
pub enum When {
    /// The check's finding failed.
    Fails(&'static str),
    Passes(&'static str),
    Warns(&'static str),
    /// The finding (of any severity) carries this evidence key.
    Has(&'static str, &'static str),
    /// The check could not decide (skip), e.g. no `--job-probes`.
    Skipped(&'static str),
    /// The check did not fail (or is not in the report).
    NotFailing(&'static str),
    /// The knowledge base's entry explains one of the link's errors (number, text or log line).
    Error(&'static str),
    Link(LinkIs),
    /// The finding's evidence `key` is a number below zero (days left on a certificate).
    Negative(&'static str, &'static str),
    /// Every error the knowledge base explains is one of these (nothing else,
    /// such as a handshake failure in the error log, explains the link better).
    OnlyErrors(&'static [&'static str]),
}

/// One way a rule can hold: every condition of `all`, at least one of `any`
/// (when it names some), and the weight that gives.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub all: &'static [When],
    pub any: &'static [When],
    pub weight: Weight,
    /// What would have made this route firmer.
    pub missing: Option<&'static str>,
}

/// What a rule fixes with: a finding's own remedy when it has one, else the text.
#[derive(Debug, Clone, Copy)]
pub struct Fix {
    pub from: Option<&'static str>,
    pub text: &'static str,
}

/// One root cause, as data.
#[derive(Debug)]
pub struct Rule {
    pub id: &'static str,
    pub summary: &'static str,
    /// The first route that holds decides the weight.
    pub routes: &'static [Route],
    /// Findings quoted as evidence when the rule holds (the link's errors follow).
    pub quote: &'static [&'static str],
    pub fix: Fix,
    pub doc: &'static str,
}

/// What a report holds for the rules to read.
pub struct Facts<'a> {
    pub findings: &'a [Finding],
    pub seen: &'a [Seen],
    pub disconnected: bool,
    /// Knowledge-base entries the link's errors match.
    pub kb: Vec<&'static str>,
}

impl<'a> Facts<'a> {
    pub fn new(findings: &'a [Finding], seen: &'a [Seen], disconnected: bool) -> Facts<'a> {
        let kb = seen.iter().flat_map(|e| kb::explain(e.number, &e.text)).map(|k| k.id).collect();
        Facts { findings, seen, disconnected, kb }
    }

    fn severity(&self, id: &str) -> Option<Severity> {
        self.findings.iter().find(|f| f.id == id).map(|f| f.severity)
    }

    fn failed(&self, id: &str) -> bool {
        self.findings.iter().any(|f| f.id == id && f.severity == Severity::Fail)
    }

    fn holds(&self, w: &When) -> bool {
        match *w {
            When::Fails(id) => self.failed(id),
            When::Passes(id) => self.severity(id) == Some(Severity::Pass),
            When::Warns(id) => self.severity(id) == Some(Severity::Warn),
            When::Has(id, key) => self.findings.iter().any(|f| f.id == id && f.evidence.contains_key(key)),
            When::Skipped(id) => self.severity(id) == Some(Severity::Skip),
            When::NotFailing(id) => !self.failed(id),
            When::Error(k) => self.kb.contains(&k),
            When::OnlyErrors(ks) => self.kb.iter().all(|k| ks.contains(k)),
            When::Link(LinkIs::Disconnected) => self.disconnected,
            When::Link(LinkIs::Connected) => !self.disconnected,
            When::Negative(id, key) => self
                .findings
                .iter()
                .filter(|f| f.id == id && f.severity == Severity::Fail)
                .any(|f| f.evidence.get(key).and_then(|v| v.as_i64()).is_some_and(|d| d < 0)),
        }
    }

    /// A finding as evidence: its ID, severity and evidence.
    pub fn says(&self, id: &str) -> Option<String> {
        let f = self.findings.iter().find(|f| f.id == id)?;
        Some(format!("{} {}: {}", f.id, f.severity.as_str(), crate::report::evidence_text(&f.evidence)))
    }

    /// The link's errors as evidence lines.
    pub fn errors(&self) -> Vec<String> {
        self.seen
            .iter()
            .map(|e| match e.number {
                Some(n) => format!("{} {}: {n} {}", e.side.as_str(), e.source, e.text.trim()),
                None => format!("{} {}: {}", e.side.as_str(), e.source, e.text.trim()),
            })
            .collect()
    }

    fn remedy(&self, id: &str) -> Option<&str> {
        self.findings.iter().find(|f| f.id == id).and_then(|f| f.remedy.as_deref())
    }
}

/// A rule that holds: its weight, the evidence it quotes, its fix.
#[derive(Debug, Clone)]
pub struct Judged {
    pub id: &'static str,
    pub weight: Weight,
    pub summary: String,
    pub evidence: Vec<String>,
    pub remedy: String,
    pub doc: &'static str,
    pub missing: Vec<String>,
}

impl Rule {
    /// The rule against the facts: the first route that holds, or none.
    pub fn judge(&self, f: &Facts<'_>) -> Option<Judged> {
        let route = self
            .routes
            .iter()
            .find(|r| r.all.iter().all(|w| f.holds(w)) && (r.any.is_empty() || r.any.iter().any(|w| f.holds(w))))?;
        let mut evidence: Vec<String> = self.quote.iter().filter_map(|id| f.says(id)).collect();
        evidence.extend(f.errors());
        let remedy = self.fix.from.and_then(|id| f.remedy(id)).unwrap_or(self.fix.text).to_string();
        Some(Judged {
            id: self.id,
            weight: route.weight,
            summary: self.summary.to_string(),
            evidence,
            remedy,
            doc: self.doc,
            missing: route.missing.map(str::to_string).into_iter().collect(),
        })
    }

    /// Whether a route rests only on the link's errors, no finding of the report.
    pub fn error_only(r: &Route) -> bool {
        r.all.iter().chain(r.any).all(|w| matches!(w, When::Error(_) | When::OnlyErrors(_) | When::Link(_)))
    }
}
