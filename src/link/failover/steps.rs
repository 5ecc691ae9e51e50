//! The steps of the link's life, each decided from the view: to do, done or
//! blocked. A step is done when what it makes is there (a mode, a role, a
//! backup, a link gone), so a re-run skips it without asking the journal,
//! except where the link is gone and only the journal remembers the failover.

use serde_json::json;

use super::super::observe::NEW_API;
use super::super::plan::steps::sql;
use super::super::plan::{Action, State, Step, Until, Where};
use super::view::View;
use super::{Cleanup, Side};
use crate::azure::arm::segment;
use crate::tsql::{ident, nstring};

const MASTER: &str = "USE [master]; ";

fn arm(id: String, title: String, method: &str, url: String, body: Option<serde_json::Value>, done: bool) -> Step {
    Step {
        id,
        place: Where::Arm,
        title,
        state: if done { State::Done } else { State::Todo },
        action: Action::Arm { method: method.into(), url, body },
        resolves: vec![],
    }
}

fn wait(id: String, title: String, database: &str, until: Until, done: bool) -> Step {
    Step {
        id,
        place: Where::Milink,
        title,
        state: if done { State::Done } else { State::Todo },
        action: Action::Wait { database: database.into(), until },
        resolves: vec![],
    }
}

fn dag_url(v: &View, suffix: &str) -> String {
    let api = if v.arm.api.is_empty() { NEW_API } else { v.arm.api.as_str() };
    format!("distributedAvailabilityGroups/{}{suffix}?api-version={api}", segment(&v.dag))
}

/// `ALTER AVAILABILITY GROUP … MODIFY AVAILABILITY GROUP ON` for every member
/// of SQL Server's half, as the failover article runs it on SQL Server.
pub fn sql_mode(v: &View, id: &str, mode: &str) -> Step {
    let members: Vec<String> =
        v.sql.members.iter().map(|(m, _)| format!("{} WITH (AVAILABILITY_MODE = {mode})", nstring(m))).collect();
    let stmt = format!(
        "{MASTER}ALTER AVAILABILITY GROUP {} MODIFY AVAILABILITY GROUP ON {};",
        ident(&v.dag),
        members.join(", ")
    );
    let mut s = sql(
        Where::SqlServer,
        format!("{id}:{}", v.database),
        format!("Set {} to {mode} on SQL Server (both members)", v.dag),
        stmt.clone(),
        stmt,
        v.sql.all_in(mode),
        vec![],
    );
    if members.is_empty() {
        s.state = State::Blocked(format!("SQL Server has no distributed availability group {}", v.dag));
    }
    s
}

/// ARM's `replicationMode` of the instance's half (PATCH).
pub fn mi_mode(v: &View, id: &str, mode: &str) -> Step {
    let arm_mode = if mode == "SYNCHRONOUS_COMMIT" { "Sync" } else { "Async" };
    let done = v.arm.replication_mode.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(arm_mode));
    arm(
        format!("{id}:{}", v.database),
        format!("Set the managed instance's {} to {arm_mode} (ARM replicationMode)", v.dag),
        "PATCH",
        dag_url(v, ""),
        Some(json!({ "properties": { "replicationMode": arm_mode } })),
        done,
    )
}

/// The instance's `hybridSecondaryUsage` (PATCH of the instance).
pub fn hybrid(v: &View, usage: &str) -> Step {
    let api = if v.arm.api.is_empty() { NEW_API } else { v.arm.api.as_str() };
    let done = v.arm.hybrid_secondary_usage.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(usage));
    arm(
        "hybrid-secondary".into(),
        format!("Set the instance's hybridSecondaryUsage to {usage}"),
        "PATCH",
        format!("?api-version={api}"),
        Some(json!({ "properties": { "hybridSecondaryUsage": usage } })),
        done,
    )
}

