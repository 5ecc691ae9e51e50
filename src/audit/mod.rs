//! `milink audit certs`: every certificate of a fleet of SQL Servers and
//! managed instances, read concurrently, sorted by days left, and each link's
//! trust checked both ways.

pub mod inventory;
pub mod judge;
pub mod read;
pub mod render;

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
    let done = Arc::new(AtomicUsize::new(0));
    let progress = progress(inv.instances.len(), done.clone(), started);
    let timeout = o.timeout;
    // Unordered, so that one stalled instance never holds back the next ones.
    let mut reads: Vec<(usize, Result<read::Read, String>)> =
        futures_util::stream::iter(inv.instances.iter().enumerate())
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
    reads.sort_by_key(|(n, _)| *n);
    let reads: Vec<Result<read::Read, String>> = reads.into_iter().map(|(_, r)| r).collect();
    progress.abort();
    if std::io::stderr().is_terminal() && started.elapsed() > Duration::from_secs(1) {
        eprint!("\r\x1b[2K");
    }

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let t = Thresholds { warn_days: o.warn_days, crit_days: o.crit_days };
    let mut certificates = Vec::new();
    let mut instances = Vec::new();
    for (i, r) in inv.instances.iter().zip(&reads) {
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
    let pairs: Vec<_> = inv.instances.iter().zip(reads.iter().map(|r| r.as_ref().map_err(String::as_str))).collect();
    let links = judge::links(&pairs);
    instances
        .sort_by(|a, b| (std::cmp::Reverse(a.status), &a.instance).cmp(&(std::cmp::Reverse(b.status), &b.instance)));

    let mut summary = Summary {
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
    AuditReport { schema_version: 1, summary, certificates, links, instances }
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
