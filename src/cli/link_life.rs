//! `milink link failover | mode | reconcile`: the link's life after creation.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::check::Format;
use super::target::Target;
use crate::link::LinkError;
use crate::link::failover::{self, Cleanup, FailoverOptions, ModeOptions, Outcome, ReconcileOptions, Side, report};
use crate::profile::Profile;

#[derive(Clone, Copy, ValueEnum)]
pub enum SideArg {
    ManagedInstance,
    SqlServer,
}

impl From<SideArg> for Side {
    fn from(s: SideArg) -> Side {
        match s {
            SideArg::ManagedInstance => Side::ManagedInstance,
            SideArg::SqlServer => Side::SqlServer,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CleanupArg {
    /// The link stays, roles reversed, ready to fail back.
    Keep,
    /// Remove the link (the instance's DAG, then SQL Server's).
    DropDag,
    /// Also drop SQL Server's availability group. Databases are never dropped.
    DropAgAndDag,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Sync,
    Async,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum HybridArg {
    /// A license-free disaster-recovery secondary (no workload on it).
    Passive,
    Active,
}

#[derive(Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    target: Target,
    /// The side that becomes primary (back to SQL Server is a failback).
    #[arg(long, value_enum)]
    to: SideArg,
    /// Nothing lost: switches to synchronous commit and waits until the hardened
    /// LSNs are equal on both sides and stay so (the default).
    #[arg(long, conflicts_with = "forced")]
    planned: bool,
    /// The primary is gone: fail over now and allow data loss (a split brain
    /// follows when it comes back: reconcile it).
    #[arg(long)]
    forced: bool,
    /// How long each gate may take (LSNs equal, roles swapped, the first backup).
    #[arg(long, default_value = "10m", value_parser = crate::input::parse_deadline)]
    max_wait: Duration,
    /// How long the hardened LSNs must stay equal before the failover.
    #[arg(long, default_value = "5s", value_parser = crate::input::parse_timeout)]
    settle: Duration,
    /// What is left of the link after a planned failover.
    #[arg(long, value_enum, default_value = "keep", conflicts_with = "forced")]
    cleanup: CleanupArg,
    /// With --cleanup: drop the link before the new primary's first full backup.
    #[arg(long)]
    force: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Args)]
pub struct ModeArgs {
    #[command(flatten)]
    target: Target,
    /// The commit mode of both sides (omit to change only --hybrid-secondary).
    #[arg(value_enum)]
    mode: Option<ModeArg>,
    /// The instance's hybridSecondaryUsage (passive: license-free DR).
    #[arg(long, value_enum)]
    hybrid_secondary: Option<HybridArg>,
    #[arg(long)]
    yes: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    target: Target,
    /// The side that keeps the primary role; the other backs up, then becomes secondary.
    #[arg(long, value_enum)]
    primary: SideArg,
    /// Where the side that gives up the role backs up first: a folder on SQL
    /// Server's disk (a tail-log backup), or a blob container URL for the
    /// managed instance (a COPY_ONLY full backup).
    #[arg(long)]
    backup_to: String,
    #[arg(long, default_value = "10m", value_parser = crate::input::parse_deadline)]
    max_wait: Duration,
    #[arg(long)]
    yes: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub async fn failover(a: FailoverArgs) -> anyhow::Result<ExitCode> {
    let (p, _lab) = super::target::profile(&a.target).await?;
    let o = FailoverOptions {
        to: a.to.into(),
        forced: a.forced,
        max_wait: a.max_wait,
        settle: a.settle,
        cleanup: match a.cleanup {
            CleanupArg::Keep => Cleanup::Keep,
            CleanupArg::DropDag => Cleanup::DropDag,
            CleanupArg::DropAgAndDag => Cleanup::DropAgAndDag,
        },
        force: a.force,
        yes: a.yes,
    };
    let _ = a.planned;
    let mut progress = progress(a.format);
    let r = failover::failover(&p, &a.target.databases, &o, progress.as_mut()).await;
    finish(r, a.format, &p)
}

pub async fn mode(a: ModeArgs) -> anyhow::Result<ExitCode> {
    if a.mode.is_none() && a.hybrid_secondary.is_none() {
        eprintln!("milink: give a mode (sync or async), --hybrid-secondary, or both");
        return Ok(ExitCode::from(3));
    }
    let (p, _lab) = super::target::profile(&a.target).await?;
    let o = ModeOptions {
        mode: a.mode.map(|m| match m {
            ModeArg::Sync => "SYNCHRONOUS_COMMIT",
            ModeArg::Async => "ASYNCHRONOUS_COMMIT",
        }),
        hybrid_secondary: a.hybrid_secondary.map(|h| match h {
            HybridArg::Passive => "Passive",
            HybridArg::Active => "Active",
        }),
        yes: a.yes,
    };
    let mut progress = progress(a.format);
    let r = failover::mode(&p, &a.target.databases, &o, progress.as_mut()).await;
    finish(r, a.format, &p)
}

pub async fn reconcile(a: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let (p, _lab) = super::target::profile(&a.target).await?;
    let o = ReconcileOptions { primary: a.primary.into(), backup_to: a.backup_to, max_wait: a.max_wait, yes: a.yes };
    let mut progress = progress(a.format);
    let r = failover::reconcile(&p, &a.target.databases, &o, progress.as_mut()).await;
    finish(r, a.format, &p)
}

/// Progress lines go with the table on stdout; beside JSON or Markdown, to stderr.
fn progress(f: Format) -> Box<dyn std::io::Write> {
    match f {
        Format::Table => Box::new(std::io::stdout()),
        _ => Box::new(std::io::stderr()),
    }
}

/// The outcome in the format asked for; a refusal or failure on stderr with
/// its reasons. Exit 0 done, 2 refused or failed, 3 usage.
fn finish(r: Result<Outcome, LinkError>, f: Format, p: &Profile) -> anyhow::Result<ExitCode> {
    match r {
        Ok(o) => {
            let text = match f {
                Format::Table => report::table(&o),
                Format::Json => report::json(&o),
                Format::Markdown => report::markdown(&o),
            };
            println!("{}", text.trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Err(LinkError::Refused { what, refusals }) => {
            eprintln!("milink: {what}:");
            for r in &refusals {
                eprintln!("  - {}: {}", r.check, r.why);
                if let Some(fix) = &r.fix {
                    eprintln!("    fix: {fix}");
                }
            }
            if f == Format::Json {
                println!("{}", serde_json::json!({ "refused": what, "reasons": refusals }));
            }
            Ok(ExitCode::from(2))
        }
        Err(e @ (LinkError::Usage(_) | LinkError::NoDatabases)) => {
            eprintln!("milink: {e}");
            Ok(ExitCode::from(3))
        }
        Err(e) => {
            eprintln!("milink: {e}");
            if let Some((code, fix)) = failover::arm_fixes::fix_for(&e.to_string()) {
                eprintln!("  fix ({code}): {fix}");
            }
            let journal = p.link.journal.as_deref().map(|j| j.display().to_string()).unwrap_or_default();
            eprintln!(
                "Once the cause is fixed, run the same command again: it continues where it stopped (journal: {journal})."
            );
            Ok(ExitCode::from(2))
        }
    }
}
