//! Each database of the profile: a user database, ONLINE, FULL recovery, a
//! non-COPY_ONLY full backup, one log file, no FILESTREAM, memory-optimized data
//! only into Business Critical, its TDE certificate on the managed instance, no
//! database of its name there yet, log space and log-backup recency.

use super::collect::{Evidence, Facts};
use super::{F, facts, rows};
use crate::probe::sql::{Fields, Record};
use crate::profile::Profile;
use crate::report::{Finding, Severity, Side};
use crate::tsql::ident;

/// Log space used past these is a warning, then a failure (replication stops at 100%).
pub const LOG_FILLING_PERCENT: f64 = 70.0;
pub const LOG_FULL_PERCENT: f64 = 90.0;

const ALL: [&str; 11] = [
    "database-exists",
    "database-online",
    "database-recovery-full",
    "database-full-backup",
    "database-log-files",
    "database-filestream",
    "database-in-memory",
    "database-tde",
    "database-mi-name-free",
    "database-log-space",
    "database-log-backup",
];

fn hours_since(t: &str) -> Option<i64> {
    let at = crate::probe::sql::datetime(t)?;
    Some((time::OffsetDateTime::now_utc() - at.assume_utc()).whole_hours())
}

pub fn evaluate(ev: &Evidence, p: &Profile, out: &mut Vec<Finding>) {
    let s = Side::SqlServer;
    let databases = ev.databases(p);
    if databases.is_empty() {
        out.push(F::skip("database-exists", s, "no databases in the profile").done());
        return;
    }
    let f = facts(&ev.sql, "login-sql");
    // What the managed instance says, for the checks that compare with it.
    let mi = facts(&ev.mi, "login-mi");
    for db in &databases {
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
                    .found("no database of that name")
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
                    .found(format!("a system database (database_id {id})"))
                    .ev("database_id", id)
                    .remedy("System databases cannot be replicated by the link: script their objects instead."),
            );
            continue;
        }
        push(
            out,
            F::new("database-exists", s, Severity::Pass).found(format!("database_id {id}")).ev("database_id", id),
        );
        let facts = f.as_ref().expect("rows came from facts");
        one(facts, db, id, row, &mut |f| push(out, f));
        against_mi(facts, &mi, db, id, row, &mut |f| push(out, f));
    }
}

fn one(facts: &Facts, db: &str, id: i64, row: &Record, emit: &mut dyn FnMut(F)) {
    let s = Side::SqlServer;
    let state = row.str("state_desc").unwrap_or("");
    let f = F::new("database-online", s, Severity::Pass).found(state).ev("state", state);
    emit(if state == "ONLINE" {
        f
    } else {
        f.severity(Severity::Fail).remedy(format!("ALTER DATABASE {} SET ONLINE;", ident(db)))
    });

    let rm = row.str("recovery_model_desc").unwrap_or("");
    let f =
        F::new("database-recovery-full", s, Severity::Pass).ev("recovery_model", rm).found(format!("{rm} recovery"));
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
                Some(t) => f.found(format!("last full backup {}", t.get(..16).unwrap_or(t))).ev("last_full_backup", t.clone()),
                None => f
                    .severity(Severity::Fail)
                    .found(if of("D", true).is_some() { "only COPY_ONLY full backups" } else { "no full backup" })
                    .ev("copy_only_full_backups", of("D", true).is_some()).remedy(format!(
                    "Take a full backup that is not COPY_ONLY (without one, link creation fails with error 1475): BACKUP DATABASE {} TO DISK = N'<path>' WITH CHECKSUM;",
                    ident(db)
                )),
            });
            let log = of("L", false);
            let f = F::new("database-log-backup", s, Severity::Pass);
            emit(match log.as_deref().and_then(|t| hours_since(t).map(|h| (t, h))) {
                Some((t, h)) if h <= 24 => f.found(format!("last log backup {h} h ago")).ev("last_log_backup", t).ev("hours_ago", h),
                Some((t, h)) => f.severity(Severity::Warn).found(format!("last log backup {h} h ago")).ev("last_log_backup", t).ev("hours_ago", h).remedy("Schedule regular log backups: while the link replicates, the log cannot be truncated until records reach the managed instance, and it grows."),
                None => f.severity(Severity::Warn).found("no log backup").ev("last_log_backup", "none").remedy("Schedule regular log backups (after seeding completes) so the log does not grow until it is full."),
            });
        }
    }

    match rows(facts, "files", "login-sql-permissions") {
        Err(why) => emit(F::new("database-log-files", s, why.0).ev("reason", why.1)),
        Ok(files) => {
            let logs =
                files.iter().filter(|r| r.int("database_id") == Some(id) && r.str("type_desc") == Some("LOG")).count();
            let f = F::new("database-log-files", s, Severity::Pass)
                .found(if logs == 1 { "one log file".to_string() } else { format!("{logs} log files") })
                .ev("log_files", logs);
            emit(if logs == 1 {
                f
            } else {
                f.severity(Severity::Fail).remedy("The link does not support databases with more than one log file: empty and remove the extra ones (DBCC SHRINKFILE (<file>, EMPTYFILE); ALTER DATABASE … REMOVE FILE <file>).")
            });
        }
    }

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
                Some(u) if u >= LOG_FULL_PERCENT => {
                    f.found(format!("log {u:.0}% used")).ev("used_percent", u).severity(Severity::Fail).remedy(
                        "The log is nearly full: at 100% replication stops. Back up the log, or grow the log file.",
                    )
                }
                Some(u) if u >= LOG_FILLING_PERCENT => f
                    .found(format!("log {u:.0}% used"))
                    .ev("used_percent", u)
                    .severity(Severity::Warn)
                    .remedy("The log is filling: take log backups more often or grow the log file."),
                Some(u) => f.found(format!("log {u:.0}% used")).ev("used_percent", u),
            });
        }
    }
}

