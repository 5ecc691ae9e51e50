//! `cargo bench --bench check`: wall time of the full pre-flight report and of
//! diagnose. Targets: healthy check < 1 s; every port filtered with a 2 s
//! timeout < 2.5 s; ten databases no more than twice one database; diagnose of
//! a healthy link < 2 s without the Agent-job wait; a server that answers each
//! query in 2.5 s, with `--timeout 3s`, ends at the deadline (it took 42 s
//! before there was one).

use std::path::Path;
use std::time::{Duration, Instant};

use milink::checks;
use milink::lab::Lab;
use milink::lab::scenario::Scenario;

fn median(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

fn print_spread(label: &str, v: Vec<Duration>) {
    let (min, med, max) = median(v);
    println!("{label} min {:7.1} ms  median {:7.1} ms  max {:7.1} ms", ms(min), ms(med), ms(max));
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn time(scenario: &Scenario, runs: usize) -> Vec<Duration> {
    let lab = Lab::start(scenario).await.unwrap();
    let profile = lab.profile(scenario);
    let mut v = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let report = checks::run(&profile).await;
        v.push(t.elapsed());
        assert!(!report.findings.is_empty());
    }
    v
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let load = |f: &str| Scenario::load(&dir.join(f)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        print_spread("healthy, full report       ", time(&load("healthy.toml"), 20).await);

        let t = Instant::now();
        let s = load("healthy.toml");
        let lab = Lab::start(&s).await.unwrap();
        checks::run(&lab.profile(&s)).await;
        println!("healthy, lab start + report {:7.1} ms", ms(t.elapsed()));

        print_spread("every port filtered, 2 s   ", time(&load("all-filtered.toml"), 3).await);

        // Ten databases: the healthy scenario with nine more, each backed up.
        let mut text = std::fs::read_to_string(dir.join("healthy.toml")).unwrap();
        for i in 1..10 {
            text.push_str(&format!(
                "\n[[sql_server.databases]]\nname = \"Db{i}\"\n[[sql_server.backups]]\ndatabase = \"Db{i}\"\n"
            ));
        }
        let ten = Scenario::parse(&text, "ten-databases").unwrap();
        assert_eq!(ten.sql_server.databases.len(), 10);
        let link = load("link-healthy.toml");
        let lab = Lab::start(&link).await.unwrap();
        let mut profile = lab.profile(&link);
        profile.probes.agent_jobs = false;
        let mut v = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            assert!(milink::diagnose::run(&profile).await.root_cause.is_none());
            v.push(t.elapsed());
        }
        print_spread("diagnose healthy link       ", v);
        profile.probes.agent_jobs = true;
        let mut v = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            milink::diagnose::run(&profile).await;
            v.push(t.elapsed());
        }
        print_spread("  with --job-probes (3 jobs)", v);

        let slow = load("hostile-slow-queries.toml");
        let lab = Lab::start(&slow).await.unwrap();
        for (label, deadline) in [
            ("slow queries, --timeout 3s, no deadline", None),
            ("  with the default deadline            ", Some(None)),
            ("  with --deadline 5s                   ", Some(Some(Duration::from_secs(5)))),
        ] {
            let mut profile = lab.profile(&slow);
            profile.thresholds.timeout = Duration::from_secs(3);
            let t = Instant::now();
            if let Some(d) = deadline {
                profile.thresholds.deadline = d;
                profile.start_clock();
            }
            checks::run(&profile).await;
            println!("{label} {:7.1} s", t.elapsed().as_secs_f64());
        }

        let (_, one, _) = median(time(&load("healthy.toml"), 20).await);
        let (_, many, _) = median(time(&ten, 20).await);
        println!(
            "one database {:6.1} ms, ten databases {:6.1} ms: ratio {:.2}",
            ms(one),
            ms(many),
            many.as_secs_f64() / one.as_secs_f64()
        );
    });
}
