//! The human table, grouped by family, with a one-line summary.

use comfy_table::{ContentArrangement, Table};

use super::{Report, evidence_text};

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let mut families: Vec<&str> = report.findings.iter().map(|f| f.family).collect();
    families.dedup();
    for family in families {
        let mut t = Table::new();
        t.set_content_arrangement(ContentArrangement::Dynamic).set_width(140);
        t.set_header(["", "check", "side", "result", "evidence / fix"]);
        for f in report.findings.iter().filter(|f| f.family == family) {
            let mut detail = evidence_text(&f.evidence);
            if let Some(r) = &f.remedy
                && f.severity > super::Severity::Info
            {
                detail.push_str(&format!("\nfix: {r}"));
            }
            let title = match &f.subject {
                Some(s) => format!("{} ({s})", f.title),
                None => f.title.clone(),
            };
            t.add_row([
                f.severity.as_str().to_uppercase(),
                f.id.to_string(),
                f.side.as_str().to_string(),
                title,
                detail,
            ]);
        }
        out.push_str(&format!("{family}\n{t}\n\n"));
    }
    out.push_str(&report.one_line());
    out.push('\n');
    out
}
