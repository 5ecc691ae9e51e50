//! A multi-database link's databases (preview): `add-database` plans the link
//! with its databases and the new ones (the plan adds them to SQL Server's AG
//! and to the instance's resource, then waits for their seeding), and
//! `remove-database` takes them out of the resource (`removeDatabases`), then
//! out of SQL Server's AG. Every database stays on both sides.

use std::io::Write;

use super::exec::{self, failure, say};
use super::journal::Journal;
use super::plan::multi::PREVIEW_API;
use super::plan::{Action, Names, State, Step, Where};
use super::run::{Outcome, Session};
use super::{LinkError, observe};
use crate::profile::{LinkMode, Profile};
use crate::tsql::ident;

fn multi(p: &Profile) -> Profile {
    let mut p = p.clone();
    p.link.mode = LinkMode::Multi;
    p.all_databases = false;
    p
}

/// Adds `given` to the multi-database link, keeping what it carries.
pub async fn add_databases(
    p: &Profile,
    given: &[String],
    yes: bool,
    out: &mut dyn Write,
) -> Result<Outcome, LinkError> {
    if given.is_empty() {
        return Err(LinkError::Usage("name the databases to add (--database, repeat for several)".into()));
    }
    let p = multi(p);
    let mut session = Session::open(&p, given, false).await?;
    let mut all = observe::linked_databases(&mut session.sql)
        .await
        .map_err(|failure| LinkError::Read { side: "SQL Server", failure })?;
    if all.is_empty() {
        return Err(LinkError::Usage(
            "there is no link to add to yet: create it with milink link apply --link-mode multi".into(),
        ));
    }
    for db in given {
        if !all.iter().any(|d| d.eq_ignore_ascii_case(db)) {
            all.push(db.clone());
        }
    }
    drop(session);
    super::apply(&p, &all, &[], yes, out).await
}

/// Takes `given` out of the multi-database link.
pub async fn remove_databases(
    p: &Profile,
    given: &[String],
    yes: bool,
    out: &mut dyn Write,
) -> Result<Vec<String>, LinkError> {
    if given.is_empty() {
        return Err(LinkError::Usage("name the databases to remove (--database, repeat for several)".into()));
    }
    let p = multi(p);
    let mut session = Session::open(&p, given, true).await?;
    exec::confirm(&format!("Take {} out of the link?", given.join(", ")), yes)?;
    let journal = Journal::at(p.link.journal.as_deref().unwrap_or(std::path::Path::new("milink-link.journal.jsonl")));
    let observed = session.observe().await?;
    let n = Names::in_mode(&p, &given[0]);
    if observed.arm.dag(&n.dag).is_some() {
        let id = format!("mi-remove-databases:{}", n.dag);
        let url = format!(
            "distributedAvailabilityGroups/{}/removeDatabases?api-version={PREVIEW_API}",
            crate::azure::arm::segment(&n.dag)
        );
        let body = serde_json::json!({ "databases": given.iter().map(|d| serde_json::json!({ "databaseName": d })).collect::<Vec<_>>() });
        let step = Step {
            id: id.clone(),
            place: Where::Arm,
            title: format!("Take {} out of the instance's {}", given.join(", "), n.dag),
            state: State::Todo,
            action: Action::Arm { method: "POST".into(), url: url.clone(), body: Some(body.clone()) },
            resolves: vec![],
        };
        let _ = journal.write(&id, "started", Some(&format!("POST {url}")), None, None);
        exec::arm_change(&session.arm, &journal, &step.id, "POST", &url, Some(&body)).await?;
        let _ = journal.write(&id, "done", None, None, None);
        say(out, &format!("done  {id:<34} {}", step.title));
    }
    let ag = observed.sql.ag_of(&given[0]).map(|a| a.name.clone());
    for db in given {
        let Some(ag) = ag.as_ref().filter(|_| observed.sql.ag_of(db).is_some()) else { continue };
        let id = format!("sql-ag-remove:{db}");
        let stmt = format!("USE [master]; ALTER AVAILABILITY GROUP {} REMOVE DATABASE {};", ident(ag), ident(db));
        let _ = journal.write(&id, "started", Some(&stmt), None, None);
        session.sql.exec(&stmt).await.map_err(|f| LinkError::Step { step: id.clone(), message: failure(&f) })?;
        let _ = journal.write(&id, "done", None, None, None);
        say(out, &format!("done  {id:<34} Take {db} out of the availability group {ag}"));
    }
    Ok(given.iter().map(|d| format!("the database {d} on both sides")).collect())
}
