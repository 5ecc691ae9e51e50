//! `cargo bench --bench scale`: the round trips of a check, and how many links cost.
//! Targets: `check` of the healthy pair at `[network] rtt_ms = 40` takes at most
//! 8 round trips per side beyond the lab's start; `check` of a pair with 10 links
//! no more than 1.5 times one link; `diagnose` of 100 links under 2 s; `link
//! apply` of 10 links under 3 times one link, without the seeding wait. Also the
//! round trips of a `watch` poll (sessions kept) and of `link plan`, and a planned
//! failover of 10 links against one (the links side by side, `--settle 1s`).

use std::path::Path;
use std::time::{Duration, Instant};

use milink::lab::Lab;
use milink::lab::scenario::Scenario;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The healthy pair with `links` links (one per database) and `rtt` ms of round trip.
fn pair(dir: &Path, base: &str, links: usize, rtt: u64) -> Scenario {
    let mut text = format!("extends = \"{base}\"\ndescription = \"bench\"\n[network]\nrtt_ms = {rtt}\n");
    if links > 1 {
        for i in 0..links {
            text.push_str(&format!(
                "[[sql_server.databases]]\nname = \"Db{i:03}\"\nrecovery = \"FULL\"\n[[sql_server.backups]]\ndatabase = \"Db{i:03}\"\ntype = \"D\"\nfinished = \"-1d\"\n[[sql_server.backups]]\ndatabase = \"Db{i:03}\"\ntype = \"L\"\nfinished = \"-15m\"\n"
            ));
        }
        if base == "link-healthy.toml" {
            text.push_str("[link]\nname = \"DAG_Db000\"\ndatabase = \"Db000\"\n");
            for i in 1..links {
                text.push_str(&format!(
                    "[[links]]\nname = \"DAG_Db{i:03}\"\ndatabase = \"Db{i:03}\"\nsynchronization_health = \"HEALTHY\"\nsynchronization_state = \"SYNCHRONIZING\"\nseeding = {{ current_state = \"COMPLETED\", transferred_mb = 64, database_mb = 64 }}\n"
                ));
            }
        }
    }
    // `extends` resolves in the scenarios folder: the file goes there for a moment,
    // under a name the tests' listing of *.toml does not take.
    let file = dir.join(format!(".bench-{}-{links}-{rtt}.scenario", base.trim_end_matches(".toml")));
    std::fs::write(&file, text).unwrap();
    let s = Scenario::load(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    s
}

async fn check(s: &Scenario, runs: usize) -> Duration {
    let lab = Lab::start(s).await.unwrap();
    let p = lab.profile(s);
    let mut v = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        milink::checks::run(&p).await;
        v.push(t.elapsed());
    }
    median(v)
}

/// A watch poll once its sessions are open (the first poll logs in).
async fn poll(s: &Scenario, runs: usize) -> Duration {
    let lab = Lab::start(s).await.unwrap();
    let mut poller = milink::watch::poll::Poller::new(lab.profile(s));
    poller.poll().await;
    let mut v = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        poller.poll().await;
        v.push(t.elapsed());
    }
    median(v)
}

async fn plan(s: &Scenario, runs: usize) -> Duration {
    let lab = Lab::start(s).await.unwrap();
    let p = lab.profile(s);
    let mut v = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        milink::link::run::make_plan(&p, &[], &[]).await.unwrap();
        v.push(t.elapsed());
    }
    median(v)
}

/// Round trips on the longest path: the slope of the time between rtt 40 and 80.
fn trips(forty: Duration, eighty: Duration) -> f64 {
    (eighty.as_secs_f64() - forty.as_secs_f64()) / 0.040
}

async fn apply(s: &Scenario, all: bool) -> Duration {
    let lab = Lab::start(s).await.unwrap();
    let mut p = lab.profile(s);
    p.all_databases = all;
    let t = Instant::now();
    let out = milink::link::apply(&p, &[], &[], true, &mut std::io::sink()).await.unwrap();
    let took = t.elapsed();
    assert!(matches!(out, milink::link::Outcome::Created { .. }), "{out:?}");
    // The seeding wait is one wave for every database: its time once.
    let journal = milink::link::Journal::at(p.link.journal.as_deref().unwrap()).read();
    let seeding =
        journal.iter().filter(|e| e.step.starts_with("wait-seeding") && e.event == "done").filter_map(|e| e.ms).max();
    took.saturating_sub(Duration::from_millis(seeding.unwrap_or(0) as u64))
}

