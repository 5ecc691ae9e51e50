//! `report.html`: one self-contained page (no external assets). The root cause
//! first, then a picture of the link with each path coloured by its result,
//! then the findings by family.

use crate::diagnose::Diagnosis;
use crate::profile::Profile;
use crate::report::{Finding, Severity, Side, evidence_text, short_blobs};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn colour(s: Option<Severity>) -> &'static str {
    match s {
        Some(Severity::Pass) => "#2e7d32",
        Some(Severity::Warn) => "#ef8f00",
        Some(Severity::Fail) => "#c62828",
        Some(Severity::Error) => "#7b1fa2",
        _ => "#9e9e9e",
    }
}

/// The worst severity among findings with these ids (on any side).
fn worst(d: &Diagnosis, ids: &[&str]) -> Option<Severity> {
    d.report.findings.iter().filter(|f| ids.contains(&f.id)).map(|f| f.severity).filter(|s| *s != Severity::Skip).max()
}

fn found(d: &Diagnosis, id: &str, side: Side) -> String {
    d.report
        .findings
        .iter()
        .find(|f| f.id == id && f.side == side)
        .map(|f| f.found.clone().unwrap_or_else(|| f.severity.as_str().to_string()))
        .unwrap_or_else(|| "not checked".into())
}

/// A path between two points, coloured by `ids`, with a label at its middle.
/// `at`: where along the line its label sits (0.5 is the middle).
fn path(
    d: &Diagnosis,
    (x1, y1): (i32, i32),
    (x2, y2): (i32, i32),
    label: &str,
    ids: &[&str],
    dashed: bool,
    at: f32,
) -> String {
    let s = worst(d, ids);
    let c = colour(s);
    let dash = if dashed { r#" stroke-dasharray="8 6""# } else { "" };
    let (mx, my) = (x1 + ((x2 - x1) as f32 * at) as i32, y1 + ((y2 - y1) as f32 * at) as i32);
    let state = s.map(|s| s.as_str()).unwrap_or("not checked");
    format!(
        r##"<g><title>{} — {state}</title><line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{c}" stroke-width="4" marker-end="url(#arrow)"{dash}/><rect x="{}" y="{}" width="{}" height="22" rx="11" fill="#fff" stroke="{c}"/><text x="{mx}" y="{}" text-anchor="middle" fill="{c}" font-size="13">{}</text></g>"##,
        esc(&ids.join(", ")),
        mx - 7 * label.len() as i32 / 2 - 10,
        my - 11,
        7 * label.len() as i32 + 20,
        my + 4,
        esc(label)
    )
}

fn box_(x: i32, title: &str, host: &str, lines: &[(String, Option<Severity>)]) -> String {
    let mut s = format!(
        r##"<rect x="{x}" y="190" width="340" height="190" rx="14" fill="#f7f9fc" stroke="#34495e" stroke-width="2"/><text x="{}" y="220" text-anchor="middle" font-size="17" font-weight="600" fill="#1f2d3d">{}</text><text x="{}" y="242" text-anchor="middle" font-size="12" fill="#5d6d7e">{}</text>"##,
        x + 170,
        esc(title),
        x + 170,
        esc(host)
    );
    for (i, (line, sev)) in lines.iter().enumerate() {
        let y = 272 + 26 * i as i32;
        // A picture has no room for byte counts: cut with an ellipsis.
        let line: String = match line.char_indices().nth(46) {
            Some((at, _)) => format!("{}…", &line[..at]),
            None => line.clone(),
        };
        s.push_str(&format!(
            r##"<circle cx="{}" cy="{}" r="6" fill="{}"/><text x="{}" y="{}" font-size="12.5" fill="#1f2d3d">{}</text>"##,
            x + 20,
            y - 4,
            colour(*sev),
            x + 34,
            y,
            esc(&line)
        ));
    }
    s
}

/// The two sides, milink between and above them, DNS, 1433 and 5022 in both
/// directions, the redirect range and the certificates each side trusts.
pub fn diagram(d: &Diagnosis, p: &Profile) -> String {
    let one =
        |id: &str, side: Side| d.report.findings.iter().find(|f| f.id == id && f.side == side).map(|f| f.severity);
    let sql_lines = vec![
        (
            format!("endpoint cert: {}", found(d, "cert-sql-endpoint-expiry", Side::SqlServer)),
            one("cert-sql-endpoint-expiry", Side::SqlServer),
        ),
        ("trusts the MI's certificate".to_string(), one("cert-mi-imported", Side::Link)),
        (
            format!("endpoint: {}", found(d, "endpoint-sql-auth", Side::SqlServer)),
            worst(d, &["endpoint-sql-auth", "endpoint-sql-encryption", "endpoint-sql-started"]),
        ),
        (
            format!("TLS 1433: {}", found(d, "tls-sql-certificate", Side::SqlServer)),
            one("tls-sql-certificate", Side::SqlServer),
        ),
    ];
    let mi_lines = vec![
        ("trusts SQL Server's certificate".to_string(), one("cert-sql-trusted-on-mi", Side::Link)),
        (
            format!("redirect: {}", found(d, "network-mi-redirect", Side::ManagedInstance)),
            one("network-mi-redirect", Side::ManagedInstance),
        ),
        (
            format!("TLS 1433: {}", found(d, "tls-mi-certificate", Side::ManagedInstance)),
            one("tls-mi-certificate", Side::ManagedInstance),
        ),
        (
            format!("link: {}", found(d, "link-connected", Side::ManagedInstance)),
            worst(d, &["link-connected", "link-sync-health", "link-split-brain"]),
        ),
    ];
    let mut s = String::from(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1020 470" role="img" aria-label="The link and its paths, coloured by result" font-family="Segoe UI, Helvetica, Arial, sans-serif"><defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>"##,
    );
    s.push_str(r##"<rect x="410" y="20" width="200" height="60" rx="12" fill="#1f2d3d"/><text x="510" y="56" text-anchor="middle" fill="#fff" font-size="16" font-weight="600">milink (here)</text>"##);
    s.push_str(&box_(20, "SQL Server", &p.sql_server.host, &sql_lines));
    s.push_str(&box_(660, "Managed Instance", &p.managed_instance.fqdn, &mi_lines));
    let to_sql_1433: &[&str] = &["dns-sql-host", "network-sql-1433", "login-sql"];
    let to_mi_1433: &[&str] = &["dns-mi-fqdn", "network-mi-1433", "login-mi"];
    s.push_str(&path(d, (440, 80), (190, 188), "DNS · TDS 1433", to_sql_1433, false, 0.5));
    s.push_str(&path(d, (580, 80), (790, 188), "DNS · TDS 1433", to_mi_1433, false, 0.45));
    let to_mi: &[&str] = &["network-mi-5022", "network-sql-to-mi-5022", "network-sql-to-mi-hadr"];
    let to_sql: &[&str] = &["network-sql-5022", "network-mi-to-sql-5022"];
    s.push_str(&path(d, (362, 250), (656, 250), "5022 → MI (and its HADR port)", to_mi, false, 0.5));
    s.push_str(&path(d, (656, 340), (362, 340), "5022 → SQL Server", to_sql, false, 0.5));
    s.push_str(&path(d, (612, 50), (960, 186), "redirect 11000-11999", &["network-mi-redirect"], true, 0.62));
    s.push_str(r##"<g font-size="12" fill="#1f2d3d">"##);
    for (i, (label, sev)) in [
        ("pass", Severity::Pass),
        ("warn", Severity::Warn),
        ("fail", Severity::Fail),
        ("error", Severity::Error),
        ("not checked", Severity::Skip),
    ]
    .iter()
    .enumerate()
    {
        let x = 250 + 100 * i as i32;
        s.push_str(&format!(
            r##"<circle cx="{x}" cy="440" r="6" fill="{}"/><text x="{}" y="444">{label}</text>"##,
            colour(Some(*sev)),
            x + 10
        ));
    }
    s.push_str("</g></svg>");
    s
}

fn finding_row(f: &Finding) -> String {
    let subject = f.subject.as_deref().map(|s| format!(" <em>({})</em>", esc(s))).unwrap_or_default();
    let fix = f
        .remedy
        .as_deref()
        .filter(|_| f.severity > Severity::Info)
        .map(|r| format!("<div class=fix>fix: {}</div>", esc(&short_blobs(r))))
        .unwrap_or_default();
    format!(
        r#"<tr class="{sev}"><td><span class="sev {sev}">{sev}</span></td><td><code>{}</code></td><td>{}</td><td>{}{subject}<div class=found>{}</div></td><td class=ev>{}{fix}</td></tr>"#,
        esc(f.id),
        f.side.as_str(),
        esc(&f.title),
        esc(f.found.as_deref().unwrap_or("")),
        esc(&short_blobs(&crate::input::shorten(&evidence_text(&f.evidence), 600))),
        sev = f.severity.as_str(),
    )
}

/// The watch history's changes (not the starting values), oldest first, the last 200.
fn timeline(events: &[crate::watch::events::Event]) -> String {
    // The first poll's events are the starting picture, not changes.
    let start = events.first().map(|e| e.at.as_str());
    let changes: Vec<_> = events.iter().filter(|e| Some(e.at.as_str()) != start || e.kind == "root_cause").collect();
    if changes.is_empty() {
        return String::new();
    }
    let rows: String = changes[changes.len().saturating_sub(200)..]
        .iter()
        .map(|e| {
            let sev = match e.severity.as_str() {
                "ok" => "pass",
                other => other,
            };
            let what = match &e.subject {
                Some(s) => format!("{} {s}", e.kind),
                None => e.kind.clone(),
            };
            let change = format!("{} &rarr; {}", esc(e.from.as_deref().unwrap_or("")), esc(&e.to));
            format!(
                "<tr><td>{}</td><td><span class='sev {sev}'>{}</span></td><td>{}</td><td>{}</td><td>{change}<div class=ev>{}</div></td></tr>",
                esc(&e.at.replace('T', " ").chars().take(19).collect::<String>()),
                esc(&e.severity),
                esc(&e.side),
                esc(&what),
                esc(&short_blobs(e.detail.as_deref().unwrap_or("")))
            )
        })
        .collect();
    format!(
        "<h2>Timeline (milink watch)</h2><table class=tl><thead><tr><th>when (UTC)</th><th></th><th>side</th><th>what</th><th>change</th></tr></thead><tbody>{rows}</tbody></table>"
    )
}

pub fn page(d: &Diagnosis, p: &Profile, history: &[crate::watch::events::Event]) -> String {
    let root = match &d.root_cause {
        None => "<section class='root ok'><h2>Root cause</h2><p>None: the link is connected and healthy.</p></section>"
            .to_string(),
        Some(rc) => {
            let ev: String = rc.evidence.iter().map(|e| format!("<li>{}</li>", esc(e))).collect();
            format!(
                "<section class=root><h2>Root cause</h2><p class=summary>{} <code>{}</code> <span class=conf>{} confidence</span></p><ul>{ev}</ul><pre>{}</pre></section>",
                esc(&rc.summary),
                esc(rc.id),
                esc(rc.confidence),
                esc(&short_blobs(&rc.remedy))
            )
        }
    };
    let mut families: Vec<&str> = d.report.findings.iter().map(|f| f.family).collect();
    families.dedup();
    let mut tables = String::new();
    for family in families {
        let mut rows: Vec<&Finding> = d.report.findings.iter().filter(|f| f.family == family).collect();
        rows.sort_by_key(|f| std::cmp::Reverse(f.severity));
        let body: String = rows.iter().map(|f| finding_row(f)).collect();
        tables.push_str(&format!(
            "<h3>{}</h3><table><thead><tr><th></th><th>check</th><th>side</th><th>what was checked / found</th><th>evidence / fix</th></tr></thead><tbody>{body}</tbody></table>",
            esc(family)
        ));
    }
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>milink report</title><style>
body{{font-family:"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#1f2d3d;padding:0 16px}}
h1{{font-size:24px;margin-bottom:4px}} .sub{{color:#5d6d7e;margin-top:0}}
.root{{border-left:6px solid #c62828;background:#fdf2f2;padding:8px 18px;border-radius:6px}} .root.ok{{border-color:#2e7d32;background:#f1f8f1}}
.summary{{font-size:17px;font-weight:600}} .conf{{font-weight:400;color:#5d6d7e}} pre{{white-space:pre-wrap;background:#fff;padding:10px;border-radius:4px}}
svg{{width:100%;height:auto;margin:18px 0;background:#fff;border:1px solid #e1e6ec;border-radius:10px}}
table{{border-collapse:collapse;width:100%;margin-bottom:18px;font-size:13px}} th,td{{text-align:left;padding:6px 8px;border-bottom:1px solid #e1e6ec;vertical-align:top}}
.sev{{display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;font-size:11px;text-transform:uppercase}}
.sev.pass{{background:#2e7d32}} .sev.warn{{background:#ef8f00}} .sev.fail{{background:#c62828}} .sev.error{{background:#7b1fa2}} .sev.skip,.sev.info{{background:#9e9e9e}}
.tl td:first-child{{white-space:nowrap}} .found{{color:#1f2d3d;font-weight:600}} .ev{{color:#5d6d7e;word-break:break-word}} .fix{{color:#1f2d3d;margin-top:4px}}
</style></head><body><h1>milink report</h1><p class=sub>{}</p>{root}{}{}<h2>Findings</h2>{tables}</body></html>
"#,
        esc(&d.report.one_line()),
        diagram(d, p),
        timeline(history)
    )
}
