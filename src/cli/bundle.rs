//! `milink bundle`: the support bundle; `milink bundle verify`: its hashes and
//! a scan for secrets.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use super::check::{TargetArgs, with_profile};
use crate::bundle;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BundleArgs {
    #[command(subcommand)]
    command: Option<BundleCommand>,
    #[command(flatten)]
    target: Box<TargetArgs>,
    /// Where to write the zip (default: milink-<link>-<UTC time>.zip here).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Replace host names, addresses, logins, server names and Azure IDs by
    /// stable aliases; the alias map goes beside the zip, not in it.
    #[arg(long, value_enum)]
    redact: Option<Redact>,
    /// A `milink watch` history whose last day of events goes in, as a timeline
    /// (default: milink-history.db here, when there is one).
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Redact {
    Identities,
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Checks every file against the manifest and looks for anything like a secret.
    Verify { file: PathBuf },
}

pub fn run(args: BundleArgs) -> anyhow::Result<ExitCode> {
    if let Some(BundleCommand::Verify { file }) = &args.command {
        return verify(file);
    }
    let history = args.history.clone().or_else(|| {
        let here = PathBuf::from("milink-history.db");
        here.is_file().then_some(here)
    });
    if let Some(h) = history.as_ref().filter(|h| !h.is_file()) {
        anyhow::bail!("no watch history at {}", h.display());
    }
    let options = bundle::Options {
        redact_identities: args.redact == Some(Redact::Identities),
        history,
        command_line: std::env::args().collect(),
    };
    let (b, name) = with_profile(&args.target, move |mut profile| async move {
        profile.start_clock();
        let name = bundle::default_name(&profile);
        (bundle::build(&profile, &options).await, name)
    })?;
    let out = args.output.clone().unwrap_or_else(|| PathBuf::from(name));
    bundle::write(&b, &out)?;
    let d = &b.diagnosis;
    let cause = d.root_cause.as_ref().map(|rc| format!("root cause: {} [{}]", rc.summary, rc.id));
    println!("{}: {} files; {}", out.display(), b.entries.len(), d.report.one_line());
    println!("{}", cause.unwrap_or_else(|| "root cause: none, the link is connected and healthy".into()));
    if b.aliases.is_some() {
        println!("aliases: {} (keep it out of the ticket)", bundle::aliases_path(&out).display());
    }
    Ok(ExitCode::from(d.report.summary.exit_code))
}

fn verify(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let v = bundle::verify::verify(file).with_context(|| format!("verifying {}", file.display()))?;
    for m in &v.mismatches {
        println!("MISMATCH {m}");
    }
    for (f, what) in &v.suspicious {
        println!("SECRET?  {f}: {what}");
    }
    if v.clean() {
        println!(
            "{}: {} files, every hash matches the manifest, nothing that looks like a secret",
            file.display(),
            v.files
        );
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(2))
    }
}
