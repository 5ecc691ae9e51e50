//! `milink check` and `milink checks` through the CLI: formats, exit codes,
//! profiles and secrets, bad input.

use std::io::BufRead;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::*;

fn milink() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_milink"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn readme_lists_every_check() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let out = milink().args(["checks", "--json"]).output().unwrap();
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(checks.len(), milink::checks::CHECKS.len());
    for c in checks {
        let row = format!(
            "| `{}` | {} | [{}]({}) |",
            c["id"].as_str().unwrap(),
            c["family"].as_str().unwrap(),
            c["title"].as_str().unwrap(),
            c["doc_url"].as_str().unwrap()
        );
        assert!(readme.contains(&row), "README lacks: {row}");
    }
}

#[test]
fn healthy_lab_exits_0_in_every_format() {
    for format in ["table", "json", "markdown"] {
        let out = milink().args(["check", "--lab", "scenarios/healthy.toml", "--format", format]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{format}: {}", String::from_utf8_lossy(&out.stdout));
        let text = String::from_utf8(out.stdout).unwrap();
        match format {
            "json" => {
                let r: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(r["schema_version"], 1);
                assert_eq!(r["summary"]["warn"], 0);
                assert_eq!(r["summary"]["fail"], 0);
            }
            "markdown" => assert!(text.starts_with("# milink report") && text.contains("| pass | `login-sql` |")),
            _ => assert!(
                text.contains("checks: ") && text.contains("Not shown: ") && !text.contains("tls-sql-certificate")
            ),
        }
        assert!(!text.contains("Lab-Only-Passw0rd"), "the password never reaches a report");
    }
}

#[test]
fn markdown_for_a_ticket_carries_the_quoted_fix() {
    let out = milink()
        .args(["check", "--lab", "scenarios/databases-not-ready.toml", "--format", "markdown"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("## Needs attention"));
    assert!(text.contains("ALTER DATABASE [Simple] SET RECOVERY FULL;"), "{text}");
}

/// A lab in another process, and a profile a DBA would write for its servers.
struct LabWithProfile {
    lab: std::process::Child,
    info: Value,
    profile: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl LabWithProfile {
    fn start(scenario: &str, extra: &str) -> LabWithProfile {
        let mut lab = milink().args(["lab", "up", "--json", scenario]).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(lab.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let info: Value = serde_json::from_str(&line).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("link.toml");
        let side = |s: &str, k: &str| info[s][k].as_str().unwrap().to_string();
        std::fs::write(
            &profile,
            format!(
                "databases = [\"SalesDB\"]\n[sql_server]\nhost = \"{}\"\naddress = \"{}\"\nuser = \"milink\"\nca_cert = \"{}\"\n[managed_instance]\nfqdn = \"{}\"\naddress = \"{}\"\nuser = \"milink\"\nca_cert = \"{}\"\n{extra}",
                side("sql_server", "fqdn"),
                side("sql_server", "host"),
                side("sql_server", "ca_cert"),
                side("managed_instance", "fqdn"),
                side("managed_instance", "host"),
                side("managed_instance", "ca_cert"),
            ),
        )
        .unwrap();
        LabWithProfile { lab, info, profile, _dir: dir }
    }

    fn check(&self, args: &[&str]) -> Command {
        let mut c = milink();
        c.args(["check", "--format", "json", "--profile"])
            .arg(&self.profile)
            .args(args)
            .env("MILINK_SQL_PASSWORD", "Lab-Only-Passw0rd")
            .env("MILINK_MI_PASSWORD", "Lab-Only-Passw0rd")
            .stdin(Stdio::null());
        c
    }
}

impl Drop for LabWithProfile {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.lab.id().to_string()]).status();
        let _ = self.lab.wait();
    }
}

#[test]
fn profile_mode_reads_the_password_from_the_environment() {
    let l = LabWithProfile::start("scenarios/healthy.toml", "");
    let profile = l.profile.clone();
    let run = |sql_pw: &str| {
        milink()
            .args(["check", "--format", "json", "--profile"])
            .arg(&profile)
            .env("MILINK_SQL_PASSWORD", sql_pw)
            .env("MILINK_MI_PASSWORD", "Lab-Only-Passw0rd")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let ok = run("Lab-Only-Passw0rd");
    let r: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(finding(&r, "login-sql")["severity"], "pass");
    assert_eq!(finding(&r, "dns-sql-host")["severity"], "info", "address pinned: not resolved");

    let wrong = run("not-the-password");
    assert_eq!(wrong.status.code(), Some(2));
    let r: Value = serde_json::from_slice(&wrong.stdout).unwrap();
    let login = finding(&r, "login-sql");
    assert_eq!((login["severity"].as_str(), login["evidence"]["error_number"].as_i64()), (Some("fail"), Some(18456)));
    assert_eq!(finding(&r, "endpoint-sql-present")["severity"], "skip");
    assert!(!String::from_utf8_lossy(&wrong.stdout).contains("not-the-password"));
}

#[tokio::test]
async fn a_killed_probe_leaves_a_job_that_the_next_run_removes() {
    // MI → SQL 5022 dropped: the managed instance's probe job waits for its timeout.
    let l = LabWithProfile::start("scenarios/disconnected-sql-inbound-blocked.toml", "");
    let mi: milink::lab::SideInfo = serde_json::from_value(l.info["managed_instance"].clone()).unwrap();
    let jobs = || async {
        let mut c = connect(&mi).await;
        let rows = query(&mut c, "SELECT name FROM msdb.dbo.sysjobs WHERE name LIKE N'milink-probe-%'").await.unwrap();
        rows.len()
    };
    let mut run = l.check(&["--job-probes"]).stdout(Stdio::null()).spawn().unwrap();
    let mut seen = 0;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        seen = jobs().await;
        if seen > 0 {
            break;
        }
    }
    assert!(seen > 0, "the probe job exists while milink waits");
    run.kill().unwrap(); // SIGKILL, in the middle of the wait: no cleanup runs
    run.wait().unwrap();
    assert!(jobs().await > 0, "a killed run leaves its job behind");
    let again = l.check(&["--job-probes"]).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(jobs().await, 0, "the rerun removed the leftover and its own job");
}

#[test]
fn bad_input_is_exit_3_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[sql_server]\nhost = \"a\"\nhots = 1\n[managed_instance]\nfqdn = \"b\"\n").unwrap();
    let out = milink().arg("check").arg("--profile").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3") && err.contains("hots"), "{err}");

    let out = milink().args(["check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--profile"));

    let out = milink().args(["check", "--lab", "scenarios/healthy.toml", "--format", "yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
}

/// Volatile values (addresses, ports, times, dates) replaced, so the JSON
/// shape and every stable value are compared.
fn stable(mut v: Value) -> Value {
    const VOLATILE: [&str; 14] = [
        "address",
        "rtt_ms",
        "days_left",
        "expiry_date",
        "not_after",
        "last_full_backup",
        "last_log_backup",
        "hours_ago",
        "answers",
        "endpoint_host",
        "detail",
        "imported_expiry",
        "error",
        "result",
    ];
    for f in v["findings"].as_array_mut().unwrap() {
        for (k, val) in f["evidence"].as_object_mut().unwrap() {
            if VOLATILE.contains(&k.as_str()) {
                *val = Value::String("[filtered]".into());
            }
        }
        // What was found keeps its words; its numbers (times, addresses, dates) vary.
        if let Some(found) = f.get("found").and_then(|x| x.as_str()) {
            let mut shape = String::new();
            for c in found.chars() {
                if !c.is_ascii_digit() {
                    shape.push(c);
                } else if !shape.ends_with('#') {
                    shape.push('#');
                }
            }
            f["found"] = Value::String(shape);
        }
        if let Some(r) = f.get_mut("remedy").and_then(|r| r.as_str().map(String::from)) {
            // A remedy may carry a certificate's bytes, which are new each run.
            let cut = r.find("0x3082").map(|i| format!("{}0x[der]", &r[..i])).unwrap_or(r);
            f["remedy"] = Value::String(cut);
        }
    }
    v
}

#[test]
fn json_report_snapshot() {
    let out = milink()
        .args(["check", "--lab", "scenarios/certificates-not-exchanged.toml", "--format", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    insta::assert_json_snapshot!("certificates-not-exchanged", stable(v));
}

#[tokio::test]
async fn the_temporary_endpoint_exists_only_for_the_probe() {
    let l = LabWithProfile::start("scenarios/endpoint-missing.toml", "");
    let sql: milink::lab::SideInfo = serde_json::from_value(l.info["sql_server"].clone()).unwrap();

    let without = l.check(&["--job-probes"]).output().unwrap();
    let v: Value = serde_json::from_slice(&without.stdout).unwrap();
    assert_eq!(finding(&v, "network-mi-to-sql-5022")["severity"], "fail", "nothing listens without an endpoint");

    let with = l.check(&["--job-probes", "--temp-endpoint"]).output().unwrap();
    let v: Value = serde_json::from_slice(&with.stdout).unwrap();
    let f = finding(&v, "network-mi-to-sql-5022");
    assert_eq!(f["severity"], "pass");
    assert_eq!(f["evidence"]["temporary_endpoint"], "created for the test and dropped afterwards");

    let mut c = connect(&sql).await;
    let left = query(
        &mut c,
        "SELECT name FROM sys.endpoints WHERE name = N'milink_test_endpoint' UNION ALL SELECT name FROM sys.certificates WHERE name = N'milink_test_cert'",
    )
    .await
    .unwrap();
    assert!(left.is_empty(), "the temporary endpoint and certificate are gone");
    assert_eq!(
        probe(&sql.host, 5022, std::time::Duration::from_millis(500)).await.0,
        "refused",
        "and nothing listens any more"
    );
}

#[test]
fn out_of_range_numbers_and_meaningless_pairs_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("link.toml");
    std::fs::write(
        &profile,
        "[sql_server]\nhost = \"127.0.0.1\"\n[managed_instance]\nfqdn = \"mi.example\"\n[thresholds]\ntimeout = \"18446744073709551615s\"\n",
    )
    .unwrap();
    let huge = dir.path().join("huge.toml");
    std::fs::File::create(&huge).unwrap().set_len(64 << 20).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["check", "--lab", "scenarios/healthy.toml", "--timeout", "18446744073709551615s"], "--timeout"),
        (vec!["check", "--profile", profile.to_str().unwrap()], "thresholds.timeout"),
        (
            vec!["check", "--lab", "scenarios/healthy.toml", "--profile", profile.to_str().unwrap()],
            "cannot be used with",
        ),
        (vec!["check", "--lab", "scenarios/healthy.toml", "--crit-days", "90"], "crit_days (90) is more than"),
        (vec!["check", "--profile", "/dev/zero"], "not a regular file"),
        (vec!["check", "--profile", huge.to_str().unwrap()], "the limit is 1048576 bytes"),
        (vec!["check", "--lab", "/dev/zero"], "not a regular file"),
    ];
    for (args, says) in cases {
        let out = milink().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(err.len() < 2000, "{args:?}: the error stays short");
    }
}

