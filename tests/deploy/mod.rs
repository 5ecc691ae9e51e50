//! What `deploy/` ships: the Grafana dashboard queries only metrics milink
//! writes (the audit's text and the watch's `/metrics`), and the CronJob
//! example runs the audit the way `audit certs --shards` expects.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::*;

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every `expr` in a dashboard's panels (rows included).
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| exprs(x, out)),
        _ => {}
    }
}

/// The metric names in a PromQL expression (milink's own prefix).
fn names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("milink_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_dashboard_queries_only_metrics_milink_writes() {
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("deploy/grafana/milink-dashboard.json")).unwrap())
            .expect("the dashboard is JSON");
    assert!(dash["panels"].as_array().is_some_and(|p| p.len() >= 8));
    let mut all = Vec::new();
    exprs(&dash, &mut all);
    let queried: BTreeSet<String> = all.iter().flat_map(|e| names(e)).collect();
    assert!(queried.len() >= 15, "{queried:?}");

    // What milink writes: the audit's text over the lab fleet, and a watch's /metrics.
    let mut written: BTreeSet<String> = BTreeSet::new();
    let out = Command::new(env!("CARGO_BIN_EXE_milink"))
        .args(["audit", "certs", "--format", "prometheus", "--timeout", "1s", "--lab"])
        .arg(repo("scenarios/fleets/fleet.toml"))
        .output()
        .unwrap();
    for s in prometheus_samples(&String::from_utf8_lossy(&out.stdout)) {
        written.insert(s["name"].as_str().unwrap().to_string());
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_milink"))
        .args(["watch", "--interval", "50ms", "--for", "3s", "--metrics-listen", "127.0.0.1:0", "--history"])
        .arg(dir.path().join("h.db"))
        .arg("--lab")
        .arg(repo("scenarios/link-healthy.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("metrics: ").unwrap_or_else(|| panic!("{line}")).to_string();
    std::thread::sleep(std::time::Duration::from_millis(800));
    for s in prometheus_samples(&scrape(&url)) {
        written.insert(s["name"].as_str().unwrap().to_string());
    }
    let _ = child.wait();
    let unknown: Vec<&String> = queried.difference(&written).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics milink does not write: {unknown:?} (written: {written:?})"
    );
}

#[test]
fn the_cronjob_shards_the_audit_as_the_flags_expect() {
    let text = std::fs::read_to_string(repo("deploy/kubernetes/milink-audit-cronjob.yaml")).unwrap();
    let field = |k: &str| -> Vec<String> {
        text.lines().filter_map(|l| l.trim().strip_prefix(&format!("{k}: ")).map(str::to_string)).collect()
    };
    assert_eq!(field("completionMode"), ["Indexed"]);
    let n = field("completions");
    assert_eq!(n, field("parallelism"), "every share runs");
    assert!(text.contains(&format!("--shards={}", n[0])), "--shards matches the completions");
    assert!(text.contains("--metrics-file=/textfile/milink-audit-$(JOB_COMPLETION_INDEX).prom"));
    // The arguments are ones milink accepts.
    let args: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("- --"))
        .map(|a| format!("--{}", a.split('=').next().unwrap()))
        .collect();
    let help = Command::new(env!("CARGO_BIN_EXE_milink")).args(["audit", "certs", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for a in args {
        assert!(help.contains(&a), "milink audit certs has no {a}");
    }
}
