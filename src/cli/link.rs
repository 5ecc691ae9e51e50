//! `milink link plan | apply | remove | status`

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::check::Format;
use super::target::{Target, profile};
use crate::link::{self, Journal, Outcome};

#[derive(Subcommand)]
pub enum LinkCommand {
    /// The steps that remain to create the link, blockers first. Changes nothing.
    Plan {
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Go ahead despite a failing pre-flight check that would block, named by
        /// its ID (repeat for several): for a check you know is wrong here, such
        /// as a firewall rule milink's probes cannot see. The plan marks it waived.
        #[arg(long = "waive", value_name = "CHECK_ID")]
        waive: Vec<String>,
    },
    /// Carries the plan out, step by step; a re-run continues where one stopped.
    Apply {
        #[command(flatten)]
        target: Target,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Go ahead despite a failing pre-flight check that would block, named by
        /// its ID (repeat for several): for a check you know is wrong here, such
        /// as a firewall rule milink's probes cannot see. The plan marks it waived.
        #[arg(long = "waive", value_name = "CHECK_ID")]
        waive: Vec<String>,
    },
    /// Breaks the link (the instance's DAG, then SQL Server's); keeps the AG,
    /// the certificates and every database.
    Remove {
        #[command(flatten)]
        target: Target,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// What `apply` did (the journal).
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Fails the link over to --to: planned (nothing lost; the default) or
    /// --forced (the primary is gone). Back to SQL Server is a failback;
    /// --cleanup removes the link after a migration's cutover.
    Failover(Box<super::link_life::FailoverArgs>),
    /// Synchronous or asynchronous commit on both sides, and the instance's
    /// license-free DR setting (--hybrid-secondary passive).
    Mode(Box<super::link_life::ModeArgs>),
    /// After a forced failover left both sides PRIMARY: the other side backs
    /// up (nothing is lost) and becomes secondary, then the link reconnects.
    Reconcile(Box<super::link_life::ReconcileArgs>),
    /// Adds --database … to the multi-database link (preview): to SQL Server's
    /// AG and to the instance's resource (addDatabases), then seeds them.
    AddDatabase {
        #[command(flatten)]
        target: Target,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Takes --database … out of the multi-database link (preview): from the
    /// instance's resource (removeDatabases), then from SQL Server's AG. The
    /// databases stay on both sides.
    RemoveDatabase {
        #[command(flatten)]
        target: Target,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

pub fn run(cmd: LinkCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        match cmd {
            LinkCommand::Failover(a) => super::link_life::failover(*a).await,
            LinkCommand::Mode(a) => super::link_life::mode(*a).await,
            LinkCommand::Reconcile(a) => super::link_life::reconcile(*a).await,
            LinkCommand::Status { target } => {
                let (profile, _lab) = profile(&target).await?;
                let j = Journal::at(profile.link.journal.as_deref().unwrap_or(std::path::Path::new(".")));
                print!("{}", link::render::journal(&j.read()));
                Ok(ExitCode::SUCCESS)
            }
            LinkCommand::Plan { target, format, waive } => plan(&target, format, &waive).await,
            LinkCommand::Apply { target, yes, waive } => {
                // The lab lives as long as the command.
                let (profile, _lab) = profile(&target).await?;
                let mut out = std::io::stdout();
                applied(link::apply(&profile, &target.databases, &waive, yes, &mut out).await)
            }
            LinkCommand::AddDatabase { target, yes } => {
                let (profile, _lab) = profile(&target).await?;
                let mut out = std::io::stdout();
                applied(link::add_databases(&profile, &target.databases, yes, &mut out).await)
            }
            LinkCommand::Remove { target, yes } => {
                let (profile, _lab) = profile(&target).await?;
                let mut out = std::io::stdout();
                removed(link::remove(&profile, &target.databases, yes, &mut out).await)
            }
            LinkCommand::RemoveDatabase { target, yes } => {
                let (profile, _lab) = profile(&target).await?;
                let mut out = std::io::stdout();
                removed(link::remove_databases(&profile, &target.databases, yes, &mut out).await)
            }
        }
    })
}

async fn plan(target: &Target, format: Format, waive: &[String]) -> anyhow::Result<ExitCode> {
    let (profile, _lab) = profile(target).await?;
    let (plan, _) = link::run::make_plan(&profile, &target.databases, waive).await?;
    let text = match format {
        Format::Table => link::render::table(&plan),
        Format::Json => link::render::json(&plan),
        Format::Markdown => link::render::markdown(&plan),
    };
    println!("{}", text.trim_end());
    let blocked = plan.blocked() || plan.steps.iter().any(|s| matches!(s.state, link::State::Blocked(_)));
    Ok(ExitCode::from(if blocked { 2 } else { 0 }))
}

/// How `apply` (and `add-database`) ended, as the exit code says it.
fn applied(r: Result<Outcome, link::LinkError>) -> anyhow::Result<ExitCode> {
    match r {
        Ok(Outcome::NothingToDo) => {
            println!("The link is there and healthy: nothing was changed.");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Outcome::Created { steps }) => {
            println!("The link is created ({steps} step(s)) and healthy.");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Outcome::Unhealthy(d)) => {
            println!("The link's objects are in place, but the link is not healthy.");
            print!("{}", super::check::headline(&d, super::check::Job::Diagnose));
            Ok(ExitCode::from(2))
        }
        Err(e @ (link::LinkError::Usage(_) | link::LinkError::NoDatabases)) => {
            eprintln!("milink: {e}");
            let preflight = matches!(e, link::LinkError::Usage(ref m) if m.starts_with("pre-flight"));
            Ok(ExitCode::from(if preflight { 2 } else { 3 }))
        }
        Err(e) => {
            eprintln!("milink: {e}");
            eprintln!("Once the cause is fixed, run milink link apply again: it continues where it stopped.");
            Ok(ExitCode::from(2))
        }
    }
}

/// How `remove` (and `remove-database`) ended.
fn removed(r: Result<Vec<String>, link::LinkError>) -> anyhow::Result<ExitCode> {
    match r {
        Ok(kept) => {
            println!("Removed. Kept: {}.", kept.join("; "));
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ link::LinkError::Usage(_)) => {
            eprintln!("milink: {e}");
            Ok(ExitCode::from(3))
        }
        Err(e) => {
            eprintln!("milink: {e}");
            Ok(ExitCode::from(2))
        }
    }
}
