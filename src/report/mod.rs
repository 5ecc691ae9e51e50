//! Findings and the report: data first, rendering separate (table, JSON,
//! Markdown). Findings are values, never errors.

mod json;
mod markdown;
pub mod prometheus;
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
    /// What was found, in a few words ("expires in 19 days, on 2026-12-13").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
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

/// "expires in 19 days, on 2026-12-13", or "expired 3 days ago, on …".
pub fn expiry_phrase(days_left: i64, date: &str) -> String {
    let day = date.get(..10).unwrap_or(date);
    match days_left {
        d if d < -1 => format!("expired {} days ago, on {day}", -d),
        -1 => format!("expired yesterday, on {day}"),
        0 => format!("expires today, {day}"),
        1 => format!("expires tomorrow, {day}"),
        d => format!("expires in {d} days, on {day}"),
    }
}

/// Long hex literals (certificate blobs) as `0x3082…(1234 bytes)`, for a
/// table: the JSON and `--fix-sql` keep them whole.
pub fn short_blobs(s: &str) -> String {
    crate::tsql::map_blobs(s, 32, |hex| format!("0x{}…({} bytes)", &hex[..4], hex.len() / 2))
}

/// Every remedy of a report, worst first, for `--fix-sql`: one that is T-SQL
/// as it stands is written to run; one in words, or with a `<placeholder>`
/// to fill in, goes in as a comment.
pub fn fix_sql(findings: &[Finding], lead: Option<(&str, &str)>) -> String {
    let mut out = String::from("-- milink: the fixes of this run, worst first. Read each before running it.\n");
    let mut block = |id: &str, what: &str, remedy: &str| {
        out.push_str(&format!("\n-- {id} ({what})\n"));
        let runnable = ["USE ", "CREATE ", "ALTER ", "EXEC ", "BACKUP ", "DROP ", "DBCC "]
            .iter()
            .any(|k| remedy.trim_start().to_ascii_uppercase().starts_with(k))
            && !remedy.contains('<');
        if runnable {
            out.push_str(remedy.trim());
            out.push('\n');
        } else {
            for line in remedy.lines() {
                out.push_str(&format!("-- {line}\n"));
            }
        }
    };
    if let Some((id, remedy)) = lead {
        block(id, "root cause", remedy);
    }
    let mut problems: Vec<&Finding> = findings.iter().filter(|f| f.remedy.is_some()).collect();
    problems.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for f in problems {
        let what = match &f.subject {
            Some(s) => format!("{}, {}, {s}", f.severity.as_str(), f.side.as_str()),
            None => format!("{}, {}", f.severity.as_str(), f.side.as_str()),
        };
        block(f.id, &what, f.remedy.as_deref().unwrap_or_default());
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_shrink_in_tables_only() {
        let blob = format!("CREATE CERTIFICATE [mi] FROM BINARY = 0x{};", "3082".repeat(300));
        assert_eq!(short_blobs(&blob), "CREATE CERTIFICATE [mi] FROM BINARY = 0x3082…(600 bytes);");
        assert_eq!(short_blobs("state 0x1f and 0x"), "state 0x1f and 0x");
    }

    #[test]
    fn expiry_reads_as_a_date() {
        assert_eq!(expiry_phrase(19, "2026-12-13 10:00:00"), "expires in 19 days, on 2026-12-13");
        assert_eq!(expiry_phrase(-3, "2026-11-20"), "expired 3 days ago, on 2026-11-20");
        assert_eq!(expiry_phrase(0, "2026-11-23"), "expires today, 2026-11-23");
    }
}
