//! `cargo bench --bench bundle`: time and size of a support bundle for the
//! healthy link and for one with 50 more databases, and the time to replay one
//! (derive the scenario, start its lab, diagnose). Peak RSS is the whole
//! process's, lab included.

use std::path::Path;
use std::time::{Duration, Instant};

use milink::bundle;
use milink::lab::Lab;
use milink::lab::scenario::Scenario;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// Median time to build and write the bundle, and its size.
async fn measure(scenario: &Scenario, out: &Path, runs: usize) -> (Duration, u64) {
    let lab = Lab::start(scenario).await.unwrap();
    let profile = lab.profile(scenario);
    let options = bundle::Options { redact_identities: false, history: None, command_line: vec!["bench".into()] };
    let mut times = Vec::new();
    for _ in 0..runs {
        let mut p = profile.clone();
        let t = Instant::now();
        p.start_clock();
        let b = bundle::build(&p, &options).await;
        bundle::write(&b, out).unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    (times[runs / 2], std::fs::metadata(out).unwrap().len())
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let load = |f: &str| Scenario::load(&dir.join(f)).unwrap();
        let zip = tmp.path().join("healthy.zip");
        let (t, size) = measure(&load("link-healthy.toml"), &zip, 10).await;
        println!("healthy link:             median {:6.1} ms, {:6.1} KB", ms(t), size as f64 / 1024.0);
        let (t, size) = measure(&load("healthy.toml"), &tmp.path().join("pre.zip"), 10).await;
        println!("healthy, before the link: median {:6.1} ms, {:6.1} KB", ms(t), size as f64 / 1024.0);
        let mut text = std::fs::read_to_string(dir.join("healthy.toml")).unwrap();
        for i in 1..=50 {
            text.push_str(&format!(
                "\n[[sql_server.databases]]\nname = \"Db{i}\"\n[[sql_server.backups]]\ndatabase = \"Db{i}\"\n"
            ));
        }
        let fifty = Scenario::parse(&text, "fifty-databases").unwrap();
        assert_eq!(fifty.sql_server.databases.len(), 51);
        let (t, size) = measure(&fifty, &tmp.path().join("fifty.zip"), 5).await;
        println!("  with 50 more databases: median {:6.1} ms, {:6.1} KB", ms(t), size as f64 / 1024.0);

        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let s = bundle::replay::scenario(&zip).unwrap();
            let lab = Lab::start(&s).await.unwrap();
            let d = milink::diagnose::run(&lab.profile(&s)).await;
            assert!(d.root_cause.is_none());
            times.push(t.elapsed());
        }
        times.sort();
        println!("replay (derive, lab, diagnose): median {:6.1} ms", ms(times[2]));
        println!("peak RSS of the process: {:.1} MB", peak_rss_mb());
    });
}