/// A planned failover to `to`: synchronous commit (to the instance), the LSN
/// gate, the failover, the roles verified, asynchronous commit again, then
/// what `cleanup` removes. `failed_over`: the roles are swapped (or the link
/// is gone after the journal saw the failover done).
pub fn planned(v: &View, to: Side, cleanup: Cleanup, failed_over: bool, after: &str, force: bool) -> Vec<Step> {
    let db = &v.database;
    let cutover = to == Side::ManagedInstance && v.sql.version.0 < 16;
    // Once the link is being removed, what came before it is behind us.
    let past = failed_over || !v.arm.dag || !v.sql.dag;
    let mut steps = Vec::new();
    if to == Side::ManagedInstance {
        // The failover article switches to synchronous commit first (not needed back to SQL Server 2022).
        steps.push(done_if(sql_mode(v, "sql-mode-sync", "SYNCHRONOUS_COMMIT"), past));
        steps.push(done_if(mi_mode(v, "mi-mode-sync", "SYNCHRONOUS_COMMIT"), past));
    }
    steps.push(wait(
        format!("wait-lsn:{db}"),
        format!("Wait until last_hardened_lsn of {db} is equal on both sides and stays so"),
        db,
        Until::HardenedLsnsEqual,
        past,
    ));
    if !cutover {
        steps.push(failover_step(v, to, failed_over));
        let connected = v.half(to.is_sql()).connected == Some(true);
        steps.push(wait(
            format!("wait-roles:{db}"),
            format!("Wait until {} is PRIMARY on both sides and connected", to.name()),
            db,
            Until::Roles { primary: to.place() },
            failed_over && (connected || !v.arm.dag || !v.sql.dag),
        ));
        if to == Side::ManagedInstance {
            // After a planned failover the service goes back to asynchronous commit.
            let gone = v.gone();
            steps.push(done_if(sql_mode(v, "sql-mode-async", "ASYNCHRONOUS_COMMIT"), gone || !v.sql.dag));
            steps.push(done_if(mi_mode(v, "mi-mode-async", "ASYNCHRONOUS_COMMIT"), gone || !v.arm.dag));
        }
    }
    if cleanup != Cleanup::Keep {
        if !cutover {
            let mut guard = wait(
                format!("first-backup:{db}"),
                format!("Wait for {}'s first full backup of {db} after the failover", to.name()),
                db,
                Until::FullBackup { side: to.place(), after: after.to_string() },
                v.gone() || has_full_backup_after(v, to, after),
            );
            if force && guard.state == State::Todo {
                guard.state = State::Done;
                guard.title = format!("{} (skipped with --force: no full backup after the failover yet)", guard.title);
            }
            steps.push(guard);
        }
        steps.extend(remove(v, cleanup));
    }
    steps
}

fn done_if(mut s: Step, done: bool) -> Step {
    if done {
        s.state = State::Done;
    }
    s
}

/// The failover itself: ARM where the instance knows it (Failover Planned to
/// the instance, setRole Secondary Planned back to SQL Server), else T-SQL
/// `FAILOVER` on the primary (SQL Server 2022 CU13 and later).
fn failover_step(v: &View, to: Side, done: bool) -> Step {
    let db = &v.database;
    let id = format!("failover-to-{}:{db}", to.id());
    let title = format!("Fail {} over to {} (planned)", v.dag, to.name());
    if v.arm.new_schema() {
        let (suffix, body) = match to {
            Side::ManagedInstance => ("/failover", json!({ "failoverType": "Planned" })),
            Side::SqlServer => ("/setRole", json!({ "instanceRole": "Secondary", "roleChangeType": "Planned" })),
        };
        return arm(id, title, "POST", dag_url(v, suffix), Some(body), done);
    }
    let stmt = format!("{MASTER}ALTER AVAILABILITY GROUP {} FAILOVER;", ident(&v.dag));
    sql(to.other().place(), id, title, stmt.clone(), stmt, done, vec![])
}

/// A forced failover to `to` (the primary is gone): ARM `ForcedAllowDataLoss`
/// to the instance, or T-SQL on the secondary.
pub fn forced(v: &View, to: Side, done: bool) -> Step {
    let db = &v.database;
    let id = format!("forced-failover-to-{}:{db}", to.id());
    let title = format!("Force {} over to {} (data loss allowed)", v.dag, to.name());
    if to == Side::ManagedInstance && v.arm.new_schema() {
        let body = json!({ "failoverType": "ForcedAllowDataLoss" });
        return arm(id, title, "POST", dag_url(v, "/failover"), Some(body), done);
    }
    let stmt = format!("{MASTER}ALTER AVAILABILITY GROUP {} FORCE_FAILOVER_ALLOW_DATA_LOSS;", ident(&v.dag));
    sql(to.place(), id, title, stmt.clone(), stmt, done, vec![])
}

