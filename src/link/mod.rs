//! `milink link plan | apply | remove | status`: creating a link as a plan that
//! is shown, then carried out step by step. Before every step both sides and ARM
//! are read again, so a run stopped by an error, a timeout or a kill continues
//! where it stopped and never repeats a step.

mod apply;
pub mod exec;
pub mod failover;
mod journal;
mod multi;
pub mod observe;
pub mod plan;
pub mod render;
mod roots;
pub mod run;

use std::net::IpAddr;

pub use apply::apply;
pub use journal::{Entry, Journal};
pub use multi::{add_databases, remove_databases};
pub use plan::{Action, Blocker, Plan, State, Step, Until, Where};
pub use run::{Outcome, Session, remove};

use crate::azure::arm::ArmError;
use crate::checks::collect;
use crate::probe::sql::SqlFailure;
use crate::profile::Profile;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("name the databases to link (--database, --all-databases, or `databases` in the profile)")]
    NoDatabases,
    #[error("cannot log in to {side}: {why}")]
    Login { side: &'static str, why: String },
    #[error("reading {side}: {}", failure.message)]
    Read { side: &'static str, failure: SqlFailure },
    #[error(transparent)]
    Arm(#[from] ArmError),
    #[error("step {step} failed: {message}")]
    Step { step: String, message: String },
    #[error("the journal {0}: {1}")]
    Journal(String, std::io::Error),
    #[error("{0}")]
    Usage(String),
    /// A precondition or a gate did not hold: nothing was changed (or what was
    /// changed for it was put back).
    #[error("{what}: {}", refusals.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("; "))]
    Refused { what: String, refusals: Vec<failover::Refusal> },
}

/// SQL Server's endpoint host as endpoint URLs will name it: the profile's, or
/// the address milink resolved for SQL Server.
pub async fn endpoint_host(p: &Profile) -> Result<String, LinkError> {
    if let Some(h) = &p.sql_server.endpoint_host {
        return Ok(h.clone());
    }
    match collect::address(p, true).await {
        Some(a) => Ok(match a.ip() {
            IpAddr::V6(v) => format!("[{v}]"),
            v => v.to_string(),
        }),
        None => Err(LinkError::Login { side: "SQL Server", why: format!("{} does not resolve", p.sql_server.host) }),
    }
}

/// The databases a command is about: those given, the profile's, or with
/// `all_databases` what SQL Server lists (`linked`: the databases its links
/// carry, for the link's life; else every user database, to create links).
pub async fn databases(
    p: &Profile,
    given: &[String],
    sql: Option<&mut crate::probe::sql::Session>,
    linked: bool,
) -> Result<Vec<String>, LinkError> {
    let dbs = match (given.is_empty() && p.all_databases, sql) {
        (true, Some(s)) => {
            let read = if linked { observe::linked_databases(s).await } else { collect::user_databases(s).await };
            read.map_err(|failure| LinkError::Read { side: "SQL Server", failure })?
        }
        _ if given.is_empty() => p.databases.clone(),
        _ => given.to_vec(),
    };
    if dbs.is_empty() {
        return Err(LinkError::NoDatabases);
    }
    Ok(dbs)
}
