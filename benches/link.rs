//! `cargo bench --bench link`: link creation on the lab.
//! - `milink link plan` (pre-flight checks, both sides and ARM read): target < 500 ms;
//! - `milink link apply` end to end, and without the scenario's seeding wait: target < 3 s;
//! - an ARM PUT with its long-running operation polled to Succeeded, and what
//!   the lab's machinery adds to the scenario's operation time;
//! - from both halves existing and reachable to CONNECTED (the state machine's
//!   own time; the scenario sets no connect delay here): target < 100 ms;
//! - a planned failover to the managed instance end to end (synchronous
//!   commit, the LSN gate with --settle 1s, the failover, roles verified),
//!   the workload stopped before it starts: target < 3 s; and the same
//!   without the settle time, which is a chosen wait.

use std::time::{Duration, Instant};

use milink::lab::Lab;
use milink::lab::scenario::Scenario;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn spread(label: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{label} min {:7.1} ms  median {:7.1} ms  max {:7.1} ms  (n={})",
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1]),
        v.len()
    );
}

/// A scenario of `scenarios/` with more TOML on top (`extends` is looked up there).
fn scenario(name: &str, extra: &str) -> Scenario {
    let text = format!("extends = \"{name}\"\ndescription = \"bench\"\n{extra}");
    Scenario::parse(&text, "bench.toml").unwrap()
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        plan_and_apply().await;
        arm_operation().await;
        to_connected().await;
        planned_failover().await;
    });
}

/// plan, on one lab, again and again (it changes nothing); then apply.
async fn plan_and_apply() {
    let s = scenario("link-create.toml", "");
    let lab = Lab::start(&s).await.unwrap();
    let p = lab.profile(&s);
    let mut v = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let (plan, _) = milink::link::run::make_plan(&p, &[], &[]).await.unwrap();
        v.push(t.elapsed());
        assert_eq!(plan.steps.len(), 11);
    }
    spread("plan                            ", v);
    drop(lab);

    // apply, each on a fresh lab; the seeding wait is read from the journal.
    let (mut total, mut without) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let lab = Lab::start(&s).await.unwrap();
        let p = lab.profile(&s);
        let t = Instant::now();
        let out = milink::link::apply(&p, &[], &[], true, &mut std::io::sink()).await.unwrap();
        let all = t.elapsed();
        assert!(matches!(out, milink::link::Outcome::Created { .. }), "{out:?}");
        let journal = milink::link::Journal::at(p.link.journal.as_deref().unwrap()).read();
        // One wave waits for every database's seeding: its time once.
        let seeding: u128 = journal
            .iter()
            .filter(|e| e.step.starts_with("wait-seeding") && e.event == "done")
            .filter_map(|e| e.ms)
            .max()
            .unwrap_or(0);
        total.push(all);
        without.push(all.saturating_sub(Duration::from_millis(seeding as u64)));
    }
    spread("apply, end to end               ", total);
    spread("apply, without the seeding wait ", without);
}

async fn arm_operation() {
    let s = scenario("link-create.toml", "");
    // An ARM PUT and its operation, with 100 ms of operation time and polling.
    let lab = Lab::start(&s).await.unwrap();
    let p = lab.profile(&s);
    let arm = milink::azure::arm::Arm::new(&p).unwrap();
    let body = serde_json::json!({ "properties": {
        "partnerAvailabilityGroupName": "AG_X", "instanceAvailabilityGroupName": "AG_X_MI",
        "partnerEndpoint": format!("TCP://{}:5022", lab.info.sql_server.host),
        "databases": [{ "databaseName": "SalesDB" }],
    }});
    let mut v = Vec::new();
    for i in 0..10 {
        let url = arm.url(&format!("distributedAvailabilityGroups/DAG_{i}"), "2025-01-01");
        let t = Instant::now();
        let accepted = arm.change(reqwest::Method::PUT, &url, Some(&body)).await.unwrap();
        let poll = accepted.poll_url().unwrap();
        arm.wait(&poll, Duration::from_millis(100)).await.unwrap();
        v.push(t.elapsed());
    }
    let overhead: Vec<Duration> = v.iter().map(|d| d.saturating_sub(Duration::from_millis(100))).collect();
    spread("ARM PUT + operation to Succeeded", v);
    spread("  of which not the operation    ", overhead);
    drop(lab);
}

async fn to_connected() {
    // Both halves, one direction blocked; then the rule goes and the link connects.
    let s = scenario(
        "link-create-mi-to-sql-blocked.toml",
        "[plan]\njob_probes = false\n[replication]\nconnect_after = \"0s\"\nretry_every = \"1s\"\n",
    );
    let mut v = Vec::new();
    for _ in 0..5 {
        let lab = Lab::start(&s).await.unwrap();
        let p = lab.profile(&s);
        let waive = vec!["network-sql-5022".to_string()];
        let _ = milink::link::apply(&p, &[], &waive, true, &mut std::io::sink()).await;
        assert!(!lab.world.lock().unwrap().links[0].status.connected);
        let t = Instant::now();
        lab.control.clear_faults(true).unwrap();
        loop {
            if lab.world.lock().unwrap().links[0].status.connected {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        v.push(t.elapsed());
    }
    spread("halves reachable to CONNECTED   ", v);
}

async fn planned_failover() {
    // A planned failover, the application already stopped.
    let s = scenario("failover-planned.toml", "[workload]\ntps = 0\n");
    let settle = Duration::from_secs(1);
    let o = milink::link::failover::FailoverOptions {
        to: milink::link::failover::Side::ManagedInstance,
        forced: false,
        max_wait: Duration::from_secs(60),
        settle,
        cleanup: milink::link::failover::Cleanup::Keep,
        force: false,
        yes: true,
    };
    let (mut total, mut without) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let lab = Lab::start(&s).await.unwrap();
        let p = lab.profile(&s);
        let t = Instant::now();
        let out = milink::link::failover::failover(&p, &[], &o, &mut std::io::sink()).await.unwrap();
        let all = t.elapsed();
        assert_eq!(out.links[0].after.managed_instance_role.as_deref(), Some("PRIMARY"));
        total.push(all);
        without.push(all.saturating_sub(settle));
    }
    spread("planned failover, end to end    ", total);
    spread("  without the 1 s settle        ", without);
}
