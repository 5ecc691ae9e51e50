//! `cargo bench --bench audit`: `milink audit certs` over lab fleets of 10,
//! 64, 100 and 1,000 instances (the lab in a process of its own), wall time and
//! peak RSS of the milink process; and a sequential baseline (concurrency 1 on
//! 50 instances, extrapolated to 1,000). Targets: 1,000 instances in < 10 s and
//! < 100 MB peak RSS; wall time nearly flat from 10 to the concurrency limit (64).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MILINK: &str = env!("CARGO_BIN_EXE_milink");

/// A lab fleet of `instances` (links of two), started in its own process.
struct Fleet {
    child: std::process::Child,
    inventory: String,
    _dir: tempfile::TempDir,
}

impl Fleet {
    fn start(instances: usize) -> (Fleet, Duration) {
        let dir = tempfile::tempdir().unwrap();
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/link-healthy.toml");
        let file = dir.path().join("fleet.toml");
        std::fs::write(
            &file,
            format!(
                "description = \"bench\"\n[[group]]\nscenario = \"{}\"\ncount = {}\n\
                 [[group.certificates]]\nside = \"sql_server\"\nname = \"Cert_SQLPROD01_endpoint\"\nexpiry = [\"+3d\", \"+20d\", \"+400d\", \"+700d\"]\n",
                base.display(),
                instances / 2
            ),
        )
        .unwrap();
        let t = Instant::now();
        let mut child =
            Command::new(MILINK).args(["lab", "up", "--json"]).arg(&file).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let info: serde_json::Value = serde_json::from_str(&line).unwrap();
        let inventory = info["inventory"].as_str().unwrap().to_string();
        (Fleet { child, inventory, _dir: dir }, t.elapsed())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// Wall time and peak RSS (KiB) of one audit, and its summary.
fn audit(inventory: &str, concurrency: usize) -> (Duration, i64, serde_json::Value) {
    let t = Instant::now();
    let child = Command::new(MILINK)
        .args(["audit", "certs", "--format", "json", "--inventory", inventory, "--concurrency"])
        .arg(concurrency.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, rss) = output_and_peak_rss(child);
    let wall = t.elapsed();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    (wall, rss, report["summary"].clone())
}

/// Reads stdout to the end, then reaps the child with wait4 for its peak RSS (KiB).
fn output_and_peak_rss(mut child: std::process::Child) -> (Vec<u8>, i64) {
    let mut out = Vec::new();
    std::io::Read::read_to_end(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter; pid is our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    (out, usage.ru_maxrss)
}

fn main() {
    println!("instances  lab start   audit wall   peak RSS   certificates  status");
    let mut at = std::collections::BTreeMap::new();
    for n in [10usize, 64, 100, 1000] {
        let (fleet, started) = Fleet::start(n);
        let (wall, rss, summary) = audit(&fleet.inventory, 64);
        let certs = summary["certificates"]["ok"].as_u64().unwrap_or(0)
            + summary["certificates"]["warn"].as_u64().unwrap_or(0)
            + summary["certificates"]["crit"].as_u64().unwrap_or(0);
        assert_eq!(summary["instances"]["unknown"], 0, "every lab instance is read");
        println!(
            "{n:9}  {:7.2} s  {:9.3} s  {:6.1} MB  {certs:12}  {}",
            started.as_secs_f64(),
            wall.as_secs_f64(),
            rss as f64 / 1024.0,
            summary["status"]
        );
        at.insert(n, wall);
        if n == 1000 {
            // The same fleet read one instance at a time, the first 50 only.
            let text = std::fs::read_to_string(&fleet.inventory).unwrap();
            let dir = Path::new(&fleet.inventory).parent().unwrap();
            let first: String = text.split("\n[[instance]]").take(51).collect::<Vec<_>>().join("\n[[instance]]");
            let path = dir.join("first-50.toml");
            std::fs::write(&path, first).unwrap();
            let (seq, rss, summary) = audit(path.to_str().unwrap(), 1);
            assert_eq!(
                summary["instances"]["ok"].as_u64().unwrap()
                    + summary["instances"]["warn"].as_u64().unwrap()
                    + summary["instances"]["crit"].as_u64().unwrap(),
                50
            );
            let extrapolated = seq.as_secs_f64() * 20.0;
            println!(
                "sequential baseline: 50 instances at concurrency 1 in {:.3} s ({:.1} MB), 1,000 extrapolated {:.1} s; concurrent 1,000 in {:.3} s: {:.1}x faster",
                seq.as_secs_f64(),
                rss as f64 / 1024.0,
                extrapolated,
                wall.as_secs_f64(),
                extrapolated / wall.as_secs_f64()
            );
        }
    }
    println!("flatness: 64 instances take {:.2}x the time of 10", at[&64].as_secs_f64() / at[&10].as_secs_f64());
}
