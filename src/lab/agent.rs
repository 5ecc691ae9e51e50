//! SQL Server Agent, as far as the link's network test needs it: jobs whose
//! PowerShell step runs `Test-NetConnection` (tnc) really connect, from the
//! side's own address (and namespace), and write the job history and step log
//! the way Agent does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rusqlite::types::Value;

use crate::lab::catalog::{Catalog, Host, Step};
use crate::lab::net::{Dialed, SideNet};
use crate::lab::ports::{Ports, Service};
use crate::lab::scenario::Listener;
use crate::lab::sqltime::datetime_text;

/// How long the stand-in's Test-NetConnection waits for a SYN-ACK.
const TNC_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Agent {
    pub catalog: Weak<Mutex<Catalog>>,
    pub net: SideNet,
    pub server: String,
    pub ports: Arc<Ports>,
    /// The mirroring endpoint's port while it listens, and how it behaves.
    pub endpoint: Mutex<Option<u16>>,
    pub endpoint_behaviour: (Listener, u64),
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
        matches!(self.net.dial(&to.ip().to_string(), to.port(), TNC_TIMEOUT).await, Dialed::Connected(_))
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
        let Some(ip) = self.net.lookup(&t.host) else {
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
                t.host, t.port, self.net.from
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

impl Host for Agent {
    fn endpoint_port(&self, port: Option<u16>) -> bool {
        let mut current = self.endpoint.lock().unwrap_or_else(|p| p.into_inner());
        if *current == port {
            return true;
        }
        let (behaviour, slow_ms) = self.endpoint_behaviour;
        if let Some(old) = *current {
            let addr = SocketAddr::new(self.net.from, old);
            let _ = self.ports.serve(self.net.place, addr, Service::Nothing);
        }
        if let Some(p) = port {
            let addr = SocketAddr::new(self.net.from, p);
            if self.ports.serve(self.net.place, addr, Service::Endpoint { behaviour, slow_ms }).is_err() {
                *current = None;
                return false;
            }
        }
        *current = port;
        true
    }

    fn start_job(self: Arc<Self>, job_id: String, steps: Vec<Step>) {
        let agent = self.clone();
        self.net.handle.spawn(async move {
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
