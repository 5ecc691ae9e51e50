//! Reachability seen from a server itself: a temporary SQL Agent job whose
//! PowerShell step runs Test-NetConnection, as Microsoft's procedure does.
//! The job is always deleted: on success, error, timeout and Ctrl-C; a rerun
//! from the same host deletes what a killed run left behind.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::sql::{Fields, Session, SqlFailure};
use crate::tsql::{ident, nstring};

pub const PREFIX: &str = "milink-probe";
/// Microsoft's procedure calls them TEST_CERT and TEST_ENDPOINT; ours are recognisable.
pub const TEMP_ENDPOINT: &str = "milink_test_endpoint";
pub const TEMP_CERT: &str = "milink_test_cert";

#[derive(Debug, Clone, Serialize)]
pub struct JobProbe {
    pub job: String,
    pub target: String,
    pub port: u16,
    /// `TcpTestSucceeded`, when the step printed it.
    pub succeeded: Option<bool>,
    pub remote_address: Option<String>,
    pub output: String,
    pub waited_ms: u128,
}

#[derive(Debug, Clone)]
pub enum ProbeError {
    /// The server has no PowerShell job steps (SQL Server on Linux: 14234).
    NoPowerShell,
    /// SQL Server Agent's service is not running (sp_start_job: 22022).
    AgentStopped(String),
    /// `Agent XPs` is off, so the job procedures are blocked (15281).
    AgentXpsOff(String),
    Sql(SqlFailure),
    /// The job did not finish within the wait.
    TimedOut {
        job: String,
        waited: Duration,
    },
    Interrupted,
}

/// This host's name, so that a rerun from here finds its own leftovers only.
fn host_tag() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let name = if ok {
        String::from_utf8_lossy(&buf[..buf.iter().position(|b| *b == 0).unwrap_or(0)]).to_string()
    } else {
        String::new()
    };
    let clean: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(40).collect();
    if clean.is_empty() { "host".into() } else { clean }
}

async fn delete(s: &mut Session, job: &str) {
    let _ = s.cleanup(&format!("EXEC msdb.dbo.sp_delete_job @job_name = {}", nstring(job))).await;
}

/// Deletes jobs a killed run from this host left behind.
pub async fn remove_leftovers(s: &mut Session) -> usize {
    let like = nstring(&format!("{PREFIX}-{}-%", host_tag()));
    let Ok(rows) = s.rows(&format!("SELECT name FROM msdb.dbo.sysjobs WHERE name LIKE {like}")).await else { return 0 };
    let names: Vec<String> = rows.iter().filter_map(|r| r.str("name").map(String::from)).collect();
    for n in &names {
        delete(s, n).await;
    }
    names.len()
}

/// Runs `tnc <target> -port <port>` from the server behind `s`, waiting at most `wait`.
pub async fn tnc(s: &mut Session, target: &str, port: u16, wait: Duration) -> Result<JobProbe, ProbeError> {
    remove_leftovers(s).await;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let job = format!("{PREFIX}-{}-{}-{:x}", host_tag(), std::process::id(), nanos & 0xffff_ffff);
    let result = run(s, &job, target, port, wait).await;
    // Always, whatever happened above.
    delete(s, &job).await;
    result
}