/// A planned failover to the instance of every link `apply` made, the settle 1 s.
async fn failover(s: &Scenario, all: bool) -> Duration {
    let lab = Lab::start(s).await.unwrap();
    let mut p = lab.profile(s);
    p.all_databases = all;
    milink::link::apply(&p, &[], &[], true, &mut std::io::sink()).await.unwrap();
    let o = milink::link::failover::FailoverOptions {
        to: milink::link::failover::Side::ManagedInstance,
        forced: false,
        max_wait: Duration::from_secs(60),
        settle: Duration::from_secs(1),
        cleanup: milink::link::failover::Cleanup::Keep,
        force: false,
        yes: true,
    };
    let t = Instant::now();
    let out = milink::link::failover::failover(&p, &[], &o, &mut std::io::sink()).await.unwrap();
    assert!(out.links.iter().all(|l| l.after.managed_instance_role.as_deref() == Some("PRIMARY")));
    t.elapsed()
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Round trips: how the time grows with the round-trip time, once the
        // sessions are the longest path (rtt 40 against rtt 80).
        let zero = check(&pair(&dir, "healthy.toml", 1, 0), 9).await;
        let forty = check(&pair(&dir, "healthy.toml", 1, 40), 9).await;
        let eighty = check(&pair(&dir, "healthy.toml", 1, 80), 9).await;
        println!(
            "check, healthy pair: rtt 0 {:6.1} ms, rtt 40 {:6.1} ms, rtt 80 {:6.1} ms: {:.1} round trips per side (both sides at once)",
            ms(zero),
            ms(forty),
            ms(eighty),
            trips(forty, eighty)
        );
        let (forty, eighty) = (poll(&pair(&dir, "link-healthy.toml", 1, 40), 9).await, poll(&pair(&dir, "link-healthy.toml", 1, 80), 9).await);
        println!("watch poll, sessions open: rtt 40 {:6.1} ms, rtt 80 {:6.1} ms: {:.1} round trips", ms(forty), ms(eighty), trips(forty, eighty));
        let (forty, eighty) = (plan(&pair(&dir, "link-create.toml", 1, 40), 5).await, plan(&pair(&dir, "link-create.toml", 1, 80), 5).await);
        println!("link plan: rtt 40 {:6.1} ms, rtt 80 {:6.1} ms: {:.1} round trips on its longest path", ms(forty), ms(eighty), trips(forty, eighty));

        let one = check(&pair(&dir, "link-healthy.toml", 1, 0), 9).await;
        let ten = check(&pair(&dir, "link-healthy.toml", 10, 0), 9).await;
        println!("check, 1 link {:6.1} ms, 10 links {:6.1} ms: ratio {:.2}", ms(one), ms(ten), ten.as_secs_f64() / one.as_secs_f64());

        let hundred = pair(&dir, "link-healthy.toml", 100, 0);
        let lab = Lab::start(&hundred).await.unwrap();
        let p = lab.profile(&hundred);
        let mut v = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let d = milink::diagnose::run(&p).await;
            v.push(t.elapsed());
            assert_eq!(d.links.len(), 100);
            assert!(d.root_cause.is_none(), "{:?}", d.root_cause);
        }
        println!("diagnose, 100 links          {:6.1} ms (median of 5)", ms(median(v)));
        drop(lab);

        let mut ones = Vec::new();
        let mut tens = Vec::new();
        for _ in 0..3 {
            ones.push(apply(&Scenario::load(&dir.join("link-create.toml")).unwrap(), false).await);
            tens.push(apply(&Scenario::load(&dir.join("link-create-ten.toml")).unwrap(), true).await);
        }
        let (one, ten) = (median(ones), median(tens));
        println!(
            "link apply without seeding, 1 link {:6.1} ms, 10 links {:6.1} ms: ratio {:.2}",
            ms(one),
            ms(ten),
            ten.as_secs_f64() / one.as_secs_f64()
        );

        let one = failover(&Scenario::load(&dir.join("link-create.toml")).unwrap(), false).await;
        let ten = failover(&Scenario::load(&dir.join("link-create-ten.toml")).unwrap(), true).await;
        println!(
            "planned failover (settle 1 s), 1 link {:6.1} ms, 10 links {:6.1} ms: ratio {:.2}",
            ms(one),
            ms(ten),
            ten.as_secs_f64() / one.as_secs_f64()
        );
    });
}