/// After a planned failover for a migration: the instance's DAG, SQL Server's,
/// and with `DropAgAndDag` SQL Server's AG. Databases are never dropped.
fn remove(v: &View, cleanup: Cleanup) -> Vec<Step> {
    let db = &v.database;
    let mut out = vec![
        arm(
            format!("remove-mi-link:{db}"),
            format!("Delete the managed instance's {}", v.dag),
            "DELETE",
            dag_url(v, ""),
            None,
            !v.arm.dag,
        ),
        {
            let stmt = format!("{MASTER}DROP AVAILABILITY GROUP {};", ident(&v.dag));
            sql(
                Where::SqlServer,
                format!("remove-sql-dag:{db}"),
                format!("Drop SQL Server's distributed availability group {}", v.dag),
                stmt.clone(),
                stmt,
                !v.sql.dag,
                vec![],
            )
        },
    ];
    if cleanup == Cleanup::DropAgAndDag {
        let ag = v.sql.local_ag.clone();
        let stmt = ag.as_ref().map(|a| format!("{MASTER}DROP AVAILABILITY GROUP {};", ident(a))).unwrap_or_default();
        out.push(sql(
            Where::SqlServer,
            format!("remove-sql-ag:{db}"),
            format!("Drop SQL Server's availability group {}", ag.as_deref().unwrap_or("(none left)")),
            stmt.clone(),
            stmt,
            ag.is_none(),
            vec![],
        ));
    }
    out
}

/// The new primary took a full backup (not COPY_ONLY) that finished after `after`.
pub fn has_full_backup_after(v: &View, side: Side, after: &str) -> bool {
    v.half(side.is_sql()).backups.iter().any(|b| b.kind == "D" && !b.copy_only && b.finished.as_str() >= after)
}

/// Split brain repair: the side that gives up backs up first (a tail-log
/// backup on SQL Server, a COPY_ONLY full backup of the instance), then
/// becomes secondary, then the link connects again.
pub fn reconcile(v: &View, primary: Side, target: &str) -> Vec<Step> {
    let db = &v.database;
    let yields = primary.other();
    let backed_up = v.half(yields.is_sql()).backups.iter().any(|b| b.device.as_deref() == Some(target));
    let backup = match yields {
        Side::SqlServer => format!("BACKUP LOG {} TO DISK = {} WITH CHECKSUM;", ident(db), nstring(target)),
        Side::ManagedInstance => {
            format!("BACKUP DATABASE {} TO URL = {} WITH COPY_ONLY, CHECKSUM;", ident(db), nstring(target))
        }
    };
    let kind = if yields.is_sql() { "tail-log" } else { "COPY_ONLY full" };
    let mut steps = vec![sql(
        yields.place(),
        format!("backup-{}:{db}", yields.id()),
        format!("Take a {kind} backup of {db} on {} to {target}", yields.name()),
        backup.clone(),
        backup,
        backed_up,
        vec![],
    )];
    let secondary = v.half(yields.is_sql()).is("SECONDARY");
    let id = format!("set-secondary-{}:{db}", yields.id());
    let title = format!("Make {} the secondary of {}", yields.name(), v.dag);
    steps.push(if yields == Side::ManagedInstance && v.arm.new_schema() {
        let body = json!({ "instanceRole": "Secondary", "roleChangeType": "Forced" });
        arm(id, title, "POST", dag_url(v, "/setRole"), Some(body), secondary)
    } else {
        let stmt = format!("{MASTER}ALTER AVAILABILITY GROUP {} SET (ROLE = SECONDARY);", ident(&v.dag));
        sql(yields.place(), id, title, stmt.clone(), stmt, secondary, vec![])
    });
    let synchronizing = v.half(primary.is_sql()).connected == Some(true)
        && v.half(yields.is_sql()).database.as_ref().is_some_and(|d| d.synchronization_state.starts_with("SYNCHRONIZ"));
    steps.push(wait(
        format!("wait-connected:{db}"),
        format!("Wait until {} is CONNECTED and synchronizing again", v.dag),
        db,
        Until::Connected,
        secondary && synchronizing,
    ));
    steps
}
