//! Topology mode: each side and milink's host in a network namespace of their
//! own, faults per direction. Every connection here starts inside a lab
//! namespace (`on_host`, `connect_from`), never from the root namespace, whose
//! routes lead off the machine.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use milink::lab::netns::Place;
use milink::lab::{Lab, Mode};
use tiberius::EncryptionLevel;

use crate::support::*;

async fn topology_lab(name: &str) -> Lab {
    init();
    Lab::start_in(&scenario(name), Mode::Topology).await.expect("topology lab starts")
}

#[tokio::test]
async fn a_fault_on_one_direction_leaves_the_other_open() {
    if !can_run_topology() {
        return;
    }
    let lab = topology_lab("disconnected-sql-inbound-blocked.toml").await;
    assert_eq!(lab.info.sql_server.host, "198.51.100.10");
    assert_eq!(lab.info.managed_instance.host, "203.0.113.10");
    let sql_ep: SocketAddr = "198.51.100.10:5022".parse().unwrap();
    let mi_ep: SocketAddr = "203.0.113.10:5022".parse().unwrap();

    // MI → SQL 5022: dropped.
    let r = tokio::time::timeout(Duration::from_millis(700), lab.connect_from(Place::ManagedInstance, sql_ep)).await;
    assert!(r.is_err(), "MI→SQL 5022 is filtered: {r:?}");
    // SQL → MI 5022: open, from SQL Server's own address.
    let s = lab.connect_from(Place::SqlServer, mi_ep).await.expect("SQL→MI 5022 is open");
    assert_eq!(s.local_addr().unwrap().ip().to_string(), "198.51.100.10");

    // From milink's host: both endpoints, both TDS servers, and DNS through the router.
    let info = lab.info.clone();
    let dns: SocketAddr = format!("{}:{}", info.dns.host, info.dns.port).parse().unwrap();
    let seen = lab
        .on_host(move || async move {
            let ep = probe("198.51.100.10", 5022, Duration::from_millis(700)).await.0;
            let mut sql = connect(&info.sql_server).await;
            let mut mi = connect(&info.managed_instance).await;
            let a = query(&mut sql, "SELECT @@SERVERNAME AS n").await.unwrap()[0].get::<&str, _>("n").map(String::from);
            let b = query(&mut mi, "SELECT @@SERVERNAME AS n").await.unwrap()[0].get::<&str, _>("n").map(String::from);
            let ip = resolver_at(dns, None).lookup_ip(info.managed_instance.fqdn.as_str()).await.unwrap();
            (ep, a, b, ip.iter().next().unwrap().to_string())
        })
        .await
        .unwrap();
    assert_eq!(seen.0, "open");
    assert_eq!((seen.1.as_deref(), seen.2.as_deref()), (Some("SQLPROD01"), Some("mi-contoso")));
    assert_eq!(seen.3, "203.0.113.10");
}

#[tokio::test]
async fn unreachable_is_an_icmp_error_not_a_timeout() {
    if !can_run_topology() {
        return;
    }
    let lab = topology_lab("mi-unreachable.toml").await;
    let info = lab.info.clone();
    let (kind, took, sql_ok) = lab
        .on_host(move || async move {
            let start = std::time::Instant::now();
            let err = tokio::net::TcpStream::connect(("203.0.113.10", 1433)).await.unwrap_err();
            let side = &info.sql_server;
            let sql_ok = connect_with(side, config(side, EncryptionLevel::Required)).await.is_ok();
            (err.kind(), start.elapsed(), sql_ok)
        })
        .await
        .unwrap();
    assert_eq!(kind, std::io::ErrorKind::HostUnreachable);
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(sql_ok, "the SQL Server side is still reachable");
    // The fault is the host's only: the managed instance still reaches SQL Server.
    lab.connect_from(Place::ManagedInstance, "198.51.100.10:5022".parse().unwrap()).await.unwrap();
}

#[test]
fn loopback_mode_refuses_unreachable_faults() {
    init();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt.block_on(Lab::start(&scenario("mi-unreachable.toml"))).err().expect("needs topology");
    assert!(err.to_string().contains("topology mode"), "{err}");
}

#[test]
fn namespaces_left_by_a_killed_lab_are_removed_by_the_next() {
    if !can_run_topology() {
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_milink"))
        .args(["lab", "up", "--json", "--topology"])
        .arg(scenario_path("healthy.toml"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).unwrap();
    let host_ns = info["host_netns"].as_str().expect("topology mode names the host namespace").to_string();
    let path = format!("/run/netns/{host_ns}");
    assert!(std::path::Path::new(&path).exists());
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();
    assert!(std::path::Path::new(&path).exists(), "a crash leaves the namespace behind");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let lab = rt.block_on(topology_lab("healthy.toml"));
    assert!(!std::path::Path::new(&path).exists(), "the next lab removed it");
    let own = format!("/run/netns/{}", lab.host_namespace().unwrap());
    assert!(std::path::Path::new(&own).exists());
    drop(lab);
    assert!(!std::path::Path::new(&own).exists(), "dropping the lab removes its namespaces");
}

/// The state machine's dials are real: between namespaces a fault from the
/// instance to SQL Server blocks that direction only. milink (in the host
/// namespace) creates the link with the blocker waived; the link stays
/// DISCONNECTED with the instance's 35201, diagnose names the blocked direction,
/// and removing the router's rule at run time connects it.
#[tokio::test]
async fn a_link_created_across_namespaces_waits_for_the_blocked_direction() {
    if !can_run_topology() {
        return;
    }
    let scenario = scenario("link-create-mi-to-sql-blocked.toml");
    let lab = topology_lab("link-create-mi-to-sql-blocked.toml").await;
    let profile = lab.profile(&scenario);
    let (outcome, report) = lab
        .on_host(move || async move {
            let plan = milink::link::run::make_plan(&profile, &[], &[]).await.map(|(p, _)| p);
            let blockers: Vec<&str> = plan.as_ref().unwrap().blockers.iter().map(|b| b.check).collect::<Vec<_>>();
            let waive: Vec<String> = blockers.iter().map(|b| b.to_string()).collect();
            let mut sink = Vec::new();
            let out = milink::link::apply(&profile, &[], &waive, true, &mut sink).await;
            (
                format!("{blockers:?}"),
                format!(
                    "{:?}",
                    out.map(|o| match o {
                        milink::link::Outcome::Unhealthy(d) => d.root_cause.map(|r| r.id).unwrap_or("none").to_string(),
                        other => format!("{other:?}"),
                    })
                ),
            )
        })
        .await
        .unwrap();
    // From the host, SQL Server's 5022 answers: only the instance's direction is blocked.
    assert_eq!(outcome, "[\"network-mi-to-sql-5022\"]", "the one blocker");
    assert_eq!(report, "Ok(\"sql-inbound-5022-blocked\")");
    let mi_error = || {
        let w = lab.world.lock().unwrap();
        w.links[0].status.error.as_ref().map(|e| (e.side.map(|s| s.label()), e.number))
    };
    assert_eq!(mi_error(), Some((Some("managed_instance"), 35201)));
    lab.control.clear_faults(true).unwrap();
    for _ in 0..100 {
        if lab.world.lock().unwrap().links[0].status.connected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the link did not connect once the rule was gone: {:?}", mi_error());
}
