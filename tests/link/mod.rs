//! `milink link plan | apply | remove | status` through the CLI, against lab
//! processes and the profile `lab up --json` writes, as a DBA would run them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

mod failover;
mod multi;

struct Running {
    lab: LabProcess,
    info: Value,
}

impl Running {
    fn start(scenario: &str) -> Running {
        let lab = LabProcess::start(scenario);
        let info = serde_json::from_str(&lab.line).unwrap();
        Running { lab, info }
    }

    fn start_with(scenario: &str, extra: &str) -> Running {
        let lab = LabProcess::start_with(scenario, extra);
        let info = serde_json::from_str(&lab.line).unwrap();
        Running { lab, info }
    }

    fn profile(&self) -> PathBuf {
        PathBuf::from(self.info["profile"].as_str().unwrap())
    }

    fn control(&self) -> String {
        self.info["control"].as_str().unwrap().to_string()
    }

    fn state(&self) -> Value {
        http_json("GET", &format!("{}/state", self.control()), None)
    }

    /// Every change the lab made, as (where, what, object).
    fn record(&self) -> Vec<(String, String, String)> {
        self.state()["record"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["side"].as_str().unwrap().into(),
                    m["kind"].as_str().unwrap().into(),
                    m["object"].as_str().unwrap().into(),
                )
            })
            .collect()
    }

    fn link(&self, args: &[&str]) -> Output {
        milink_with(&[&["link"], args, &["--profile", self.info["profile"].as_str().unwrap()]].concat(), &[])
    }

    fn journal(&self) -> String {
        std::fs::read_to_string(self.profile().parent().unwrap().join("link.journal.jsonl")).unwrap_or_default()
    }
}

fn milink_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_milink"));
    c.args(args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn plan_json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

fn states(plan: &Value) -> Vec<(String, String)> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s["state"].as_str().unwrap().to_string()))
        .collect()
}

/// No change was made twice.
fn assert_no_repeats(record: &[(String, String, String)]) {
    let mut seen = BTreeMap::new();
    for r in record {
        *seen.entry(r).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "executed more than once: {twice:?}\nrecord: {record:#?}");
}

