//! `--format markdown`, for tickets: problems first, then what passed.

use super::{Report, Severity, evidence_text};

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// `lead` is a section that goes first, under the title (diagnose's root cause).
pub fn render(report: &Report, lead: Option<&str>) -> String {
    let mut out = String::from("# milink report\n\n");
    if let Some(l) = lead {
        out.push_str(l.trim_end());
        out.push_str("\n\n");
    }
    out.push_str(&format!("{}\n\n", report.one_line()));
    let problems: Vec<_> = report.findings.iter().filter(|f| f.severity > Severity::Info).collect();
    if !problems.is_empty() {
        out.push_str("## Needs attention\n\n");
        for f in problems {
            out.push_str(&format!(
                "### {} `{}` ({}, {})\n\n",
                f.severity.as_str().to_uppercase(),
                f.id,
                f.side.as_str(),
                f.family
            ));
            out.push_str(&f.title);
            if let Some(s) = &f.subject {
                out.push_str(&format!(" — {s}"));
            }
            if let Some(found) = &f.found {
                out.push_str(&format!(": **{found}**"));
            }
            out.push_str("\n\n");
            if !f.evidence.is_empty() {
                out.push_str(&format!("Evidence: {}\n\n", evidence_text(&f.evidence)));
            }
            if let Some(r) = &f.remedy {
                out.push_str(&format!("Fix:\n\n```sql\n{r}\n```\n\n"));
            }
            out.push_str(&format!("Docs: {}\n\n", f.doc_url));
        }
    }
    out.push_str("## All checks\n\n| severity | id | side | title |\n|---|---|---|---|\n");
    for f in &report.findings {
        let title = match &f.subject {
            Some(s) => format!("{} ({s})", f.title),
            None => f.title.clone(),
        };
        out.push_str(&format!("| {} | `{}` | {} | {} |\n", f.severity.as_str(), f.id, f.side.as_str(), cell(&title)));
    }
    out
}