/// The evidence of one finding, from `check --lab <scenario> --format json`.
fn evidence_of(scenario: &str, id: &str) -> Value {
    let out = milink().args(["check", "--lab", &format!("scenarios/{scenario}"), "--format", "json"]).output().unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    r["findings"].as_array().unwrap().iter().find(|f| f["id"] == id).unwrap()["evidence"].clone()
}

#[test]
fn failures_are_named_for_what_they_are() {
    // Both handshakes fail: the first (real) error leads, the fallback's beside it.
    let e = evidence_of("tds-garbage.toml", "tls-mi-certificate");
    let text = e["error"].as_str().unwrap();
    assert!(text.starts_with("TDS 7.x: PRELOGIN") && text.contains("then TDS 8.0 strict"), "{e}");
    // notBefore after notAfter is not "expired".
    let e = evidence_of("tls-inverted-validity.toml", "tls-sql-certificate");
    assert!(e["detail"].as_str().unwrap().starts_with("invalid validity period"), "{e}");
    // A redirect that comes back is a loop.
    let e = evidence_of("mi-redirect-loop.toml", "login-mi");
    assert!(e["error"].as_str().unwrap().starts_with("redirect loop"), "{e}");
}

#[test]
fn failures_first_root_cause_first_and_no_colour_in_pipes() {
    // The default table: what needs attention, then one line for the rest.
    let out = milink().args(["check", "--lab", "scenarios/sql-cert-expired.toml"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Needs attention"), "{text}");
    assert!(text.contains("cert-sql-endpoint-expiry") && !text.contains("| PASS"), "{text}");
    assert!(text.contains("Not shown: ") && text.contains("passed"), "{text}");
    let out = milink().args(["check", "--lab", "scenarios/sql-cert-expired.toml", "-v"]).output().unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("| PASS"), "-v lists every check");

    // In a ticket, the root cause is the document's first section.
    let out = milink()
        .args(["diagnose", "--lab", "scenarios/disconnected-sql-cert-rotated.toml", "--format", "markdown"])
        .output()
        .unwrap();
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.starts_with("# milink report\n\n## Root cause\n\n**"), "{md}");
    assert!(md.find("## Root cause").unwrap() < md.find("## Needs attention").unwrap());

    // Logs into a pipe carry no ANSI codes.
    let out = milink()
        .args(["check", "--lab", "scenarios/healthy.toml", "--format", "json"])
        .env("MILINK_LOG", "debug")
        .output()
        .unwrap();
    assert!(!out.stderr.is_empty(), "MILINK_LOG=debug logs something");
    assert!(!out.stderr.contains(&0x1b), "no escape codes in a pipe");
}

