//! The raw material behind the findings, as files: each query's text and rows
//! per side, DNS answers per resolver, TCP outcomes, the TLS chains and the
//! catalog's certificates as PEM, Agent-job output.

use serde_json::{Value, json};

use super::{Entry, text};
use crate::checks::collect::{self, Evidence, Resolution, SideEvidence, Sql};
use crate::probe::sql::{Fields, unhex};
use crate::probe::tls::Outcome;
use crate::profile::Profile;

/// `with_certificates`: PEM files too (they name hosts, so not when identities are redacted).
pub fn files(ev: &Evidence, p: &Profile, with_certificates: bool) -> Vec<Entry> {
    let mut out = Vec::new();
    // The profile as run (secrets are never serialised): what a replay asks again.
    out.push(json_file("evidence/profile.json", serde_json::to_value(p).unwrap_or_default()));
    let names = [
        ("sql_server", Some(&ev.sql_name)),
        ("managed_instance", Some(&ev.mi_name)),
        ("endpoint", ev.endpoint_name.as_ref()),
        ("mi_public", ev.mi_public_name.as_ref()),
    ];
    let names = names.into_iter().filter_map(|(role, r)| r.map(|r| resolution(role, r))).collect();
    out.push(json_file("evidence/dns.json", Value::Array(names)));
    let probes: Vec<Value> = ev
        .probes
        .iter()
        .map(|(id, pr)| match pr {
            Some(pr) => json!({ "check": id, "probe": pr }),
            None => json!({ "check": id, "probe": null, "reason": "the name did not resolve" }),
        })
        .collect();
    let redirect = ev.redirect.as_ref().map(|ps| {
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        for p in ps {
            *counts.entry(p.outcome.as_str()).or_default() += 1;
        }
        json!({ "outcomes": counts, "unprobed": ev.redirect_unprobed, "first": ps.iter().take(20).collect::<Vec<_>>() })
    });
    out.push(json_file("evidence/tcp.json", json!({ "probes": probes, "redirect_range": redirect })));
    // The instance's ARM resource as the checks read it, or why it could not be.
    if let Some(arm) = &ev.arm {
        let v = match arm {
            Ok(f) => json!({ "instance": f }),
            Err(why) => json!({ "error": why }),
        };
        out.push(json_file("evidence/arm.json", v));
    }
    for (dir, side, is_sql) in [("sql_server", &ev.sql, true), ("managed_instance", &ev.mi, false)] {
        out.extend(side_files(dir, side, is_sql, with_certificates));
    }
    out
}

fn json_file(path: &str, v: Value) -> Entry {
    text(path, serde_json::to_string_pretty(&v).expect("json"))
}

fn resolution(role: &str, r: &Resolution) -> Value {
    let servers: Vec<Value> = r.servers.iter().map(|(s, a)| json!({ "server": s.to_string(), "answer": a })).collect();
    json!({ "role": role, "name": r.name, "os_resolver": r.os, "servers": servers, "chosen": r.chosen, "pinned": r.pinned })
}

fn side_files(dir: &str, s: &SideEvidence, is_sql: bool, with_certificates: bool) -> Vec<Entry> {
    let mut out = Vec::new();
    if let Some(outcome) = &s.tls {
        out.push(json_file(&format!("evidence/{dir}/tls.json"), json!({ "port": s.tds_port, "capture": outcome })));
        if let (Outcome::Captured(c), true) = (outcome, with_certificates) {
            let pem: String = c.der.iter().map(|d| pem(d)).collect();
            out.push(text(&format!("evidence/{dir}/tls-chain.pem"), pem));
        }
    }
    let facts = match &s.sql {
        Sql::Skipped(why) => {
            out.push(json_file(&format!("evidence/{dir}/session.json"), json!({ "skipped": why })));
            return out;
        }
        Sql::Failed(e) => {
            let routed = e.routed_to.as_ref().map(|(host, port, _)| (host, port));
            let failure =
                json!({ "code": e.code, "message": e.message, "timed_out": e.timed_out, "routed_to": routed });
            out.push(json_file(&format!("evidence/{dir}/session.json"), json!({ "login_failed": failure })));
            return out;
        }
        Sql::Facts(f) => f,
    };
    out.push(json_file(
        &format!("evidence/{dir}/session.json"),
        json!({ "routed_to": facts.routed_to, "cut_short": facts.cut_short, "temporary_endpoint": facts.temp_endpoint.as_ref().map(|r| r.clone().err()) }),
    ));
    for (key, result) in &facts.queries {
        let sql = query_text(is_sql, key);
        let v = match result {
            Ok(rows) => {
                let columns = facts.columns.get(key).cloned().unwrap_or_default();
                json!({ "query": sql, "columns": columns, "row_count": rows.len(), "rows": rows })
            }
            Err(e) => {
                json!({ "query": sql, "error": { "code": e.code, "message": e.message, "timed_out": e.timed_out } })
            }
        };
        let file = key.replace([':', '/', '\\'], "_");
        out.push(json_file(&format!("evidence/{dir}/queries/{file}.json"), v));
    }
    if with_certificates && let Some(Ok(rows)) = facts.rows("certificates") {
        for r in rows {
            if let (Some(name), Some(der)) = (r.str("name"), r.str("der").and_then(unhex)) {
                let safe: String = name
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
                    .collect();
                out.push(text(&format!("evidence/{dir}/certificates/{safe}.pem"), pem(&der)));
            }
        }
    }
    if !facts.jobs.is_empty() {
        let jobs: Vec<Value> = facts
            .jobs
            .iter()
            .map(|(id, r)| match r {
                Ok(j) => json!({ "check": id, "job": j }),
                Err(e) => json!({ "check": id, "error": format!("{e:?}") }),
            })
            .collect();
        out.push(json_file(&format!("evidence/{dir}/agent-jobs.json"), Value::Array(jobs)));
    }
    out
}

/// The statement behind a key, as it was sent.
fn query_text(is_sql: bool, key: &str) -> Option<String> {
    let fixed = if is_sql { collect::SQL_QUERIES } else { collect::MI_QUERIES };
    if let Some((_, q)) = fixed.iter().find(|(k, _)| *k == key) {
        return Some(q.to_string());
    }
    // A database's key names it (`filegroups:<db>`), whether the profile listed it or all were read.
    let db = key.split_once(':').map(|(_, db)| db)?;
    collect::database_queries(db).into_iter().find(|(k, _)| k == key).map(|(_, q)| q)
}

/// DER as PEM.
pub fn pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}
