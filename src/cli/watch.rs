//! `milink watch`: one line per change as it happens; `milink history`: the
//! timeline kept by earlier watches.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::check::{TargetArgs, with_profile};
use crate::watch::{self, Report, events::Event};

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LineFormat {
    Table,
    /// JSON Lines: one event per line.
    Json,
}

#[derive(Args)]
pub struct WatchArgs {
    #[command(flatten)]
    target: Box<TargetArgs>,
    /// How often to poll both sides, e.g. 30s or 50ms.
    #[arg(long, default_value = "30s", value_parser = parse_interval)]
    interval: Duration,
    /// How often to run the full diagnosis besides the polls.
    #[arg(long, default_value = "10m", value_parser = parse_interval)]
    full_every: Duration,
    /// The SQLite file of polls and events.
    #[arg(long, default_value = "milink-history.db")]
    history: PathBuf,
    /// Serve Prometheus metrics here, e.g. 127.0.0.1:9899.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Run this (with sh -c) for each event, the event as JSON on stdin.
    #[arg(long, value_name = "CMD")]
    on_change: Option<String>,
    /// How long --on-change may run before it is stopped.
    #[arg(long, default_value = "10s", value_parser = parse_interval)]
    on_change_timeout: Duration,
    /// Stop after this long (default: until Ctrl-C or SIGTERM).
    #[arg(long = "for", value_parser = parse_interval)]
    run_for: Option<Duration>,
    /// Stop after this many polls.
    #[arg(long)]
    polls: Option<u64>,
    #[arg(long, value_enum, default_value = "table")]
    format: LineFormat,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}"))?;
    if d < Duration::from_millis(10) || d > Duration::from_secs(7 * 86_400) {
        return Err(format!("`{s}`: give 10ms to 7 days"));
    }
    Ok(d)
}

pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let options = watch::Options {
        interval: args.interval,
        full_every: args.full_every,
        history: args.history.clone(),
        metrics_listen: args.metrics_listen.clone(),
        on_change: args.on_change.clone(),
        on_change_limit: args.on_change_timeout,
        run_for: args.run_for,
        polls: args.polls,
    };
    let format = args.format;
    let summary = with_profile(&args.target, move |profile| async move {
        let mut out = std::io::stdout();
        watch::run(profile, options, &mut |r| {
            match r {
                Report::Serving(url) => eprintln!("metrics: {url}"),
                Report::Event(e) => {
                    let _ = writeln!(out, "{}", line(&e, format));
                }
            }
            let _ = out.flush();
        })
        .await
    })??;
    eprintln!("{} polls, {} events; history in {}", summary.polls, summary.events, args.history.display());
    Ok(ExitCode::from(if summary.broken { 2 } else { 0 }))
}

fn line(e: &Event, format: LineFormat) -> String {
    match format {
        LineFormat::Json => serde_json::to_string(e).unwrap_or_default(),
        LineFormat::Table => {
            let what = match &e.subject {
                Some(s) => format!("{} {s}", e.kind),
                None => e.kind.clone(),
            };
            let change = match &e.from {
                Some(f) => format!("{f} -> {}", e.to),
                None => e.to.clone(),
            };
            let mark = match e.severity.as_str() {
                "fail" => "FAIL",
                "warn" => "WARN",
                _ => "ok",
            };
            let detail = e.detail.as_ref().map(|d| format!("  ({d})")).unwrap_or_default();
            format!("{}  {mark:<4}  {:<16}  {what}: {change}{detail}", &e.at[..19.min(e.at.len())], e.side)
        }
    }
}

#[derive(Args)]
pub struct HistoryArgs {
    #[arg(long, default_value = "milink-history.db")]
    history: PathBuf,
    /// Events from this long ago on, e.g. 24h or 15m.
    #[arg(long, default_value = "24h", value_parser = parse_interval)]
    since: Duration,
    #[arg(long, value_enum, default_value = "table")]
    format: LineFormat,
}

pub fn history(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.history.is_file(), "no history at {} (milink watch writes it)", args.history.display());
    let h = watch::history::History::open(&args.history)?;
    let since = time::OffsetDateTime::now_utc() - args.since;
    let events = h.events_since(&watch::events::stamp(since)).context("reading the history")?;
    for e in &events {
        println!("{}", line(e, args.format));
    }
    if args.format == LineFormat::Table {
        eprintln!("{} events since {}; {} polls in all", events.len(), watch::events::stamp(since), h.polls()?);
    }
    Ok(ExitCode::SUCCESS)
}
