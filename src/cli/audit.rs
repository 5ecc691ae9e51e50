//! `milink audit certs`: the fleet's certificates, for a scheduler.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use crate::audit::{self, inventory::Inventory, render};
use crate::lab::fleet::{Fleet, FleetLab};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Certificate expiry and trust across SQL Servers and managed instances.
    /// Exit code as Nagios: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    Certs(CertsArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Markdown,
    /// Text exposition for node_exporter's textfile collector.
    Prometheus,
}

#[derive(Args)]
pub struct CertsArgs {
    /// The instances to audit (TOML: [defaults] and [[instance]] entries).
    #[arg(long, required_unless_present = "lab", conflicts_with = "lab")]
    inventory: Option<PathBuf>,
    /// Start a lab fleet (a file with [[group]] entries) in-process and audit it.
    #[arg(long, value_name = "FLEET")]
    lab: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// WARNING below this many days left.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(0..=36_500))]
    warn_days: i64,
    /// CRITICAL below this many days left.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(i64).range(0..=36_500))]
    crit_days: i64,
    /// Instances read at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// The most one instance may take, e.g. 5s or 800ms.
    #[arg(long, default_value = "5s", value_parser = crate::input::parse_timeout)]
    timeout: Duration,
    /// The table lists every certificate, link and instance, not only problems.
    #[arg(short, long)]
    verbose: bool,
    /// Audit only share K of N (0-based: 0/3, 1/3, 2/3), so N processes cover the
    /// fleet together; instances are shared out by a hash of their name.
    #[arg(long, value_name = "K/N", value_parser = parse_shard, conflicts_with = "shards")]
    shard: Option<audit::shard::Shard>,
    /// Audit one share of N, K from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job sets it).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    shards: Option<u32>,
    /// Also write the Prometheus text here, atomically (for node_exporter's textfile
    /// collector: a name ending in .prom), whatever --format prints.
    #[arg(long, value_name = "PATH")]
    metrics_file: Option<PathBuf>,
}

fn parse_shard(s: &str) -> Result<audit::shard::Shard, String> {
    audit::shard::Shard::parse(s)
}

/// The share asked for: `--shard K/N`, or `--shards N` with K from the Indexed Job's index.
fn shard(args: &CertsArgs) -> anyhow::Result<audit::shard::Shard> {
    use audit::shard::Shard;
    match (args.shard, args.shards) {
        (Some(s), _) => Ok(s),
        (None, Some(n)) => {
            let k = std::env::var("JOB_COMPLETION_INDEX")
                .context("--shards needs JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job), or use --shard K/N")?;
            let k: u32 = k.trim().parse().with_context(|| format!("JOB_COMPLETION_INDEX `{k}` is not a number"))?;
            Shard::new(k, n).map_err(anyhow::Error::msg)
        }
        (None, None) => Ok(Shard::WHOLE),
    }
}

/// Writes beside the target and renames, so a collector never reads half a file.
fn write_atomically(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = path.file_name().context("--metrics-file names no file")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Certs(args) = cmd;
    if args.crit_days > args.warn_days {
        anyhow::bail!("--crit-days ({}) is more than --warn-days ({})", args.crit_days, args.warn_days);
    }
    let options = audit::Options {
        warn_days: args.warn_days,
        crit_days: args.crit_days,
        concurrency: args.concurrency as usize,
        timeout: args.timeout,
        shard: shard(&args)?,
    };
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = rt.block_on(async {
        match (&args.inventory, &args.lab) {
            (Some(path), _) => {
                let inv = Inventory::load(path)?;
                anyhow::Ok(audit::run(&inv, &options).await)
            }
            (None, Some(path)) => {
                let fleet = Fleet::load(path)?;
                let lab = FleetLab::start(&fleet, path)
                    .await
                    .with_context(|| format!("starting the lab fleet {}", path.display()))?;
                let inv = Inventory::load(&lab.inventory)?;
                Ok(audit::run(&inv, &options).await)
            }
            (None, None) => unreachable!("clap requires one"),
        }
    })?;
    let text = match args.format {
        Format::Table => render::table(&report, args.verbose),
        Format::Json => render::json(&report),
        Format::Markdown => render::markdown(&report),
        Format::Prometheus => render::prometheus(&report),
    };
    if let Some(path) = &args.metrics_file {
        write_atomically(path, &render::prometheus(&report))?;
    }
    println!("{}", text.trim_end());
    Ok(ExitCode::from(report.summary.exit_code))
}
