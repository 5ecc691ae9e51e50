//! Ports from where milink runs: each classified, with the round-trip time and
//! the raw OS error; the redirect range when the managed instance redirects.

use super::F;
use super::collect::{Evidence, Sql};
use crate::probe::tcp::Outcome;
use crate::profile::Profile;
use crate::report::{Finding, Severity, Side};

/// A connect slower than this is worth a warning.
const SLOW_MS: f64 = 500.0;

fn remedy(id: &str) -> &'static str {
    match id {
        "network-sql-5022" => {
            "Open inbound TCP 5022 on SQL Server (host firewall: New-NetFirewallRule -DisplayName 'MI link 5022' -Direction Inbound -Protocol TCP -LocalPort 5022 -Action Allow; and every firewall between) from the whole managed instance subnet, and check the endpoint is STARTED."
        }
        "network-mi-5022" => {
            "Allow inbound TCP 5022 and 11000-11999 from SQL Server's IP in the managed instance subnet's NSG, and outbound 5022 and 11000-11999 to the MI subnet on SQL Server's side (host and corporate firewalls)."
        }
        "network-mi-1433" => {
            "Allow TCP 1433 to the managed instance's VNet-local endpoint from where milink runs (NSG, VPN, routes)."
        }
        _ => "Allow TCP 1433 to SQL Server from where milink runs, and check SQL Server listens on TCP.",
    }
}

pub fn evaluate(ev: &Evidence, p: &Profile, out: &mut Vec<Finding>) {
    for (id, probe) in &ev.probes {
        let side = if id.contains("-sql-") { Side::SqlServer } else { Side::ManagedInstance };
        let Some(pr) = probe else {
            out.push(F::skip(id, side, "the name did not resolve (dns check)").ev("outcome", "dns_failure").done());
            continue;
        };
        let found = match pr.outcome {
            Outcome::Open => format!("open ({:.1} ms)", pr.rtt_ms),
            Outcome::ClosedByPeer => "accepted, then closed at once".into(),
            Outcome::Refused => "refused (nothing listens)".into(),
            Outcome::Filtered => "no answer (filtered)".into(),
            other => other.as_str().replace('_', " "),
        };
        let mut f = F::new(id, side, Severity::Pass)
            .found(found)
            .ev("address", pr.addr.to_string())
            .ev("outcome", pr.outcome.as_str())
            .ev("rtt_ms", pr.rtt_ms);
        if let Some(e) = &pr.os_error {
            f = f.ev("os_error", e.clone());
        }
        let f = match pr.outcome {
            Outcome::Open if pr.rtt_ms > SLOW_MS => f.severity(Severity::Warn).remedy("The port answers, slowly: look for SYN drops or an overloaded firewall on the path."),
            Outcome::Open => f,
            Outcome::ClosedByPeer => f.severity(Severity::Warn).remedy("Something accepts the connection and closes it at once: a proxy or port-forward with nothing behind it, not SQL Server."),
            Outcome::Refused | Outcome::Filtered | Outcome::HostUnreachable | Outcome::NetworkUnreachable => {
                f.severity(Severity::Fail).remedy(remedy(id))
            }
            Outcome::Other => f.severity(Severity::Error),
        };
        out.push(f.done());
    }

    out.push(redirect(ev));

    for (id, s, from) in [
        ("network-mi-to-sql-5022", &ev.mi, "the managed instance"),
        ("network-sql-to-mi-5022", &ev.sql, "SQL Server"),
        ("network-sql-to-mi-hadr", &ev.sql, "SQL Server"),
    ] {
        out.push(job(id, s, &ev.sql, from, p));
    }
}

/// The redirect range, when the managed instance routed milink's login: every
/// port probed, and the node port the login was sent to named when it failed there.
fn redirect(ev: &Evidence) -> Finding {
    let routed = match &ev.mi.sql {
        Sql::Failed(e) => e.routed_to.as_ref(),
        _ => None,
    };
    let Some(probes) = &ev.redirect else {
        let f = match &ev.mi.sql {
            Sql::Facts(_) => F::new("network-mi-redirect", Side::ManagedInstance, Severity::Pass)
                .found("no redirect: proxy connection policy")
                .ev("note", "the managed instance did not redirect the login (proxy policy)"),
            _ => F::skip(
                "network-mi-redirect",
                Side::ManagedInstance,
                "no session to the managed instance to see its connection policy",
            ),
        };
        return f.done();
    };
    let blocked: Vec<u16> = probes
        .iter()
        .filter(|p| matches!(p.outcome, Outcome::Filtered | Outcome::HostUnreachable | Outcome::NetworkUnreachable))
        .map(|p| p.addr.port())
        .collect();
    let open = probes.iter().filter(|p| p.outcome == Outcome::Open).count();
    let f = F::new("network-mi-redirect", Side::ManagedInstance, Severity::Pass)
        .found(format!("{open} open, {} blocked of {} probed", blocked.len(), probes.len()))
        .ev("ports_probed", probes.len())
        .ev("open", open)
        .ev("blocked", blocked.len());
    const RANGE: &str = "The redirect connection policy sends sessions to node ports 11000-11999, and the node and its port change with every failover or maintenance: allow that whole range to the managed instance subnet (NSG and every firewall between), not the one port.";
    if let Some((host, port, addr)) = routed {
        let outcome = probes.iter().find(|p| p.addr.port() == *port).map(|p| p.outcome);
        let said = match outcome {
            Some(Outcome::Open) => "answers TCP, but the login there failed".to_string(),
            Some(o) => o.as_str().replace('_', " "),
            None => "not probed before the deadline".to_string(),
        };
        return f
            .severity(Severity::Fail)
            .found(format!("the login was redirected to {host}:{port}: {said}"))
            .ev("redirected_to", format!("{host}:{port}"))
            .ev("redirect_address", addr.to_string())
            .ev("redirect_outcome", outcome.map_or("unprobed", |o| o.as_str()))
            .remedy(RANGE)
            .done();
    }
    let f = if blocked.is_empty() && ev.redirect_unprobed > 0 {
        f.severity(Severity::Error).ev(
            "reason",
            format!("timeout: the run's deadline came with {} of 1000 ports unprobed", ev.redirect_unprobed),
        )
    } else if blocked.is_empty() {
        f
    } else {
        f.severity(Severity::Fail)
            .ev("first_blocked", blocked.iter().take(10).map(|p| p.to_string()).collect::<Vec<_>>().join(","))
            .remedy(RANGE)
    };
    f.done()
}

