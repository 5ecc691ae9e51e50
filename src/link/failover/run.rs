//! Carrying the link's life out: read both sides and ARM, decide the steps,
//! run the first one still to do, note it in the journal, read again. Waits
//! poll the same view until what they wait for holds, within `--max-wait`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::super::exec::{self, failure, say};
use super::super::journal::Journal;
use super::super::plan::{Action, Names, State, Step, Until, Where};
use super::super::{LinkError, databases};
use super::report::{self, LinkOutcome, LossEstimate, Outcome};
use super::view::{self, View};
use super::{Cleanup, FailoverOptions, ModeOptions, ReconcileOptions, Side, preconditions, steps};
use crate::azure::arm::Arm;
use crate::checks::collect;
use crate::probe::sql;
use crate::profile::Profile;

/// Both sides as far as they can be logged in to, and ARM.
pub struct Sides {
    pub sql: Option<sql::Session>,
    pub mi: Option<sql::Session>,
    pub arm: Arm,
    /// Why a side could not be logged in to.
    pub why: [Option<String>; 2],
}

async fn login(p: &Profile, is_sql: bool) -> Result<sql::Session, String> {
    match collect::log_in(p, is_sql).await {
        Ok(s) => Ok(s),
        Err(collect::Sql::Failed(f)) => Err(f.message),
        Err(collect::Sql::Skipped(why)) => Err(why),
        Err(collect::Sql::Facts(_)) => Err("no session".into()),
    }
}

impl Sides {
    /// Logs in to both sides at once; a side that cannot be reached is kept
    /// as its reason (a forced failover goes on without the old primary).
    pub async fn open(p: &Profile) -> Result<Sides, LinkError> {
        let arm = Arm::new(p)?;
        let (sql, mi) = tokio::join!(login(p, true), login(p, false));
        let why = [sql.as_ref().err().cloned(), mi.as_ref().err().cloned()];
        Ok(Sides { sql: sql.ok(), mi: mi.ok(), arm, why })
    }

    pub async fn view(&mut self, n: &Names) -> View {
        let (mut sql, mut mi, arm) = tokio::join!(
            view::half(self.sql.as_mut(), &n.dag, &n.db),
            view::half(self.mi.as_mut(), &n.dag, &n.db),
            view::arm(&self.arm, &n.dag)
        );
        for (h, why) in [(&mut sql, &self.why[0]), (&mut mi, &self.why[1])] {
            if let (Some(w), Some(_)) = (why, &h.unreadable) {
                h.unreadable = Some(w.clone());
            }
        }
        View { database: n.db.clone(), dag: n.dag.clone(), sql, mi, arm }
    }
}

/// What every step of a command runs with.
pub(super) struct Ctx<'a> {
    journal: Journal,
    out: &'a mut dyn Write,
    max_wait: Duration,
    settle: Duration,
    /// What must be readable before any step is decided: SQL Server, the
    /// managed instance, ARM. A side that cannot be read is not a link that is
    /// gone, so nothing is decided from it.
    needs: [bool; 3],
    /// One of several links under way: the command said what to do and asked once.
    pub(super) one_of_many: bool,
}

/// Refuses to decide anything from a view that lacks a side the command needs.
fn readable(v: &View, needs: [bool; 3]) -> Result<(), LinkError> {
    let sides =
        [("SQL Server", &v.sql.unreadable), ("the managed instance", &v.mi.unreadable), ("ARM", &v.arm.unreadable)];
    for ((side, why), need) in sides.into_iter().zip(needs) {
        if let (true, Some(why)) = (need, why) {
            return Err(LinkError::Login { side, why: why.clone() });
        }
    }
    Ok(())
}

impl<'a> Ctx<'a> {
    pub(super) fn new(journal: Journal, out: &'a mut dyn Write, o: &FailoverOptions, needs: [bool; 3]) -> Ctx<'a> {
        Ctx { journal, out, max_wait: o.max_wait, settle: o.settle, needs, one_of_many: false }
    }

    fn journal_err(&self) -> impl Fn(std::io::Error) -> LinkError + '_ {
        |e| LinkError::Journal(self.journal.path().display().to_string(), e)
    }
}

