//! `milink watch` against the timeline scenarios (`scenarios/watch-*.toml`, one
//! run each): the transitions in order, the root cause at the break, the same
//! events from `milink history`; metrics that a Prometheus parser reads and that
//! follow the timeline; `--on-change`; and a history that survives SIGKILL.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

fn milink() -> Command {
    Command::new(env!("CARGO_BIN_EXE_milink"))
}

fn lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `side kind [subject] value…` of an event, as the scenarios' `[expect.watch]` write it.
fn said(e: &Value) -> String {
    let subject = e["subject"].as_str().map(|s| format!(" {s}")).unwrap_or_default();
    format!("{} {}{subject} {}", e["side"].as_str().unwrap(), e["kind"].as_str().unwrap(), e["to"].as_str().unwrap())
}

/// Where `want` stops being found in order in `events`, if it does.
fn out_of_order(events: &[Value], want: &[String]) -> Option<String> {
    let mut at = 0;
    for w in want {
        match events[at..].iter().position(|e| said(e).starts_with(w.as_str())) {
            Some(i) => at += i + 1,
            None => return Some(w.clone()),
        }
    }
    None
}

fn watch_scenarios() -> Vec<PathBuf> {
    scenario_files().into_iter().filter(|f| f.file_name().unwrap().to_string_lossy().starts_with("watch-")).collect()
}

