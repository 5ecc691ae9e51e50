//! `cargo bench --bench watch`: the soak of `milink watch` — 10,000 polls of a
//! healthy lab link at a 10 ms interval, each poll recorded in the history and
//! rendered as metrics, as `watch` does. Prints resident memory at the start
//! and end (flat is the target), the history's size per 1,000 polls, and poll
//! latency p50/p99.

use std::path::Path;
use std::time::{Duration, Instant};

use milink::lab::Lab;
use milink::lab::scenario::Scenario;
use milink::watch::{events::Tracker, history::History, metrics, poll::Poller};

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn size(db: &Path) -> u64 {
    ["", "-wal"].iter().filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok()).map(|m| m.len()).sum()
}

const POLLS: usize = 10_000;

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("soak.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = Scenario::load(&dir.join("link-healthy.toml")).unwrap();
        let lab = Lab::start(&s).await.unwrap();
        let profile = lab.profile(&s);
        let mut poller = Poller::new(profile.clone());
        let mut tracker = Tracker::default();
        let mut history = History::open(&db).unwrap();
        let mut counters = metrics::Counters::default();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut latencies = Vec::with_capacity(POLLS);
        let (mut rss_start, mut size_at_1000, mut events) = (0.0, 0, 0usize);
        let started = Instant::now();
        for i in 0..POLLS {
            tick.tick().await;
            let t = Instant::now();
            let snap = poller.poll().await;
            let e = tracker.update(&snap, &profile.thresholds);
            history.record(&snap, &e).unwrap();
            counters.polls += 1;
            let page = metrics::render(&snap, &counters);
            std::hint::black_box(page);
            latencies.push(t.elapsed());
            events += e.len();
            assert!(snap.sql_server.reachable && snap.managed_instance.reachable, "poll {i}");
            if i == 99 {
                rss_start = rss_mb();
            }
            if i == 1099 {
                size_at_1000 = size(&db);
            }
        }
        let total = started.elapsed();
        latencies.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let per_1000 = (size(&db) - size_at_1000) as f64 / ((POLLS - 1100) as f64 / 1000.0);
        println!("{POLLS} polls in {:.1} s ({events} events)", total.as_secs_f64());
        println!(
            "poll latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(latencies[POLLS / 2]),
            ms(latencies[POLLS * 99 / 100]),
            ms(latencies[POLLS - 1])
        );
        println!("RSS after 100 polls {rss_start:.1} MB, after {POLLS} {:.1} MB", rss_mb());
        println!("history {:.1} KB per 1,000 polls ({} KB in all)", per_1000 / 1024.0, size(&db) / 1024);
        assert_eq!(history.polls().unwrap(), POLLS as i64);
    });
}
