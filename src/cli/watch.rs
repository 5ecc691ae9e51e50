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
    #[arg(long, default_value = "30s", value_parser = crate::input::parse_interval)]
    interval: Duration,
    /// How often to run the full diagnosis besides the polls.
    #[arg(long, default_value = "10m", value_parser = crate::input::parse_interval)]
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
    #[arg(long, default_value = "10s", value_parser = crate::input::parse_interval)]
    on_change_timeout: Duration,
    /// Stop after this long (default: until Ctrl-C or SIGTERM).
    #[arg(long = "for", value_parser = crate::input::parse_interval)]
    run_for: Option<Duration>,
    /// Stop after this many polls.
    #[arg(long)]
    polls: Option<u64>,
    #[arg(long, value_enum, default_value = "table")]
    format: LineFormat,
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
        // For a person, the first poll's values that are fine are one line per side.
        let mut start: Option<Vec<Event>> = (format == LineFormat::Table).then(Vec::new);
        watch::run(profile, options, &mut |r| {
            match r {
                Report::Serving(url) => eprintln!("metrics: {url}"),
                Report::Event(e) => match start.as_mut() {
                    Some(first) => first.push(e),
                    None => {
                        let _ = writeln!(out, "{}", line(&e, format));
                    }
                },
                Report::Polled => {
                    if let Some(first) = start.take() {
                        for l in starting_lines(&first) {
                            let _ = writeln!(out, "{l}");
                        }
                    }
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

/// The first poll for a person: what needs attention as lines of their own,
/// worst first, then one line per side of what is fine.
fn starting_lines(first: &[Event]) -> Vec<String> {
    let mut bad: Vec<&Event> = first.iter().filter(|e| e.severity != "ok").collect();
    bad.sort_by_key(|e| if e.severity == "fail" { 0 } else { 1 });
    let mut out: Vec<String> = bad.iter().map(|e| line(e, LineFormat::Table)).collect();
    for side in ["sql_server", "managed_instance", "link"] {
        let fine: Vec<&Event> = first.iter().filter(|e| e.side == side && e.severity == "ok").collect();
        let Some(at) = fine.first().map(|e| e.at.get(..19).unwrap_or(&e.at).to_string()) else { continue };
        let count = |kind: &str| fine.iter().filter(|e| e.kind == kind).count();
        let grouped = |e: &&&Event| matches!(e.kind.as_str(), "certificate" | "log_space");
        let mut parts: Vec<String> = fine.iter().filter(|e| !grouped(e)).map(|e| short(e)).collect();
        if count("log_space") > 0 {
            parts.push(format!("log space fine in {} databases", count("log_space")));
        }
        if count("certificate") > 0 {
            parts.push(format!("{} certificates valid", count("certificate")));
        }
        out.push(format!("{at}  ok    {side:<16}  {}", parts.join(" · ")));
    }
    out
}

/// `connected` → `CONNECTED`, `queue` → `queue keeping up`.
fn short(e: &Event) -> String {
    match (e.kind.as_str(), &e.subject) {
        ("connected" | "role" | "health", _) => e.to.clone(),
        ("reachable", _) => e.to.clone(),
        (kind, Some(s)) => format!("{} {s}: {}", kind.replace('_', " "), e.to),
        (kind, None) => format!("{} {}", kind.replace('_', " "), e.to),
    }
}

#[derive(Args)]
pub struct HistoryArgs {
    #[arg(long, default_value = "milink-history.db")]
    history: PathBuf,
    /// Events from this long ago on, e.g. 24h or 15m.
    #[arg(long, default_value = "24h", value_parser = crate::input::parse_interval)]
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