pub(super) fn journal_of(p: &Profile) -> Journal {
    Journal::at(p.link.journal.as_deref().unwrap_or(std::path::Path::new("milink-link.journal.jsonl")))
}

/// Runs the first step still to do until none is left; returns the ids it ran.
async fn execute(
    sides: &mut Sides,
    n: &Names,
    cx: &mut Ctx<'_>,
    plan: &dyn Fn(&View, &Journal) -> Vec<Step>,
) -> Result<Vec<String>, LinkError> {
    let mut ran: Vec<String> = Vec::new();
    loop {
        let v = sides.view(n).await;
        readable(&v, cx.needs)?;
        let mut steps = plan(&v, &cx.journal);
        // A wait that opened in this run stays open: it is a read, not a change.
        for s in steps.iter_mut().filter(|s| matches!(s.action, Action::Wait { .. }) && ran.contains(&s.id)) {
            s.state = State::Done;
        }
        let Some(step) = steps.iter().find(|s| s.state == State::Todo).cloned() else {
            if let Some(b) = steps.iter().find(|s| matches!(s.state, State::Blocked(_))) {
                let State::Blocked(why) = &b.state else { unreachable!() };
                return Err(LinkError::Step { step: b.id.clone(), message: why.clone() });
            }
            return Ok(ran);
        };
        if ran.contains(&step.id) {
            return Err(LinkError::Step {
                step: step.id.clone(),
                message: "it ran without an error, but what it makes is not there afterwards".into(),
            });
        }
        let started = Instant::now();
        let shown = super::super::run::shown(&step);
        cx.journal.write(&step.id, "started", Some(&shown), None, None).map_err(cx.journal_err())?;
        let result = run_step(sides, n, cx, &step).await;
        let ms = started.elapsed().as_millis();
        match result {
            Ok(()) => {
                cx.journal.write(&step.id, "done", None, None, Some(ms)).map_err(cx.journal_err())?;
                say(cx.out, &format!("done  {:<34} {} ({ms} ms)", step.id, step.title));
                ran.push(step.id);
            }
            Err(e) => {
                let _ = cx.journal.write(&step.id, "failed", None, Some(&e.to_string()), Some(ms));
                say(cx.out, &format!("FAIL  {:<34} {}", step.id, step.title));
                return Err(match e {
                    LinkError::Step { .. } | LinkError::Refused { .. } => e,
                    other => LinkError::Step { step: step.id.clone(), message: other.to_string() },
                });
            }
        }
    }
}

async fn run_step(sides: &mut Sides, n: &Names, cx: &mut Ctx<'_>, step: &Step) -> Result<(), LinkError> {
    match &step.action {
        Action::Sql { run, .. } => {
            let (session, side) = match step.place {
                Where::ManagedInstance => (sides.mi.as_mut(), Side::ManagedInstance),
                _ => (sides.sql.as_mut(), Side::SqlServer),
            };
            let Some(session) = session else {
                return Err(LinkError::Login {
                    side: side.name(),
                    why: sides.why[usize::from(!side.is_sql())].clone().unwrap_or_default(),
                });
            };
            session.exec(run).await.map_err(|f| LinkError::Step { step: step.id.clone(), message: failure(&f) })
        }
        Action::Arm { method, url, body } => {
            exec::arm_change(&sides.arm, &cx.journal, &step.id, method, url, body.as_ref()).await
        }
        Action::Wait { until, .. } => wait(sides, n, cx, until).await,
        Action::WaitSeeding { .. } => Err(LinkError::Step { step: step.id.clone(), message: "not a step here".into() }),
    }
}