#[test]
fn plan_lists_every_step_in_order_and_shows_no_secret() {
    let o = milink_with(
        &["link", "plan", "--format", "json", "--lab", scenario_path("link-create.toml").to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let p = plan_json(&o);
    assert_eq!(p["blockers"], serde_json::json!([]));
    let ids: Vec<String> = states(&p).into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        ids,
        [
            "sql-master-key",
            "sql-certificate",
            "mi-trust-sql-certificate",
            "sql-import-mi-certificate",
            "sql-azure-root:digicert-global-root-g2",
            "sql-azure-root:microsoft-rsa-root-certificate-authority-2017",
            "sql-endpoint",
            "sql-ag:SalesDB",
            "sql-dag:SalesDB",
            "mi-link:SalesDB",
            "wait-seeding:SalesDB",
        ]
    );
    let todo: Vec<_> = states(&p).into_iter().filter(|(_, s)| s == "todo").map(|(i, _)| i).collect();
    assert_eq!(todo.len(), 9, "the Azure roots are there already: {todo:?}");
    let steps = p["steps"].as_array().unwrap();
    assert_eq!(steps[0]["where"], "sql_server");
    assert_eq!(steps[2]["where"], "arm");
    assert_eq!(steps[2]["action"]["method"], "PUT");
    assert!(steps[0]["action"]["shown"].as_str().unwrap().contains("N'<redacted>'"));
    assert!(!String::from_utf8_lossy(&o.stdout).contains(milink::lab::LAB_MASTER_KEY_PASSWORD));
    // The markdown is for a change ticket.
    let o = milink_with(
        &["link", "plan", "--format", "markdown", "--lab", scenario_path("link-create.toml").to_str().unwrap()],
        &[],
    );
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(
        md.starts_with("# Link creation plan") && md.contains("CREATE ENDPOINT [database_mirroring_endpoint]"),
        "{md}"
    );
}

#[test]
fn apply_creates_a_healthy_link_and_a_second_apply_does_nothing() {
    let lab = Running::start("link-create.toml");
    let t = Instant::now();
    let o = lab.link(&["apply", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("created"), "{}", text(&o));
    eprintln!("apply took {:?}", t.elapsed());
    // diagnose, as a DBA would run it next: connected and healthy.
    let d = milink_with(&["diagnose", "--format", "json", "--profile", lab.profile().to_str().unwrap()], &[]);
    assert_eq!(d.status.code(), Some(0), "{}", text(&d));
    let v: Value = serde_json::from_slice(&d.stdout).unwrap();
    assert!(v["root_cause"].is_null());
    let connected: Vec<&Value> =
        v["findings"].as_array().unwrap().iter().filter(|f| f["id"] == "link-connected").collect();
    assert_eq!(connected.len(), 2);
    assert!(connected.iter().all(|f| f["severity"] == "pass"), "{connected:?}");
    assert_eq!(finding(&v, "link-sync-health")["severity"], "pass");
    let before = lab.record();
    let o = lab.link(&["apply", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("Nothing to do"), "{}", text(&o));
    assert_eq!(lab.record(), before, "a second apply changes nothing");
    let plan = plan_json(&lab.link(&["plan", "--format", "json"]));
    assert!(states(&plan).iter().all(|(_, s)| s == "done"), "{plan}");
    // status shows the journal.
    let s = lab.link(&["status"]);
    assert!(text(&s).contains("sql-master-key") && text(&s).contains("mi-link:SalesDB"), "{}", text(&s));
    // remove breaks the link and keeps the rest.
    let r = lab.link(&["remove", "--yes"]);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));
    assert!(text(&r).contains("Kept: the availability group AG_SalesDB"), "{}", text(&r));
    let kinds: Vec<String> = lab.record().iter().skip(before.len()).map(|(_, k, o)| format!("{k} {o}")).collect();
    assert_eq!(kinds, ["DELETE distributedAvailabilityGroups dag_salesdb", "DROP AVAILABILITY GROUP DAG_SalesDB"]);
    assert!(lab.lab.stop().success());
}

#[test]
fn apply_resumes_after_a_kill_after_each_step_and_never_repeats_one() {
    let lab = Running::start("link-create.toml");
    let journal = lab.profile().parent().unwrap().join("link.journal.jsonl");
    let mut kills = 0;
    for round in 0..20 {
        // Kill it right after the next step ends (or ARM accepts it).
        let seen = lab.journal().lines().filter(|l| l.contains("\"done\"") || l.contains("\"accepted\"")).count();
        let mut child = Command::new(env!("CARGO_BIN_EXE_milink"))
            .args(["link", "apply", "--yes", "--profile", lab.profile().to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            let now = std::fs::read_to_string(&journal).unwrap_or_default();
            if now.lines().filter(|l| l.contains("\"done\"") || l.contains("\"accepted\"")).count() > seen {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                break None;
            }
            assert!(Instant::now() < deadline, "round {round}: apply stalled");
            std::thread::sleep(Duration::from_millis(1));
        };
        if let Some(status) = finished {
            assert!(status.success(), "round {round}: the resumed apply failed:\n{}", lab.journal());
            break;
        }
    }
    assert!(kills >= 8, "killed after each step: {kills}");
    assert_no_repeats(&lab.record());
    let d = milink_with(&["diagnose", "--format", "json", "--profile", lab.profile().to_str().unwrap()], &[]);
    assert_eq!(d.status.code(), Some(0), "{}", text(&d));
}

#[test]
fn an_existing_windows_endpoint_gains_a_certificate_and_keeps_its_group() {
    let lab = Running::start("link-create-windows-auth-endpoint.toml");
    let plan = plan_json(&lab.link(&["plan", "--format", "json"]));
    let ep = plan["steps"].as_array().unwrap().iter().find(|s| s["id"] == "sql-endpoint").unwrap().clone();
    let stmt = ep["action"]["shown"].as_str().unwrap();
    assert!(stmt.starts_with("USE [master]; ALTER ENDPOINT [Hadr_endpoint]"), "{stmt}");
    assert!(stmt.contains("AUTHENTICATION = WINDOWS NEGOTIATE CERTIFICATE [Cert_SQLPROD01_endpoint]"), "{stmt}");
    assert!(stmt.contains("ALGORITHM AES RC4"), "{stmt}");
    let o = lab.link(&["apply", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let side: milink::lab::SideInfo = serde_json::from_value(lab.info["sql_server"].clone()).unwrap();
        let mut sql = connect(&side).await;
        let ep = query(
            &mut sql,
            "SELECT connection_auth_desc, encryption_algorithm_desc FROM sys.database_mirroring_endpoints",
        )
        .await
        .unwrap();
        assert_eq!(ep[0].get::<&str, _>(0), Some("NEGOTIATE, CERTIFICATE"));
        assert_eq!(ep[0].get::<&str, _>(1), Some("AES, RC4"));
        let ags = query(&mut sql, "SELECT name FROM sys.availability_groups ORDER BY name").await.unwrap();
        let names: Vec<&str> = ags.iter().filter_map(|r| r.get::<&str, _>(0)).collect();
        assert_eq!(names, ["AG_HR", "AG_SalesDB", "DAG_SalesDB"], "the existing group is still there");
    });
}

#[test]
fn a_blocked_direction_is_a_blocker_and_with_the_waiver_apply_names_the_root_cause() {
    let lab = Running::start("link-create-mi-to-sql-blocked.toml");
    let o = lab.link(&["plan", "--format", "json"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let plan = plan_json(&o);
    let blockers: Vec<&str> =
        plan["blockers"].as_array().unwrap().iter().map(|b| b["check"].as_str().unwrap()).collect();
    assert!(blockers.contains(&"network-mi-to-sql-5022"), "{blockers:?}");
    let table = String::from_utf8_lossy(&lab.link(&["plan"]).stdout).to_string();
    assert!(table.starts_with("Blockers"), "blockers come first:\n{table}");
    let refused = lab.link(&["apply", "--yes"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("--waive"), "{}", text(&refused));
    assert!(lab.record().is_empty(), "nothing was changed");
    let mut args = vec!["apply", "--yes"];
    for b in &blockers {
        args.extend(["--waive", b]);
    }
    let o = lab.link(&args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("not healthy") && t.contains("Root cause") && t.contains("sql-inbound-5022-blocked"), "{t}");
}

#[test]
fn arm_faults_are_retried_within_bounds_and_the_next_apply_resumes() {
    let lab = Running::start("link-create-arm-errors.toml");
    let o = lab.link(&["apply", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("DistributedAvailabilityGroupCreateFailed"), "ARM's code in the message: {t}");
    assert!(lab.journal().contains("\"failed\""));
    let o = lab.link(&["apply", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The 500 and the 429 were retried by milink; only accepted requests are in the record.
    let arm: Vec<String> =
        lab.record().iter().filter(|(_, k, _)| k.starts_with("PUT")).map(|(_, k, o)| format!("{k} {o}")).collect();
    assert_eq!(
        arm,
        [
            "PUT serverTrustCertificates cert_sqlprod01_endpoint",
            "PUT distributedAvailabilityGroups dag_salesdb",
            "PUT distributedAvailabilityGroups dag_salesdb",
        ],
        "the failed operation is asked again, nothing else"
    );
}

#[test]
fn an_operation_that_never_ends_is_bounded_by_the_profiles_timeout() {
    let lab = Running::start_with(
        "link-create.toml",
        "[[arm.faults]]\noperation = \"dag.put\"\nkind = \"operation_hangs\"\n",
    );
    let p = lab.profile();
    let text0 = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text0.replace("timeout = \"10m\"", "timeout = \"2s\"")).unwrap();
    let t = Instant::now();
    let o = lab.link(&["apply", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("did not end within"), "{}", text(&o));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn an_instance_that_only_knows_the_old_schema_gets_the_old_body() {
    let lab = Running::start("link-create-old-api.toml");
    let plan = plan_json(&lab.link(&["plan", "--format", "json"]));
    let link = plan["steps"].as_array().unwrap().iter().find(|s| s["id"] == "mi-link:SalesDB").unwrap().clone();
    assert!(link["action"]["url"].as_str().unwrap().ends_with("api-version=2021-11-01"));
    assert_eq!(link["action"]["body"]["properties"]["primaryAvailabilityGroupName"], "AG_SalesDB");
    assert_eq!(link["action"]["body"]["properties"]["targetDatabase"], "SalesDB");
    let o = lab.link(&["apply", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn hostile_names_go_through_the_whole_creation() {
    let lab = Running::start("link-create-hostile-names.toml");
    let o = lab.link(&["apply", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let state = lab.state();
    let mut dags: Vec<&str> = state["links"].as_array().unwrap().iter().map(|l| l["dag"].as_str().unwrap()).collect();
    dags.sort();
    assert_eq!(dags, ["DAG_Nord Wind [EU]", "DAG_O'Brien DB", "DAG_Sales]DB"]);
    assert!(
        state["links"].as_array().unwrap().iter().all(|l| l["connected"] == true && l["health"] == "HEALTHY"),
        "{state}"
    );
}

#[test]
fn no_secret_reaches_output_journal_or_trace_logs() {
    let lab = Running::start("link-create.toml");
    let token = lab.info["arm"]["token"].as_str().unwrap().to_string();
    let password = lab.info["sql_server"]["password"].as_str().unwrap().to_string();
    let master = milink::lab::LAB_MASTER_KEY_PASSWORD.to_string();
    let p = lab.profile();
    let mut out = String::new();
    for args in [
        vec!["link", "plan"],
        vec!["link", "plan", "--format", "json"],
        vec!["link", "apply", "--yes"],
        vec!["link", "status"],
    ] {
        let o =
            milink_with(&[args.as_slice(), &["--profile", p.to_str().unwrap()]].concat(), &[("MILINK_LOG", "trace")]);
        out.push_str(&text(&o));
    }
    out.push_str(&lab.journal());
    assert!(out.len() > 10_000, "trace logging ran: {} bytes", out.len());
    for secret in [&token, &password, &master] {
        assert!(!out.contains(secret.as_str()), "a secret leaked");
        let utf16: Vec<u8> = secret.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        assert!(!out.as_bytes().windows(utf16.len()).any(|w| w == utf16.as_slice()));
    }
}

/// A profile that signs in to ARM some other way than a token in the secrets file.
fn without_token(lab: &Running, auth: &str) -> PathBuf {
    let p = lab.profile();
    let dir = p.parent().unwrap();
    let text = std::fs::read_to_string(&p).unwrap().replace("auth = \"token\"", &format!("auth = \"{auth}\""));
    let alt = dir.join(format!("link-{auth}.toml"));
    std::fs::write(&alt, text).unwrap();
    let secrets = std::fs::read_to_string(dir.join("link.secrets.toml")).unwrap();
    let kept: String = secrets.lines().filter(|l| !l.starts_with("arm_token")).map(|l| format!("{l}\n")).collect();
    let s = dir.join("link.secrets.toml");
    std::fs::write(&s, kept).unwrap();
    alt
}

/// A stand-in `az` on PATH that answers `az account get-access-token` with `token`.
fn fake_az(token: &str) -> tempfile::TempDir {
    let bin = tempfile::tempdir().unwrap();
    let az = bin.path().join("az");
    std::fs::write(
        &az,
        format!(
            "#!/bin/sh\necho \"$@\" >> \"$(dirname \"$0\")/calls\"\necho '{{\"accessToken\":\"{token}\",\"expiresOn\":\"2099-01-01 00:00:00.000000\",\"expires_on\":4070908800,\"subscription\":\"s\",\"tenant\":\"t\",\"tokenType\":\"Bearer\"}}'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&az, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn azure_sign_in_through_the_cli_and_a_managed_identity() {
    let lab = Running::start("link-create.toml");
    let token = lab.info["arm"]["token"].as_str().unwrap().to_string();
    let bin = fake_az(&token);
    let cli = without_token(&lab, "cli");
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap());
    let o = milink_with(&["link", "plan", "--format", "json", "--profile", cli.to_str().unwrap()], &[("PATH", &path)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // A managed identity: App Service's identity endpoint (the lab's control channel plays it).
    let msi = without_token(&lab, "managed_identity");
    let endpoint = format!("{}/msi/token", lab.control());
    let o = milink_with(
        &["link", "plan", "--format", "json", "--profile", msi.to_str().unwrap()],
        &[("IDENTITY_ENDPOINT", &endpoint), ("IDENTITY_HEADER", "lab")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // No credential at all: a clear error, exit 2 (no way to read the instance).
    let o = milink_with(&["link", "plan", "--profile", without_token(&lab, "token").to_str().unwrap()], &[]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains("no token was given"), "{}", text(&o));
    let _ = Path::new("");
}

#[test]
fn the_managed_instance_login_can_be_azure_ad_from_the_same_sign_in() {
    let lab = Running::start("link-create.toml");
    let bin = fake_az("eyJ-lab-aad-token-for-sql");
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap());
    // No MI password any more; azure_ad on; ARM through the CLI too.
    let p = without_token(&lab, "cli");
    let text0 = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text0.replace("azure_ad = false", "azure_ad = true")).unwrap();
    let secrets = p.parent().unwrap().join("link.secrets.toml");
    let kept: String = std::fs::read_to_string(&secrets)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("mi_password"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&secrets, kept).unwrap();
    let o = milink_with(&["check", "--format", "json", "--profile", p.to_str().unwrap()], &[("PATH", &path)]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(finding(&v, "login-mi")["severity"], "pass", "{}", text(&o));
    let calls = std::fs::read_to_string(bin.path().join("calls")).unwrap();
    assert!(calls.contains("https://database.windows.net/.default"), "a token for SQL was asked: {calls}");
}

/// Ten links on one pair from one command: `apply --all-databases` takes every
/// user database, creates a link for each, and diagnose then sees ten healthy
/// links; `remove --all-databases` takes every linked one.
#[test]
fn apply_all_databases_creates_ten_links_at_once() {
    let lab = Running::start("link-create-ten.toml");
    let t = Instant::now();
    let o = lab.link(&["apply", "--all-databases", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    eprintln!("apply of ten links took {:?}", t.elapsed());
    let d = milink_with(
        &["diagnose", "--all-databases", "--format", "json", "--profile", lab.profile().to_str().unwrap()],
        &[],
    );
    let v: Value = serde_json::from_slice(&d.stdout).unwrap();
    assert!(v["root_cause"].is_null(), "{}", v["root_cause"]);
    let links = v["links"].as_array().unwrap();
    assert_eq!(links.len(), 10, "{links:?}");
    assert!(links.iter().all(|l| l["healthy"] == true), "{links:?}");
    let dags: Vec<&str> = links.iter().map(|l| l["link"].as_str().unwrap()).collect();
    assert!(dags.contains(&"DAG_Db09") && dags.contains(&"DAG_SalesDB"), "{dags:?}");
    // Each database is checked once, and each link's own findings name it.
    let exists: Vec<&Value> =
        v["findings"].as_array().unwrap().iter().filter(|f| f["id"] == "database-exists").collect();
    assert_eq!(exists.len(), 10);
    let health: Vec<&Value> =
        v["findings"].as_array().unwrap().iter().filter(|f| f["id"] == "link-sync-health").collect();
    assert_eq!(health.len(), 10);
    assert!(health.iter().all(|f| f["subject"].as_str().is_some_and(|s| s.starts_with("DAG_"))));
    let plan = plan_json(&lab.link(&["plan", "--all-databases", "--format", "json"]));
    assert!(states(&plan).iter().all(|(_, s)| s == "done"), "{plan}");
    let r = lab.link(&["remove", "--all-databases", "--yes"]);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));
    assert_eq!(lab.state()["links"].as_array().unwrap().len(), 0, "every link removed");
    assert!(lab.lab.stop().success());
}
