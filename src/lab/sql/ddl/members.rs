//! What `ALTER AVAILABILITY GROUP` changes inside a group: its members' commit
//! mode (`MODIFY`), and the databases it carries (`ADD | REMOVE DATABASE`).

use super::Done;
use super::parse::{self, Value, opt};
use crate::lab::sql::SqlError;
use crate::lab::state::objects::{AvailabilityGroup, AvailabilityMode};
use crate::lab::state::{SideId, World};

/// `MODIFY AVAILABILITY GROUP ON 'ag' WITH (AVAILABILITY_MODE = …)`: SQL Server only.
pub(super) fn modify(
    world: &mut World,
    side: SideId,
    ag: &AvailabilityGroup,
    name: String,
    members: &[parse::Replica],
) -> Done {
    if side == SideId::Mi {
        return Err(SqlError::new(
            40517,
            16,
            1,
            "Keyword or statement option 'MODIFY' is not supported in this version of SQL Server.",
        ));
    }
    let mut modes = Vec::new();
    for m in members {
        let Some(i) = ag.replicas.iter().position(|r| r.name.eq_ignore_ascii_case(&m.name)) else {
            // UNCONFIRMED: SQL Server's number and text for an unknown member.
            return Err(SqlError::new(
                15151,
                16,
                1,
                format!(
                    "Cannot alter the availability replica '{}' of availability group '{name}', because it does not exist or you do not have permission.",
                    m.name
                ),
            ));
        };
        let mode = match opt(&m.opts, "AVAILABILITY_MODE").and_then(Value::text).map(|t| t.to_ascii_uppercase()) {
            Some(t) if t == "SYNCHRONOUS_COMMIT" => AvailabilityMode::Synchronous,
            Some(t) if t == "ASYNCHRONOUS_COMMIT" => AvailabilityMode::Asynchronous,
            Some(t) => return Err(SqlError::syntax_near(&t)),
            None => continue,
        };
        modes.push((i, mode));
    }
    if let Some(a) = world.server_mut(side).ags.iter_mut().find(|a| a.name.eq_ignore_ascii_case(&name)) {
        for (i, mode) in modes {
            a.replicas[i].mode = mode;
        }
    }
    Ok(("ALTER AVAILABILITY GROUP (MODIFY)", name))
}

/// `ADD DATABASE [db]` (the refusals' numbers but 911's are the lab's, UNCONFIRMED).
pub(super) fn add_database(world: &mut World, side: SideId, name: String, db: &str) -> Done {
    let Some(d) = world.server(side).database(db).cloned() else {
        return Err(SqlError::new(
            911,
            16,
            1,
            format!("Database '{db}' does not exist. Make sure that the name is entered correctly."),
        ));
    };
    if d.group_database_id.is_some() {
        return Err(SqlError::new(
            35250,
            16,
            7,
            format!("Database '{db}' is already joined to an availability group."),
        ));
    }
    let s = world.server_mut(side);
    let group_db = s.guid();
    if let Some(x) = s.databases.iter_mut().find(|x| x.name.eq_ignore_ascii_case(db)) {
        x.group_database_id = Some(group_db);
    }
    if let Some(a) = s.ags.iter_mut().find(|a| a.name.eq_ignore_ascii_case(&name)) {
        a.databases.push(d.name.clone());
    }
    Ok(("ALTER AVAILABILITY GROUP (ADD DATABASE)", name))
}

/// `REMOVE DATABASE [db]`: the database stays, out of the group; its rows leave
/// the DMVs at once, so its state in every link over this AG goes too.
pub(super) fn remove_database(world: &mut World, side: SideId, name: String, db: &str) -> Done {
    let s = world.server_mut(side);
    let Some(a) = s.ags.iter_mut().find(|a| a.name.eq_ignore_ascii_case(&name)) else {
        unreachable!("the caller read the group")
    };
    if !a.databases.iter().any(|x| x.eq_ignore_ascii_case(db)) {
        return Err(SqlError::new(35242, 16, 17, format!("Database '{db}' is not in availability group '{name}'.")));
    }
    a.databases.retain(|x| !x.eq_ignore_ascii_case(db));
    if let Some(x) = s.databases.iter_mut().find(|x| x.name.eq_ignore_ascii_case(db)) {
        x.group_database_id = None;
    }
    let dags: Vec<String> = s
        .ags
        .iter()
        .filter(|a| a.distributed && a.replicas.iter().any(|r| r.name.eq_ignore_ascii_case(&name)))
        .map(|a| a.name.clone())
        .collect();
    world
        .links
        .retain(|l| !(l.database.eq_ignore_ascii_case(db) && dags.iter().any(|d| d.eq_ignore_ascii_case(&l.dag))));
    Ok(("ALTER AVAILABILITY GROUP (REMOVE DATABASE)", name))
}
