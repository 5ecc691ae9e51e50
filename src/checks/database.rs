//! Each database of the profile: a user database, ONLINE, FULL recovery, a
//! non-COPY_ONLY full backup, one log file, no FILESTREAM, TDE, log space and
//! log-backup recency.

use super::collect::{Evidence, Facts};
use super::{F, facts, rows};
use crate::probe::sql::{Fields, Record};
use crate::profile::Profile;
use crate::report::{Finding, Severity, Side};
use crate::tsql::ident;

const ALL: [&str; 9] = [
    "database-exists",
    "database-online",
    "database-recovery-full",
    "database-full-backup",
    "database-log-files",
    "database-filestream",
    "database-tde",
    "database-log-space",
    "database-log-backup",
];

fn hours_since(t: &str) -> Option<i64> {
    let at = crate::probe::sql::datetime(t)?;
    Some((time::OffsetDateTime::now_utc() - at.assume_utc()).whole_hours())
}

pub fn evaluate(ev: &Evidence, p: &Profile, out: &mut Vec<Finding>) {
    let s = Side::SqlServer;
    if p.databases.is_empty() {
        out.push(F::skip("database-exists", s, "no databases in the profile").done());
        return;
    }
    let f = facts(&ev.sql, "login-sql");
    for db in &p.databases {
        let push = |out: &mut Vec<Finding>, f: F| out.push(f.subject(db.clone()).done());
        let dbs = match f.clone().and_then(|f| rows(f, "databases", "login-sql-permissions")) {
            Err(why) => {
                for id in ALL {
                    push(out, F::new(id, s, why.0).ev("reason", why.1.clone()));
                }
                continue;
            }
            Ok(d) => d,
        };
        let Some(row) = dbs.iter().find(|r| r.str("name").is_some_and(|n| n.eq_ignore_ascii_case(db))) else {
            push(
                out,
                F::new("database-exists", s, Severity::Fail)
                    .remedy("No database of that name on SQL Server: check the profile's databases."),
            );
            for id in &ALL[1..] {
                push(out, F::skip(id, s, "the database does not exist (database-exists)"));
            }
            continue;
        };
        let id = row.int("database_id").unwrap_or(0);
        if id <= 4 {
            push(
                out,
                F::new("database-exists", s, Severity::Fail)
                    .ev("database_id", id)
                    .remedy("System databases cannot be replicated by the link: script their objects instead."),
            );
            continue;
        }
        push(out, F::new("database-exists", s, Severity::Pass).ev("database_id", id));
        let facts = f.as_ref().expect("rows came from facts");
        one(facts, db, id, row, p, &mut |f| push(out, f));
    }
}

