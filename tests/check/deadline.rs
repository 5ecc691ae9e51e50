//! Hostile servers: every `check` and `diagnose` ends within `--deadline` plus
//! half a second, with the whole report in the format asked for and exit code 2.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// Servers that stall, reset, drip, lie about lengths, send junk, never stop
/// sending rows, answer each query just inside the timeout, or loop a redirect.
const HOSTILE: &[&str] = &[
    "hostile-silent.toml",
    "hostile-accept-close.toml",
    "hostile-reset.toml",
    "hostile-drip.toml",
    "hostile-tls-garbage.toml",
    "hostile-huge-length.toml",
    "hostile-wrong-packet-type.toml",
    "hostile-slow-queries.toml",
    "tds-garbage.toml",
    "tds-stall-after-prelogin.toml",
    "mi-redirect-loop.toml",
];

const DEADLINE: Duration = Duration::from_secs(3);

struct Run {
    job: &'static str,
    took: Duration,
    exit: i32,
    report: Value,
}

/// `check` and `diagnose` against a running lab of `scenario`, each timed.
fn run_both(scenario: &str) -> Vec<Run> {
    let lab = LabProcess::start(scenario);
    let info: Value = serde_json::from_str(&lab.line).unwrap();
    let profile = info["profile"].as_str().unwrap().to_string();
    ["check", "diagnose"]
        .into_iter()
        .map(|job| {
            let start = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_milink"))
                .args([job, "--format", "json", "--timeout", "3s", "--deadline", "3s", "--profile", &profile])
                .output()
                .unwrap();
            let took = start.elapsed();
            let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!("{scenario} {job}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr))
            });
            Run { job, took, exit: out.status.code().unwrap_or(-1), report }
        })
        .collect()
}

fn ids(report: &Value) -> Vec<String> {
    let findings = report["findings"].as_array().unwrap();
    findings.iter().map(|f| f["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn hostile_servers_never_outlast_the_deadline() {
    let mut results = Vec::new();
    // Three labs at a time: the bound is about milink, not a starved machine.
    for chunk in HOSTILE.chunks(3) {
        let runs: Vec<_> = chunk.iter().map(|s| std::thread::spawn(move || (*s, run_both(s)))).collect();
        results.extend(runs.into_iter().map(|r| r.join().unwrap()));
    }
    // Every check a healthy link's report has, the hostile one has too.
    let healthy = run_both("healthy.toml");
    let mut failures = Vec::new();
    for (scenario, runs) in &results {
        for (r, h) in runs.iter().zip(&healthy) {
            let every = ids(&h.report);
            if r.took > DEADLINE + Duration::from_millis(500) {
                failures.push(format!("{scenario} {}: took {:?}", r.job, r.took));
            }
            if r.exit != 2 {
                failures.push(format!("{scenario} {}: exit {}", r.job, r.exit));
            }
            let seen = ids(&r.report);
            let missing: Vec<_> = every.iter().filter(|id| !seen.contains(id)).collect();
            if !missing.is_empty() {
                failures.push(format!("{scenario} {}: the report lacks {missing:?}", r.job));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_slow_server_is_cut_at_the_deadline_and_says_how_far_it_got() {
    let runs = run_both("hostile-slow-queries.toml");
    for r in &runs {
        let findings = r.report["findings"].as_array().unwrap().clone();
        let reasons: Vec<&str> = findings.iter().filter_map(|f| f["evidence"]["reason"].as_str()).collect();
        // Each query takes 2.5 s of a 3 s timeout: the second one meets the deadline.
        assert!(
            reasons.iter().any(|r| r.starts_with("timeout: the run's deadline came after 1 of 19 queries")),
            "{}: {reasons:#?}",
            r.job
        );
        assert!(reasons.contains(&"timeout: query: the run's deadline was reached"), "{reasons:#?}");
        let version = findings.iter().find(|f| f["id"] == "instance-sql-version" && f["side"] == "sql_server");
        assert_eq!(version.unwrap()["severity"], "pass", "the first query's answer is still used");
    }
    // A table too: the report comes out in the format asked for.
    let lab = LabProcess::start("hostile-slow-queries.toml");
    let info: Value = serde_json::from_str(&lab.line).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_milink"))
        .args(["check", "--deadline", "1s", "--profile", info["profile"].as_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2));
    assert!(text.contains("the run's deadline came") && text.contains("after 0 of 19 queries"), "{text}");
}

#[test]
fn endless_rows_end_in_a_bounded_failure() {
    let runs = run_both("hostile-endless-rows.toml");
    for r in &runs {
        assert!(r.took < DEADLINE + Duration::from_millis(500), "{}: {:?}", r.job, r.took);
        let text = r.report.to_string();
        assert!(
            text.contains("the answer goes on past 100001 rows") || text.contains("the run's deadline"),
            "{}: {text}",
            r.job
        );
    }
}

#[test]
fn deadline_out_of_range_is_a_usage_error() {
    for bad in ["0s", "50ms", "25h", "18446744073709551615s"] {
        let out = Command::new(env!("CARGO_BIN_EXE_milink"))
            .args(["check", "--lab", "scenarios/healthy.toml", "--deadline", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "a usage error for {bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("100ms..24h"), "{bad}");
    }
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("link.toml");
    std::fs::write(
        &profile,
        "[sql_server]\nhost = \"127.0.0.1\"\n[managed_instance]\nfqdn = \"127.0.0.2\"\n[thresholds]\ndeadline = \"9999h\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_milink")).arg("check").arg("--profile").arg(&profile).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("thresholds.deadline") && err.contains("is outside 100ms..24h"), "{err}");
}
