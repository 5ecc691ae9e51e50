//! Carrying a plan out: connect once, then for each step read everything again,
//! plan again, run the first step still to do, and note it in the journal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::exec::{self, failure, say};
use super::journal::Journal;
use super::observe::{self, Observed};
use super::plan::{self, Action, Inputs, Plan, State, Step};
use super::{LinkError, databases, endpoint_host};
use crate::azure::arm::Arm;
use crate::checks::{self, collect};
use crate::probe::sql;
use crate::profile::Profile;

/// Both sides logged in, and ARM.
pub struct Session {
    pub sql: sql::Session,
    pub mi: sql::Session,
    pub arm: Arm,
    pub endpoint_host: String,
    pub databases: Vec<String>,
}

async fn login(p: &Profile, is_sql: bool) -> Result<sql::Session, LinkError> {
    let side = if is_sql { "SQL Server" } else { "the managed instance" };
    match collect::log_in(p, is_sql).await {
        Ok(s) => Ok(s),
        Err(collect::Sql::Failed(f)) => Err(LinkError::Login { side, why: f.message }),
        Err(collect::Sql::Skipped(why)) => Err(LinkError::Login { side, why }),
        Err(collect::Sql::Facts(_)) => unreachable!("open_side never returns facts"),
    }
}

impl Session {
    pub async fn open(p: &Profile, given: &[String]) -> Result<Session, LinkError> {
        let databases = databases(p, given)?;
        let arm = Arm::new(p)?;
        let (sql, mi, host) = tokio::join!(login(p, true), login(p, false), endpoint_host(p));
        Ok(Session { sql: sql?, mi: mi?, arm, endpoint_host: host?, databases })
    }

    pub async fn observe(&mut self) -> Result<Observed, LinkError> {
        let sql = observe::sql_side(&mut self.sql)
            .await
            .map_err(|failure| LinkError::Read { side: "SQL Server", failure })?;
        let mi_cert = observe::mi_certificate(&mut self.mi).await;
        let arm = observe::arm_side(&self.arm).await?;
        Ok(Observed { sql, mi_cert, arm })
    }

    pub async fn plan(&mut self, p: &Profile) -> Result<Vec<Step>, LinkError> {
        let observed = self.observe().await?;
        Ok(plan::plan(&Inputs {
            profile: p,
            observed: &observed,
            endpoint_host: self.endpoint_host.clone(),
            databases: &self.databases,
            now: time::OffsetDateTime::now_utc(),
        }))
    }
}

/// The whole plan: the pre-flight checks' blockers first, then the steps.
pub async fn make_plan(p: &Profile, given: &[String], waive: &[String]) -> Result<(Plan, Session), LinkError> {
    let (report, session) = tokio::join!(checks::run(p), Session::open(p, given));
    let mut session = session?;
    let steps = session.plan(p).await?;
    let mut notes = Vec::new();
    if p.sql_server.endpoint_host.is_none() {
        notes.push(format!(
            "Endpoint URLs use {}, the address milink resolved for {}: the managed instance must reach it (set sql_server.endpoint_host to choose another).",
            session.endpoint_host, p.sql_server.host
        ));
    }
    notes.push(format!(
        "ARM api-version {} ({} DAG schema).",
        api_of(&steps),
        if api_of(&steps).starts_with("2025") { "new" } else { "old" }
    ));
    Ok((Plan { blockers: plan::blockers(&report.findings, waive), steps, notes }, session))
}

fn api_of(steps: &[Step]) -> String {
    steps
        .iter()
        .find_map(|s| match &s.action {
            Action::Arm { url, .. } => url.split("api-version=").nth(1).map(str::to_string),
            _ => None,
        })
        .unwrap_or_default()
}

/// How `apply` ended.
#[derive(Debug)]
pub enum Outcome {
    /// Everything was done already.
    NothingToDo,
    Created {
        steps: usize,
    },
    /// The link exists but is not healthy: the diagnosis says why.
    Unhealthy(Box<crate::diagnose::Diagnosis>),
}