fn one(facts: &Facts, db: &str, id: i64, row: &Record, _: &Profile, emit: &mut dyn FnMut(F)) {
    let s = Side::SqlServer;
    let state = row.str("state_desc").unwrap_or("");
    let f = F::new("database-online", s, Severity::Pass).ev("state", state);
    emit(if state == "ONLINE" {
        f
    } else {
        f.severity(Severity::Fail).remedy(format!("ALTER DATABASE {} SET ONLINE;", ident(db)))
    });

    let rm = row.str("recovery_model_desc").unwrap_or("");
    let f = F::new("database-recovery-full", s, Severity::Pass).ev("recovery_model", rm);
    emit(if rm == "FULL" {
        f
    } else {
        f.severity(Severity::Fail).remedy(format!("ALTER DATABASE {q} SET RECOVERY FULL; then take a full backup: BACKUP DATABASE {q} TO DISK = N'<path>' WITH CHECKSUM;", q = ident(db)))
    });

    match rows(facts, "backups", "login-sql-permissions") {
        Err(why) => {
            emit(F::new("database-full-backup", s, why.0).ev("reason", why.1.clone()));
            emit(F::new("database-log-backup", s, why.0).ev("reason", why.1));
        }
        Ok(b) => {
            let of = |kind: &str, copy_only: bool| {
                b.iter()
                    .filter(|r| r.str("database_name").is_some_and(|n| n.eq_ignore_ascii_case(db)))
                    .filter(|r| r.str("type") == Some(kind) && r.flag("is_copy_only") == Some(copy_only))
                    .filter_map(|r| r.str("last_finish"))
                    .max()
                    .map(str::to_string)
            };
            let full = of("D", false);
            let f = F::new("database-full-backup", s, Severity::Pass);
            emit(match &full {
                Some(t) => f.ev("last_full_backup", t.clone()),
                None => f.severity(Severity::Fail).ev("copy_only_full_backups", of("D", true).is_some()).remedy(format!(
                    "Take a full backup that is not COPY_ONLY (without one, link creation fails with error 1475): BACKUP DATABASE {} TO DISK = N'<path>' WITH CHECKSUM;",
                    ident(db)
                )),
            });
            let log = of("L", false);
            let f = F::new("database-log-backup", s, Severity::Pass);
            emit(match log.as_deref().and_then(|t| hours_since(t).map(|h| (t, h))) {
                Some((t, h)) if h <= 24 => f.ev("last_log_backup", t).ev("hours_ago", h),
                Some((t, h)) => f.severity(Severity::Warn).ev("last_log_backup", t).ev("hours_ago", h).remedy("Schedule regular log backups: while the link replicates, the log cannot be truncated until records reach the managed instance, and it grows."),
                None => f.severity(Severity::Warn).ev("last_log_backup", "none").remedy("Schedule regular log backups (after seeding completes) so the log does not grow until it is full."),
            });
        }
    }

    match rows(facts, "files", "login-sql-permissions") {
        Err(why) => {
            emit(F::new("database-log-files", s, why.0).ev("reason", why.1.clone()));
            emit(F::new("database-filestream", s, why.0).ev("reason", why.1));
        }
        Ok(files) => {
            let mine: Vec<&Record> = files.iter().filter(|r| r.int("database_id") == Some(id)).collect();
            let logs = mine.iter().filter(|r| r.str("type_desc") == Some("LOG")).count();
            let f = F::new("database-log-files", s, Severity::Pass).ev("log_files", logs);
            emit(if logs == 1 {
                f
            } else {
                f.severity(Severity::Fail).remedy("The link does not support databases with more than one log file: empty and remove the extra ones (DBCC SHRINKFILE (<file>, EMPTYFILE); ALTER DATABASE … REMOVE FILE <file>).")
            });
            let fs = mine.iter().filter(|r| r.str("type_desc") == Some("FILESTREAM")).count();
            let f = F::new("database-filestream", s, Severity::Pass).ev("filestream_files", fs);
            emit(if fs == 0 {
                f
            } else {
                f.severity(Severity::Fail).remedy("FILESTREAM and FileTable are not supported by the link; memory-optimized (In-Memory OLTP) containers, which show the same way, need a Business Critical managed instance.")
            });
        }
    }

    let tde = row.flag("is_encrypted").unwrap_or(false);
    let f = F::new("database-tde", s, Severity::Pass).ev("is_encrypted", tde);
    emit(if tde {
        f.severity(Severity::Info).remedy("The database uses TDE: migrate its certificate (or AKV key) to the managed instance before creating the link.")
    } else {
        f
    });

    match rows(facts, "log_space", "login-sql-permissions") {
        Err(why) => emit(F::new("database-log-space", s, why.0).ev("reason", why.1)),
        Ok(space) => {
            let used = space
                .iter()
                .find(|r| r.str("database name").is_some_and(|n| n.eq_ignore_ascii_case(db)))
                .and_then(|r| r.get("log space used (%)"))
                .and_then(|v| v.as_f64());
            let f = F::new("database-log-space", s, Severity::Pass)
                .ev("log_reuse_wait", row.str("log_reuse_wait_desc").unwrap_or(""));
            emit(match used {
                None => f.severity(Severity::Error).ev("note", "not in DBCC SQLPERF(LOGSPACE)"),
                Some(u) if u >= 90.0 => f.ev("used_percent", u).severity(Severity::Fail).remedy(
                    "The log is nearly full: at 100% replication stops. Back up the log, or grow the log file.",
                ),
                Some(u) if u >= 70.0 => f
                    .ev("used_percent", u)
                    .severity(Severity::Warn)
                    .remedy("The log is filling: take log backups more often or grow the log file."),
                Some(u) => f.ev("used_percent", u),
            });
        }
    }
}
