//! msdb's job procedures: jobs are rows in the msdb tables; sp_start_job hands
//! the steps to the side's Agent, which fills the history as it runs.

use std::hash::{BuildHasher, Hasher};

use rusqlite::params;

use super::{Args, arg, as_text};
use crate::lab::catalog::{Catalog, Step};
use crate::lab::sql::{Output, SqlError};
use crate::lab::sqltime::datetime_text;

fn guid() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    let a = h.finish();
    h.write_u64(a);
    let b = h.finish();
    format!(
        "{:08X}-{:04X}-4{:03X}-8{:03X}-{:012X}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

fn job_id(c: &Catalog, name: &str) -> Result<String, SqlError> {
    c.db.query_row("SELECT job_id FROM [msdb.dbo.sysjobs] WHERE name = ?", params![name], |r| r.get::<_, String>(0))
        .map_err(|_| SqlError::new(14262, 16, 1, format!("The specified @job_name ('{name}') does not exist.")))
}

fn db_err(e: rusqlite::Error) -> SqlError {
    SqlError::new(50000, 16, 1, format!("msdb: {e}"))
}

pub fn execute(c: &Catalog, proc: &str, args: &Args) -> Result<Vec<Output>, SqlError> {
    let name = as_text(arg(args, 0, "@job_name")).unwrap_or_default();
    if !c.facts.agent_xps {
        return Err(SqlError::new(
            15281,
            16,
            1,
            format!(
                "SQL Server blocked access to procedure 'dbo.{proc}' of component 'Agent XPs' because this component is turned off as part of the security configuration for this server. A system administrator can enable the use of 'Agent XPs' by using sp_configure. For more information about enabling 'Agent XPs', search for 'Agent XPs' in SQL Server Books Online."
            ),
        ));
    }
    if proc == "sp_start_job" && !c.facts.agent_running {
        job_id(c, &name)?;
        return Err(SqlError::new(
            22022,
            16,
            1,
            "SQLServerAgent is not currently running so it cannot be notified of this action.",
        ));
    }
    let now = datetime_text(time::OffsetDateTime::now_utc());
    match proc {
        "sp_add_job" => {
            if job_id(c, &name).is_ok() {
                return Err(SqlError::new(14261, 16, 1, format!("The specified @name ('{name}') already exists.")));
            }
            c.db.execute(
                "INSERT INTO [msdb.dbo.sysjobs] (job_id, originating_server_id, name, enabled, description, owner_sid, date_created, date_modified) VALUES (?, 0, ?, 1, NULL, x'01', ?, ?)",
                params![guid(), name, now, now],
            )
            .map_err(db_err)?;
        }
        "sp_add_jobstep" => {
            let id = job_id(c, &name)?;
            let subsystem = as_text(arg(args, 99, "@subsystem")).unwrap_or_else(|| "TSQL".into());
            if subsystem.eq_ignore_ascii_case("PowerShell") && c.facts.linux {
                return Err(SqlError::new(
                    14234,
                    16,
                    1,
                    "The specified '@subsystem' is invalid (valid values are returned by sp_enum_sqlagent_subsystems).",
                ));
            }
            let step_name = as_text(arg(args, 99, "@step_name")).unwrap_or_else(|| "step".into());
            let command = as_text(arg(args, 99, "@command")).unwrap_or_default();
            let flags = super::as_int(arg(args, 99, "@flags")).unwrap_or(0);
            c.db.execute(
                "INSERT INTO [msdb.dbo.sysjobsteps] (job_id, step_id, step_name, subsystem, command, flags, database_name, last_run_outcome, step_uid) \
                 VALUES (?, (SELECT COUNT(*) + 1 FROM [msdb.dbo.sysjobsteps] WHERE job_id = ?), ?, ?, ?, ?, 'master', 0, ?)",
                params![id, id, step_name, subsystem, command, flags, guid()],
            )
            .map_err(db_err)?;
        }
        "sp_add_jobserver" => {
            job_id(c, &name)?;
        }
        "sp_start_job" => {
            let id = job_id(c, &name)?;
            let mut stmt = c
                .db
                .prepare("SELECT step_id, step_name, command, step_uid FROM [msdb.dbo.sysjobsteps] WHERE job_id = ? ORDER BY step_id")
                .map_err(db_err)?;
            let steps: Vec<Step> = stmt
                .query_map(params![id], |r| {
                    Ok(Step { id: r.get(0)?, name: r.get(1)?, command: r.get(2)?, uid: r.get(3)? })
                })
                .map_err(db_err)?
                .filter_map(Result::ok)
                .collect();
            c.db.execute("DELETE FROM [msdb.dbo.sysjobactivity] WHERE job_id = ?", params![id]).map_err(db_err)?;
            c.db.execute(
                "INSERT INTO [msdb.dbo.sysjobactivity] (session_id, job_id, run_requested_date, start_execution_date, last_executed_step_id, stop_execution_date) VALUES (1, ?, ?, ?, NULL, NULL)",
                params![id, now, now],
            )
            .map_err(db_err)?;
            let Some(host) = &c.host else {
                return Err(SqlError::new(
                    22022,
                    16,
                    1,
                    "SQLServerAgent is not currently running so it cannot be notified of this action.",
                ));
            };
            host.clone().start_job(id, steps);
            return Ok(vec![Output::Info(SqlError::new(14243, 0, 1, format!("Job '{name}' started successfully.")))]);
        }
        "sp_delete_job" => {
            let id = job_id(c, &name)?;
            for table in ["msdb.dbo.sysjobactivity", "msdb.dbo.sysjobhistory", "msdb.dbo.sysjobs"] {
                c.db.execute(&format!("DELETE FROM [{table}] WHERE job_id = ?"), params![id]).map_err(db_err)?;
            }
            c.db.execute(
                "DELETE FROM [msdb.dbo.sysjobstepslogs] WHERE step_uid IN (SELECT step_uid FROM [msdb.dbo.sysjobsteps] WHERE job_id = ?)",
                params![id],
            )
            .map_err(db_err)?;
            c.db.execute("DELETE FROM [msdb.dbo.sysjobsteps] WHERE job_id = ?", params![id]).map_err(db_err)?;
        }
        _ => unreachable!("only job procedures come here"),
    }
    Ok(vec![])
}
