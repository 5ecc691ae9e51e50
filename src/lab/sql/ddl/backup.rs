//! `BACKUP DATABASE | LOG`, as each side allows it. SQL Server writes to disk,
//! which in the lab is its folder (`backup_dir`); a managed instance backs up
//! only to a URL, COPY_ONLY full backups. Each backup is a row in
//! `msdb.dbo.backupset`; a file on disk holds one JSON line per backup set
//! (the lab's own format, not a restorable one) with the log range it covers.

use std::io::Write;

use time::OffsetDateTime;

use super::parse::Backup;
use super::{Ctx, Done};
use crate::lab::sql::SqlError;
use crate::lab::state::{BackupSet, Server, SideId, World, lsn};

pub(super) fn backup(cx: &Ctx<'_>, world: &mut World, b: Backup) -> Done {
    let side = cx.side;
    if world.server(side).database(&b.database).is_none() {
        return Err(SqlError::new(
            911,
            16,
            1,
            format!("Database '{}' does not exist. Make sure that the name is entered correctly.", b.database),
        ));
    }
    let copy_only = b.with.iter().any(|o| o.name == "COPY_ONLY");
    let kind = if b.log { 'L' } else { 'D' };
    let verb = if b.log { "BACKUP LOG" } else { "BACKUP DATABASE" };
    if side == SideId::Mi {
        managed_instance_rules(&b, copy_only)?;
    } else if b.log && !has_full_backup(world.server(side), &b.database) {
        return Err(SqlError::new(
            4214,
            16,
            1,
            "BACKUP LOG cannot be performed because there is no current database backup.",
        ));
    }
    let n = world
        .links
        .iter()
        .find(|l| l.database.eq_ignore_ascii_case(&b.database))
        .map(|l| l.status.log.of(side))
        .unwrap_or(0);
    // A log backup starts where the last one ended.
    let first = match kind {
        'L' => world
            .server(side)
            .backups
            .iter()
            .filter(|x| x.kind == 'L' && x.database.eq_ignore_ascii_case(&b.database))
            .map(|x| x.last)
            .max()
            .unwrap_or(0),
        _ => n,
    };
    let now = OffsetDateTime::now_utc();
    let (target_kind, target) = b.to.first().cloned().unwrap_or_default();
    if side == SideId::Sql {
        if target_kind == "URL" {
            return Err(cannot_open(&target, "50(The request is not supported.)"));
        }
        write_file(world, &target, &b.database, kind, copy_only, first, n, now)?;
    }
    world.server_mut(side).backups.push(BackupSet {
        database: b.database.clone(),
        kind,
        copy_only,
        finished: now,
        first,
        last: n,
        device: Some(target),
    });
    Ok((verb, b.database))
}

/// Only COPY_ONLY full backups, only to URL (T-SQL differences between SQL
/// Server and Azure SQL Managed Instance). UNCONFIRMED: the error numbers.
fn managed_instance_rules(b: &Backup, copy_only: bool) -> Result<(), SqlError> {
    let refuse = |why: &str| SqlError::new(41922, 16, 1, why.to_string());
    if b.log {
        return Err(refuse(
            "BACKUP LOG is not supported on Azure SQL Managed Instance: its log backups are automatic.",
        ));
    }
    if b.to.iter().any(|(k, _)| k != "URL") {
        return Err(refuse("Only BACKUP TO URL is supported on Azure SQL Managed Instance."));
    }
    if !copy_only {
        return Err(refuse("BACKUP DATABASE on Azure SQL Managed Instance needs WITH COPY_ONLY."));
    }
    Ok(())
}

/// A full backup that starts a log chain (not COPY_ONLY).
pub(super) fn has_full_backup(s: &Server, db: &str) -> bool {
    s.backups.iter().any(|b| b.kind == 'D' && !b.copy_only && b.database.eq_ignore_ascii_case(db))
}

fn cannot_open(target: &str, os: &str) -> SqlError {
    SqlError::new(3201, 16, 1, format!("Cannot open backup device '{target}'. Operating system error {os}."))
}

/// Appends the backup set to its file, which must be in SQL Server's folder.
#[allow(clippy::too_many_arguments)]
fn write_file(
    world: &World,
    target: &str,
    database: &str,
    kind: char,
    copy_only: bool,
    first: u64,
    last: u64,
    at: OffsetDateTime,
) -> Result<(), SqlError> {
    let missing = || cannot_open(target, "3(The system cannot find the path specified.)");
    let dir = world.sql.backup_dir.as_ref().ok_or_else(missing)?;
    let path = std::path::Path::new(target);
    let inside = path.parent().and_then(|p| std::fs::canonicalize(p).ok()).zip(std::fs::canonicalize(dir).ok());
    if !inside.is_some_and(|(p, d)| p.starts_with(d)) || path.file_name().is_none() {
        return Err(missing());
    }
    let line = serde_json::json!({
        "format": "milink lab backup set",
        "server": world.sql.name,
        "database": database,
        "type": kind.to_string(),
        "is_copy_only": copy_only,
        "first_lsn": lsn(first).to_string(),
        "last_lsn": lsn(last).to_string(),
        "transactions": last.saturating_sub(first),
        "backup_finish_date": crate::lab::sqltime::datetime_text(at),
    });
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        writeln!(f, "{line}")?;
        f.sync_data()
    };
    write().map_err(|e| cannot_open(target, &format!("{}({e})", e.raw_os_error().unwrap_or(5))))
}
