//! Availability groups and distributed availability groups: created and
//! dropped for real; the link is made when a distributed AG names the
//! managed instance.

use time::OffsetDateTime;

use super::members;
use super::parse::{self, AgAction, Value, opt};
use super::{Ctx, Done};
use crate::lab::catalog::Catalog;
use crate::lab::link::roles::{self, Planned, RoleError};
use crate::lab::sql::{Session, SqlError};
use crate::lab::state::objects::{AvailabilityGroup, AvailabilityMode, Replica};
use crate::lab::state::{Link, SideId, World};

pub(super) fn create_availability_group(
    cx: &Ctx<'_>,
    world: &mut World,
    name: String,
    with: Vec<parse::Opt>,
    databases: Vec<String>,
    replicas: Vec<parse::Replica>,
    distributed: bool,
) -> Done {
    let session = cx.session;
    let c = cx.c;
    create_ag(c, session, world, &name, &with, &databases, &replicas, distributed)?;
    Ok((if distributed { "CREATE AVAILABILITY GROUP (DISTRIBUTED)" } else { "CREATE AVAILABILITY GROUP" }, name))
}

pub(super) fn drop_availability_group(cx: &Ctx<'_>, world: &mut World, name: String) -> Done {
    let side = cx.side;
    let s = world.server_mut(side);
    let Some(i) = s.ags.iter().position(|a| a.name.eq_ignore_ascii_case(&name)) else {
        return Err(SqlError::new(
            15151,
            16,
            1,
            format!(
                "Cannot drop the availability group '{name}', because it does not exist or you do not have permission."
            ),
        ));
    };
    let ag = s.ags.remove(i);
    // The databases stay; they leave the group.
    for d in s.databases.iter_mut().filter(|d| ag.databases.iter().any(|n| n.eq_ignore_ascii_case(&d.name))) {
        d.group_database_id = None;
    }
    Ok(("DROP AVAILABILITY GROUP", name))
}

#[allow(clippy::too_many_arguments)]
fn create_ag(
    c: &Catalog,
    session: &Session,
    world: &mut World,
    name: &str,
    with: &[parse::Opt],
    databases: &[String],
    replicas: &[parse::Replica],
    distributed: bool,
) -> Result<(), SqlError> {
    let side = c.side;
    if !c.facts.properties.get("ishadrenabled").is_some_and(|v| v == &rusqlite::types::Value::Integer(1)) {
        return Err(SqlError::new(
            35221,
            16,
            1,
            "Could not process the operation. Always On Availability Groups replica manager is disabled on this instance of SQL Server. Enable Always On Availability Groups, by using the SQL Server Configuration Manager. Then, restart the SQL Server service, and retry the currently operation. For information about how to enable and disable Always On Availability Groups, see SQL Server Books Online.",
        ));
    }
    if !session.database.eq_ignore_ascii_case("master") {
        return Err(master_only());
    }
    let s = world.server(side);
    if s.ag(name).is_some() {
        // UNCONFIRMED: the number SQL Server raises for a duplicate AG name.
        return Err(SqlError::new(2714, 16, 6, format!("There is already an object named '{name}' in the database.")));
    }
    let cluster_type = match opt(with, "CLUSTER_TYPE").and_then(Value::text).map(|t| t.to_ascii_uppercase()) {
        // 2016 has no CLUSTER_TYPE: it is WSFC only.
        Some(_) if s.version.0 == 13 => return Err(SqlError::syntax_near("CLUSTER_TYPE")),
        Some(t) if t == "NONE" => (2, "NONE"),
        Some(t) if t == "EXTERNAL" => (1, "EXTERNAL"),
        Some(t) if t == "WSFC" => (0, "WSFC"),
        Some(t) => return Err(SqlError::syntax_near(&t)),
        None => (0, "WSFC"),
    };
    let local_name = if distributed {
        // A distributed AG joins AGs; one of them must be here.
        replicas.iter().find(|r| s.ag(&r.name).is_some_and(|a| !a.distributed)).map(|r| r.name.clone())
    } else {
        replicas.iter().find(|r| r.name.eq_ignore_ascii_case(&s.name)).map(|r| r.name.clone())
    };
    if local_name.is_none() {
        return Err(SqlError::new(
            35237,
            16,
            1,
            format!(
                "None of the specified replicas for availability group {name} maps to the instance of SQL Server to which you are connected. Reenter the command, specifying this server instance to host one of the replicas. This replica will be the initial primary replica."
            ),
        ));
    }
    can_join(s, name, databases)?;
    for r in replicas {
        let url = if distributed { "LISTENER_URL" } else { "ENDPOINT_URL" };
        if opt(&r.opts, url).and_then(Value::text).is_none() {
            return Err(SqlError::new(
                35236,
                15,
                1,
                format!(
                    "The endpoint URL was not specified for the availability replica hosted by server instance '{}'. Reenter the command, specifying the endpoint URL of this instance of SQL Server.",
                    r.name
                ),
            ));
        }
    }
    let s = world.server_mut(side);
    let mut out = Vec::new();
    for r in replicas {
        out.push(replica(s, r, distributed));
    }
    // The local replica (or the local AG, in a distributed AG) comes first.
    if let Some(i) = out.iter().position(|r| Some(&r.name) == local_name.as_ref()) {
        out.swap(0, i);
    }
    let id = s.guid();
    for db in databases {
        let g = s.guid();
        if let Some(d) = s.databases.iter_mut().find(|d| d.name.eq_ignore_ascii_case(db)) {
            d.group_database_id = Some(g);
        }
    }
    s.ags.push(AvailabilityGroup {
        id,
        name: name.to_string(),
        distributed,
        cluster_type,
        replicas: out,
        databases: databases.to_vec(),
        created: OffsetDateTime::now_utc(),
    });
    if distributed && side == SideId::Sql && world.link(name).is_none() {
        let local = local_name.unwrap_or_default();
        let database = world.sql.ag(&local).and_then(|a| a.databases.first().cloned()).unwrap_or_default();
        world.links.push(Link::new(name, &database));
    }
    Ok(())
}