/// One direction, as the server's own Agent job saw it.
fn job(
    id: &'static str,
    s: &super::collect::SideEvidence,
    ev_sql: &super::collect::SideEvidence,
    from: &str,
    p: &Profile,
) -> Finding {
    use crate::probe::agent::ProbeError;
    if !p.probes.agent_jobs {
        return F::skip(
            id,
            Side::Link,
            format!(
                "not asked: --job-probes tests this from {from} itself (a temporary SQL Agent job, deleted afterwards)"
            ),
        )
        .done();
    }
    let Sql::Facts(f) = &s.sql else {
        return F::skip(id, Side::Link, format!("no session to {from} to run the job from")).done();
    };
    let Some((_, result)) = f.jobs.iter().find(|(j, _)| *j == id) else {
        let why = if id == "network-sql-to-mi-hadr" {
            "the managed instance's node and HADR port were not readable"
        } else {
            "no target for the job"
        };
        return F::skip(id, Side::Link, why).done();
    };
    let remedy = if id == "network-sql-to-mi-hadr" {
        "Open outbound 11000-11999 from SQL Server to the managed instance subnet: the node's HADR port is in that range and changes after every MI failover."
    } else if id == "network-mi-to-sql-5022" {
        "Open inbound TCP 5022 on SQL Server from the whole managed instance subnet (host firewall and every firewall between), and outbound 5022 in the managed instance subnet's NSG."
    } else {
        "Open outbound TCP 5022 and 11000-11999 from SQL Server to the managed instance subnet, and inbound in its NSG."
    };
    match result {
        Ok(j) => {
            let mut f = F::new(id, Side::Link, Severity::Pass);
            if id == "network-mi-to-sql-5022"
                && let Sql::Facts(sf) = &ev_sql.sql
                && let Some(t) = &sf.temp_endpoint
            {
                f = f.ev(
                    "temporary_endpoint",
                    match t {
                        Ok(()) => "created for the test and dropped afterwards".to_string(),
                        Err(e) => format!("could not be created: {e}"),
                    },
                );
            }
            let f = f
                .ev("target", format!("{}:{}", j.target, j.port))
                .ev("remote_address", j.remote_address.clone().unwrap_or_default())
                .ev("job", j.job.clone())
                .ev("waited_ms", j.waited_ms as u64);
            match j.succeeded {
                Some(true) => f.found(format!("reached {}:{}", j.target, j.port)),
                Some(false) => f
                    .severity(Severity::Fail)
                    .found(format!("could not reach {}:{}", j.target, j.port))
                    .ev("TcpTestSucceeded", false)
                    .remedy(remedy),
                None => {
                    f.severity(Severity::Error).found("the job said nothing readable").ev("output", j.output.clone())
                }
            }
            .done()
        }
        Err(ProbeError::NoPowerShell) => F::new(id, Side::Link, Severity::Info)
            .found("not probed: no PowerShell job steps on Linux")
            .ev(
                "note",
                format!(
                    "{from} runs on Linux: SQL Server Agent has no PowerShell job steps; milink's own probes stand in"
                ),
            )
            .done(),
        // The probe could not run: nothing is known about the port, so it is not failed for it.
        Err(ProbeError::AgentStopped(e)) => F::new(id, Side::Link, Severity::Warn)
            .found(format!("not probed: SQL Server Agent is not running on {from}"))
            .ev("error", e.clone())
            .remedy("Start SQL Server Agent (SQL Server Configuration Manager, or: net start SQLSERVERAGENT) and rerun with --job-probes; or run Test-NetConnection by hand on the server.")
            .done(),
        Err(ProbeError::AgentXpsOff(e)) => F::new(id, Side::Link, Severity::Warn)
            .found(format!("not probed: 'Agent XPs' is off on {from}"))
            .ev("error", e.clone())
            .remedy("EXEC sp_configure 'show advanced options', 1; RECONFIGURE; EXEC sp_configure 'Agent XPs', 1; RECONFIGURE; (starting SQL Server Agent also turns it on), then rerun with --job-probes.")
            .done(),
        Err(ProbeError::Sql(e)) => F::new(id, Side::Link, Severity::Error)
            .found("the probe job could not be made")
            .ev("error", e.message.clone())
            .done(),
        Err(ProbeError::TimedOut { job, waited }) => F::new(id, Side::Link, Severity::Error)
            .found("the probe job did not finish")
            .ev("job", job.clone())
            .ev("note", format!("the job did not finish within {waited:?}; it was deleted"))
            .done(),
        Err(ProbeError::Interrupted) => {
            F::new(id, Side::Link, Severity::Error).ev("note", "interrupted; the job was deleted").done()
        }
    }
}
