//! Carrying a plan out: connect once, then for each step read everything again,
//! plan again, run the first step still to do, and note it in the journal.

use std::io::Write;

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
    /// `linked`: with `--all-databases`, the databases the links carry (to remove
    /// them), else every user database (to create links).
    pub async fn open(p: &Profile, given: &[String], linked: bool) -> Result<Session, LinkError> {
        let arm = Arm::new(p)?;
        let (sql, mi, host) = tokio::join!(login(p, true), login(p, false), endpoint_host(p));
        let mut sql = sql?;
        let databases = databases(p, given, Some(&mut sql), linked).await?;
        Ok(Session { sql, mi: mi?, arm, endpoint_host: host?, databases })
    }

    pub async fn observe(&mut self) -> Result<Observed, LinkError> {
        // The three places at once: one round trip each for the two sides.
        let (sql, mi_cert, arm) = tokio::join!(
            observe::sql_side(&mut self.sql),
            observe::mi_certificate(&mut self.mi),
            observe::arm_side(&self.arm)
        );
        let sql = sql.map_err(|failure| LinkError::Read { side: "SQL Server", failure })?;
        Ok(Observed { sql, mi_cert, arm: arm? })
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
    let (report, session) = tokio::join!(checks::run(p), Session::open(p, given, false));
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

/// Breaks the link the documented way: the instance's DAG resource first, then
/// SQL Server's distributed AG. The AG, the certificates and every database stay.
pub async fn remove(p: &Profile, given: &[String], yes: bool, out: &mut dyn Write) -> Result<Vec<String>, LinkError> {
    let mut session = Session::open(p, given, true).await?;
    if !yes {
        return Err(LinkError::Usage("remove breaks the link: confirm with --yes".into()));
    }
    let journal = Journal::at(p.link.journal.as_deref().unwrap_or(std::path::Path::new("milink-link.journal.jsonl")));
    let observed = session.observe().await?;
    let mut kept = Vec::new();
    // A multi-database link is one DAG for all its databases: removed once.
    let mut gone: Vec<String> = Vec::new();
    for db in session.databases.clone() {
        let n = plan::Names::in_mode(p, &db);
        if gone.iter().any(|g| g.eq_ignore_ascii_case(&n.dag)) {
            kept.push(format!("the database {db} on both sides"));
            continue;
        }
        gone.push(n.dag.clone());
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