/// Filegroups of one kind (`FD` FILESTREAM, `FX` memory-optimized) in the database.
fn filegroups<'a>(groups: &'a [Record], kind: &str) -> Vec<&'a str> {
    groups.iter().filter(|g| g.str("type") == Some(kind)).filter_map(|g| g.str("name")).collect()
}

type Rows<'a> = Result<&'a [Record], (Severity, String)>;

/// Checks that need the managed instance's side too.
fn against_mi(
    facts: &Facts,
    mi: &Result<&Facts, (Severity, String)>,
    db: &str,
    id: i64,
    row: &Record,
    emit: &mut dyn FnMut(F),
) {
    let s = Side::SqlServer;
    let mi_rows = |key: &str| mi.clone().and_then(|f| rows(f, key, "login-mi-permissions"));

    match rows(facts, &format!("filegroups:{db}"), "login-sql-permissions") {
        Err(why) => {
            emit(F::new("database-filestream", s, why.0).ev("reason", why.1.clone()));
            emit(F::new("database-in-memory", s, why.0).ev("reason", why.1));
        }
        Ok(groups) => {
            let fs = filegroups(groups, "FD");
            let f = F::new("database-filestream", s, Severity::Pass)
                .found(if fs.is_empty() {
                    "none".to_string()
                } else {
                    format!("FILESTREAM filegroups: {}", fs.join(", "))
                })
                .ev("filestream_filegroups", fs.clone());
            emit(if fs.is_empty() {
                f
            } else {
                f.severity(Severity::Fail).remedy("FILESTREAM and FileTable are not supported by the link: move that data out of the database (and remove the FILESTREAM filegroup) before creating the link.")
            });
            emit(in_memory(filegroups(groups, "FX"), mi_rows("tier")));
        }
    }

    emit(tde(facts, id, row, mi_rows("certificates")));
    emit(name_free(db, mi_rows("databases")));
}

fn in_memory(xtp: Vec<&str>, tier: Rows<'_>) -> F {
    let f =
        F::new("database-in-memory", Side::SqlServer, Severity::Pass).ev("memory_optimized_filegroups", xtp.clone());
    if xtp.is_empty() {
        return f.found("none");
    }
    let f = f.found(format!("memory-optimized filegroup {}", xtp.join(", ")));
    let sku = tier.as_ref().ok().and_then(|r| r.first()).and_then(|r| r.str("sku")).map(str::to_string);
    let f = f.ev("managed_instance_tier", sku.clone().unwrap_or_else(|| "unknown".into()));
    let need = "A database with a memory-optimized filegroup (In-Memory OLTP) can only be replicated to a Business Critical managed instance";
    match sku.as_deref() {
        Some("Business Critical") => f,
        Some(other) => f.severity(Severity::Fail).found(format!("memory-optimized data, and the instance is {other}")).remedy(format!(
            "{need}: change the instance to Business Critical, or move the memory-optimized tables to disk-based ones and remove the filegroup first."
        )),
        None => f
            .severity(Severity::Warn)
            .ev("reason", tier.err().map(|e| e.1).unwrap_or_else(|| "no row in sys.server_resource_stats".into()))
            .remedy(format!(
                "{need}: the instance's tier could not be read (sys.server_resource_stats); confirm it is Business Critical."
            )),
    }
}

