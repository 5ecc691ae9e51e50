//! `milink link apply`: the plan carried out to its end, in waves: the shared
//! steps one by one, then the same step of every database at once (the
//! availability groups, the distributed AGs, the instance's links through ARM
//! side by side, one wait for all the seeding), re-planned after each wave, so
//! ten links take little longer than one and a run stopped anywhere continues
//! where it stopped.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::LinkError;
use super::exec::{self, failure, say};
use super::journal::Journal;
use super::observe;
use super::plan::{self, Action, State, Step};
use super::run::{Outcome, Session, make_plan, shown};
use crate::profile::Profile;

/// Runs the plan to its end. `out` gets one line per step as it happens.
pub async fn apply(
    p: &Profile,
    given: &[String],
    waive: &[String],
    yes: bool,
    out: &mut dyn Write,
) -> Result<Outcome, LinkError> {
    let (first, mut session) = make_plan(p, given, waive).await?;
    if first.blocked() {
        let list: Vec<String> =
            first.blockers.iter().filter(|b| !b.waived).map(|b| format!("\n  - {}: {}", b.check, b.said())).collect();
        return Err(LinkError::Usage(format!(
            "pre-flight checks that the link cannot be created with:{}\nFix them, or waive each with --waive <check-id> if you know better.",
            list.concat()
        )));
    }
    let todo = first.steps.iter().filter(|s| s.state == State::Todo).count();
    if todo > 0 {
        exec::confirm(&format!("Apply {todo} step(s) to create the link?"), yes)?;
    }
    let journal = Journal::at(p.link.journal.as_deref().unwrap_or(std::path::Path::new("milink-link.journal.jsonl")));
    if first.done() {
        say(out, "Nothing to do: every step of the link is done already.");
    }
    let mut ran = 0;
    let mut steps = first.steps;
    loop {
        let wave = next_wave(&steps);
        if wave.is_empty() {
            if let Some(b) = steps.iter().find(|s| matches!(s.state, State::Blocked(_))) {
                let State::Blocked(why) = &b.state else { unreachable!() };
                return Err(LinkError::Step { step: b.id.clone(), message: why.clone() });
            }
            break;
        }
        match run_wave(&mut session, p, &wave, &journal, out).await? {
            true => ran += wave.len(),
            false => break,
        }
        // Everything again: what the wave changed, and what else changed meanwhile.
        let next = session.plan(p).await?;
        if let Some(s) = wave.iter().find(|w| next.iter().any(|s| s.id == w.id && s.state == State::Todo)) {
            return Err(LinkError::Step {
                step: s.id.clone(),
                message: "it ran without an error, but what it makes is not there afterwards".into(),
            });
        }
        steps = next;
    }
    // The links must come out healthy: the diagnosis says whether they did.
    let d = crate::diagnose::run(p).await;
    if d.root_cause.is_some() || d.report.summary.exit_code >= 2 {
        return Ok(Outcome::Unhealthy(Box::new(d)));
    }
    Ok(if ran == 0 { Outcome::NothingToDo } else { Outcome::Created { steps: ran } })
}

/// The database a step belongs to (`sql-ag:SalesDB`), none for a shared one.
fn database(s: &Step) -> Option<&str> {
    s.id.split_once(':').map(|(_, db)| db)
}

fn kind(s: &Step) -> &str {
    s.id.split_once(':').map_or(s.id.as_str(), |(k, _)| k)
}

/// What can run next, together: the first step still to do; when it is a
/// database's step, the same step of every database whose earlier steps are done.
pub fn next_wave(steps: &[Step]) -> Vec<Step> {
    let Some(first) = steps.iter().find(|s| s.state == State::Todo) else { return vec![] };
    if database(first).is_none() {
        return vec![first.clone()];
    }
    let ready = |i: usize| {
        let db = database(&steps[i]);
        steps[..i].iter().all(|s| s.state == State::Done || (database(s).is_some() && database(s) != db))
    };
    steps
        .iter()
        .enumerate()
        .filter(|(i, s)| s.state == State::Todo && kind(s) == kind(first) && ready(*i))
        .map(|(_, s)| s.clone())
        .collect()
}

