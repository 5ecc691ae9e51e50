//! `link-seeding`: a seeding that failed, and one still running: how far it
//! got, how fast, when it ends at that rate, how often it started over, and
//! whether it ends before link creation is cancelled (6 days).

use time::OffsetDateTime;

use super::kb;
use super::link::{Link, Seen, rows};
use crate::checks::F;
use crate::probe::sql::{self, Fields, Record};
use crate::report::{Finding, Severity, Side};

/// Link creation is cancelled after this long seeding (mi-link-facts §2).
pub const CANCEL_AFTER_DAYS: i64 = 6;
/// A seeding still running after this long is worth a look.
const SLOW_AFTER_HOURS: i64 = 24;
/// Keeps the log from truncating while seeding (for 1408/1412).
const KEEP_LOG_TF: i64 = 12381;

/// One database's seeding in progress, as the source side shows it.
struct Running {
    database: String,
    attempts: i64,
    elapsed_s: i64,
    transferred: i64,
    size: i64,
    rate: i64,
}

impl Running {
    fn read(r: &Record, now: OffsetDateTime) -> Option<Running> {
        let state = r.str("current_state").unwrap_or("").to_ascii_uppercase();
        if matches!(state.as_str(), "COMPLETED" | "FAILED") || r.str("completion_time").is_some() {
            return None;
        }
        let started = r.str("start_time").and_then(sql::datetime)?.assume_utc();
        Some(Running {
            database: r.str("local_database_name").unwrap_or("").to_string(),
            attempts: r.int("number_of_attempts").unwrap_or(1),
            elapsed_s: (now - started).whole_seconds().max(0),
            transferred: r.int("transferred_size_bytes").unwrap_or(0),
            size: r.int("database_size_bytes").unwrap_or(0),
            rate: r.int("transfer_rate_bytes_per_second").unwrap_or(0),
        })
    }

    /// Seconds left at the current rate (none when nothing moves). Computed,
    /// not `estimate_time_complete_utc`, which overestimates with compression.
    fn eta_s(&self) -> Option<i64> {
        (self.rate > 0).then(|| (self.size - self.transferred).max(0) / self.rate)
    }

    /// Whether it ends (at this rate) after link creation is cancelled.
    fn too_slow(&self) -> bool {
        let cancel = CANCEL_AFTER_DAYS * 86_400;
        self.eta_s().is_none_or(|eta| self.elapsed_s + eta > cancel)
    }

    fn percent(&self) -> f64 {
        if self.size > 0 { self.transferred as f64 * 100.0 / self.size as f64 } else { 0.0 }
    }
}

fn span(s: i64) -> String {
    match s {
        s if s >= 86_400 => format!("{:.1} d", s as f64 / 86_400.0),
        s if s >= 3600 => format!("{:.1} h", s as f64 / 3600.0),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

pub fn finding(link: &Link<'_>, seen: &[Seen], now: OffsetDateTime) -> Finding {
    let f = super::link::of_link(F::new("link-seeding", Side::Link, Severity::Pass), link);
    if let Some(e) = seen.iter().find(|e| e.source == "seeding") {
        return failed(link, e, f);
    }
    // The source side (the primary) shows the transfer; either side will do.
    let running: Vec<Running> = [Side::SqlServer, Side::ManagedInstance]
        .into_iter()
        .flat_map(|s| link.seeding(s))
        .filter_map(|r| Running::read(r, now))
        .collect();
    let Some(r) = running.iter().max_by_key(|r| (r.too_slow(), r.attempts, r.elapsed_s)) else {
        return f.found("no seeding failure").done();
    };
    let mb = |b: i64| b / 1_048_576;
    let eta = r.eta_s().map_or("never at this rate".to_string(), span);
    let f = f
        .found(format!(
            "seeding {}: {:.0}% of {} MB at {:.1} MB/s, {eta} left; attempt {}",
            r.database,
            r.percent(),
            mb(r.size),
            r.rate as f64 / 1_048_576.0,
            r.attempts
        ))
        .ev("database", r.database.clone())
        .ev("percent", (r.percent() * 10.0).round() / 10.0)
        .ev("transferred_mb", mb(r.transferred))
        .ev("database_mb", mb(r.size))
        .ev("rate_mb_per_s", (r.rate as f64 / 1_048_576.0 * 10.0).round() / 10.0)
        .ev("running_s", r.elapsed_s)
        .ev("eta_s", r.eta_s().unwrap_or(-1))
        .ev("number_of_attempts", r.attempts);
    let restart = "Seeding starts over after any interruption (network loss, restart, failover), and link creation is cancelled after 6 days of seeding.";
    if r.too_slow() {
        f.severity(Severity::Fail)
            .ev("note", restart)
            .remedy("At this rate seeding does not finish before link creation is cancelled (6 days): give the link more bandwidth (or seed fewer databases at once), keep the network and both sides up until it completes, or move the database by backup and restore instead.")
            .done()
    } else if r.attempts > 1 || r.elapsed_s >= SLOW_AFTER_HOURS * 3600 {
        f.severity(Severity::Warn)
            .ev("note", restart)
            .remedy("Find what interrupts seeding (the link's last_connect_error and both error logs), and keep the network and both sides up until it completes.")
            .done()
    } else {
        f.done()
    }
}

/// A seeding that failed: its error and the fix; for a truncated log, trace flag
/// 12381 when it is not on already.
fn failed(link: &Link<'_>, e: &Seen, f: F) -> Finding {
    let mut fixes: Vec<&str> = kb::explain(e.number, &e.text).iter().map(|k| k.fix).collect();
    let truncated = matches!(e.number, Some(1408 | 1412));
    let tf_on = rows(link.side(Side::SqlServer), "trace_flags").iter().any(|r| r.int("traceflag") == Some(KEEP_LOG_TF));
    if truncated && !tf_on {
        fixes.push("Before re-creating the link, DBCC TRACEON (12381, -1) keeps SQL Server's log from truncating while seeding (remove it once seeding completes; which builds honour it is UNCONFIRMED).");
    }
    let f = f
        .severity(Severity::Fail)
        .found(format!("failed on {} (error {})", e.side.as_str(), e.number.unwrap_or(0)))
        .ev("side", e.side.as_str())
        .ev("error", e.number.unwrap_or(0))
        .ev("message", e.text.clone());
    let f = if truncated { f.ev("trace_flag_12381", tf_on) } else { f };
    f.remedy(if fixes.is_empty() {
        "Read the seeding error on both sides; seeding restarts from scratch.".to_string()
    } else {
        fixes.join(" ")
    })
    .done()
}
