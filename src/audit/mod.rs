//! `milink audit certs`: every certificate of a fleet of SQL Servers and
//! managed instances, read concurrently, sorted by days left, and each link's
//! trust checked both ways.

pub mod inventory;
pub mod judge;
pub mod read;
pub mod render;
pub mod shard;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

use inventory::Inventory;
use judge::{CertRow, InstanceRow, LinkRow, Status, Thresholds};

pub struct Options {
    pub warn_days: i64,
    pub crit_days: i64,
    pub concurrency: usize,
    /// Bounds each instance's whole read.
    pub timeout: Duration,
    /// This process's share of the inventory (`Shard::WHOLE` for all of it).
    pub shard: shard::Shard,
}

#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub ok: usize,
    pub warn: usize,
    pub crit: usize,
    pub fail: usize,
    pub unknown: usize,
}

impl Counts {
    fn add(&mut self, s: Status) {
        *match s {
            Status::Ok => &mut self.ok,
            Status::Warn => &mut self.warn,
            Status::Crit => &mut self.crit,
            Status::Fail => &mut self.fail,
            Status::Unknown => &mut self.unknown,
        } += 1;
    }
}

#[derive(Debug, Serialize)]
pub struct Summary {
    /// `K/N` when the audit was one share of the inventory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub status: Status,
    pub exit_code: u8,
    pub instances: Counts,
    pub certificates: Counts,
    pub links: Counts,
    pub warn_days: i64,
    pub crit_days: i64,
    pub generated_at: String,
    pub duration_ms: u128,
}

#[derive(Debug, Serialize)]
pub struct AuditReport {
    pub schema_version: u32,
    pub summary: Summary,
    /// Worst first, then fewest days left.
    pub certificates: Vec<CertRow>,
    pub links: Vec<LinkRow>,
    pub instances: Vec<InstanceRow>,
}

impl AuditReport {
    pub fn one_line(&self) -> String {
        let s = &self.summary;
        let c = &s.certificates;
        format!(
            "{}: {} instances ({} unreadable), {} certificates ({} crit, {} warn, {} ok), {} links ({} failing trust), in {:.1} s",
            s.status.nagios(),
            self.instances.len(),
            s.instances.unknown,
            self.certificates.len(),
            c.crit,
            c.warn,
            c.ok,
            self.links.len(),
            s.links.fail,
            s.duration_ms as f64 / 1000.0
        )
    }
}

pub async fn run(inv: &Inventory, o: &Options) -> AuditReport {
    let started = Instant::now();
    let owned: Vec<usize> = (0..inv.instances.len()).filter(|i| o.shard.owns(&inv.instances[*i].name)).collect();
    let mut reads = read_all(inv, &owned, o, started).await;
    // The other side of a link another share owns: read to judge the link only.
    let extra = shard::partners(&inv.instances, &reads, &o.shard);
    reads.extend(read_all(inv, &extra, o, started).await);
    reads.sort_by_key(|(n, _)| *n);
    if std::io::stderr().is_terminal() && started.elapsed() > Duration::from_secs(1) {
        eprint!("\r\x1b[2K");
    }
    judge_all(inv, &reads, o, started)
}

/// Reads the instances at these indices, `o.concurrency` at a time.
async fn read_all(
    inv: &Inventory,
    which: &[usize],
    o: &Options,
    started: Instant,
) -> Vec<(usize, Result<read::Read, String>)> {
    let done = Arc::new(AtomicUsize::new(0));
    let progress = progress(which.len(), done.clone(), started);
    let timeout = o.timeout;
    // Unordered, so that one stalled instance never holds back the next ones.
    let reads = futures_util::stream::iter(which.iter().map(|n| (*n, &inv.instances[*n])))
        .map(|(n, i)| {
            let done = done.clone();
            async move {
                let r = read::read(i, timeout).await;
                done.fetch_add(1, Ordering::Relaxed);
                (n, r)
            }
        })
        .buffer_unordered(o.concurrency.max(1))
        .collect()
        .await;
    progress.abort();
    reads
}

