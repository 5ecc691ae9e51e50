//! `milink link failover | mode | reconcile` through the CLI against lab
//! processes, one test per `failover-*` scenario: what the roles, the logs and
//! the record show afterwards, and that every refusal changed nothing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// (SQL Server's role, the managed instance's role) as the lab holds them.
fn roles(lab: &Running) -> (String, String) {
    let l = &lab.state()["links"][0];
    (l["roles"]["sql_server"].as_str().unwrap().into(), l["roles"]["managed_instance"].as_str().unwrap().into())
}

/// Transactions in each side's copy of the database.
fn logs(lab: &Running) -> (u64, u64) {
    let l = &lab.state()["links"][0];
    (l["log"]["sql_server"].as_u64().unwrap(), l["log"]["managed_instance"].as_u64().unwrap())
}

fn kinds(lab: &Running) -> Vec<String> {
    lab.record().into_iter().map(|(_, k, _)| k).collect()
}

/// Waits until the lab's first link satisfies `f`.
fn until(lab: &Running, what: &str, f: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f(&lab.state()["links"][0]) {
        assert!(Instant::now() < deadline, "{what}: {}", lab.state()["links"][0]);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn planned_failover_both_ways_loses_nothing() {
    let lab = Running::start("failover-planned.toml");
    let o = lab.link(&["failover", "--to", "managed-instance", "--yes", "--settle", "500ms", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = json_of(&o);
    let l = &v["links"][0];
    assert_eq!(l["before"]["sql_server_role"], "PRIMARY");
    assert_eq!(l["after"]["managed_instance_role"], "PRIMARY");
    assert_eq!(l["after"]["sql_server_role"], "SECONDARY");
    assert_eq!(
        l["after"]["sql_server_hardened_lsn"], l["after"]["managed_instance_hardened_lsn"],
        "equal hardened LSNs"
    );
    assert_eq!(l["after"]["sql_server_mode"], "ASYNCHRONOUS_COMMIT", "asynchronous again after the failover");
    assert!(text(&o).contains("Stop the workload on SQL Server"), "{}", text(&o));
    assert_eq!(roles(&lab), ("SECONDARY".into(), "PRIMARY".into()));
    let (sql, mi) = logs(&lab);
    // 40 transactions a second for 1.5 s: every one of them is on the new primary.
    assert!(sql >= 55 && mi == sql, "no transaction of the workload is lost: SQL Server {sql}, managed instance {mi}");
    assert_eq!(lab.state()["links"][0]["writer"], "managed_instance");
    // Back again: the failback on the SQL Server 2022 policy.
    let o = lab.link(&["failover", "--to", "sql-server", "--yes", "--settle", "300ms"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(roles(&lab), ("PRIMARY".into(), "SECONDARY".into()));
    assert_eq!(logs(&lab).0, logs(&lab).1);
    // A second run finds nothing to do and changes nothing.
    let before = lab.record();
    let o = lab.link(&["failover", "--to", "sql-server", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("nothing to do"), "{}", text(&o));
    assert_eq!(lab.record(), before);
}

#[test]
fn a_disconnected_link_is_refused_and_nothing_changes() {
    let lab = Running::start("failover-disconnected.toml");
    let o = lab.link(&["failover", "--to", "managed-instance", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("link-connected") && t.contains("DISCONNECTED") && t.contains("nothing was changed"), "{t}");
    assert!(lab.record().is_empty(), "nothing was changed: {:?}", lab.record());
    // JSON says why too, for a script.
    let o = lab.link(&["failover", "--to", "managed-instance", "--yes", "--format", "json"]);
    assert_eq!(json_of(&o)["reasons"][0]["check"], "link-connected");
}

#[test]
fn a_workload_that_never_stops_keeps_the_gate_closed_and_the_mode_goes_back() {
    let lab = Running::start("failover-workload-never-stops.toml");
    let t = Instant::now();
    let o = lab.link(&["failover", "--to", "managed-instance", "--yes", "--max-wait", "2s", "--settle", "1s"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(t.elapsed() < Duration::from_secs(15), "bounded by --max-wait: {:?}", t.elapsed());
    let out = text(&o);
    assert!(out.contains("hardened-lsn-gate") && out.contains("stop the workload"), "{out}");
    assert!(out.contains("back in asynchronous commit"), "{out}");
    assert_eq!(roles(&lab), ("PRIMARY".into(), "SECONDARY".into()), "no failover");
    // Synchronous for the gate, then asynchronous again, on both sides.
    let k = kinds(&lab);
    assert_eq!(k.iter().filter(|k| k.contains("MODIFY")).count(), 2, "{k:?}");
    assert_eq!(k.iter().filter(|k| k.starts_with("PATCH")).count(), 2, "{k:?}");
    assert!(!k.iter().any(|k| k.contains("FAILOVER") || k.starts_with("POST")), "{k:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let side: milink::lab::SideInfo = serde_json::from_value(lab.info["sql_server"].clone()).unwrap();
        let mut sql = connect(&side).await;
        let rows = query(
            &mut sql,
            "SELECT r.availability_mode_desc FROM sys.availability_replicas r JOIN sys.availability_groups ag ON ag.group_id = r.group_id WHERE ag.is_distributed = 1",
        )
        .await
        .unwrap();
        assert!(rows.iter().all(|r| r.get::<&str, _>(0) == Some("ASYNCHRONOUS_COMMIT")));
    });
}

#[test]
fn forced_failover_then_reconcile_ends_with_one_primary_and_keeps_the_tail() {
    let lab = Running::start("failover-forced-reconcile.toml");
    let backup_dir = lab.info["sql_server"]["backup_dir"].as_str().unwrap().to_string();
    // No split brain yet: nothing to reconcile.
    let o = lab.link(&["reconcile", "--primary", "managed-instance", "--backup-to", &backup_dir, "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("only one side is PRIMARY"), "{}", text(&o));
    // SQL Server's site is cut off: its endpoint and its 1433 stop answering; the
    // application still writes there.
    std::thread::sleep(Duration::from_millis(500));
    for (port, action) in [(5022, "filtered"), (1433, "refused")] {
        let fault = serde_json::json!({"from": "any", "to": "sql_server", "port": port, "action": action});
        http_json("POST", &format!("{}/faults", lab.control()), Some(fault));
    }
    until(&lab, "the link disconnects", |l| l["connected"] == false);
    std::thread::sleep(Duration::from_millis(300));
    let o = lab.link(&["failover", "--to", "managed-instance", "--forced", "--yes", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = json_of(&o);
    let l = &v["links"][0];
    assert!(l["data_loss"]["old_primary_unreadable"].is_string(), "SQL Server cannot be read: {l}");
    assert!(l["notes"][0].as_str().unwrap().contains("milink link reconcile --primary managed-instance"), "{l}");
    let (sql, mi) = logs(&lab);
    assert!(sql > mi, "the unsent tail stays on SQL Server: {sql} > {mi}");
    // The site comes back; the application stops; both say PRIMARY.
    http_json("POST", &format!("{}/workload", lab.control()), Some(serde_json::json!({"tps": 0})));
    http_json("DELETE", &format!("{}/faults", lab.control()), None);
    let tail = logs(&lab).0;
    assert_eq!(roles(&lab), ("PRIMARY".into(), "PRIMARY".into()));
    let d = milink_with(&["diagnose", "--format", "json", "--profile", lab.profile().to_str().unwrap()], &[]);
    assert_eq!(serde_json::from_slice::<Value>(&d.stdout).unwrap()["root_cause"]["id"], "split-brain");
    // A planned failover is refused in a split brain.
    let o = lab.link(&["failover", "--to", "managed-instance", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("milink link reconcile"), "{}", text(&o));
    let o = lab.link(&["reconcile", "--primary", "managed-instance", "--backup-to", &backup_dir, "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    until(&lab, "connected with one primary", |l| {
        l["connected"] == true && l["roles"]["sql_server"] == "SECONDARY" && l["roles"]["managed_instance"] == "PRIMARY"
    });
    assert!(lab.state()["links"][0]["synchronization_state"].as_str().unwrap().starts_with("SYNCHRONIZ"));
    // The tail is in the tail-log backup: its last LSN is SQL Server's last transaction.
    let backups = lab.state()["backups"]["sql_server"].clone();
    let tail_backup = backups.as_array().unwrap().iter().find(|b| b["type"] == "L" && b["last"] == tail);
    assert!(tail_backup.is_some(), "a log backup up to transaction {tail}: {backups}");
    let file = tail_backup.unwrap()["device"].as_str().unwrap().to_string();
    assert!(file.starts_with(&backup_dir) && file.ends_with(".trn"), "{file}");
    let line: Value = serde_json::from_str(std::fs::read_to_string(&file).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(line["type"], "L");
    assert_eq!(line["last_lsn"], milink::lab::state::lsn(tail).to_string());
    // Run again: nothing to reconcile, and no second backup.
    let o = lab.link(&["reconcile", "--primary", "managed-instance", "--backup-to", &backup_dir, "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(kinds(&lab).iter().filter(|k| k.starts_with("BACKUP")).count(), 1);
}

#[test]
fn failback_is_refused_by_the_update_policy() {
    let lab = Running::start("failover-failback-refused.toml");
    let o = lab.link(&["failover", "--to", "sql-server", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("update-policy") && t.contains("Always-up-to-date"), "{t}");
    assert!(t.contains("The SQL Server 2022 update policy would allow it") && t.contains("cannot be undone"), "{t}");
    assert!(t.contains("update-policy (learn.microsoft.com"), "the sources are cited: {t}");
    assert!(lab.record().is_empty());
}

#[test]
fn the_link_is_not_dropped_before_the_first_full_backup() {
    let lab = Running::start("failover-cleanup-guard.toml");
    let o = lab.link(&[
        "failover",
        "--to",
        "managed-instance",
        "--yes",
        "--settle",
        "300ms",
        "--cleanup",
        "drop-dag",
        "--max-wait",
        "2s",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("first-full-backup") && t.contains("the link is kept") && t.contains("--force"), "{t}");
    assert_eq!(roles(&lab), ("SECONDARY".into(), "PRIMARY".into()), "the failover itself is done");
    assert!(!kinds(&lab).iter().any(|k| k.starts_with("DELETE") || k.starts_with("DROP")), "{:?}", kinds(&lab));
    // --force drops it anyway, and says so; the databases stay.
    let o = lab.link(&["failover", "--to", "managed-instance", "--yes", "--cleanup", "drop-dag", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("skipped with --force"), "{}", text(&o));
    let k = kinds(&lab);
    assert_eq!(k.iter().filter(|k| k.as_str() == "FAILOVER (planned)").count(), 1, "not failed over twice: {k:?}");
    assert!(
        k.contains(&"DELETE distributedAvailabilityGroups".to_string())
            && k.contains(&"DROP AVAILABILITY GROUP".to_string())
    );
    assert!(lab.state()["links"].as_array().unwrap().is_empty(), "the link is gone");
}

#[test]
fn a_kill_after_each_step_then_a_rerun_fails_over_once() {
    let lab = Running::start("failover-planned.toml");
    let journal = lab.profile().parent().unwrap().join("link.journal.jsonl");
    let mut kills = 0;
    // A kill after each step that is done (or accepted by ARM) for the first
    // time; a wait that opens again after a restart is no new step.
    let progress = |j: &str| -> std::collections::BTreeSet<(String, String)> {
        j.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event"] == "done" || e["event"] == "accepted")
            .map(|e| (e["step"].as_str().unwrap().to_string(), e["event"].as_str().unwrap().to_string()))
            .collect()
    };
    for round in 0..30 {
        let seen = progress(&lab.journal()).len();
        let log = std::fs::File::create(lab.profile().with_file_name(format!("run-{round}.log"))).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_milink"))
            .args(["link", "failover", "--to", "managed-instance", "--yes", "--settle", "300ms"])
            .args(["--cleanup", "drop-ag-and-dag", "--profile", lab.profile().to_str().unwrap()])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            let now = std::fs::read_to_string(&journal).unwrap_or_default();
            if progress(&now).len() > seen {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                break None;
            }
            assert!(Instant::now() < deadline, "round {round}: the failover stalled");
            std::thread::sleep(Duration::from_millis(1));
        };
        if let Some(status) = finished {
            let log = std::fs::read_to_string(lab.profile().with_file_name(format!("run-{round}.log"))).unwrap();
            assert!(status.success(), "round {round}: the resumed failover failed:\n{log}\n{}", lab.journal());
            break;
        }
    }
    assert!(kills >= 6, "killed after each step: {kills}");
    assert_no_repeats(&lab.record());
    let k = kinds(&lab);
    for kind in ["FAILOVER (planned)", "DELETE distributedAvailabilityGroups", "DROP AVAILABILITY GROUP"] {
        assert!(k.iter().any(|x| x == kind), "{kind}: {k:?}");
    }
    assert!(lab.state()["links"].as_array().unwrap().is_empty(), "the cutover removed the link");
}

#[test]
fn an_instance_without_the_failover_operation_fails_over_with_tsql_and_2019_cuts_over() {
    let lab = Running::start("failover-old-api.toml");
    let o = lab.link(&["failover", "--to", "managed-instance", "--yes", "--settle", "300ms"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(kinds(&lab).contains(&"ALTER AVAILABILITY GROUP (FAILOVER)".to_string()), "{:?}", kinds(&lab));
    assert_eq!(roles(&lab), ("SECONDARY".into(), "PRIMARY".into()));
    // SQL Server 2019: the link cannot be kept, so only the cutover is offered.
    let lab = Running::start("failover-sql-2019.toml");
    let o = lab.link(&["failover", "--to", "managed-instance", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--cleanup drop-dag"), "{}", text(&o));
    assert!(lab.record().is_empty());
    let o = lab.link(&["failover", "--to", "managed-instance", "--yes", "--settle", "300ms", "--cleanup", "drop-dag"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let k = kinds(&lab);
    assert!(!k.iter().any(|k| k.contains("FAILOVER")), "the link is broken, not failed over: {k:?}");
    assert!(k.contains(&"DELETE distributedAvailabilityGroups".to_string()), "{k:?}");
    assert!(lab.state()["links"].as_array().unwrap().is_empty());
}

#[test]
fn mode_switches_both_sides_and_the_dr_setting_and_says_what_it_was() {
    let lab = Running::start("failover-planned.toml");
    let o = lab.link(&["mode", "sync", "--hybrid-secondary", "passive", "--yes", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = json_of(&o);
    let l = &v["links"][0];
    assert_eq!(l["before"]["sql_server_mode"], "ASYNCHRONOUS_COMMIT");
    assert_eq!(l["after"]["sql_server_mode"], "SYNCHRONOUS_COMMIT");
    assert_eq!(
        (l["before"]["managed_instance_mode"].clone(), l["after"]["managed_instance_mode"].clone()),
        ("Async".into(), "Sync".into())
    );
    assert_eq!(l["after"]["hybrid_secondary_usage"], "Passive");
    let o = lab.link(&["mode", "sync", "--hybrid-secondary", "passive", "--yes"]);
    assert!(text(&o).contains("nothing to do"), "{}", text(&o));
    let o = lab.link(&["mode"]);
    assert_eq!(o.status.code(), Some(3), "a mode or --hybrid-secondary is needed: {}", text(&o));
}

#[test]
fn arm_refusals_of_a_role_change_come_with_their_code_and_a_fix() {
    let lab = Running::start_with(
        "failover-planned.toml",
        "[[arm.faults]]\noperation = \"dag.post\"\nkind = \"error\"\nstatus = 409\ncode = \"DistributedAvailabilityGroupFailoverLogSendQueueSizeTooBig\"\nmessage = \"The log send queue is too big.\"\n",
    );
    let o = lab.link(&["failover", "--to", "managed-instance", "--yes", "--settle", "300ms"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("DistributedAvailabilityGroupFailoverLogSendQueueSizeTooBig")
            && t.contains("let the send queue drain"),
        "{t}"
    );
    assert_eq!(roles(&lab), ("PRIMARY".into(), "SECONDARY".into()));
}

/// The journal's (step, event) → when, for the steps whose id starts with `prefix`.
fn journal_times(lab: &Running, prefix: &str) -> Vec<(String, String, time::OffsetDateTime)> {
    let rfc = time::format_description::well_known::Rfc3339;
    lab.journal()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["step"].as_str().is_some_and(|s| s.starts_with(prefix)))
        .map(|e| {
            let at = time::OffsetDateTime::parse(e["at"].as_str().unwrap(), &rfc).unwrap();
            (e["step"].as_str().unwrap().to_string(), e["event"].as_str().unwrap().to_string(), at)
        })
        .collect()
}

/// Ten links fail over at once: each database's wait for equal LSNs begins
/// before any of them ends (they overlap, not one after another), and every
/// link ends with the managed instance as primary.
#[test]
fn ten_links_fail_over_side_by_side() {
    let lab = Running::start("link-create-ten.toml");
    let o = lab.link(&["apply", "--all-databases", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = lab.link(&[
        "failover",
        "--to",
        "managed-instance",
        "--all-databases",
        "--yes",
        "--settle",
        "500ms",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = json_of(&o);
    assert_eq!(v["links"].as_array().unwrap().len(), 10, "{v}");
    let links = lab.state()["links"].as_array().unwrap().clone();
    assert_eq!(links.len(), 10);
    for l in &links {
        assert_eq!(l["roles"]["managed_instance"], "PRIMARY", "{l}");
        assert_eq!(l["roles"]["sql_server"], "SECONDARY", "{l}");
    }
    let waits = journal_times(&lab, "wait-lsn:");
    let last_start = waits.iter().filter(|(_, e, _)| e == "started").map(|(_, _, t)| *t).max().unwrap();
    let first_end = waits.iter().filter(|(_, e, _)| e == "done").map(|(_, _, t)| *t).min().unwrap();
    assert_eq!(waits.iter().filter(|(_, e, _)| e == "done").count(), 10, "{waits:?}");
    assert!(last_start < first_end, "the waits ran one after another: {waits:?}");
    // Said once for all, not once per link.
    assert_eq!(text(&o).matches("Stop the workload").count(), 1, "{}", text(&o));
    // Again: every link is failed over already, so nothing is asked or done.
    let again = lab.link(&["failover", "--to", "managed-instance", "--all-databases", "--yes", "--settle", "500ms"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(!text(&again).contains("Stop the workload"), "{}", text(&again));
    // The primary is lost: a forced failover of all ten back to SQL Server.
    let forced =
        lab.link(&["failover", "--to", "sql-server", "--forced", "--all-databases", "--yes", "--format", "json"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    for l in lab.state()["links"].as_array().unwrap() {
        assert_eq!(l["roles"]["sql_server"], "PRIMARY", "{l}");
    }
    assert_eq!(json_of(&forced)["links"].as_array().unwrap().len(), 10);
    assert!(lab.lab.stop().success());
}

/// One link of ten is disconnected: the failover of all ten is refused, the
/// refusal names that database, and nothing changes on any link.
#[test]
fn one_broken_link_of_ten_refuses_the_failover_of_all() {
    let lab = Running::start("links-ten-one-broken.toml");
    let o = lab.link(&["failover", "--to", "managed-instance", "--all-databases", "--yes", "--format", "json"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("of 10 links is refused; nothing was changed"), "{t}");
    assert!(t.contains("Db07:"), "{t}");
    assert!(lab.record().is_empty(), "nothing changed: {:?}", lab.record());
    assert!(lab.lab.stop().success());
}
