//! Every scenario file starts a lab; bad files get clear errors through the CLI.

use std::process::Command;

use milink::lab::scenario::Scenario;
use milink::lab::{Lab, Mode};

use crate::support::*;

fn milink(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_milink")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap()
}

#[tokio::test]
async fn every_scenario_starts_a_lab() {
    init();
    let files = scenario_files();
    assert!(files.len() >= 20, "one scenario per fault family");
    for f in files {
        let s = Scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.description.trim().is_empty(), "{}", f.display());
        assert!(!s.expect.is_empty(), "{} has an [expect] table", f.display());
        let needs_topology = s.needs_topology();
        if needs_topology && !can_run_topology() {
            continue;
        }
        let mode = if needs_topology { Mode::Topology } else { Mode::Loopback };
        let lab = Lab::start_in(&s, mode).await.unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_ne!(lab.info.sql_server.host, lab.info.managed_instance.host);
    }
}

#[test]
fn lab_ls_lists_scenarios_with_descriptions() {
    let out = milink(&["lab", "ls"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l.starts_with("healthy ") && l.contains("link not yet created")), "{text}");
    assert!(!text.contains("INVALID"), "{text}");
}

#[test]
fn a_bad_scenario_names_file_line_and_key_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "extends = \"healthy.toml\"\ndescription = \"x\"\n\n[sql_server.endpoint]\nlisten_port = 5022\n",
    )
    .unwrap();
    std::fs::copy(scenario_path("healthy.toml"), dir.path().join("healthy.toml")).unwrap();
    let out = milink(&["lab", "up", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:5:") && err.contains("listen_port"), "{err}");
    assert!(out.stdout.is_empty(), "nothing started, nothing printed");

    std::fs::write(
        &bad,
        "extends = \"healthy.toml\"\ndescription = \"x\"\n[sql_server.endpoint]\ncertificate = \"nope\"\n",
    )
    .unwrap();
    let out = milink(&["lab", "up", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sql_server.endpoint.certificate `nope`"));

    std::fs::write(&bad, "description = \"x\"\n[sql_server\n").unwrap();
    let out = milink(&["lab", "up", bad.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml:2:"));
}
