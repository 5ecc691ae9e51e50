//! `milink diagnose --lab <scenario>` for every scenario that names a root cause.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn diagnose(file: &std::path::Path) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_milink"))
        .args(["diagnose", "--format", "json", "--job-probes", "--lab"])
        .arg(file)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: {e}: {}", file.display(), String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn every_link_scenario_names_its_root_cause() {
    let files: Vec<_> = scenario_files()
        .into_iter()
        .filter(|f| milink::lab::scenario::Scenario::load(f).unwrap().expect.contains_key("root_cause"))
        .collect();
    assert!(files.len() >= 17, "the named scenarios and one per knowledge-base entry");
    let mut results = Vec::new();
    for chunk in files.chunks(6) {
        let runs: Vec<_> =
            chunk.iter().cloned().map(|f| std::thread::spawn(move || (f.clone(), diagnose(&f)))).collect();
        results.extend(runs.into_iter().map(|r| r.join().unwrap()));
    }
    let mut failures = Vec::new();
    for (f, (code, v)) in results {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let s = milink::lab::scenario::Scenario::load(&f).unwrap();
        let want = s.expect["root_cause"].as_str().unwrap();
        let got = v["root_cause"]["id"].as_str().unwrap_or("none");
        if want != got {
            failures.push(format!("{name}: root cause {got}, expected {want}: {}", v["root_cause"]));
        }
        // A pair with several links: the broken one is named, and the others are counted healthy.
        if let Some(link) = s.expect.get("root_cause_link").and_then(|x| x.as_str())
            && v["root_cause"]["link"] != link
        {
            failures.push(format!("{name}: root cause of {}, expected of {link}", v["root_cause"]["link"]));
        }
        if let Some(n) = s.expect.get("healthy_links").and_then(|x| x.as_integer()) {
            let healthy = v["links"].as_array().map_or(0, |l| l.iter().filter(|l| l["healthy"] == true).count());
            if healthy as i64 != n {
                failures.push(format!("{name}: {healthy} healthy links, expected {n}: {}", v["links"]));
            }
        }
        if want == "none" && !v["root_cause"].is_null() {
            failures.push(format!("{name}: root_cause must be null for a healthy link"));
        }
        if want != "none" && code != 2 {
            failures.push(format!("{name}: exit {code} with a root cause"));
        }
        if let Some(rc) = v["root_cause"].as_object() {
            for k in ["summary", "remedy", "confidence"] {
                if rc.get(k).and_then(|x| x.as_str()).is_none_or(str::is_empty) {
                    failures.push(format!("{name}: root_cause.{k} is empty"));
                }
            }
            if rc["evidence"].as_array().is_none_or(|e| e.is_empty()) {
                failures.push(format!("{name}: the root cause cites no evidence"));
            }
        }
        let all: BTreeSet<(String, String)> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["id"].as_str().unwrap().to_string(), f["severity"].as_str().unwrap().to_string()))
            .collect();
        for w in s.expect.get("diagnose_findings").and_then(|x| x.as_array()).into_iter().flatten() {
            let pair = (w["id"].as_str().unwrap().to_string(), w["severity"].as_str().unwrap().to_string());
            if !all.contains(&pair) {
                failures.push(format!("{name}: missing {pair:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn a_healthy_link_prints_no_root_cause_and_exits_0() {
    let out = Command::new(env!("CARGO_BIN_EXE_milink"))
        .args(["diagnose", "--lab"])
        .arg(scenario_path("link-healthy.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Root cause: none"));
}

/// Topology mode: the probes between two namespaces decide the root cause.
#[test]
fn topology_probes_between_namespaces_name_the_blocked_direction() {
    if !can_run_topology() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_milink"))
        .args(["diagnose", "--format", "json", "--job-probes", "--topology", "--lab"])
        .arg(scenario_path("disconnected-sql-inbound-blocked.toml"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["root_cause"]["id"], "sql-inbound-5022-blocked");
    assert_eq!(v["root_cause"]["confidence"], "high");
    let ev = v["root_cause"]["evidence"].to_string();
    assert!(ev.contains("203.0.113.10") || ev.contains("198.51.100.10"), "{ev}");
}

/// A link that keeps falling behind: two diagnoses of one running lab a
/// moment apart see the send queue and the lag grow.
#[test]
fn a_link_falling_behind_shows_a_growing_queue() {
    let lab = LabProcess::start("link-far-behind.toml");
    let info: Value = serde_json::from_str(&lab.line).unwrap();
    let profile = info["profile"].as_str().unwrap().to_string();
    let lag = || {
        let out = Command::new(env!("CARGO_BIN_EXE_milink"))
            .args(["diagnose", "--format", "json", "--profile", &profile])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["root_cause"]["id"], "link-far-behind", "{v}");
        let f = finding(&v, "link-lag");
        (f["evidence"]["log_send_queue_kb"].as_i64().unwrap(), f["evidence"]["secondary_lag_seconds"].as_i64().unwrap())
    };
    let (queue1, lag1) = lag();
    std::thread::sleep(Duration::from_millis(2100));
    let (queue2, lag2) = lag();
    assert!(queue1 >= 12_582_912 && lag1 >= 7200, "{queue1} KB, {lag1} s");
    assert!(queue2 >= queue1 + 4096 && lag2 > lag1, "{queue1} → {queue2} KB, {lag1} → {lag2} s");
    lab.stop();
}

/// A cause is a row of the rules table and a scenario that names it: every
/// rule has one.
#[test]
fn every_root_cause_rule_has_a_scenario_that_names_it() {
    let named: BTreeSet<String> = scenario_files()
        .into_iter()
        .filter_map(|f| {
            let s = milink::lab::scenario::Scenario::load(&f).unwrap();
            s.expect.get("root_cause").and_then(|v| v.as_str()).map(String::from)
        })
        .collect();
    let missing: Vec<&str> =
        milink::diagnose::rules::RULES.iter().map(|r| r.id).filter(|id| !named.contains(*id)).collect();
    assert!(missing.is_empty(), "rules with no scenario naming them as root_cause: {missing:?}");
}