/// Each database exists, is in no availability group yet, and has a log chain
/// (FULL recovery and a full backup).
fn can_join(s: &crate::lab::state::Server, name: &str, databases: &[String]) -> Result<(), SqlError> {
    for db in databases {
        let Some(d) = s.database(db) else {
            return Err(SqlError::new(
                35238,
                16,
                1,
                format!(
                    "Database '{db}' cannot be added to availability group '{name}'. The database does not exist on this SQL Server instance. Verify that the database name is correct, then retry the operation."
                ),
            ));
        };
        if d.group_database_id.is_some() {
            return Err(SqlError::new(
                35244,
                16,
                1,
                format!(
                    "Database '{db}' cannot be added to availability group '{name}'. The database is currently joined to another availability group. Verify that the database name is correct and that the database is not joined to an availability group, then retry the operation."
                ),
            ));
        }
        if d.recovery != "FULL" || !super::backup::has_full_backup(s, &d.name) {
            return Err(SqlError::new(
                1475,
                16,
                105,
                format!(
                    "Database \"{db}\" might contain bulk logged changes that have not been backed up. Take a log backup on the principal database or primary database. Then restore this backup either on the mirror database to enable database mirroring or on every secondary database to enable you to join it to the availability group."
                ),
            ));
        }
    }
    Ok(())
}

/// A replica (or, in a distributed AG, a member AG) as the statement gives it.
fn replica(s: &mut crate::lab::state::Server, r: &parse::Replica, distributed: bool) -> Replica {
    let text = |k: &str| opt(&r.opts, k).and_then(Value::text).map(|t| t.to_ascii_uppercase());
    Replica {
        id: s.guid(),
        name: r.name.clone(),
        endpoint_url: opt(&r.opts, if distributed { "LISTENER_URL" } else { "ENDPOINT_URL" })
            .and_then(Value::text)
            .unwrap_or_default(),
        mode: if text("AVAILABILITY_MODE").as_deref() == Some("SYNCHRONOUS_COMMIT") {
            AvailabilityMode::Synchronous
        } else {
            AvailabilityMode::Asynchronous
        },
        failover_manual: text("FAILOVER_MODE").as_deref() != Some("AUTOMATIC"),
        seeding_automatic: text("SEEDING_MODE").as_deref() == Some("AUTOMATIC"),
        session_timeout: text("SESSION_TIMEOUT").and_then(|t| t.parse().ok()).unwrap_or(10),
    }
}