/// The rows of this share: its instances and their certificates, and the links it reports.
fn judge_all(
    inv: &Inventory,
    reads: &[(usize, Result<read::Read, String>)],
    o: &Options,
    started: Instant,
) -> AuditReport {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let t = Thresholds { warn_days: o.warn_days, crit_days: o.crit_days };
    let mut certificates = Vec::new();
    let mut instances = Vec::new();
    for (n, r) in reads.iter().filter(|(n, _)| o.shard.owns(&inv.instances[*n].name)) {
        let i = &inv.instances[*n];
        let mut row = InstanceRow {
            status: Status::Ok,
            instance: i.name.clone(),
            side: i.kind.side(),
            host: i.host.clone(),
            error: None,
            notes: Vec::new(),
        };
        match r {
            Err(why) => {
                row.status = Status::Unknown;
                row.error = Some(why.clone());
            }
            Ok(read) => {
                row.notes = read.notes.clone();
                for c in &read.certs {
                    let c = judge::cert_row(i, c, &t, now);
                    row.status = row.status.max(c.status);
                    certificates.push(c);
                }
            }
        }
        instances.push(row);
    }
    certificates.sort_by(|a, b| {
        (std::cmp::Reverse(a.status), a.days_left.unwrap_or(i64::MIN), &a.instance, a.usage, &a.certificate).cmp(&(
            std::cmp::Reverse(b.status),
            b.days_left.unwrap_or(i64::MIN),
            &b.instance,
            b.usage,
            &b.certificate,
        ))
    });
    let pairs: Vec<_> = reads.iter().map(|(n, r)| (&inv.instances[*n], r.as_ref().map_err(String::as_str))).collect();
    let readable = |name: &str| pairs.iter().any(|(i, r)| i.name == name && r.is_ok());
    let links: Vec<LinkRow> =
        judge::links(&pairs).into_iter().filter(|l| o.shard.reports(l, readable(&l.sql_server))).collect();
    instances
        .sort_by(|a, b| (std::cmp::Reverse(a.status), &a.instance).cmp(&(std::cmp::Reverse(b.status), &b.instance)));
    let summary = summarize(o, started, &certificates, &links, &instances);
    AuditReport { schema_version: 1, summary, certificates, links, instances }
}

fn summarize(
    o: &Options,
    started: Instant,
    certificates: &[CertRow],
    links: &[LinkRow],
    instances: &[InstanceRow],
) -> Summary {
    let mut summary = Summary {
        shard: (o.shard != shard::Shard::WHOLE).then(|| o.shard.label()),
        status: Status::Ok,
        exit_code: 0,
        instances: Counts::default(),
        certificates: Counts::default(),
        links: Counts::default(),
        warn_days: o.warn_days,
        crit_days: o.crit_days,
        generated_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        duration_ms: started.elapsed().as_millis(),
    };
    for s in instances.iter().map(|r| r.status) {
        summary.instances.add(s);
    }
    for s in certificates.iter().map(|r| r.status) {
        summary.certificates.add(s);
    }
    for s in links.iter().map(|r| r.status) {
        summary.links.add(s);
    }
    summary.status = certificates
        .iter()
        .map(|c| c.status)
        .chain(links.iter().map(|l| l.status))
        .chain(instances.iter().map(|i| i.status))
        .max()
        .unwrap_or(Status::Ok);
    summary.exit_code = summary.status.exit_code();
    summary
}

/// `audited 120/1000` on stderr, only on a terminal and only once the run
/// has taken a second.
fn progress(total: usize, done: Arc<AtomicUsize>, started: Instant) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !std::io::stderr().is_terminal() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        loop {
            eprint!(
                "\raudited {}/{total} instances ({:.0} s)",
                done.load(Ordering::Relaxed),
                started.elapsed().as_secs_f64()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}