fn run_one(file: &Path, dir: &Path) -> Result<(), String> {
    let s = milink::lab::scenario::Scenario::load(file).unwrap();
    let name = file.file_stem().unwrap().to_string_lossy().to_string();
    let w = s.expect["watch"].as_table().unwrap_or_else(|| panic!("{name}: no [expect.watch]"));
    let history = dir.join(format!("{name}.db"));
    let out = milink()
        .args(["watch", "--interval", "50ms", "--format", "json", "--for", w["for"].as_str().unwrap()])
        .arg("--history")
        .arg(&history)
        .arg("--lab")
        .arg(file)
        .output()
        .unwrap();
    let events = lines(&out.stdout);
    let want: Vec<String> = w["events"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect();
    let printed: Vec<String> = events.iter().map(said).filter(|s| !s.contains(" certificate ")).collect();
    if let Some(missing) = out_of_order(&events, &want) {
        return Err(format!("{name}: `{missing}` not in order in {printed:#?}"));
    }
    // With several links, one breaking changes that link's events alone.
    if let Some(only) = w.get("changes_only").and_then(|v| v.as_str()) {
        let others: Vec<String> = events
            .iter()
            .filter(|e| {
                !e["from"].is_null() && e["subject"].as_str().is_some_and(|s| s.starts_with("DAG_") && s != only)
            })
            .map(said)
            .collect();
        if !others.is_empty() {
            return Err(format!("{name}: links other than {only} changed: {others:?}"));
        }
    }
    let code = w["exit_code"].as_integer().unwrap();
    if out.status.code() != Some(code as i32) {
        return Err(format!(
            "{name}: exit {:?}, expected {code}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // Afterwards, the history tells the same story.
    let h =
        milink().args(["history", "--format", "json", "--since", "1h", "--history"]).arg(&history).output().unwrap();
    if h.status.code() != Some(0) || lines(&h.stdout) != events {
        return Err(format!("{name}: history differs: {}", String::from_utf8_lossy(&h.stderr)));
    }
    // And a support bundle shows it as a timeline.
    if name == "watch-firewall-flap" {
        let zip = dir.join("flap.zip");
        let b = milink()
            .args(["bundle", "--history"])
            .arg(&history)
            .arg("-o")
            .arg(&zip)
            .arg("--lab")
            .arg(file)
            .output()
            .unwrap();
        let mut z = zip::ZipArchive::new(std::fs::File::open(&zip).map_err(|e| format!("{e}: {b:?}"))?).unwrap();
        let mut html = String::new();
        z.by_name("report.html").unwrap().read_to_string(&mut html).unwrap();
        if !html.contains("Timeline (milink watch)") || !html.contains("sql-inbound-5022-blocked") {
            return Err(format!("{name}: the bundle's page has no timeline"));
        }
        let mut kept = String::new();
        z.by_name("evidence/history.json").unwrap().read_to_string(&mut kept).unwrap();
        let kept: Vec<Value> = serde_json::from_str(&kept).unwrap();
        if kept != events {
            return Err(format!("{name}: evidence/history.json is not the watch's events"));
        }
    }
    Ok(())
}

#[test]
fn every_timeline_scenario_is_watched_in_order_with_its_root_cause_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let files = watch_scenarios();
    assert!(files.len() >= 4, "{files:?}");
    let runs: Vec<_> = files
        .into_iter()
        .map(|f| {
            let d = dir.path().to_path_buf();
            std::thread::spawn(move || run_one(&f, &d))
        })
        .collect();
    let failures: Vec<String> = runs.into_iter().filter_map(|r| r.join().unwrap().err()).collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn sample(samples: &[Value], name: &str, side: &str) -> Option<f64> {
    samples.iter().find(|s| s["name"] == name && s["labels"]["side"] == side).and_then(|s| s["value"].as_f64())
}

#[test]
fn metrics_parse_with_prometheus_own_parser_and_follow_the_firewall_flap() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = milink()
        .args(["watch", "--interval", "50ms", "--for", "9s", "--metrics-listen", "127.0.0.1:0", "--history"])
        .arg(dir.path().join("h.db"))
        .arg("--lab")
        .arg(scenario_path("watch-firewall-flap.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("metrics: ").unwrap_or_else(|| panic!("{line}")).to_string();
    let started = Instant::now();
    let at = |s: f64| std::thread::sleep(Duration::from_secs_f64(s).saturating_sub(started.elapsed()));
    // Before the break (+2s of the lab), during it, and after (+6s).
    let mut seen = Vec::new();
    for t in [1.0, 4.0, 8.0] {
        at(t);
        let samples = prometheus_samples(&scrape(&url));
        for name in [
            "milink_side_reachable",
            "milink_log_send_queue_kb",
            "milink_secondary_lag_seconds",
            "milink_poll_duration_seconds",
        ] {
            assert!(sample(&samples, name, "sql_server").is_some(), "{name} at {t}s");
        }
        assert!(samples.iter().any(|s| s["name"] == "milink_cert_not_after_timestamp_seconds"));
        assert!(samples.iter().any(|s| s["name"] == "milink_polls_total" && s["value"].as_f64() > Some(0.0)));
        seen.push((
            sample(&samples, "milink_link_connected", "managed_instance"),
            sample(&samples, "milink_last_connect_error_number", "managed_instance"),
        ));
    }
    assert_eq!(seen[0], (Some(1.0), Some(0.0)), "{seen:?}");
    assert_eq!(seen[1], (Some(0.0), Some(35201.0)), "{seen:?}");
    assert_eq!(seen[2].0, Some(1.0), "{seen:?}");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn on_change_gets_each_event_and_a_slow_command_does_not_hold_the_polls() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.jsonl");
    let out = milink()
        .args(["watch", "--interval", "20ms", "--polls", "10", "--format", "json", "--on-change"])
        .arg(format!("cat >> {}", log.display()))
        .arg("--history")
        .arg(dir.path().join("a.db"))
        .arg("--lab")
        .arg(scenario_path("link-healthy.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = lines(&out.stdout);
    // The runs end a moment after the watch: wait for them to land.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while Instant::now() < deadline {
        got = std::fs::read(&log).map(|b| lines(&b)).unwrap_or_default();
        if got.len() == printed.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    got.sort_by_key(|e| e.to_string());
    let mut want = printed.clone();
    want.sort_by_key(|e| e.to_string());
    assert_eq!(got, want, "each event once, as JSON on stdin");

    // A command that hangs is stopped at its limit; the polls go on meanwhile.
    let out = milink()
        .args(["watch", "--interval", "20ms", "--for", "2s", "--on-change", "sleep 30", "--on-change-timeout", "1s"])
        .arg("--history")
        .arg(dir.path().join("b.db"))
        .arg("--lab")
        .arg(scenario_path("link-healthy.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let polls: u64 = err.split(" polls").next().and_then(|s| s.rsplit(['\n', ' ']).next()).unwrap().parse().unwrap();
    assert!(polls >= 20, "{err}");
}

#[test]
fn a_watch_killed_mid_write_leaves_a_history_the_next_watch_and_history_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let mut child = milink()
        .args(["watch", "--interval", "10ms", "--history"])
        .arg(&db)
        .arg("--lab")
        .arg(scenario_path("link-healthy.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap();
    let count = |db: &Path| {
        let h = milink().args(["history", "--history"]).arg(db).output().unwrap();
        assert_eq!(h.status.code(), Some(0), "{}", String::from_utf8_lossy(&h.stderr));
        let err = String::from_utf8_lossy(&h.stderr).to_string();
        err.split("; ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse::<u64>().ok()).unwrap()
    };
    let before = count(&db);
    assert!(before > 10, "it polled before it was killed: {before}");
    let check = python(
        "-c",
        &[
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])",
            db.to_str().unwrap(),
        ],
        "sqlite3",
        "python3's sqlite3",
        "",
    );
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok");
    let again = milink()
        .args(["watch", "--interval", "10ms", "--polls", "5", "--history"])
        .arg(&db)
        .arg("--lab")
        .arg(scenario_path("link-healthy.toml"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(count(&db), before + 5);
}

#[test]
fn sigterm_and_ctrl_c_stop_a_watch_cleanly_even_mid_poll() {
    let dir = tempfile::tempdir().unwrap();
    for (n, signal) in [(0, "-TERM"), (1, "-INT")] {
        let mut child = milink()
            .args(["watch", "--interval", "10ms", "--history"])
            .arg(dir.path().join(format!("{n}.db")))
            .arg("--lab")
            .arg(scenario_path("link-healthy.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "{signal}: still running");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_eq!(status.code(), Some(0), "{signal}: {err}");
        assert!(err.contains(" polls, ") && err.contains("history in"), "{signal}: the summary says it stopped: {err}");
    }
}

#[test]
fn a_person_sees_what_needs_attention_first_and_one_line_per_side_for_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let out = milink()
        .args(["watch", "--interval", "20ms", "--polls", "3", "--history"])
        .arg(dir.path().join("t.db"))
        .arg("--lab")
        .arg(scenario_path("databases-not-ready.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let printed: Vec<&str> = text.lines().collect();
    let sides: Vec<&&str> = printed.iter().filter(|l| l.contains("  ok    ")).collect();
    assert_eq!(sides.len(), 2, "{text}");
    assert!(sides[0].contains("sql_server") && sides[0].contains("certificates valid"), "{text}");
    assert!(printed[0].contains("FAIL") && printed[0].contains("log_space FullLog"), "the worst first: {text}");
    assert!(
        !printed.iter().any(|l| l.contains("  ok  ") && l.contains("certificate ")),
        "no line per good certificate: {text}"
    );
    // JSON keeps every starting value as its own event.
    let json = milink()
        .args(["watch", "--interval", "20ms", "--polls", "1", "--format", "json", "--history"])
        .arg(dir.path().join("j.db"))
        .arg("--lab")
        .arg(scenario_path("databases-not-ready.toml"))
        .output()
        .unwrap();
    assert!(lines(&json.stdout).iter().filter(|e| e["kind"] == "certificate").count() >= 4);
}
