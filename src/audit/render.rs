//! The audit as a table (problems only unless verbose), JSON, Markdown, and
//! Prometheus text exposition for node_exporter's textfile collector.

use std::fmt::Write;

use comfy_table::{ContentArrangement, Table};

use super::AuditReport;
use super::judge::Status;
use crate::input::shorten as short;

pub fn json(r: &AuditReport) -> String {
    serde_json::to_string_pretty(r).expect("an audit serialises")
}

pub fn table(r: &AuditReport, verbose: bool) -> String {
    let mut out = String::new();
    let shown: Vec<_> = r.certificates.iter().filter(|c| verbose || c.status != Status::Ok).collect();
    if !shown.is_empty() {
        let mut t = Table::new();
        t.set_content_arrangement(ContentArrangement::Dynamic).set_width(160);
        t.set_header(["status", "days", "instance", "usage", "certificate", "result", "thumbprint", "key"]);
        for c in shown {
            t.add_row([
                c.status.as_str().to_uppercase(),
                c.days_left.map(|d| d.to_string()).unwrap_or_else(|| "?".into()),
                c.instance.clone(),
                c.usage.to_string(),
                short(&c.certificate, 80),
                c.detail.clone(),
                c.thumbprint.as_deref().map(|t| t.chars().take(12).collect()).unwrap_or_default(),
                c.key.clone().unwrap_or_default(),
            ]);
        }
        let _ = writeln!(out, "Certificates (worst first)\n{t}\n");
    }
    let links: Vec<_> = r.links.iter().filter(|l| verbose || l.status != Status::Ok).collect();
    if !links.is_empty() {
        let mut t = Table::new();
        t.set_content_arrangement(ContentArrangement::Dynamic).set_width(160);
        t.set_header(["status", "link", "SQL Server", "managed instance", "trust", "result / fix"]);
        for l in links {
            for (what, c) in [("MI cert on SQL Server", &l.mi_cert_on_sql), ("SQL cert on MI", &l.sql_cert_on_mi)] {
                let mut detail = c.detail.clone();
                if let Some(fix) = &c.remedy {
                    let _ = write!(detail, "\nfix: {fix}");
                }
                t.add_row([
                    c.status.as_str().to_uppercase(),
                    l.link.clone(),
                    l.sql_server.clone(),
                    l.managed_instance.clone(),
                    what.to_string(),
                    detail,
                ]);
            }
        }
        let _ = writeln!(out, "Links\n{t}\n");
    }
    let unreadable: Vec<_> = r.instances.iter().filter(|i| i.status == Status::Unknown || verbose).collect();
    if !unreadable.is_empty() {
        let mut t = Table::new();
        t.set_content_arrangement(ContentArrangement::Dynamic).set_width(160);
        t.set_header(["status", "instance", "side", "host", "reason / notes"]);
        for i in unreadable {
            let mut why = i.error.as_deref().map(|e| short(e, 300)).unwrap_or_default();
            for n in &i.notes {
                let _ = write!(why, "{}note: {}", if why.is_empty() { "" } else { "\n" }, short(n, 300));
            }
            t.add_row([
                i.status.as_str().to_uppercase(),
                i.instance.clone(),
                i.side.as_str().to_string(),
                i.host.clone(),
                why,
            ]);
        }
        let _ = writeln!(out, "Instances\n{t}\n");
    }
    out.push_str(&r.one_line());
    out.push('\n');
    out
}

pub fn markdown(r: &AuditReport) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = format!("# milink certificate audit\n\n{}\n\n", r.one_line());
    let problems: Vec<_> = r.certificates.iter().filter(|c| c.status != Status::Ok).collect();
    if !problems.is_empty() {
        out.push_str("## Certificates that need attention\n\n| status | days | instance | usage | certificate | result |\n|---|---|---|---|---|---|\n");
        for c in problems {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                c.status.as_str().to_uppercase(),
                c.days_left.map(|d| d.to_string()).unwrap_or_else(|| "?".into()),
                cell(&c.instance),
                c.usage,
                cell(&short(&c.certificate, 120)),
                cell(&c.detail)
            );
        }
        out.push('\n');
    }
    let failing: Vec<_> = r.links.iter().filter(|l| l.status != Status::Ok).collect();
    if !failing.is_empty() {
        out.push_str("## Links whose trust is broken\n\n");
        for l in failing {
            let _ = writeln!(
                out,
                "### {} `{}`: {} ⇄ {}\n",
                l.status.as_str().to_uppercase(),
                l.link,
                l.sql_server,
                l.managed_instance
            );
            for (what, c) in
                [("MI certificate on SQL Server", &l.mi_cert_on_sql), ("SQL certificate on MI", &l.sql_cert_on_mi)]
            {
                let _ = writeln!(out, "- {what}: **{}**, {}", c.status.as_str(), c.detail);
                if let Some(fix) = &c.remedy {
                    let _ = writeln!(out, "\n  ```\n  {fix}\n  ```");
                }
            }
            out.push('\n');
        }
    }
    let unknown: Vec<_> = r.instances.iter().filter(|i| i.status == Status::Unknown).collect();
    if !unknown.is_empty() {
        out.push_str("## Instances that could not be read\n\n| instance | side | host | reason |\n|---|---|---|---|\n");
        for i in unknown {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                cell(&i.instance),
                i.side.as_str(),
                cell(&i.host),
                cell(&short(i.error.as_deref().unwrap_or(""), 300))
            );
        }
        out.push('\n');
    }
    out.push_str("## All certificates\n\n| status | days | not after | instance | usage | certificate | thumbprint |\n|---|---|---|---|---|---|---|\n");
    for c in &r.certificates {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            c.status.as_str(),
            c.days_left.map(|d| d.to_string()).unwrap_or_default(),
            c.not_after.as_deref().unwrap_or(""),
            cell(&c.instance),
            c.usage,
            cell(&short(&c.certificate, 120)),
            c.thumbprint.as_deref().unwrap_or("")
        );
    }
    out
}

