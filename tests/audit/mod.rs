//! `milink audit certs` through the CLI against the lab fleet
//! (scenarios/fleets/fleet.toml): statuses per group, links, exit codes,
//! formats, and instances that cannot be read.

use std::path::Path;
use std::process::{Command, Output};

use milink::lab::fleet::Fleet;
use serde_json::Value;

use crate::support::*;

const FLEET: &str = "scenarios/fleets/fleet.toml";

fn milink() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_milink"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn audit(args: &[&str]) -> Output {
    milink().args(["audit", "certs"]).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn fleet() -> Fleet {
    Fleet::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(FLEET)).unwrap()
}

/// (copy number, group) for every copy, numbered as the lab numbers them.
fn copies(f: &Fleet) -> Vec<(usize, usize)> {
    f.groups
        .iter()
        .enumerate()
        .flat_map(|(g, grp)| std::iter::repeat_n(g, grp.count))
        .enumerate()
        .map(|(i, g)| (i + 1, g))
        .collect()
}

#[test]
fn fleet_audit_concludes_what_each_group_expects() {
    let out = audit(&["--lab", FLEET, "--format", "json", "--timeout", "1s"]);
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let f = fleet();
    assert_eq!(out.status.code().map(|c| c as u8), f.expect.exit_code, "{}", stdout(&out));
    assert_eq!(r["summary"]["exit_code"].as_u64().map(|c| c as u8), f.expect.exit_code);

    let instance = |name: &str| {
        r["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["instance"] == name)
            .unwrap_or_else(|| panic!("{name} listed"))
            .clone()
    };
    let mut checked = 0;
    for (n, g) in copies(&f) {
        let want = &f.groups[g].expect;
        let (sql, mi) = (format!("SQL{n:04}"), format!("mi-{n:04}"));
        for (name, expected) in [(&sql, &want.sql_server), (&mi, &want.managed_instance)] {
            let Some(expected) = expected else { continue };
            let got = instance(name);
            assert_eq!(got["status"], expected.as_str(), "{name} (group {}): {got}", g + 1);
            if expected == "unknown" {
                assert!(got["error"].as_str().is_some_and(|e| !e.is_empty()), "an UNKNOWN names its reason: {got}");
            }
            checked += 1;
        }
        let link = r["links"].as_array().unwrap().iter().find(|l| l["sql_server"] == sql.as_str()).cloned();
        match (want.link.as_deref(), link) {
            (Some("none") | None, None) => {}
            (Some(expected), Some(l)) => assert_eq!(l["status"], expected, "link of {sql}: {l}"),
            (expected, got) => panic!("link of {sql}: expected {expected:?}, got {got:?}"),
        }
    }
    assert_eq!(checked, 30, "every instance of the fleet has an expectation");

    // The rotated-not-imported certificate is a FAIL though nothing expired.
    let rotated = r["links"].as_array().unwrap().iter().find(|l| l["mi_cert_on_sql"]["status"] == "fail").unwrap();
    assert!(rotated["mi_cert_on_sql"]["detail"].as_str().unwrap().starts_with("rotated, not imported"), "{rotated}");
    let stale = r["links"].as_array().unwrap().iter().find(|l| l["sql_cert_on_mi"]["status"] == "fail").unwrap();
    assert!(stale["sql_cert_on_mi"]["remedy"].as_str().unwrap().contains("Remove-AzSqlInstanceServerTrustCertificate"));

    // Worst first, then fewest days left.
    let certs = r["certificates"].as_array().unwrap();
    let rank = |s: &str| ["fail", "crit", "unknown", "warn", "ok"].iter().position(|x| *x == s).unwrap();
    for w in certs.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let (ra, rb) = (rank(a["status"].as_str().unwrap()), rank(b["status"].as_str().unwrap()));
        assert!(ra < rb || (ra == rb && a["days_left"].as_i64() <= b["days_left"].as_i64()), "{a}\n{b}");
    }
    for usage in ["endpoint", "partner", "azure-root", "tls", "trust", "arm-partner-validity"] {
        assert!(certs.iter().any(|c| c["usage"] == usage), "some certificate is used as {usage}");
    }
    let tls = certs.iter().find(|c| c["usage"] == "tls").unwrap();
    for field in ["subject", "thumbprint", "not_before", "not_after", "days_left", "key", "signature"] {
        assert!(!tls[field].is_null(), "{field}: {tls}");
    }

    // Unreadable instances end within the timeout, together, not one after another.
    let ms = r["summary"]["duration_ms"].as_u64().unwrap();
    assert!(ms < 2500, "five unreadable instances at --timeout 1s took {ms} ms");
    let wrong = instance("SQL0011");
    assert!(wrong["error"].as_str().unwrap().contains("18456"), "{wrong}");
    assert!(!stdout(&out).contains("Lab-Only-Passw0rd") && !stdout(&out).contains("Not-The-Password"));
}

