//! `milink watch`: polls both sides of a link, turns each change into an
//! event (printed, kept in the history, passed to `--on-change`), serves the
//! last poll as Prometheus metrics, and diagnoses the link when it turns bad
//! and at every `--full-every`.

pub mod events;
pub mod history;
pub mod metrics;
mod notify;
pub mod poll;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use crate::diagnose::{Diagnosis, RootCause};
use crate::profile::Profile;
use events::{Event, Tracker};

pub struct Options {
    pub interval: Duration,
    pub full_every: Duration,
    pub history: PathBuf,
    /// Where to serve `/metrics` (`127.0.0.1:9899`; port 0 picks one).
    pub metrics_listen: Option<String>,
    pub on_change: Option<String>,
    /// How long `--on-change` may run.
    pub on_change_limit: Duration,
    /// Stop after this long, or after this many polls.
    pub run_for: Option<Duration>,
    pub polls: Option<u64>,
}

/// What the watch tells its caller as it goes.
pub enum Report {
    /// The metrics endpoint is up at this URL.
    Serving(String),
    Event(Event),
    /// A poll's events have all been given.
    Polled,
}

pub struct Summary {
    pub polls: u64,
    pub events: u64,
    /// Whether the link was broken at the last poll.
    pub broken: bool,
}

pub async fn run(profile: Profile, o: Options, report: &mut dyn FnMut(Report)) -> anyhow::Result<Summary> {
    let mut history = history::History::open(&o.history)?;
    let page = Arc::new(Mutex::new(String::new()));
    let server = serve_metrics(&o, &page, report).await?;
    let notifier = o.on_change.clone().map(|c| notify::Notifier::new(c, o.on_change_limit));
    let mut poller = poll::Poller::new(profile.clone());
    let mut tracker = Tracker::default();
    let mut counters = metrics::Counters::default();
    let (diag_tx, mut diag_rx) = tokio::sync::mpsc::channel::<Diagnosis>(1);
    let mut diagnosing = false;
    // Each link's root cause as said last (keyed "" for a pair with no link).
    let mut last_cause: BTreeMap<String, String> = BTreeMap::new();
    let mut tick = tokio::time::interval(o.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut full = tokio::time::interval_at(tokio::time::Instant::now() + o.full_every, o.full_every);
    let end = o.run_for.map(|d| tokio::time::Instant::now() + d);
    // Made once, before the loop: a signal that comes during a poll is kept for the next select.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    let mut broken = false;
    let emit = |e: Event, counters: &mut metrics::Counters, report: &mut dyn FnMut(Report)| {
        counters.events += 1;
        if let Some(n) = &notifier
            && !n.send(&e)
        {
            counters.on_change_skipped += 1;
        }
        report(Report::Event(e));
    };
    let diagnose = |tx: tokio::sync::mpsc::Sender<Diagnosis>| {
        let mut p = profile.clone();
        tokio::spawn(async move {
            p.start_clock();
            let _ = tx.send(crate::diagnose::run(&p).await).await;
        });
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(d) = diag_rx.recv() => {
                diagnosing = false;
                for e in new_root_causes(&d, &mut last_cause) {
                    history.record_events(std::slice::from_ref(&e))?;
                    emit(e, &mut counters, report);
                }
                continue;
            }
            _ = full.tick() => {
                if !diagnosing {
                    diagnosing = true;
                    diagnose(diag_tx.clone());
                }
                continue;
            }
            _ = stopped(&mut int) => break,
            _ = stopped(&mut term) => break,
            _ = async { match end { Some(e) => tokio::time::sleep_until(e).await, None => std::future::pending().await } } => break,
        }
        let snap = poller.poll().await;
        counters.polls += 1;
        for (i, (_, st)) in snap.sides().iter().enumerate() {
            counters.poll_errors[i] += u64::from(!st.reachable);
        }
        let events = tracker.update(&snap, &profile.thresholds);
        history.record(&snap, &events)?;
        broken = is_broken(&snap);
        let bad = events::turned_bad(&events) || (counters.polls == 1 && broken);
        for e in events {
            emit(e, &mut counters, report);
        }
        report(Report::Polled);
        *page.lock().unwrap_or_else(|p| p.into_inner()) = metrics::render(&snap, &counters);
        if bad && !diagnosing {
            diagnosing = true;
            diagnose(diag_tx.clone());
        }
        if o.polls.is_some_and(|n| counters.polls >= n) {
            break;
        }
    }
    // A diagnosis under way when the watch ends still gets said.
    if diagnosing && let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(30), diag_rx.recv()).await {
        for e in new_root_causes(&d, &mut last_cause) {
            history.record_events(std::slice::from_ref(&e))?;
            emit(e, &mut counters, report);
        }
    }
    if let Some(s) = server {
        s.abort();
    }
    // Queued `--on-change` runs still happen, for a while.
    if let Some(n) = notifier {
        n.finish(o.on_change_limit * 4).await;
    }
    Ok(Summary { polls: counters.polls, events: counters.events, broken })
}

