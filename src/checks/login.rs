//! Logins to both sides, and whether they may see what the checks need.

use super::collect::{Evidence, SideEvidence, Sql};
use super::{F, blocked, facts, rows};
use crate::probe::sql::Fields;
use crate::profile::Profile;
use crate::report::{Finding, Severity, Side};

fn login(id: &'static str, side: Side, s: &SideEvidence) -> Finding {
    match &s.sql {
        Sql::Skipped(reason) => F::skip(id, side, reason.clone()).done(),
        Sql::Failed(e) => {
            let found = match e.code {
                Some(c) => format!("login failed (error {c})"),
                None if e.timed_out => "no answer to the login".to_string(),
                None => "login failed".to_string(),
            };
            let f = F::new(id, side, if e.timed_out { Severity::Error } else { Severity::Fail })
                .found(found.clone())
                .ev("error", e.message.clone());
            let f = match e.code {
                Some(c) => f.ev("error_number", c),
                None => f,
            };
            if let Some((host, port, _)) = &e.routed_to {
                // The gateway answered; the node it routed to did not (network-mi-redirect says how).
                return f
                    .severity(Severity::Fail)
                    .found(format!("redirected to {host}:{port}, then {found}"))
                    .ev("redirected_to", format!("{host}:{port}"))
                    .remedy("The gateway redirected the login to a node port (Redirect connection policy): allow 11000-11999 to the managed instance subnet (network-mi-redirect), or use the Proxy policy.")
                    .done();
            }
            match e.code {
                Some(18456) => f.remedy("Login failed: check the login name and password (or token), and that the login exists and is enabled."),
                Some(18470) => f.remedy("The login is disabled: ALTER LOGIN [<login>] ENABLE;"),
                Some(4060) => f.remedy("The login cannot open its default database: give it one that exists (ALTER LOGIN … WITH DEFAULT_DATABASE = [master])."),
                _ => f,
            }
            .done()
        }
        Sql::Facts(fx) => {
            let f = F::new(id, side, Severity::Pass);
            match &fx.routed_to {
                Some((h, port)) => {
                    f.found(format!("logged in, redirected to {h}:{port}")).ev("redirected_to", format!("{h}:{port}"))
                }
                None => f.found("logged in"),
            }
            .done()
        }
    }
}

pub fn evaluate(ev: &Evidence, _: &Profile, out: &mut Vec<Finding>) {
    out.push(login("login-sql", Side::SqlServer, &ev.sql));
    out.push(login("login-mi", Side::ManagedInstance, &ev.mi));
    for (id, side, s, login_id, needs_sysadmin) in [
        ("login-sql-permissions", Side::SqlServer, &ev.sql, "login-sql", true),
        ("login-mi-permissions", Side::ManagedInstance, &ev.mi, "login-mi", false),
    ] {
        let perms = facts(s, login_id).and_then(|f| rows(f, "perms", id));
        let r = match perms {
            Err(why) => {
                out.push(blocked(id, side, why));
                continue;
            }
            Ok(r) => r.first().cloned().unwrap_or_default(),
        };
        let vss = r.flag("view_server_state").unwrap_or(false);
        let sysadmin = r.flag("sysadmin").unwrap_or(false);
        let mut f = F::new(id, side, Severity::Pass).ev("view_server_state", vss);
        if needs_sysadmin {
            f = f.ev("sysadmin", sysadmin);
        }
        f = f.found(match (vss, needs_sysadmin, sysadmin) {
            (false, _, _) => "no VIEW SERVER STATE",
            (true, true, false) => "VIEW SERVER STATE, not sysadmin",
            (true, true, true) => "sysadmin",
            (true, false, _) => "VIEW SERVER STATE",
        });
        if !vss {
            f = f
                .severity(Severity::Warn)
                .remedy("GRANT VIEW SERVER STATE TO [<login>]; -- the DMV checks are skipped without it");
        } else if needs_sysadmin && !sysadmin {
            f = f.severity(Severity::Warn).remedy(
                "Creating the link needs sysadmin on SQL Server: ALTER SERVER ROLE [sysadmin] ADD MEMBER [<login>];",
            );
        }
        out.push(f.done());
    }
}
