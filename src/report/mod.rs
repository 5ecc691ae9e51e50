//! Findings and the report: data first, rendering separate (table, JSON,
//! Markdown). Findings are values, never errors.

mod json;
mod markdown;
mod table;

use std::collections::BTreeMap;

use serde::Serialize;

pub use json::render as json;
pub use markdown::render as markdown;
pub use table::render as table;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Pass,
    Info,
    Skip,
    Warn,
    Fail,
    /// The check itself could not run (a timeout, a server that stalled).
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Pass => "pass",
            Severity::Info => "info",
            Severity::Skip => "skip",
            Severity::Warn => "warn",
            Severity::Fail => "fail",
            Severity::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    SqlServer,
    ManagedInstance,
    /// Both sides, or the link between them.
    Link,
    /// Where milink runs.
    Host,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::SqlServer => "sql_server",
            Side::ManagedInstance => "managed_instance",
            Side::Link => "link",
            Side::Host => "host",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub family: &'static str,
    pub side: Side,
    pub severity: Severity,
    pub title: String,
    /// What the finding is about when a check runs per object (a database).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The raw values seen.
    pub evidence: BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
    pub doc_url: &'static str,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub info: usize,
    pub skip: usize,
    pub warn: usize,
    pub fail: usize,
    pub error: usize,
    pub exit_code: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub findings: Vec<Finding>,
    pub summary: Summary,
}

/// Scheduler convention: 0 nothing above info, 1 warnings, 2 failures (or a
/// check that could not run). 3 is milink's own failure, decided by the CLI.
pub fn exit_code(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Fail | Severity::Error) => 2,
        Some(Severity::Warn) => 1,
        _ => 0,
    }
}

impl Report {
    pub fn new(mut findings: Vec<Finding>) -> Report {
        // Stable order: family, side, id, subject.
        findings.sort_by(|a, b| {
            (a.family, a.side.as_str(), a.id, &a.subject).cmp(&(b.family, b.side.as_str(), b.id, &b.subject))
        });
        let mut summary = Summary::default();
        for f in &findings {
            *match f.severity {
                Severity::Pass => &mut summary.pass,
                Severity::Info => &mut summary.info,
                Severity::Skip => &mut summary.skip,
                Severity::Warn => &mut summary.warn,
                Severity::Fail => &mut summary.fail,
                Severity::Error => &mut summary.error,
            } += 1;
        }
        summary.exit_code = exit_code(&findings);
        Report { schema_version: 1, findings, summary }
    }

    pub fn one_line(&self) -> String {
        let s = &self.summary;
        format!(
            "{} checks: {} pass, {} info, {} warn, {} fail, {} error, {} skipped",
            self.findings.len(),
            s.pass,
            s.info,
            s.warn,
            s.fail,
            s.error,
            s.skip
        )
    }
}

/// Evidence values as they print in a table or a ticket.
pub fn evidence_text(e: &BTreeMap<String, serde_json::Value>) -> String {
    e.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