#[test]
fn the_table_says_what_was_found_and_fix_sql_holds_every_fix() {
    let dir = tempfile::tempdir().unwrap();
    let fix = dir.path().join("fix.sql");
    let out = milink()
        .args(["check", "--lab", "scenarios/certificates-not-exchanged.toml", "--fix-sql"])
        .arg(&fix)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    // The imported-certificate fix carries a whole certificate: short in the table…
    assert!(table.contains("0x3082…("), "{table}");
    assert!(!table.contains("0x30820"), "{table}");
    let sql = std::fs::read_to_string(&fix).unwrap();
    // …whole and runnable in the file, under its finding's id.
    let import = sql.split("-- cert-mi-imported (fail, link)\n").nth(1).unwrap().lines().next().unwrap();
    assert!(import.starts_with("USE [master]; CREATE CERTIFICATE [mi-contoso."), "{import}");
    assert!(import.len() > 600, "the blob is whole: {import}");
    // A fix in words, or with a placeholder, is a comment.
    let trust = sql.split("-- cert-sql-trusted-on-mi (fail, link)\n").nth(1).unwrap().lines().next().unwrap();
    assert!(trust.starts_with("-- Upload SQL Server's public key"), "{trust}");
    assert!(sql.lines().filter(|l| l.contains("CREATE CERTIFICATE [DigiCert")).all(|l| l.starts_with("-- ")));
    // Worst first: every fail before the first warn.
    let order: Vec<&str> = sql.lines().filter(|l| l.starts_with("-- ") && l.contains(" (")).collect();
    let first_warn = order.iter().position(|l| l.contains("(warn")).unwrap();
    assert!(order[first_warn..].iter().all(|l| !l.contains("(fail")), "{order:#?}");

    let out = milink().args(["check", "--lab", "scenarios/sql-cert-expired.toml"]).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("expired 3 days ago, on"), "the result column says what was found: {table}");
    let out =
        milink().args(["check", "--lab", "scenarios/sql-cert-expired.toml", "--format", "json"]).output().unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = r["findings"].as_array().unwrap().iter().find(|f| f["id"] == "cert-sql-endpoint-expiry").unwrap();
    assert!(f["found"].as_str().unwrap().starts_with("expired 3 days ago, on "), "{f}");
}

/// Completions a shell accepts and man pages for every command, from the
/// parser's own definition.
#[test]
fn completions_and_man_pages_cover_every_command() {
    let out = milink().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(script.contains("_milink") && script.contains("failover") && script.contains("--job-probes"), "{script}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("milink.bash");
    std::fs::write(&file, &script).unwrap();
    let syntax = std::process::Command::new("bash").arg("-n").arg(&file).status().unwrap();
    assert!(syntax.success(), "bash -n refuses the completion script");
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let out = milink().args(["completions", shell]).output().unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }

    let out = milink().args(["man", "--dir"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for page in ["milink.1", "milink-check.1", "milink-diagnose.1", "milink-link-failover.1", "milink-lab-up.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie") && text.contains(".SH NAME"), "{page} is not a man page");
    }
    let failover = std::fs::read_to_string(dir.path().join("milink-link-failover.1")).unwrap();
    assert!(failover.contains("forced"), "the failover page documents its options");
}
