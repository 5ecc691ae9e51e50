//! SQL Server Agent, as far as the link's network test needs it: jobs whose
//! PowerShell step runs `Test-NetConnection` (tnc) really connect, from the
//! side's own address (and namespace), and write the job history and step log
//! the way Agent does.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rusqlite::types::Value;

use crate::lab::addr::{self, Mode};
use crate::lab::catalog::{Catalog, datetime_text};
use crate::lab::netns::{Place, Topology};

/// How long the stand-in's Test-NetConnection waits for a SYN-ACK.
const TNC_TIMEOUT: Duration = Duration::from_secs(3);

/// One step of a job, as sp_add_jobstep stored it.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: i64,
    pub name: String,
    pub command: String,
    pub uid: String,
}

/// Starts jobs for one side.
pub trait Runner: Send + Sync {
    fn start(self: Arc<Self>, job_id: String, steps: Vec<Step>);
    /// A CREATE ENDPOINT listens; false when the port cannot be had.
    fn listen(&self, port: u16) -> bool;
    /// DROP ENDPOINT stops listening.
    fn unlisten(&self, port: u16);
}

/// A side's name lookup.
pub type Resolve = Arc<dyn Fn(&str) -> Option<IpAddr> + Send + Sync>;

pub struct Agent {
    pub catalog: Weak<Mutex<Catalog>>,
    pub from: IpAddr,
    pub place: Place,
    pub topology: Option<Arc<Topology>>,
    /// Names as this side's DNS answers them.
    pub resolve: Resolve,
    pub handle: tokio::runtime::Handle,
    pub server: String,
    /// Endpoints made by CREATE ENDPOINT, by port.
    pub endpoints: Mutex<std::collections::HashMap<u16, crate::lab::listener::EndpointListener>>,
}

/// `tnc <host> -port <n>` / `Test-NetConnection -ComputerName <host> -Port <n>`, and
/// whether `-InformationLevel Quiet` or a `select … | Format-List` shapes the output.
#[derive(Debug, PartialEq, Eq)]
pub struct Tnc {
    pub host: String,
    pub port: u16,
    pub quiet: bool,
    pub selected: bool,
}

pub fn parse_tnc(command: &str) -> Option<Tnc> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let at =
        words.iter().position(|w| w.eq_ignore_ascii_case("tnc") || w.eq_ignore_ascii_case("Test-NetConnection"))?;
    let mut host = None;
    let mut port = None;
    let mut i = at + 1;
    while i < words.len() && words[i] != "|" {
        let w = words[i];
        if w.eq_ignore_ascii_case("-port") {
            port = words.get(i + 1).and_then(|p| p.trim_matches(['\'', '"']).parse().ok());
            i += 2;
            continue;
        }
        if w.eq_ignore_ascii_case("-computername") {
            host = words.get(i + 1).map(|h| h.trim_matches(['\'', '"']).to_string());
            i += 2;
            continue;
        }
        if w.starts_with('-') {
            i += 2;
            continue;
        }
        if host.is_none() {
            host = Some(w.trim_matches(['\'', '"']).to_string());
        }
        i += 1;
    }
    let lower = command.to_ascii_lowercase();
    Some(Tnc {
        host: host?,
        port: port?,
        quiet: lower.contains("-informationlevel quiet"),
        selected: lower.contains("select ") && lower.contains("format-list"),
    })
}

impl Agent {
    async fn connect(&self, to: SocketAddr) -> bool {
        let mode = if self.topology.is_some() { Mode::Topology } else { Mode::Loopback };
        if addr::guard(mode, to).is_err() {
            return false;
        }
        let from = self.from;
        let socket = match &self.topology {
            Some(t) => t.within(self.place, &self.handle, tokio::net::TcpSocket::new_v4),
            None => Ok(tokio::net::TcpSocket::new_v4()),
        };
        let Ok(Ok(socket)) = socket else { return false };
        if socket.bind(SocketAddr::new(from, 0)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(TNC_TIMEOUT, socket.connect(to)).await, Ok(Ok(_)))
    }

    /// What Test-NetConnection prints, and whether the step succeeded.
    async fn run(&self, command: &str) -> (String, bool) {
        let Some(t) = parse_tnc(command) else {
            return (
                "The term is not recognized as the name of a cmdlet, function, script file, or operable program."
                    .into(),
                false,
            );
        };
        let Some(ip) = t.host.parse::<IpAddr>().ok().or_else(|| (self.resolve)(&t.host)) else {
            let out = format!(
                "WARNING: Name resolution of {} failed\nComputerName   : {}\nRemoteAddress  :\nTcpTestSucceeded : False",
                t.host, t.host
            );
            return (if t.quiet { "False".into() } else { out }, true);
        };
        let ok = self.connect(SocketAddr::new(ip, t.port)).await;
        let verdict = if ok { "True" } else { "False" };
        let out = if t.quiet {
            verdict.to_string()
        } else if t.selected {
            format!("ComputerName     : {}\nRemoteAddress    : {ip}\nTcpTestSucceeded : {verdict}", t.host)
        } else {
            let warn = if ok { String::new() } else { format!("WARNING: TCP connect to ({ip} : {}) failed\n", t.port) };
            format!(
                "{warn}ComputerName     : {}\nRemoteAddress    : {ip}\nRemotePort       : {}\nInterfaceAlias   : Ethernet\nSourceAddress    : {}\nTcpTestSucceeded : {verdict}",
                t.host, t.port, self.from
            )
        };
        (out, true)
    }
}

