//! `.ci/run` runs the suite in a network namespace that holds only loopback
//! (and sets MILINK_NETNS_ISOLATED); this proves it, without dialing anything.

use milink::lab::Mode;

use crate::support::*;

#[test]
fn the_suite_runs_where_only_loopback_exists() {
    if std::env::var_os("MILINK_NETNS_ISOLATED").is_none() {
        eprintln!("skipped: not run by .ci/run inside its loopback-only namespace");
        return;
    }
    // /proc/net follows this process's namespace (/sys/class/net would show the mount's).
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap();
    let interfaces: Vec<&str> = dev.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
    assert_eq!(interfaces, ["lo"], "an interface besides loopback could route out");
    // /proc/net/route lists IPv4 routes of non-loopback interfaces: none, so no default route.
    let routes = std::fs::read_to_string("/proc/net/route").unwrap();
    assert_eq!(routes.lines().count(), 1, "routes besides the header: {routes}");
}

#[test]
fn a_loopback_lab_refuses_a_scenario_that_names_a_documentation_address() {
    init();
    let s = scenario_with("healthy.toml", |t| {
        set(t, "sql_server.endpoint.url_host", "198.51.100.10");
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = match rt.block_on(milink::lab::Lab::start_in(&s, Mode::Loopback)) {
        Ok(_) => panic!("a loopback lab started with a documentation address"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("sql_server.endpoint.url_host") && err.contains("loopback mode"), "{err}");
    // The same refusal through the CLI, before anything listens.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(scenario_path("healthy.toml"))
        .unwrap()
        .replace("[sql_server.endpoint]\n", "[sql_server.endpoint]\nurl_host = \"198.51.100.10\"\n");
    std::fs::write(&file, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_milink")).args(["lab", "up"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sql_server.endpoint.url_host is 198.51.100.10"), "{stderr}");
}
