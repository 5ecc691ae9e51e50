//! SQL Server's DATABASE_MIRRORING endpoint: present, started, on the probed
//! port and all addresses, certificate authentication, AES encryption.

use super::collect::Evidence;
use super::{F, blocked, facts, rows};
use crate::probe::sql::Fields;
use crate::profile::Profile;
use crate::report::{Finding, Severity, Side};
use crate::tsql::ident;

const REST: [&str; 5] = [
    "endpoint-sql-started",
    "endpoint-sql-port",
    "endpoint-sql-listener-ip",
    "endpoint-sql-auth",
    "endpoint-sql-encryption",
];

pub fn evaluate(ev: &Evidence, p: &Profile, out: &mut Vec<Finding>) {
    let s = Side::SqlServer;
    let ep = match facts(&ev.sql, "login-sql").and_then(|f| rows(f, "endpoint", "login-sql-permissions")) {
        Err(why) => {
            for id in std::iter::once("endpoint-sql-present").chain(REST) {
                out.push(blocked(id, s, why.clone()));
            }
            return;
        }
        Ok([]) => {
            out.push(
                F::new("endpoint-sql-present", s, Severity::Fail)
                    .found("no DATABASE_MIRRORING endpoint")
                    .remedy("CREATE ENDPOINT [database_mirroring_endpoint] STATE = STARTED AS TCP (LISTENER_PORT = 5022, LISTENER_IP = ALL) FOR DATABASE_MIRRORING (ROLE = ALL, AUTHENTICATION = CERTIFICATE [<certificate>], ENCRYPTION = REQUIRED ALGORITHM AES);")
                    .done(),
            );
            for id in REST {
                out.push(F::skip(id, s, "no mirroring endpoint (endpoint-sql-present)").done());
            }
            return;
        }
        Ok([ep, ..]) => ep,
    };
    let name = ep.str("name").unwrap_or("");
    out.push(F::new("endpoint-sql-present", s, Severity::Pass).found(name).ev("name", name).done());

    let (state, role) = (ep.str("state_desc").unwrap_or(""), ep.str("role_desc").unwrap_or(""));
    let f = F::new("endpoint-sql-started", s, Severity::Pass)
        .found(format!("{state}, role {role}"))
        .ev("state", state)
        .ev("role", role);
    out.push(
        if state == "STARTED" && role == "ALL" {
            f
        } else {
            f.severity(Severity::Fail)
                .remedy(format!("ALTER ENDPOINT {} STATE = STARTED FOR DATABASE_MIRRORING (ROLE = ALL);", ident(name)))
        }
        .done(),
    );

    let port = ep.int("port").unwrap_or(0);
    let probed = p.sql_server.endpoint_port.unwrap_or(5022) as i64;
    let f = F::new("endpoint-sql-port", s, Severity::Pass)
        .found(if port == probed {
            format!("listens on {port}")
        } else {
            format!("listens on {port}, not on {probed}")
        })
        .ev("listener_port", port)
        .ev("probed_port", probed);
    out.push(
        if port == probed {
            f
        } else {
            f.severity(Severity::Warn).remedy(format!("The endpoint listens on {port}: set endpoint_port = {port} in the profile (and use it in the endpoint URL)."))
        }
        .done(),
    );

    // LISTENER_IP = ALL is what the link's scripts make: one address breaks the
    // link when the partner (or a local failover) reaches another.
    let ip = ep.str("ip_address");
    let f = F::new("endpoint-sql-listener-ip", s, Severity::Pass)
        .found(ip.map_or("all addresses (LISTENER_IP = ALL)".to_string(), |a| format!("{a} only")))
        .ev("ip_address", ip.unwrap_or("ALL"));
    out.push(
        match ip {
            None => f,
            Some(_) => f.severity(Severity::Warn).remedy(format!(
                "ALTER ENDPOINT {} AS TCP (LISTENER_IP = ALL); -- the endpoint listens on one address only: the managed instance must reach exactly it",
                ident(name)
            )),
        }
        .done(),
    );

    let auth = ep.str("connection_auth_desc").unwrap_or("");
    let f = F::new("endpoint-sql-auth", s, Severity::Pass).ev("connection_auth", auth).found(auth.to_string());
    out.push(
        if auth.contains("CERTIFICATE") {
            f
        } else {
            f.severity(Severity::Fail).remedy(format!(
                "ALTER ENDPOINT {} FOR DATABASE_MIRRORING (AUTHENTICATION = WINDOWS NEGOTIATE CERTIFICATE [<certificate>]);",
                ident(name)
            ))
        }
        .done(),
    );

    let (on, algo) =
        (ep.flag("is_encryption_enabled").unwrap_or(false), ep.str("encryption_algorithm_desc").unwrap_or(""));
    let f = F::new("endpoint-sql-encryption", s, Severity::Pass)
        .found(if on { format!("encryption {algo}") } else { "encryption off".to_string() })
        .ev("encryption_enabled", on)
        .ev("algorithm", algo);
    out.push(
        if on && algo.contains("AES") {
            f
        } else {
            f.severity(Severity::Fail).remedy(format!(
                "ALTER ENDPOINT {} FOR DATABASE_MIRRORING (ENCRYPTION = REQUIRED ALGORITHM AES); -- without AES: 'no compatible encryption algorithm'",
                ident(name)
            ))
        }
        .done(),
    );
}
