//! Every scenario through `milink check --lab <file> --format json`, compared
//! with its `[expect]`: the exit code, and exactly the warn/fail/error findings
//! it names (skips that follow from them are not compared unless named).

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::support::*;

fn needs_topology(f: &std::path::Path) -> bool {
    milink::lab::scenario::Scenario::load(f).unwrap().needs_topology()
}

struct Outcome {
    exit: i32,
    report: Value,
}

fn check_with(file: &std::path::Path, extra: &[&str]) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_milink"))
        .args(["check", "--format", "json"])
        .args(extra)
        .arg("--lab")
        .arg(file)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", file.display(), String::from_utf8_lossy(&out.stderr)));
    Outcome { exit: out.status.code().unwrap_or(-1), report }
}

fn check(file: &std::path::Path) -> Outcome {
    check_with(file, &[])
}

fn problems(report: &Value) -> BTreeSet<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("warn" | "fail" | "error")))
        .map(|f| (f["id"].as_str().unwrap().to_string(), f["severity"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn every_scenario_gets_the_findings_it_expects() {
    let mut files = scenario_files();
    // Scenarios with `unreachable` faults need topology mode: see below.
    files.retain(|f| !needs_topology(f));
    // Each scenario is its own process and lab: run a few side by side, not all
    // at once, so timeouts measure the scenario and not a loaded machine.
    let mut results = Vec::new();
    for chunk in files.chunks(6) {
        let runs: Vec<_> = chunk.iter().cloned().map(|f| std::thread::spawn(move || (f.clone(), check(&f)))).collect();
        results.extend(runs.into_iter().map(|r| r.join().unwrap()));
    }
    let mut failures = Vec::new();
    for (f, o) in results {
        let s = milink::lab::scenario::Scenario::load(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if let Some(code) = s.expect.get("exit_code").and_then(|v| v.as_integer())
            && i64::from(o.exit) != code
        {
            failures.push(format!("{name}: exit {} (expected {code}); problems {:?}", o.exit, problems(&o.report)));
        }
        if let Some(want) = s.expect.get("findings").and_then(|v| v.as_array()) {
            let want: BTreeSet<(String, String)> = want
                .iter()
                .map(|w| (w["id"].as_str().unwrap().to_string(), w["severity"].as_str().unwrap().to_string()))
                .collect();
            let all: BTreeSet<(String, String)> = o.report["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| (f["id"].as_str().unwrap().to_string(), f["severity"].as_str().unwrap().to_string()))
                .collect();
            let missing: Vec<_> = want.difference(&all).collect();
            let extra: Vec<_> = problems(&o.report).into_iter().filter(|p| !want.contains(p)).collect();
            if !missing.is_empty() || !extra.is_empty() {
                failures.push(format!("{name}: missing {missing:?}, unexpected {extra:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// In topology mode milink runs in its own namespace: a fault between the two
/// sides leaves milink's own view alone, and `unreachable` is an ICMP error.
#[test]
fn topology_mode_checks_see_per_direction_faults() {
    if !can_run_topology() {
        return;
    }
    let o = check_with(&scenario_path("mi-unreachable.toml"), &["--topology"]);
    let p = problems(&o.report);
    assert!(p.contains(&("network-mi-1433".into(), "fail".into())), "{p:?}");
    let f = finding(&o.report, "network-mi-5022");
    assert_eq!(f["evidence"]["outcome"], "host_unreachable");
    assert_eq!(f["evidence"]["address"], "203.0.113.10:5022");

    // The redirect range, dropped beyond the node port in use.
    let o = check_with(&scenario_path("mi-redirect-range-blocked.toml"), &["--topology"]);
    assert!(problems(&o.report).contains(&("network-mi-redirect".into(), "fail".into())), "{:?}", problems(&o.report));

    // MI → SQL 5022 is blocked, but not from milink's host: its own probes pass.
    let o = check_with(&scenario_path("disconnected-sql-inbound-blocked.toml"), &["--topology"]);
    // Each direction is its own finding: only MI → SQL fails.
    let network: BTreeSet<_> = problems(&o.report).into_iter().filter(|(id, _)| id.starts_with("network-")).collect();
    assert_eq!(network, BTreeSet::from([("network-mi-to-sql-5022".to_string(), "fail".to_string())]));
    let back = finding(&o.report, "network-sql-to-mi-5022");
    assert_eq!(back["severity"], "pass");

    // The VNet-local name leads to the public endpoint's address.
    let o = check_with(&scenario_path("mi-fqdn-resolves-public.toml"), &["--topology"]);
    let f = finding(&o.report, "dns-mi-fqdn");
    assert_eq!(f["severity"], "fail", "{f}");
    assert_eq!(f["evidence"]["public_endpoint"], "mi-contoso.public.a1b2c3d4e5f6.database.windows.net");
    assert_eq!(f["evidence"]["public_address"], "203.0.113.10");

    // Loopback mode refuses it, naming the field, before anything listens.
    let out = Command::new(env!("CARGO_BIN_EXE_milink"))
        .args(["check", "--lab"])
        .arg(scenario_path("mi-fqdn-resolves-public.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("dns.records[0].value"), "{err}");
}

/// Every check has a scenario that makes it warn or fail, except those that are
/// recommendations by design or that need the OS resolver (unit-tested).
#[test]
fn every_check_has_a_scenario_that_trips_it() {
    let by_design = ["instance-sql-trace-flags", "dns-resolvers-agree"];
    let mut tripped = BTreeSet::new();
    for f in scenario_files() {
        let s = milink::lab::scenario::Scenario::load(&f).unwrap();
        let lists = ["findings", "diagnose_findings"].map(|k| s.expect.get(k).and_then(|v| v.as_array()));
        for f in lists.into_iter().flatten().flatten() {
            if matches!(f["severity"].as_str(), Some("warn" | "fail" | "error")) {
                tripped.insert(f["id"].as_str().unwrap().to_string());
            }
        }
    }
    let missing: Vec<_> = milink::checks::CHECKS
        .iter()
        .map(|c| c.id)
        .filter(|id| !tripped.contains(*id) && !by_design.contains(id))
        .collect();
    assert!(missing.is_empty(), "no scenario trips {missing:?}");
}

/// The gateway routes the login to a node port a firewall drops: the login
/// says where it was sent, the redirect check names the port and how it
/// answered, and a dropped port never reads as a refused one.
#[test]
fn a_login_redirected_to_a_dropped_node_port_names_the_port() {
    let o = check(&scenario_path("mi-redirect-node-port-blocked.toml"));
    let login = finding(&o.report, "login-mi");
    assert_eq!(login["severity"], "fail", "{login}");
    assert!(login["evidence"]["redirected_to"].as_str().is_some_and(|r| r.ends_with(":11002")), "{login}");
    let redirect = finding(&o.report, "network-mi-redirect");
    assert_eq!(redirect["severity"], "fail", "{redirect}");
    assert_eq!(redirect["evidence"]["redirect_outcome"], "filtered", "{redirect}");
    assert!(redirect["found"].as_str().unwrap().contains(":11002: filtered"), "{redirect}");
    assert!(!o.report.to_string().contains("refused"), "a dropped port reads as refused somewhere: {}", o.report);
}
