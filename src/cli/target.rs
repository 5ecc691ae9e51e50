//! What `milink link` and its life's commands act on: the link's profile or an
//! in-process lab, the databases, the journal.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::lab::scenario::Scenario;
use crate::lab::{Lab, Mode};
use crate::profile::Profile;

#[derive(Args)]
pub struct Target {
    /// Link profile (TOML), e.g. the one `milink lab up --json` writes.
    #[arg(long, conflicts_with = "lab")]
    pub(super) profile: Option<PathBuf>,
    /// Start the lab for this scenario in-process and work on it.
    #[arg(long, value_name = "SCENARIO")]
    pub(super) lab: Option<PathBuf>,
    /// Database to link (repeat for several; default: the profile's).
    #[arg(long = "database")]
    pub(super) databases: Vec<String>,
    /// Every user database of SQL Server (to create links), or every database
    /// the pair's links carry (to remove them, or for their life).
    #[arg(long, conflicts_with = "databases")]
    pub(super) all_databases: bool,
    /// One link per database (single, the default) or one link for every
    /// database (multi: the multi-database mode, preview).
    #[arg(long, value_enum)]
    pub(super) link_mode: Option<crate::profile::LinkMode>,
    /// Where the journal is kept (default: beside the profile).
    #[arg(long)]
    pub(super) journal: Option<PathBuf>,
}

/// The profile, from a file (with its secrets) or from an in-process lab.
pub(super) async fn profile(t: &Target) -> anyhow::Result<(Profile, Option<Lab>)> {
    let (mut p, lab) = match (&t.profile, &t.lab) {
        (Some(path), _) => {
            let mut p = Profile::load(path)?;
            p.dns_servers()?;
            p.load_secrets()?;
            crate::azure::auth::sql_login_token(&mut p).await?;
            (p, None)
        }
        (None, Some(path)) => {
            let scenario = Scenario::load(path)?;
            let lab = Lab::start_in(&scenario, Mode::Loopback)
                .await
                .with_context(|| format!("starting the lab for {}", path.display()))?;
            (lab.profile(&scenario), Some(lab))
        }
        (None, None) => anyhow::bail!("give a --profile (or --lab <scenario>)"),
    };
    if let Some(j) = &t.journal {
        p.link.journal = Some(j.clone());
    }
    if t.all_databases {
        p.all_databases = true;
    }
    if let Some(m) = t.link_mode {
        p.link.mode = m;
    }
    Ok((p, lab))
}