/// One wave: SQL statements one after another on the session, ARM requests
/// side by side, seeding waited for once for all. False when a wait ended
/// without what it waited for (the diagnosis says why).
async fn run_wave(
    session: &mut Session,
    p: &Profile,
    wave: &[Step],
    journal: &Journal,
    out: &mut dyn Write,
) -> Result<bool, LinkError> {
    let jerr = |e: std::io::Error| LinkError::Journal(journal.path().display().to_string(), e);
    let started = Instant::now();
    for step in wave {
        journal.write(&step.id, "started", Some(&shown(step)), None, None).map_err(jerr)?;
    }
    let results: Vec<Result<bool, LinkError>> = match &wave[0].action {
        Action::Arm { .. } => {
            let arm = &session.arm;
            futures_util::future::join_all(wave.iter().map(|step| async move {
                let Action::Arm { method, url, body } = &step.action else { unreachable!("one kind per wave") };
                exec::arm_change(arm, journal, &step.id, method, url, body.as_ref()).await.map(|()| true)
            }))
            .await
        }
        Action::WaitSeeding { .. } => {
            let dbs: Vec<&str> = wave.iter().filter_map(database).collect();
            let r = wait_seeding(session, p, &dbs, out).await?;
            wave.iter().map(|_| Ok(r)).collect()
        }
        _ => {
            let mut rs = Vec::new();
            for step in wave {
                rs.push(run_step(session, step).await);
            }
            rs
        }
    };
    let ms = started.elapsed().as_millis();
    let mut all = true;
    for (step, result) in wave.iter().zip(results) {
        match result {
            Ok(true) => {
                journal.write(&step.id, "done", None, None, Some(ms)).map_err(jerr)?;
                say(out, &format!("done  {:<34} {} ({ms} ms)", step.id, step.title));
            }
            Ok(false) => {
                let why = "the link reports an error: see the diagnosis";
                journal.write(&step.id, "stopped", None, Some(why), Some(ms)).map_err(jerr)?;
                say(out, &format!("stop  {:<34} {} ({why})", step.id, step.title));
                all = false;
            }
            Err(e) => {
                let _ = journal.write(&step.id, "failed", None, Some(&e.to_string()), Some(ms));
                say(out, &format!("FAIL  {:<34} {}", step.id, step.title));
                return Err(match e {
                    LinkError::Step { .. } => e,
                    other => LinkError::Step { step: step.id.clone(), message: other.to_string() },
                });
            }
        }
    }
    Ok(all)
}

/// Runs one statement step.
async fn run_step(session: &mut Session, step: &Step) -> Result<bool, LinkError> {
    match &step.action {
        Action::Sql { run, .. } => session
            .sql
            .exec(run)
            .await
            .map(|()| true)
            .map_err(|f| LinkError::Step { step: step.id.clone(), message: failure(&f) }),
        _ => Err(LinkError::Step { step: step.id.clone(), message: "not a step of link creation".into() }),
    }
}

/// While a link reports an error this long, waiting for seeding stops and the
/// diagnosis explains (a first attempt may fail before the sides agree).
const ERROR_GRACE: Duration = Duration::from_secs(5);

/// Waits for the seeding of these databases, with a progress line on a
/// terminal. Stops early when a link keeps reporting an error or seeding
/// failed: the diagnosis that follows says why.
async fn wait_seeding(
    session: &mut Session,
    p: &Profile,
    dbs: &[&str],
    out: &mut dyn Write,
) -> Result<bool, LinkError> {
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let dags: Vec<String> = dbs.iter().map(|db| plan::Names::in_mode(p, db).dag).collect();
    let mut failing_since: Option<Instant> = None;
    say(out, &format!("      waiting for the managed instance to connect and seed {}…", dbs.join(", ")));
    let seeded = loop {
        let (s, mi) = tokio::join!(observe::sql_side(&mut session.sql), observe::mi_links(&mut session.mi));
        let s = s.map_err(|failure| LinkError::Read { side: "SQL Server", failure })?;
        let mut left = Vec::new();
        let (mut moved, mut total, mut rate) = (0i64, 0i64, 0i64);
        for (db, dag) in dbs.iter().zip(&dags) {
            let seed = s.seeding.iter().find(|x| x.database.eq_ignore_ascii_case(db));
            let is_dag = |d: &str| d.eq_ignore_ascii_case(dag);
            let healthy = s.links.iter().any(|(d, c, h)| is_dag(d) && *c && h == "HEALTHY");
            if let Some(x) = seed {
                (moved, total, rate) = (moved + x.transferred, total + x.size, rate + x.rate);
            }
            let per_database = p.link.mode == crate::profile::LinkMode::Multi;
            let by_link = seed.is_none() && healthy && !per_database;
            if !(seed.is_some_and(|x| x.size > 0 && x.transferred >= x.size) || by_link) {
                left.push(*db);
            }
        }
        if left.is_empty() {
            break true;
        }
        let erring = s.seeding_failed
            || dags.iter().any(|dag| {
                s.link_errors.iter().any(|(d, _)| d.eq_ignore_ascii_case(dag))
                    || mi.iter().any(|(d, c, e)| d.eq_ignore_ascii_case(dag) && !c && e.is_some())
            });
        match (erring, failing_since) {
            (true, None) => failing_since = Some(Instant::now()),
            (true, Some(t)) if t.elapsed() >= ERROR_GRACE.min(p.link.seeding_wait) => break false,
            (false, _) => failing_since = None,
            _ => {}
        }
        if tty && total > 0 {
            let pct = moved * 100 / total;
            let eta = if rate > 0 { (total - moved) / rate } else { 0 };
            eprint!(
                "\rseeding {} of {} databases: {pct:>3}%  {} of {} MB at {} MB/s, about {eta} s left   ",
                dbs.len() - left.len(),
                dbs.len(),
                moved >> 20,
                total >> 20,
                rate >> 20
            );
        }
        if started.elapsed() > p.link.seeding_wait {
            return Err(LinkError::Step {
                step: format!("wait-seeding:{}", left[0]),
                message: format!(
                    "seeding of {} did not finish within {:?} (link.seeding_wait); run apply again to keep waiting",
                    left.join(", "),
                    p.link.seeding_wait
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if tty {
        eprintln!();
    }
    let _ = out.flush();
    Ok(seeded)
}