/// Polls the view until `until` holds, within `max_wait`.
async fn wait(sides: &mut Sides, n: &Names, cx: &mut Ctx<'_>, until: &Until) -> Result<(), LinkError> {
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut equal: Option<(String, Instant)> = None;
    let mut last = String::new();
    loop {
        let v = sides.view(n).await;
        let (held, seen) = match until {
            Until::HardenedLsnsEqual => {
                let (a, b) = (lsn(&v, true), lsn(&v, false));
                let now_equal = a.is_some() && a == b;
                match (&equal, now_equal) {
                    (Some((x, _)), true) if Some(x) == a.as_ref() => {}
                    (_, true) => equal = Some((a.clone().unwrap_or_default(), Instant::now())),
                    (_, false) => equal = None,
                }
                let stable = equal.as_ref().map(|(_, t)| t.elapsed()).unwrap_or_default();
                let seen = format!(
                    "last_hardened_lsn: SQL Server {}, managed instance {}; equal for {:.1} s of {:.1} s",
                    a.as_deref().unwrap_or("?"),
                    b.as_deref().unwrap_or("?"),
                    stable.as_secs_f64(),
                    cx.settle.as_secs_f64()
                );
                (equal.is_some() && stable >= cx.settle, seen)
            }
            Until::Roles { primary } => {
                let to = if *primary == Where::SqlServer { Side::SqlServer } else { Side::ManagedInstance };
                let (t, f) = (v.half(to.is_sql()), v.half(!to.is_sql()));
                let seen = format!(
                    "roles: SQL Server {}, managed instance {}",
                    v.sql.role.as_deref().unwrap_or("?"),
                    v.mi.role.as_deref().unwrap_or("?")
                );
                (t.is("PRIMARY") && f.is("SECONDARY") && t.connected == Some(true), seen)
            }
            Until::FullBackup { side, after } => {
                let to = if *side == Where::SqlServer { Side::SqlServer } else { Side::ManagedInstance };
                (steps::has_full_backup_after(&v, to, after), format!("no full backup of {} since {after} yet", n.db))
            }
            Until::Connected => {
                let ok = [&v.sql, &v.mi].iter().any(|h| h.is("PRIMARY") && h.connected == Some(true))
                    && [&v.sql, &v.mi].iter().any(|h| {
                        h.is("SECONDARY")
                            && h.database.as_ref().is_some_and(|d| d.synchronization_state.starts_with("SYNCHRONIZ"))
                    });
                (ok, format!("connected: SQL Server {:?}, managed instance {:?}", v.sql.connected, v.mi.connected))
            }
        };
        if held {
            if tty {
                eprintln!();
            }
            return Ok(());
        }
        if tty && seen != last {
            eprint!("\r      {seen}   ");
        }
        last = seen;
        if started.elapsed() >= cx.max_wait {
            if tty {
                eprintln!();
            }
            return Err(gate_closed(until, &last, cx.max_wait));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn lsn(v: &View, sql: bool) -> Option<String> {
    v.half(sql).database.as_ref().map(|d| d.last_hardened_lsn.clone()).filter(|x| !x.is_empty())
}

fn gate_closed(until: &Until, last: &str, max: Duration) -> LinkError {
    let (check, what, fix) = match until {
        Until::HardenedLsnsEqual => (
            "hardened-lsn-gate",
            "the hardened LSNs did not become equal and stay so; the failover did not start",
            "stop the workload on the primary (the application still writes?), then run the failover again",
        ),
        Until::Roles { .. } => {
            ("roles-swapped", "the roles did not swap on both sides", "milink diagnose shows the link")
        }
        Until::FullBackup { .. } => (
            "first-full-backup",
            "the failover is done, but the new primary has not taken its first full backup since; the link is kept, because dropping it before that backup can leave the database unavailable after the instance's next restart",
            "run the command again later (the link is kept until then), or add --force to drop it anyway",
        ),
        Until::Connected => ("link-connected", "the link did not connect again", "milink diagnose names the cause"),
    };
    LinkError::Refused {
        what: format!("{what} (waited {})", humantime::format_duration(max)),
        refusals: vec![preconditions::Refusal { check, why: last.to_string(), fix: Some(fix.into()) }],
    }
}

/// When milink last carried `step` out (ARM accepted it, or it was done), as
/// msdb's datetimes read (`YYYY-MM-DD hh:mm:ss.fff`); empty when it did not.
fn done_at(j: &Journal, step: &str) -> String {
    let last = j.read().into_iter().rev().find(|e| e.step == step && (e.event == "done" || e.event == "accepted"));
    last.map(|e| e.at.replace('T', " ").trim_end_matches('Z').chars().take(23).collect()).unwrap_or_default()
}

/// What a failover must read before it decides: a forced failover goes on
/// without the old primary; everything else needs both sides and ARM.
pub(super) fn needs(o: &FailoverOptions) -> [bool; 3] {
    match (o.forced, o.to) {
        (false, _) => [true, true, true],
        (true, Side::SqlServer) => [true, false, false],
        (true, Side::ManagedInstance) => [false, true, true],
    }
}

/// Fails the links of `dbs` over one after another, on the sessions of `sides`.
pub(super) async fn failover(
    p: &Profile,
    mut sides: Sides,
    dbs: &[String],
    o: &FailoverOptions,
    out: &mut dyn Write,
) -> Result<Outcome, LinkError> {
    let mut cx = Ctx::new(journal_of(p), out, o, needs(o));
    let mut links = Vec::new();
    for db in dbs {
        let n = Names::of(p, db);
        links.push(if o.forced {
            forced_one(&mut sides, &n, o, &mut cx).await?
        } else {
            planned_one(&mut sides, &n, o, &mut cx).await?
        });
    }
    let what = if o.forced { "forced failover" } else { "planned failover" };
    Ok(Outcome::new(format!("{what} to {}", o.to.name()), links))
}

/// The roles are swapped, or the link is gone after milink failed it over.
pub(super) fn failed_over(v: &View, to: Side, j: &Journal) -> bool {
    let swapped = v.half(to.is_sql()).is("PRIMARY") && v.half(!to.is_sql()).is("SECONDARY");
    let id = format!("failover-to-{}:{}", to.id(), v.database);
    swapped || (!done_at(j, &id).is_empty() && (!v.arm.dag || !v.sql.dag))
}

pub(super) async fn planned_one(
    sides: &mut Sides,
    n: &Names,
    o: &FailoverOptions,
    cx: &mut Ctx<'_>,
) -> Result<LinkOutcome, LinkError> {
    let before = sides.view(n).await;
    let (to, cleanup, force) = (o.to, o.cleanup, o.force);
    let done_before = failed_over(&before, to, &cx.journal);
    if !done_before {
        let refusals = preconditions::planned(&before, to, cleanup);
        if !refusals.is_empty() {
            return Err(LinkError::Refused {
                what: format!("a planned failover of {} is refused; nothing was changed", n.db),
                refusals,
            });
        }
    }
    let plan = move |v: &View, j: &Journal| {
        let after = done_at(j, &format!("failover-to-{}:{}", to.id(), v.database));
        steps::planned(v, to, cleanup, failed_over(v, to, j), &after, force)
    };
    let todo = plan(&before, &cx.journal).iter().filter(|s| s.state == State::Todo).count();
    if todo > 0 && !done_before && !cx.one_of_many {
        say(
            cx.out,
            &format!(
                "Stop the workload on {} now: milink waits until last_hardened_lsn of {} is equal on both sides and stays so for {} (at most {}).",
                to.other().name(),
                n.db,
                humantime::format_duration(cx.settle),
                humantime::format_duration(cx.max_wait)
            ),
        );
        exec::confirm(&format!("Fail {} over to {} ({todo} step(s))?", n.db, to.name()), o.yes)?;
    }
    // The guard --force overrides, said before the link goes.
    let unguarded = force
        && cleanup != Cleanup::Keep
        && before.sql.version.0 >= 16
        && !steps::has_full_backup_after(
            &before,
            to,
            &done_at(&cx.journal, &format!("failover-to-{}:{}", to.id(), n.db)),
        );
    if unguarded {
        say(
            cx.out,
            &format!(
                "warning: --force drops the link without waiting for {}'s first full backup of {} after the failover (skipped with --force): until that backup exists the database can be unavailable after the instance's next restart.",
                to.name(),
                n.db
            ),
        );
    }
    match execute(sides, n, cx, &plan).await {
        Ok(ran) => {
            let mut outcome = report::link(&before, &sides.view(n).await, ran, None);
            if unguarded {
                outcome.notes.push(format!(
                    "the link was dropped before {}'s first full backup after the failover (--force)",
                    to.name()
                ));
            }
            Ok(outcome)
        }
        Err(e @ LinkError::Refused { .. }) => {
            // Nothing half done: the commit mode this run switched goes back.
            let switched = ["sql-mode-sync", "mi-mode-sync"]
                .iter()
                .any(|id| cx.journal.last(&format!("{id}:{}", n.db)).is_some_and(|e| e.event == "done"));
            if switched && !failed_over(&sides.view(n).await, to, &cx.journal) {
                let restore = |v: &View, _: &Journal| {
                    vec![
                        steps::sql_mode(v, "sql-mode-restore", "ASYNCHRONOUS_COMMIT"),
                        steps::mi_mode(v, "mi-mode-restore", "ASYNCHRONOUS_COMMIT"),
                    ]
                };
                execute(sides, n, cx, &restore).await?;
                say(cx.out, "The link is back in asynchronous commit, as it was; nothing else was changed.");
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}

pub(super) async fn forced_one(
    sides: &mut Sides,
    n: &Names,
    o: &FailoverOptions,
    cx: &mut Ctx<'_>,
) -> Result<LinkOutcome, LinkError> {
    let to = o.to;
    let before = sides.view(n).await;
    let refusals = preconditions::forced(&before, to);
    if !refusals.is_empty() {
        return Err(LinkError::Refused {
            what: format!("a forced failover of {} is refused; nothing was changed", n.db),
            refusals,
        });
    }
    let loss = LossEstimate::of(&before, to);
    let plan = move |v: &View, _: &Journal| vec![steps::forced(v, to, v.half(to.is_sql()).is("PRIMARY"))];
    if plan(&before, &cx.journal).iter().any(|s| s.state == State::Todo) {
        if !o.yes {
            say(cx.out, &loss.text());
        }
        exec::confirm_typed(
            &format!("A forced failover of {} to {} may lose every transaction listed above.", n.db, to.name()),
            &n.db,
            o.yes,
        )?;
    }
    let ran = execute(sides, n, cx, &plan).await?;
    let after = sides.view(n).await;
    let mut outcome = report::link(&before, &after, ran, Some(loss));
    if after.half(!to.is_sql()).is("PRIMARY") || after.half(!to.is_sql()).unreadable.is_some() {
        outcome.notes.push(format!(
            "{} still is, or will be when it comes back, PRIMARY too (a split brain): reconcile it with milink link reconcile --primary {} --backup-to <folder or URL>",
            capital(to.other().name()),
            if to.is_sql() { "sql-server" } else { "managed-instance" }
        ));
    }
    Ok(outcome)
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

pub async fn mode(p: &Profile, given: &[String], o: &ModeOptions, out: &mut dyn Write) -> Result<Outcome, LinkError> {
    let mut sides = Sides::open(p).await?;
    let dbs = databases(p, given, sides.sql.as_mut(), true).await?;
    if let Some(why) = sides.why[0].clone().filter(|_| o.mode.is_some()) {
        return Err(LinkError::Login { side: "SQL Server", why });
    }
    let needs = [o.mode.is_some(), false, true];
    let mut cx = Ctx {
        journal: journal_of(p),
        out,
        max_wait: Duration::ZERO,
        settle: Duration::ZERO,
        needs,
        one_of_many: false,
    };
    let mut links = Vec::new();
    for (i, db) in dbs.iter().enumerate() {
        let n = Names::of(p, db);
        let (mode, hybrid) = (o.mode, o.hybrid_secondary.filter(|_| i == 0));
        let plan = move |v: &View, _: &Journal| {
            let mut s = Vec::new();
            if let Some(m) = mode {
                s.push(steps::sql_mode(v, "sql-mode", m));
                s.push(steps::mi_mode(v, "mi-mode", m));
            }
            if let Some(h) = hybrid {
                s.push(steps::hybrid(v, h));
            }
            s
        };
        let before = sides.view(&n).await;
        let todo = plan(&before, &cx.journal).iter().filter(|s| s.state == State::Todo).count();
        if todo > 0 {
            exec::confirm(&format!("Change {todo} setting(s) of the link for {db}?"), o.yes)?;
        }
        let ran = execute(&mut sides, &n, &mut cx, &plan).await?;
        links.push(report::link(&before, &sides.view(&n).await, ran, None));
    }
    Ok(Outcome::new("mode".into(), links))
}

pub async fn reconcile(
    p: &Profile,
    given: &[String],
    o: &ReconcileOptions,
    out: &mut dyn Write,
) -> Result<Outcome, LinkError> {
    let yields = o.primary.other();
    let url = o.backup_to.starts_with("https://");
    if yields == Side::ManagedInstance && !url {
        return Err(LinkError::Usage(
            "the managed instance backs up only to a URL: give --backup-to https://<account>.blob.core.windows.net/<container> (with a credential for it on the instance)".into(),
        ));
    }
    if yields == Side::SqlServer && url {
        return Err(LinkError::Usage("--backup-to names a folder on SQL Server's disk for its tail-log backup".into()));
    }
    let mut sides = Sides::open(p).await?;
    let dbs = databases(p, given, sides.sql.as_mut(), true).await?;
    let mut cx = Ctx {
        journal: journal_of(p),
        out,
        max_wait: o.max_wait,
        settle: Duration::ZERO,
        needs: [true, true, true],
        one_of_many: false,
    };
    let mut links = Vec::new();
    for db in dbs {
        let n = Names::of(p, &db);
        let before = sides.view(&n).await;
        let refusals = preconditions::reconcile(&before);
        if !refusals.is_empty() {
            return Err(LinkError::Refused {
                what: format!("reconciling {db} is refused; nothing was changed"),
                refusals,
            });
        }
        let target = backup_target(&cx.journal, &o.backup_to, yields, &db);
        say(
            cx.out,
            &format!(
                "{} keeps the primary role. {} backs up {db} to {target} first: its transactions since the split are kept only there.",
                capital(o.primary.name()),
                capital(yields.name())
            ),
        );
        exec::confirm(&format!("Make {} the secondary of {}?", yields.name(), n.dag), o.yes)?;
        let primary = o.primary;
        let t = target.clone();
        let plan = move |v: &View, _: &Journal| steps::reconcile(v, primary, &t);
        let ran = execute(&mut sides, &n, &mut cx, &plan).await?;
        let mut outcome = report::link(&before, &sides.view(&n).await, ran, None);
        outcome.notes.push(format!("backup: {target}"));
        links.push(outcome);
    }
    Ok(Outcome::new(format!("reconcile, {} primary", o.primary.name()), links))
}

/// Where the yielding side backs up: the path of a reconcile that did not
/// finish (its backup is not taken twice), or a new one named after the
/// database and the time.
fn backup_target(j: &Journal, to: &str, yields: Side, db: &str) -> String {
    let backup = format!("backup-{}:{db}", yields.id());
    let finished = format!("wait-connected:{db}");
    let mut open: Option<String> = None;
    for e in j.read() {
        if e.step == backup && e.event == "started" {
            open = e
                .action
                .as_deref()
                .and_then(|a| a.split(" = N'").nth(1))
                .and_then(|r| r.split("' WITH").next())
                .map(|p| p.replace("''", "'"));
        } else if e.step == finished && e.event == "done" {
            open = None;
        }
    }
    if let Some(path) = open {
        return path;
    }
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"))
        .unwrap_or_default();
    let sep = if to.contains('\\') && !to.contains('/') { '\\' } else { '/' };
    let file: String = db.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    let ext = if yields.is_sql() { "trn" } else { "bak" };
    format!(
        "{}{sep}{file}_{}_{stamp}.{ext}",
        to.trim_end_matches(['/', '\\']),
        if yields.is_sql() { "tail" } else { "copy_only" }
    )
}