#[test]
fn prometheus_output_parses_with_prometheus_client() {
    let out = audit(&["--lab", FLEET, "--format", "prometheus", "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(2));
    let samples = prometheus_samples(&String::from_utf8_lossy(&out.stdout));
    let find = |name: &str, label: &str, value: &str| {
        samples.iter().filter(|s| s["name"] == name && s["labels"][label] == value).cloned().collect::<Vec<_>>()
    };
    for name in [
        "milink_cert_not_after_timestamp_seconds",
        "milink_cert_expired",
        "milink_link_trust_ok",
        "milink_instance_read_error",
        "milink_audit_status",
        "milink_audit_duration_seconds",
        "milink_audit_last_run_timestamp_seconds",
    ] {
        assert!(samples.iter().any(|s| s["name"] == name), "{name} is exposed");
    }
    // SQL0008's endpoint certificate expired two days ago.
    let expired = find("milink_cert_expired", "instance", "SQL0008");
    assert!(expired.iter().any(|s| s["labels"]["usage"] == "endpoint" && s["value"] == 1.0), "{expired:?}");
    let healthy = find("milink_cert_expired", "instance", "SQL0001");
    assert!(!healthy.is_empty() && healthy.iter().all(|s| s["value"] == 0.0), "{healthy:?}");
    let not_after = find("milink_cert_not_after_timestamp_seconds", "instance", "SQL0005");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let ep = not_after.iter().find(|s| s["labels"]["usage"] == "endpoint").unwrap();
    let days = (ep["value"].as_f64().unwrap() - now) / 86400.0;
    assert!((19.0..21.0).contains(&days), "SQL0005's endpoint certificate expires in 20 days: {days}");
    assert_eq!(find("milink_link_trust_ok", "sql_server", "SQL0009")[0]["value"], 0.0);
    assert_eq!(find("milink_link_trust_ok", "sql_server", "SQL0001")[0]["value"], 1.0);
    assert_eq!(find("milink_instance_read_error", "instance", "mi-0015")[0]["value"], 1.0);
    assert_eq!(find("milink_instance_read_error", "instance", "mi-0001")[0]["value"], 0.0);
    let status = samples.iter().find(|s| s["name"] == "milink_audit_status").unwrap();
    assert_eq!(status["value"], 2.0);
}

#[test]
fn lab_up_writes_an_inventory_the_audit_reads() {
    let lab = LabProcess::start("fleets/fleet.toml");
    let info: Value = serde_json::from_str(&lab.line).unwrap();
    assert_eq!(info["instances"], 30);
    let inventory = Path::new(info["inventory"].as_str().unwrap()).to_path_buf();
    let text = std::fs::read_to_string(&inventory).unwrap();
    assert!(!text.contains("Lab-Only-Passw0rd"), "no inline secrets in the inventory");
    assert!(text.contains("password_file") && text.contains("arm_token_file"));
    let dir = inventory.parent().unwrap();
    for e in std::fs::read_dir(dir.join("secrets")).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let mode = e.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "secret files are the owner's only");
    }

    let out = audit(&["--inventory", inventory.to_str().unwrap(), "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(2));
    let table = stdout(&out);
    assert!(table.starts_with("Certificates (worst first)"), "{table}");
    assert!(table.lines().last().unwrap().starts_with("CRITICAL: 30 instances (5 unreadable)"), "{table}");

    // Only the healthy first link: quiet, one line, exit 0.
    let inv: toml::Table = toml::from_str(&text).unwrap();
    let keep: Vec<toml::Value> = inv["instance"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| ["SQL0001", "mi-0001"].contains(&i["name"].as_str().unwrap()))
        .cloned()
        .collect();
    let mut subset = toml::Table::new();
    subset.insert("instance".into(), toml::Value::Array(keep));
    let path = dir.join("healthy-only.toml");
    std::fs::write(&path, toml::to_string(&subset).unwrap()).unwrap();
    let out = audit(&["--inventory", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "quiet when all is well: {text}");
    assert!(text.starts_with("OK: 2 instances (0 unreadable)") && text.contains("1 links (0 failing trust)"), "{text}");
    let out = audit(&["--inventory", path.to_str().unwrap(), "--format", "markdown"]);
    let md = stdout(&out);
    assert!(md.starts_with("# milink certificate audit") && md.contains("## All certificates"), "{md}");
    lab.stop();
}

#[test]
fn bad_inventories_and_flags_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let inline = dir.path().join("inline.toml");
    std::fs::write(&inline, "[[instance]]\nkind = \"sql_server\"\nhost = \"a\"\npassword = \"hunter2\"\n").unwrap();
    let out = audit(&["--inventory", inline.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("password_env or password_file") && !err.contains("hunter2"), "{err}");

    for (args, says) in [
        (vec!["--inventory", "/nonexistent/fleet.toml"], "cannot read inventory"),
        (vec!["--inventory", "/dev/zero"], "not a regular file"),
        (vec!["--inventory", "x", "--crit-days", "40"], "--crit-days (40) is more than --warn-days (30)"),
        (vec!["--inventory", "x", "--timeout", "18446744073709551615s"], "--timeout"),
        (vec!["--inventory", "x", "--concurrency", "0"], "--concurrency"),
        (vec!["--inventory", "x", "--lab", FLEET], "cannot be used with"),
    ] {
        let out = audit(&args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Rows of a JSON audit, as comparable strings: instances, certificates, links.
fn rows(report: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for i in report["instances"].as_array().unwrap() {
        out.push(format!("instance {} {}", i["instance"], i["status"]));
    }
    for c in report["certificates"].as_array().unwrap() {
        out.push(format!(
            "cert {} {} {} {} {}",
            c["instance"], c["usage"], c["certificate"], c["status"], c["days_left"]
        ));
    }
    for l in report["links"].as_array().unwrap() {
        out.push(format!("link {} {} {} {}", l["link"], l["sql_server"], l["managed_instance"], l["status"]));
    }
    out
}

/// The audit's state, worst last.
fn rank(report: &Value) -> usize {
    let s = report["summary"]["status"].as_str().unwrap();
    ["ok", "warn", "unknown", "crit", "fail"].iter().position(|x| *x == s).unwrap()
}

/// N processes with --shard K/N together audit what one does, each row once,
/// links across shares included; --shards N takes K from an Indexed Job's
/// index, and --metrics-file writes each share's text, labelled, atomically.
#[test]
fn shards_together_audit_the_whole_fleet_once() {
    let lab = LabProcess::start("fleets/fleet.toml");
    let info: Value = serde_json::from_str(&lab.line).unwrap();
    let inventory = info["inventory"].as_str().unwrap().to_string();
    let json = |extra: &[&str]| -> Value {
        let mut args = vec!["--inventory", &inventory, "--timeout", "1s", "--format", "json"];
        args.extend(extra);
        serde_json::from_slice(&audit(&args).stdout).unwrap()
    };
    let whole = json(&[]);
    let mut want = rows(&whole);
    want.sort();
    assert!(want.iter().filter(|r| r.starts_with("link ")).count() >= 10, "{want:#?}");
    for n in [1, 3, 7] {
        let mut union = Vec::new();
        let mut worst = 0;
        for k in 0..n {
            let shard = format!("{k}/{n}");
            let part = json(&["--shard", &shard]);
            if n > 1 {
                assert_eq!(part["summary"]["shard"], shard.as_str());
            }
            worst = worst.max(rank(&part));
            union.extend(rows(&part));
        }
        union.sort();
        assert_eq!(union, want, "{n} shards together are not the whole audit");
        // The worst share's state is the whole's (CRITICAL outranks UNKNOWN, which outranks WARNING).
        assert_eq!(worst, rank(&whole), "{n} shards");
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("milink-audit.prom");
    let out = milink()
        .args(["audit", "certs", "--inventory", &inventory, "--timeout", "1s", "--shards", "3", "--metrics-file"])
        .arg(&file)
        .env("JOB_COMPLETION_INDEX", "2")
        .output()
        .unwrap();
    assert!(out.status.code().is_some_and(|c| c <= 2), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&file).unwrap();
    let samples = prometheus_samples(&text);
    assert!(!samples.is_empty());
    for s in &samples {
        assert_eq!(s["labels"]["shard"], "2/3", "{s}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left beside it: {leftovers:?}");
    let bad = milink().args(["audit", "certs", "--inventory", &inventory, "--shards", "3"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(3), "--shards without JOB_COMPLETION_INDEX is refused");
    let bad = audit(&["--inventory", &inventory, "--shard", "3/3"]);
    assert_eq!(bad.status.code(), Some(3), "a usage error: {}", String::from_utf8_lossy(&bad.stderr));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("shards count from 0"));
    lab.stop();
}