/// `ALTER AVAILABILITY GROUP`: a distributed AG's commit mode, and the link's
/// role changes. The managed instance runs the role changes only; its commit
/// mode is ARM's `replicationMode`.
pub(super) fn alter_availability_group(cx: &Ctx<'_>, world: &mut World, name: String, action: AgAction) -> Done {
    let side = cx.side;
    if !cx.session.database.eq_ignore_ascii_case("master") {
        return Err(master_only());
    }
    let Some(ag) = world.server(side).ag(&name).cloned() else {
        return Err(SqlError::new(
            15151,
            16,
            1,
            format!(
                "Cannot alter the availability group '{name}', because it does not exist or you do not have permission."
            ),
        ));
    };
    let now = OffsetDateTime::now_utc();
    match action {
        AgAction::Modify(members) => members::modify(world, side, &ag, name, &members),
        // The numbers and texts of these refusals are the lab's (UNCONFIRMED), but 911's.
        AgAction::AddDatabase(db) | AgAction::RemoveDatabase(db) if ag.distributed => Err(SqlError::new(
            41199,
            16,
            1,
            format!(
                "Databases are not added to or removed from the distributed availability group '{name}' itself ({db})."
            ),
        )),
        AgAction::AddDatabase(db) => members::add_database(world, side, name, &db),
        AgAction::RemoveDatabase(db) => members::remove_database(world, side, name, &db),
        AgAction::Failover | AgAction::ForceFailoverAllowDataLoss | AgAction::SetRole(_) if !ag.distributed => {
            Err(SqlError::syntax_near(&name))
        }
        AgAction::Failover => {
            link_failover_supported(world, side)?;
            let here = world.link(&name).map(|l| l.status.role(side).to_string()).unwrap_or_default();
            if here != "PRIMARY" {
                return Err(not_primary(&name));
            }
            roles::planned(world, &name, side.other(), Planned::AlreadySynchronized, now)
                .map_err(|e| role_error(&name, &e))?;
            Ok(("ALTER AVAILABILITY GROUP (FAILOVER)", name))
        }
        AgAction::ForceFailoverAllowDataLoss => {
            link_failover_supported(world, side)?;
            roles::forced(world, &name, side, now).map_err(|e| role_error(&name, &e))?;
            Ok(("ALTER AVAILABILITY GROUP (FORCE_FAILOVER_ALLOW_DATA_LOSS)", name))
        }
        AgAction::SetRole(role) => {
            if role != "SECONDARY" {
                return Err(SqlError::syntax_near(&role));
            }
            roles::set_secondary(world, &name, side).map_err(|e| role_error(&name, &e))?;
            Ok(("ALTER AVAILABILITY GROUP (SET ROLE = SECONDARY)", name))
        }
    }
}

fn master_only() -> SqlError {
    SqlError::new(
        35208,
        16,
        1,
        "Availability group DDL operations are permitted only when you are using the master database. Run the 'USE master' statement, and retry your availability group DDL statement.",
    )
}

/// Failing the link over with T-SQL came with SQL Server 2022 CU13 (16.0.4125.3).
fn link_failover_supported(world: &World, side: SideId) -> Result<(), SqlError> {
    let v = world.sql.version;
    if side == SideId::Sql && (v.0, v.1, v.2) < (16, 0, 4125) {
        // UNCONFIRMED: the number and text before CU13.
        return Err(SqlError::new(
            35102,
            16,
            1,
            "Failing over a distributed availability group where one of the participants is Azure SQL Managed Instance is not supported in this version of SQL Server (it needs SQL Server 2022 CU13 or later).",
        ));
    }
    Ok(())
}

fn not_primary(dag: &str) -> SqlError {
    // UNCONFIRMED: the number; the documented rule is that FAILOVER runs on the primary.
    SqlError::new(
        47104,
        16,
        1,
        format!(
            "Cannot fail over distributed availability group '{dag}' from this instance: the local replica is not the primary. Run ALTER AVAILABILITY GROUP … FAILOVER on the primary replica."
        ),
    )
}

/// SQL Server's error for a role change the link cannot make now. 41122 and
/// 41142 are SQL Server's own for availability groups; their use here for a
/// link is UNCONFIRMED.
fn role_error(dag: &str, e: &RoleError) -> SqlError {
    match e {
        RoleError::AlreadyIn("PRIMARY") => SqlError::new(
            41122,
            16,
            1,
            format!(
                "Cannot failover availability group '{dag}' to this instance of SQL Server. The local availability replica is already the primary replica of the availability group. To failover this availability group to another instance, run the failover command on that instance."
            ),
        ),
        RoleError::AlreadyIn(_) => SqlError::new(
            47106,
            16,
            1,
            format!("The local replica of distributed availability group '{dag}' is already in the secondary role."),
        ),
        other => {
            let why = match other {
                RoleError::Seeding => "automatic seeding has not finished".to_string(),
                RoleError::NotConnected => "the replicas are not connected".to_string(),
                RoleError::NotSynchronousCommit => {
                    "the distributed availability group is not in SYNCHRONOUS_COMMIT mode".to_string()
                }
                RoleError::Behind(n) => format!("the secondary database is not synchronized ({n} transactions behind)"),
                RoleError::SplitBrain => "both replicas are in the primary role".to_string(),
                _ => "it has no partner".to_string(),
            };
            SqlError::new(
                41142,
                16,
                1,
                format!(
                    "The availability replica for availability group '{dag}' on the other instance cannot become the primary replica: {why}. Stop the workload, set SYNCHRONOUS_COMMIT, and retry when last_hardened_lsn is equal on both sides."
                ),
            )
        }
    }
}
