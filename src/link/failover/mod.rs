//! The link's life after creation: `milink link failover` (planned and
//! forced, failback, cutover cleanup), `milink link mode` (synchronous or
//! asynchronous commit, the license-free DR secondary) and `milink link
//! reconcile` (a split brain after a forced failover).
//!
//! Each is a list of steps like creation's (`steps.rs`), decided from what
//! both sides and ARM show now (`view.rs`) and re-decided before every step,
//! so a run stopped anywhere continues where it stopped and never repeats a
//! step (`run.rs`). Preconditions are all checked, and named, before the first
//! change (`preconditions.rs`).

pub mod arm_fixes;
mod many;
mod preconditions;
pub mod report;
mod run;
mod steps;
pub mod view;

use std::time::Duration;

use serde::Serialize;

pub use preconditions::Refusal;
pub use report::Outcome;
pub use run::Sides;
pub use view::View;

use super::LinkError;
use super::plan::{Names, Where};
use crate::profile::Profile;

/// Which side a command names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    ManagedInstance,
    SqlServer,
}

impl Side {
    pub fn place(self) -> Where {
        match self {
            Side::SqlServer => Where::SqlServer,
            Side::ManagedInstance => Where::ManagedInstance,
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::SqlServer => Side::ManagedInstance,
            Side::ManagedInstance => Side::SqlServer,
        }
    }

    pub fn is_sql(self) -> bool {
        self == Side::SqlServer
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::SqlServer => "SQL Server",
            Side::ManagedInstance => "the managed instance",
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            Side::SqlServer => "sql",
            Side::ManagedInstance => "mi",
        }
    }
}

/// What is left of the link after a planned failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cleanup {
    /// The link stays, roles reversed, ready to fail back.
    Keep,
    /// The link is removed: the instance's DAG, then SQL Server's.
    DropDag,
    /// Also SQL Server's availability group.
    DropAgAndDag,
}

#[derive(Debug, Clone)]
pub struct FailoverOptions {
    pub to: Side,
    pub forced: bool,
    /// How long each gate may take to open (LSNs equal, roles swapped, a backup).
    pub max_wait: Duration,
    /// How long the hardened LSNs must stay equal.
    pub settle: Duration,
    pub cleanup: Cleanup,
    /// Drop the link before the new primary's first full backup.
    pub force: bool,
    pub yes: bool,
}

#[derive(Debug, Clone)]
pub struct ModeOptions {
    /// SYNCHRONOUS_COMMIT or ASYNCHRONOUS_COMMIT; none: leave it.
    pub mode: Option<&'static str>,
    /// `hybridSecondaryUsage`: Passive or Active; none: leave it.
    pub hybrid_secondary: Option<&'static str>,
    pub yes: bool,
}

#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    /// The side that keeps the primary role.
    pub primary: Side,
    /// Where the side that gives up the role backs up first: a folder on SQL
    /// Server's disk, or a blob container URL for the managed instance.
    pub backup_to: String,
    pub max_wait: Duration,
    pub yes: bool,
}

/// The link of one database: its names, as the profile makes them.
pub fn names(p: &Profile, db: &str) -> Names {
    Names::of(p, db)
}

pub async fn failover(
    p: &Profile,
    given: &[String],
    o: &FailoverOptions,
    out: &mut dyn std::io::Write,
) -> Result<Outcome, LinkError> {
    single_only(p, "fail over")?;
    let mut sides = run::Sides::open(p).await?;
    let dbs = super::databases(p, given, sides.sql.as_mut(), true).await?;
    match dbs.len() {
        1 => run::failover(p, sides, &dbs, o, out).await,
        _ => many::failover(p, sides, &dbs, o, out).await,
    }
}

pub async fn mode(
    p: &Profile,
    given: &[String],
    o: &ModeOptions,
    out: &mut dyn std::io::Write,
) -> Result<Outcome, LinkError> {
    single_only(p, "change the mode of")?;
    run::mode(p, given, o, out).await
}

pub async fn reconcile(
    p: &Profile,
    given: &[String],
    o: &ReconcileOptions,
    out: &mut dyn std::io::Write,
) -> Result<Outcome, LinkError> {
    single_only(p, "reconcile")?;
    run::reconcile(p, given, o, out).await
}

/// The life of a multi-database link (preview) is left to Azure's own tools for
/// now: its failover moves every database at once and its documented steps are
/// still preview, so milink refuses rather than guess.
fn single_only(p: &Profile, what: &str) -> Result<(), LinkError> {
    if p.link.mode == crate::profile::LinkMode::Multi {
        return Err(LinkError::Usage(format!(
            "milink cannot yet {what} a multi-database link (preview); use the Azure portal, az sql mi link or SSMS for it"
        )));
    }
    Ok(())
}
