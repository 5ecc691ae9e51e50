//! The human table: what needs attention first (failures, then warnings, each
//! with its fix), then one line counting the rest; `verbose` lists every
//! finding by family, as before.

use comfy_table::{ContentArrangement, Table};

use super::{Finding, Report, Severity, evidence_text, short_blobs};
use crate::input::shorten;

fn row(f: &Finding) -> [String; 5] {
    let mut detail = shorten(&short_blobs(&evidence_text(&f.evidence)), 600);
    if let Some(r) = &f.remedy
        && f.severity > Severity::Info
    {
        detail.push_str(&format!("\nfix: {}", shorten(&short_blobs(r), 1200)));
    }
    // What was found when the check says it; else what was checked.
    let said = f.found.as_deref().map(|x| shorten(x, 200)).unwrap_or_else(|| f.title.clone());
    let title = match &f.subject {
        Some(s) => format!("{said} ({s})"),
        None => said,
    };
    [f.severity.as_str().to_uppercase(), f.id.to_string(), f.side.as_str().to_string(), title, detail]
}

fn table() -> Table {
    let mut t = Table::new();
    t.set_content_arrangement(ContentArrangement::Dynamic).set_width(140);
    t.set_header(["", "check", "side", "result", "evidence / fix"]);
    t
}

pub fn render(report: &Report, verbose: bool) -> String {
    let mut out = String::new();
    if verbose {
        let mut families: Vec<&str> = report.findings.iter().map(|f| f.family).collect();
        families.dedup();
        for family in families {
            let mut t = table();
            for f in report.findings.iter().filter(|f| f.family == family) {
                t.add_row(row(f));
            }
            out.push_str(&format!("{family}\n{t}\n\n"));
        }
    } else {
        let mut problems: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| matches!(f.severity, Severity::Warn | Severity::Fail | Severity::Error))
            .collect();
        // Worst first; the report's stable order within a severity.
        problems.sort_by_key(|f| std::cmp::Reverse(f.severity));
        if !problems.is_empty() {
            let mut t = table();
            for f in &problems {
                t.add_row(row(f));
            }
            out.push_str(&format!("Needs attention\n{t}\n\n"));
        }
        let s = &report.summary;
        out.push_str(&format!(
            "Not shown: {} passed, {} skipped, {} info (-v lists every check).\n",
            s.pass, s.skip, s.info
        ));
    }
    out.push_str(&report.one_line());
    out.push('\n');
    out
}