/// Modelled on x509-certificate-exporter (`x509_cert_not_after`,
/// `x509_cert_expired`, `x509_read_errors`) and ssl_exporter.
pub fn prometheus(r: &AuditReport) -> String {
    use crate::report::prometheus::label;
    let mut out = String::new();
    // A share of a sharded audit says which, on every sample, so N shards' files do not collide.
    let shard = r.summary.shard.as_ref().map(|s| format!("shard=\"{}\"", label(s)));
    let mut metric = |name: &str, kind: &str, help: &str, rows: Vec<(String, f64)>| {
        let rows: Vec<(String, f64)> = match &shard {
            None => rows,
            Some(sh) => rows
                .into_iter()
                .map(|(l, v)| (if l.is_empty() { sh.clone() } else { format!("{l},{sh}") }, v))
                .collect(),
        };
        crate::report::prometheus::family(&mut out, name, kind, help, &rows)
    };
    let cert_labels = |c: &super::judge::CertRow| {
        format!(
            "instance=\"{}\",side=\"{}\",certificate=\"{}\",usage=\"{}\",thumbprint=\"{}\"",
            label(&c.instance),
            c.side.as_str(),
            label(&short(&c.certificate, 200)),
            c.usage,
            c.thumbprint.as_deref().unwrap_or("")
        )
    };
    let with_date: Vec<_> = r.certificates.iter().filter(|c| c.not_after_unix.is_some()).collect();
    metric(
        "milink_cert_not_after_timestamp_seconds",
        "gauge",
        "The certificate's notAfter, as a Unix timestamp.",
        with_date.iter().map(|c| (cert_labels(c), c.not_after_unix.unwrap_or(0) as f64)).collect(),
    );
    metric(
        "milink_cert_expired",
        "gauge",
        "1 when the certificate has expired (or its validity period is invalid), else 0.",
        with_date
            .iter()
            .map(|c| {
                let expired = c.days_left.is_some_and(|d| d < 0) || c.detail.starts_with("invalid validity");
                (cert_labels(c), if expired { 1.0 } else { 0.0 })
            })
            .collect(),
    );
    metric(
        "milink_link_trust_ok",
        "gauge",
        "1 when each side of the link trusts the certificate the other presents now, else 0.",
        r.links
            .iter()
            .map(|l| {
                (
                    format!(
                        "link=\"{}\",sql_server=\"{}\",managed_instance=\"{}\"",
                        label(&l.link),
                        label(&l.sql_server),
                        label(&l.managed_instance)
                    ),
                    if l.status == Status::Ok { 1.0 } else { 0.0 },
                )
            })
            .collect(),
    );
    metric(
        "milink_instance_read_error",
        "gauge",
        "1 when the instance could not be read (the audit's UNKNOWN), else 0.",
        r.instances
            .iter()
            .map(|i| {
                (
                    format!("instance=\"{}\",side=\"{}\"", label(&i.instance), i.side.as_str()),
                    if i.error.is_some() { 1.0 } else { 0.0 },
                )
            })
            .collect(),
    );
    metric(
        "milink_audit_status",
        "gauge",
        "The audit's Nagios state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        vec![(String::new(), r.summary.exit_code as f64)],
    );
    metric(
        "milink_audit_duration_seconds",
        "gauge",
        "How long the audit took.",
        vec![(String::new(), r.summary.duration_ms as f64 / 1000.0)],
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    metric(
        "milink_audit_last_run_timestamp_seconds",
        "gauge",
        "When the audit finished, as a Unix timestamp.",
        vec![(String::new(), now as f64)],
    );
    out
}