/// `--metrics-listen`: the page each poll renders, served until the watch ends.
async fn serve_metrics(
    o: &Options,
    page: &Arc<Mutex<String>>,
    report: &mut dyn FnMut(Report),
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = &o.metrics_listen else { return Ok(None) };
    let l = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("--metrics-listen {addr}"))?;
    report(Report::Serving(format!("http://{}/metrics", l.local_addr()?)));
    Ok(Some(tokio::spawn(metrics::serve(l, page.clone()))))
}

/// Resolves when the signal comes (never, without a handler).
async fn stopped(s: &mut Option<tokio::signal::unix::Signal>) {
    match s.as_mut() {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// A side that does not answer, a link not CONNECTED, or both sides PRIMARY.
fn is_broken(s: &poll::Snapshot) -> bool {
    let both_primary = s.sql_server.worst.role.as_deref() == Some("PRIMARY")
        && s.managed_instance.worst.role.as_deref() == Some("PRIMARY");
    both_primary
        || s.sides().iter().any(|(_, st)| !st.reachable || st.worst.connected.as_deref() == Some("DISCONNECTED"))
}

/// The diagnosis as events: one per link whose root cause is not the one said
/// last for it (a pair with no link yet: one for the pair).
fn new_root_causes(d: &Diagnosis, last: &mut BTreeMap<String, String>) -> Vec<Event> {
    let verdicts: Vec<(Option<String>, Option<&RootCause>)> = if d.links.is_empty() {
        vec![(None, d.root_cause.as_ref())]
    } else {
        d.links.iter().map(|l| (Some(l.link.clone()), l.root_cause.as_ref())).collect()
    };
    let mut out = Vec::new();
    for (link, rc) in verdicts {
        let cause = rc.map(|rc| rc.id.to_string()).unwrap_or_else(|| "none".into());
        let key = link.clone().unwrap_or_default();
        // A link first seen healthy needs no word; one that was broken does when it heals.
        if last.get(&key) == Some(&cause) || (cause == "none" && !last.contains_key(&key) && !d.links.is_empty()) {
            last.insert(key, cause);
            continue;
        }
        let before = last.insert(key, cause);
        out.push(root_cause_event(link, rc, before));
    }
    out
}

fn root_cause_event(link: Option<String>, rc: Option<&RootCause>, before: Option<String>) -> Event {
    let at = events::stamp(time::OffsetDateTime::now_utc());
    let (to, severity, detail) = match rc {
        None => ("none".to_string(), "ok", "the link is connected and healthy".to_string()),
        Some(rc) => {
            let mut text = format!("{} Evidence: {}. Fix: {}", rc.summary, rc.evidence.join("; "), rc.remedy);
            if !rc.missing_evidence.is_empty() {
                text.push_str(&format!(" Missing: {}.", rc.missing_evidence.join("; ")));
            }
            (rc.id.to_string(), "fail", text)
        }
    };
    Event {
        at,
        side: "link".into(),
        kind: "root_cause".into(),
        subject: link,
        from: before,
        to,
        severity: severity.into(),
        detail: Some(detail),
    }
}