fn tde(facts: &Facts, id: i64, row: &Record, mi_certs: Rows<'_>) -> F {
    let encrypted = row.flag("is_encrypted").unwrap_or(false);
    let f = F::new("database-tde", Side::SqlServer, Severity::Pass).ev("is_encrypted", encrypted);
    if !encrypted {
        return f.found("not encrypted");
    }
    let f = f.found("encrypted (TDE)");
    let keys = match rows(facts, "encryption_keys", "login-sql-permissions") {
        Err(why) => return f.severity(why.0).ev("reason", why.1),
        Ok(k) => k,
    };
    let Some(key) = keys.iter().find(|k| k.int("database_id") == Some(id)) else {
        return f.severity(Severity::Warn).ev("note", "is_encrypted = 1 but no row in sys.dm_database_encryption_keys");
    };
    let thumbprint = key.str("encryptor_thumbprint").unwrap_or("").to_string();
    let f = f
        .ev("encryption_state", key.str("encryption_state_desc").unwrap_or(""))
        .ev("encryptor_type", key.str("encryptor_type").unwrap_or(""))
        .ev("encryptor_thumbprint", thumbprint.clone());
    if key.str("encryptor_type") != Some("CERTIFICATE") {
        return f.severity(Severity::Warn).remedy("The database encryption key is protected by an asymmetric key (EKM, Azure Key Vault): give the managed instance the same key as its TDE protector (customer-managed TDE) before creating the link. T-SQL cannot show whether it has it.");
    }
    let name = key.str("certificate_name").unwrap_or("<certificate>").to_string();
    let f = f.ev("certificate", name.clone());
    match mi_certs {
        Err(why) => f.severity(Severity::Warn).ev("reason", why.1).remedy(
            "The managed instance's certificates could not be read: make sure the TDE certificate is there before creating the link.",
        ),
        Ok(certs) => match certs.iter().find(|c| c.str("thumbprint").is_some_and(|t| t.eq_ignore_ascii_case(&thumbprint))) {
            Some(c) => f
                .found(format!("encrypted; its certificate {name} is on the managed instance"))
                .ev("on_managed_instance_as", c.str("name").unwrap_or("")),
            None => f
                .severity(Severity::Fail)
                .found(format!("encrypted; its certificate {name} is not on the managed instance"))
                .ev("note", "compared by thumbprint with the managed instance's sys.certificates (that an uploaded TDE certificate shows there is UNCONFIRMED)")
                .remedy(format!(
                    "Seeding cannot decrypt the database until its TDE certificate is on the managed instance. On SQL Server: BACKUP CERTIFICATE {q} TO FILE = N'<path>.cer' WITH PRIVATE KEY (FILE = N'<path>.pvk', ENCRYPTION BY PASSWORD = N'<password>'); make a .pfx of the pair (pvk2pfx), then Add-AzSqlManagedInstanceTransparentDataEncryptionCertificate -ResourceGroupName <rg> -ManagedInstanceName <mi> -PrivateBlob <base64 of the pfx> -Password <pfx password>.",
                    q = ident(&name)
                )),
        },
    }
}

fn name_free(db: &str, mi_dbs: Rows<'_>) -> F {
    let s = Side::ManagedInstance;
    let dbs = match mi_dbs {
        Err(why) => return F::new("database-mi-name-free", s, why.0).ev("reason", why.1),
        Ok(d) => d,
    };
    let f = F::new("database-mi-name-free", s, Severity::Pass);
    match dbs.iter().find(|r| r.str("name").is_some_and(|n| n.eq_ignore_ascii_case(db))) {
        None => f.found("no database of that name there"),
        // Already the link's copy: replicated, not in the way.
        Some(r) if r.get("group_database_id").is_some_and(|v| !v.is_null()) => {
            f.found("the link's own replica").ev(
                "note",
                "the managed instance's database of this name is in an availability group (the link's replica)",
            )
        }
        Some(r) => f.severity(Severity::Fail).found(format!("a database of that name exists ({})", r.str("state_desc").unwrap_or(""))).ev("state", r.str("state_desc").unwrap_or("")).remedy(format!(
            "A database named {q} already exists on the managed instance, so seeding fails (error 1801). Drop or rename it there once you know nothing in it is needed, or link the database under another name.",
            q = ident(db)
        )),
    }
}