async fn run(s: &mut Session, job: &str, target: &str, port: u16, wait: Duration) -> Result<JobProbe, ProbeError> {
    let name = nstring(job);
    // The target goes into PowerShell: only host-name and address characters.
    let host: String = target.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':')).collect();
    let command = nstring(&format!(
        "tnc {host} -port {port} | select ComputerName, RemoteAddress, TcpTestSucceeded | Format-List"
    ));
    s.rows(&format!("EXEC msdb.dbo.sp_add_job @job_name = {name}")).await.map_err(agent_error)?;
    let step = format!(
        "EXEC msdb.dbo.sp_add_jobstep @job_name = {name}, @step_name = N'Test port {port}', @subsystem = N'PowerShell', @command = {command}, @flags = 40"
    );
    if let Err(e) = s.rows(&step).await {
        return Err(if e.code == Some(14234) { ProbeError::NoPowerShell } else { ProbeError::Sql(e) });
    }
    s.rows(&format!("EXEC msdb.dbo.sp_add_jobserver @job_name = {name}")).await.map_err(agent_error)?;
    s.rows(&format!("EXEC msdb.dbo.sp_start_job @job_name = {name}")).await.map_err(agent_error)?;
    let start = Instant::now();
    let done = format!(
        "SELECT a.stop_execution_date FROM msdb.dbo.sysjobactivity AS a JOIN msdb.dbo.sysjobs AS j ON j.job_id = a.job_id WHERE j.name = {name}"
    );
    let finished = async {
        loop {
            let rows = s.rows(&done).await.map_err(ProbeError::Sql)?;
            if rows.first().is_some_and(|r| r.get("stop_execution_date").is_some_and(|v| !v.is_null())) {
                return Ok(());
            }
            if start.elapsed() >= wait {
                return Err(ProbeError::TimedOut { job: job.to_string(), waited: wait });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::select! {
        r = finished => r?,
        _ = tokio::signal::ctrl_c() => return Err(ProbeError::Interrupted),
    }
    let history = format!(
        "SELECT h.message FROM msdb.dbo.sysjobhistory AS h JOIN msdb.dbo.sysjobs AS j ON j.job_id = h.job_id WHERE j.name = {name} AND h.step_id <> 0"
    );
    let rows = s.rows(&history).await.map_err(ProbeError::Sql)?;
    let output = rows.iter().filter_map(|r| r.str("message")).collect::<Vec<_>>().join("\n");
    Ok(JobProbe {
        job: job.to_string(),
        target: target.to_string(),
        port,
        succeeded: field(&output, "TcpTestSucceeded").map(|v| v.eq_ignore_ascii_case("True")),
        remote_address: field(&output, "RemoteAddress").filter(|v| !v.is_empty()),
        output,
        waited_ms: start.elapsed().as_millis(),
    })
}

/// Agent's own refusals, told apart from other failures.
fn agent_error(e: SqlFailure) -> ProbeError {
    match e.code {
        Some(22022) => ProbeError::AgentStopped(e.message),
        Some(15281) => ProbeError::AgentXpsOff(e.message),
        _ => ProbeError::Sql(e),
    }
}

/// `Name : value` from Format-List output.
fn field(output: &str, name: &str) -> Option<String> {
    output.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim().ends_with(name)).then(|| v.split_whitespace().next().unwrap_or("").to_string())
    })
}

/// The documented temporary endpoint, for a SQL Server that has none yet, so the
/// managed instance's job has something to reach. Removed by `drop_temp_endpoint`.
pub async fn create_temp_endpoint(s: &mut Session, port: u16) -> Result<(), SqlFailure> {
    drop_temp_endpoint(s).await;
    let expiry = time::OffsetDateTime::now_utc() + time::Duration::days(2);
    let cert = ident(TEMP_CERT);
    s.rows(&format!(
        "CREATE CERTIFICATE {cert} WITH SUBJECT = N'milink temporary certificate', EXPIRY_DATE = N'{}/{}/{}'",
        expiry.month() as u8,
        expiry.day(),
        expiry.year()
    ))
    .await?;
    s.rows(&format!(
        "CREATE ENDPOINT {} STATE = STARTED AS TCP (LISTENER_PORT = {port}, LISTENER_IP = ALL) \
         FOR DATABASE_MIRRORING (ROLE = ALL, AUTHENTICATION = CERTIFICATE {cert}, ENCRYPTION = REQUIRED ALGORITHM AES)",
        ident(TEMP_ENDPOINT)
    ))
    .await
    .map(|_| ())
}

/// Drops the temporary endpoint and certificate, if they are there (also a
/// killed run's).
pub async fn drop_temp_endpoint(s: &mut Session) {
    let has = |table: &str, name: &str| format!("SELECT name FROM {table} WHERE name = {}", nstring(name));
    if s.cleanup(&has("sys.endpoints", TEMP_ENDPOINT)).await.is_ok_and(|r| !r.is_empty()) {
        let _ = s.cleanup(&format!("DROP ENDPOINT {}", ident(TEMP_ENDPOINT))).await;
    }
    if s.cleanup(&has("sys.certificates", TEMP_CERT)).await.is_ok_and(|r| !r.is_empty()) {
        let _ = s.cleanup(&format!("DROP CERTIFICATE {}", ident(TEMP_CERT))).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_format_list_output() {
        let out = "Executed as user: X. ComputerName     : sql\nRemoteAddress    : 198.51.100.10\nTcpTestSucceeded : False  Process Exit Code 0.";
        assert_eq!(super::field(out, "TcpTestSucceeded").as_deref(), Some("False"));
        assert_eq!(super::field(out, "RemoteAddress").as_deref(), Some("198.51.100.10"));
    }
}