fn now_parts() -> (i64, i64) {
    let t = time::OffsetDateTime::now_utc();
    let date = t.year() as i64 * 10000 + t.month() as i64 * 100 + t.day() as i64;
    let time = t.hour() as i64 * 10000 + t.minute() as i64 * 100 + t.second() as i64;
    (date, time)
}

impl Runner for Agent {
    fn listen(&self, port: u16) -> bool {
        let addr = SocketAddr::new(self.from, port);
        let bind = || crate::lab::listener::bind(addr, crate::lab::scenario::Listener::Open, 0);
        let l = match &self.topology {
            Some(t) => t.within(self.place, &self.handle, bind).ok().and_then(Result::ok),
            None => {
                let _guard = self.handle.enter();
                bind().ok()
            }
        };
        match l {
            Some(l) => {
                self.endpoints.lock().unwrap_or_else(|p| p.into_inner()).insert(port, l);
                true
            }
            None => false,
        }
    }

    fn unlisten(&self, port: u16) {
        self.endpoints.lock().unwrap_or_else(|p| p.into_inner()).remove(&port);
    }

    fn start(self: Arc<Self>, job_id: String, steps: Vec<Step>) {
        let agent = self.clone();
        self.handle.spawn(async move {
            let started = Instant::now();
            let mut ok_all = true;
            for step in &steps {
                let t = Instant::now();
                let (output, ok) = agent.run(&step.command).await;
                ok_all &= ok;
                let (date, time) = now_parts();
                let message = format!(
                    "Executed as user: NT Service\\SQLSERVERAGENT. {output}  Process Exit Code {}.  The step {}.",
                    if ok { 0 } else { 1 },
                    if ok { "succeeded" } else { "failed" }
                );
                let Some(catalog) = agent.catalog.upgrade() else { return };
                let c = catalog.lock().unwrap_or_else(|p| p.into_inner());
                let _ = c.db.execute(
                    "INSERT INTO [msdb.dbo.sysjobhistory] (instance_id, job_id, step_id, step_name, sql_message_id, sql_severity, message, run_status, run_date, run_time, run_duration, server) \
                     VALUES ((SELECT COALESCE(MAX(instance_id), 0) + 1 FROM [msdb.dbo.sysjobhistory]), ?, ?, ?, 0, 0, ?, ?, ?, ?, ?, ?)",
                    rusqlite::params![job_id, step.id, step.name, message, ok as i64, date, time, t.elapsed().as_secs() as i64, agent.server],
                );
                let _ = c.db.execute(
                    "INSERT INTO [msdb.dbo.sysjobstepslogs] (log_id, log, date_created, date_modified, log_size, step_uid) \
                     VALUES ((SELECT COALESCE(MAX(log_id), 0) + 1 FROM [msdb.dbo.sysjobstepslogs]), ?, ?, ?, ?, ?)",
                    rusqlite::params![output, datetime_text(time::OffsetDateTime::now_utc()), datetime_text(time::OffsetDateTime::now_utc()), output.len() as i64, step.uid],
                );
            }
            let Some(catalog) = agent.catalog.upgrade() else { return };
            let c = catalog.lock().unwrap_or_else(|p| p.into_inner());
            let (date, time) = now_parts();
            let outcome = if ok_all { "The job succeeded." } else { "The job failed." };
            let _ = c.db.execute(
                "INSERT INTO [msdb.dbo.sysjobhistory] (instance_id, job_id, step_id, step_name, sql_message_id, sql_severity, message, run_status, run_date, run_time, run_duration, server) \
                 VALUES ((SELECT COALESCE(MAX(instance_id), 0) + 1 FROM [msdb.dbo.sysjobhistory]), ?, 0, '(Job outcome)', 0, 0, ?, ?, ?, ?, ?, ?)",
                rusqlite::params![job_id, format!("{outcome}  The Job was invoked by User milink.  The last step to run was step {}.", steps.len()), ok_all as i64, date, time, started.elapsed().as_secs() as i64, agent.server],
            );
            let _ = c.db.execute(
                "UPDATE [msdb.dbo.sysjobactivity] SET stop_execution_date = ?, last_executed_step_id = ? WHERE job_id = ?",
                rusqlite::params![Value::Text(datetime_text(time::OffsetDateTime::now_utc())), steps.len() as i64, job_id],
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_test_commands() {
        let t =
            parse_tnc("tnc 10.0.0.4 -port 5022 | select ComputerName, RemoteAddress, TcpTestSucceeded | Format-List")
                .unwrap();
        assert_eq!((t.host.as_str(), t.port, t.quiet, t.selected), ("10.0.0.4", 5022, false, true));
        let t = parse_tnc("tnc 198.51.100.10 -port 5022 -InformationLevel Quiet").unwrap();
        assert!(t.quiet);
        let t = parse_tnc("Test-NetConnection -ComputerName sql.lab -Port 5022").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("sql.lab", 5022));
        assert!(parse_tnc("Get-Process").is_none());
    }
}