/// The statement or request as the journal and the screen show it.
pub(crate) fn shown(s: &Step) -> String {
    match &s.action {
        Action::Sql { shown, .. } => plan::short(shown),
        Action::Arm { method, url, .. } => format!("{method} {url}"),
        Action::WaitSeeding { database } => format!("wait for seeding of {database}"),
        Action::Wait { database, until } => format!("wait for {database}: {until:?}"),
    }
}

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
        let list: Vec<&str> = first.blockers.iter().filter(|b| !b.waived).map(|b| b.check).collect();
        return Err(LinkError::Usage(format!(
            "pre-flight checks that the link cannot be created with: {}. Fix them, or waive each with --waive <check-id> if you know better.",
            list.join(", ")
        )));
    }
    let todo = first.steps.iter().filter(|s| s.state == State::Todo).count();
    if todo > 0 {
        exec::confirm(&format!("Apply {todo} step(s) to create the link?"), yes)?;
    }
    let journal = Journal::at(p.link.journal.as_deref().unwrap_or(std::path::Path::new("milink-link.journal.jsonl")));
    let jerr = |e: std::io::Error| LinkError::Journal(journal.path().display().to_string(), e);
    if first.done() {
        say(out, "Nothing to do: every step of the link is done already.");
    }
    let mut ran = 0;
    let mut steps = first.steps;
    loop {
        let Some(step) = steps.iter().find(|s| s.state == State::Todo).cloned() else {
            if let Some(b) = steps.iter().find(|s| matches!(s.state, State::Blocked(_))) {
                let State::Blocked(why) = &b.state else { unreachable!() };
                return Err(LinkError::Step { step: b.id.clone(), message: why.clone() });
            }
            break;
        };
        let started = Instant::now();
        let action = shown(&step);
        journal.write(&step.id, "started", Some(&action), None, None).map_err(jerr)?;
        let result = run_step(&mut session, p, &step, &journal, out).await;
        let ms = started.elapsed().as_millis();
        match result {
            Ok(true) => {
                journal.write(&step.id, "done", None, None, Some(ms)).map_err(jerr)?;
                say(out, &format!("done  {:<34} {} ({ms} ms)", step.id, step.title));
                ran += 1;
            }
            Ok(false) => {
                let why = "the link reports an error: see the diagnosis";
                journal.write(&step.id, "stopped", None, Some(why), Some(ms)).map_err(jerr)?;
                say(out, &format!("stop  {:<34} {} ({why})", step.id, step.title));
                break;
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
        // Everything again: what the step changed, and what else changed meanwhile.
        let next = session.plan(p).await?;
        if next.iter().any(|s| s.id == step.id && s.state == State::Todo) {
            return Err(LinkError::Step {
                step: step.id.clone(),
                message: "it ran without an error, but what it makes is not there afterwards".into(),
            });
        }
        steps = next;
    }
    // The link must come out healthy: the diagnosis says whether it did.
    let d = crate::diagnose::run(p).await;
    if d.root_cause.is_some() || d.report.summary.exit_code >= 2 {
        return Ok(Outcome::Unhealthy(Box::new(d)));
    }
    Ok(if ran == 0 { Outcome::NothingToDo } else { Outcome::Created { steps: ran } })
}

/// Runs one step; false when a wait ended without what it waited for.
async fn run_step(
    session: &mut Session,
    p: &Profile,
    step: &Step,
    journal: &Journal,
    out: &mut dyn Write,
) -> Result<bool, LinkError> {
    match &step.action {
        Action::Sql { run, .. } => session
            .sql
            .exec(run)
            .await
            .map(|()| true)
            .map_err(|f| LinkError::Step { step: step.id.clone(), message: failure(&f) }),
        Action::Arm { method, url, body } => {
            exec::arm_change(&session.arm, journal, &step.id, method, url, body.as_ref()).await.map(|()| true)
        }
        Action::WaitSeeding { database } => wait_seeding(session, p, database, out).await,
        Action::Wait { .. } => {
            Err(LinkError::Step { step: step.id.clone(), message: "not a step of link creation".into() })
        }
    }
}

/// While the link reports an error this long, waiting for seeding stops and the
/// diagnosis explains (a first attempt may fail before the sides agree).
const ERROR_GRACE: Duration = Duration::from_secs(5);

/// Waits for seeding, with a progress line on a terminal (percent, rate, ETA).
/// Stops early when the link keeps reporting an error or seeding failed: the
/// diagnosis that follows says why.
async fn wait_seeding(session: &mut Session, p: &Profile, db: &str, out: &mut dyn Write) -> Result<bool, LinkError> {
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let names = plan::Names::of(p, db);
    let mut failing_since: Option<Instant> = None;
    say(out, &format!("      waiting for the managed instance to connect and seed {db}…"));
    let seeded = loop {
        let s = observe::sql_side(&mut session.sql)
            .await
            .map_err(|failure| LinkError::Read { side: "SQL Server", failure })?;
        let mi = observe::mi_links(&mut session.mi).await;
        let seed = s.seeding.iter().find(|x| x.database.eq_ignore_ascii_case(db));
        let is_dag = |d: &str| d.eq_ignore_ascii_case(&names.dag);
        let healthy = s.links.iter().any(|(d, c, h)| is_dag(d) && *c && h == "HEALTHY");
        if seed.is_some_and(|x| x.size > 0 && x.transferred >= x.size) || (seed.is_none() && healthy) {
            break true;
        }
        let erring = s.seeding_failed
            || s.link_errors.iter().any(|(d, _)| is_dag(d))
            || mi.iter().any(|(d, c, e)| is_dag(d) && !c && e.is_some());
        match (erring, failing_since) {
            (true, None) => failing_since = Some(Instant::now()),
            (true, Some(t)) if t.elapsed() >= ERROR_GRACE.min(p.link.seeding_wait) => break false,
            (false, _) => failing_since = None,
            _ => {}
        }
        if let (Some(x), true) = (seed, tty) {
            let pct = if x.size > 0 { x.transferred * 100 / x.size } else { 0 };
            let eta = if x.rate > 0 { (x.size - x.transferred) / x.rate } else { 0 };
            eprint!(
                "\rseeding {db}: {pct:>3}%  {} of {} MB at {} MB/s, about {eta} s left   ",
                x.transferred >> 20,
                x.size >> 20,
                x.rate >> 20
            );
        }
        if started.elapsed() > p.link.seeding_wait {
            return Err(LinkError::Step {
                step: format!("wait-seeding:{db}"),
                message: format!(
                    "seeding did not finish within {:?} (link.seeding_wait); run apply again to keep waiting",
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

/// Breaks the link the documented way: the instance's DAG resource first, then
/// SQL Server's distributed AG. The AG, the certificates and every database stay.
pub async fn remove(p: &Profile, given: &[String], yes: bool, out: &mut dyn Write) -> Result<Vec<String>, LinkError> {
    let mut session = Session::open(p, given).await?;
    if !yes {
        return Err(LinkError::Usage("remove breaks the link: confirm with --yes".into()));
    }
    let journal = Journal::at(p.link.journal.as_deref().unwrap_or(std::path::Path::new("milink-link.journal.jsonl")));
    let observed = session.observe().await?;
    let mut kept = Vec::new();
    for db in session.databases.clone() {
        let n = plan::Names::of(p, &db);
        let api = if observed.arm.api.is_empty() { observe::NEW_API.to_string() } else { observed.arm.api.clone() };
        if observed.arm.dag(&n.dag).is_some() {
            let id = format!("remove-mi-link:{db}");
            let url = format!("distributedAvailabilityGroups/{}?api-version={api}", crate::azure::arm::segment(&n.dag));
            let step = Step {
                id: id.clone(),
                place: plan::Where::Arm,
                title: format!("Delete the managed instance's {}", n.dag),
                state: State::Todo,
                action: Action::Arm { method: "DELETE".into(), url: url.clone(), body: None },
                resolves: vec![],
            };
            let _ = journal.write(&id, "started", Some(&format!("DELETE {url}")), None, None);
            exec::arm_change(&session.arm, &journal, &step.id, "DELETE", &url, None).await?;
            let _ = journal.write(&id, "done", None, None, None);
            say(out, &format!("done  {id:<34} {}", step.title));
        }
        if observed.sql.ag(&n.dag).is_some_and(|a| a.distributed) {
            let id = format!("remove-sql-dag:{db}");
            let stmt = format!("USE [master]; DROP AVAILABILITY GROUP {};", crate::tsql::ident(&n.dag));
            let _ = journal.write(&id, "started", Some(&stmt), None, None);
            session.sql.exec(&stmt).await.map_err(|f| LinkError::Step { step: id.clone(), message: failure(&f) })?;
            let _ = journal.write(&id, "done", None, None, None);
            say(out, &format!("done  {id:<34} Drop SQL Server's distributed availability group {}", n.dag));
        }
        if let Some(ag) = observed.sql.ag_of(&db) {
            kept.push(format!("the availability group {} on SQL Server", ag.name));
        }
        kept.push(format!("the database {db} on both sides"));
    }
    kept.push("the certificates and the mirroring endpoint on SQL Server, and the server trust certificate on the managed instance".into());
    Ok(kept)
}
