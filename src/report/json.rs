//! `--format json`: `{"schema_version": 1, "findings": [...], "summary": {...}}`.

use super::Report;

pub fn render(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report serialises")
}
