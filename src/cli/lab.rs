//! `milink lab up|ls`

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::lab::fleet::{self, Fleet, FleetLab};
use crate::lab::scenario::Scenario;
use crate::lab::{Lab, Mode};

#[derive(Subcommand)]
pub enum LabCommand {
    /// Start the stand-ins of a scenario (or of a fleet: a file with
    /// [[group]] entries) and serve until Ctrl-C or SIGTERM.
    Up {
        #[arg(required_unless_present = "bundle")]
        scenario: Option<PathBuf>,
        /// Replay a support bundle: its recorded answers, probe outcomes and names.
        #[arg(long, conflicts_with = "scenario")]
        bundle: Option<PathBuf>,
        /// Print one JSON object with the addresses and logins, as the first line.
        #[arg(long)]
        json: bool,
        /// Put each side in its own network namespace (root): faults per direction.
        #[arg(long)]
        topology: bool,
    },
    /// Print the scenario a support bundle replays as (TOML), to edit and run.
    ScenarioFrom {
        #[arg(long)]
        bundle: PathBuf,
    },
    /// List scenarios and their descriptions.
    Ls {
        #[arg(default_value = "scenarios")]
        dir: PathBuf,
    },
}

pub fn run(cmd: LabCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LabCommand::Up { scenario: Some(path), json, topology, .. } => up(&path, json, topology),
        LabCommand::Up { bundle: Some(b), json, topology, .. } => {
            let scenario = crate::bundle::replay::scenario(&b)?;
            serve(&scenario, &b, json, topology)
        }
        LabCommand::Up { .. } => anyhow::bail!("give a scenario file or --bundle"),
        LabCommand::ScenarioFrom { bundle } => {
            print!("{}", crate::bundle::replay::scenario_text(&bundle)?);
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Ls { dir } => ls(&dir),
    }
}

fn up(path: &Path, json: bool, topology: bool) -> anyhow::Result<ExitCode> {
    if fleet::is_fleet(path) {
        anyhow::ensure!(!topology, "a fleet runs in loopback mode only");
        return up_fleet(path, json);
    }
    serve(&Scenario::load(path)?, path, json, topology)
}

fn serve(scenario: &Scenario, path: &Path, json: bool, topology: bool) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let mode = if topology { Mode::Topology } else { Mode::Loopback };
        let lab =
            Lab::start_in(scenario, mode).await.with_context(|| format!("starting the lab for {}", path.display()))?;
        let profile = lab.write_profile(scenario).context("writing the lab's link profile")?;
        if json {
            let mut v = serde_json::to_value(&lab.info)?;
            v["profile"] = serde_json::Value::String(profile.display().to_string());
            println!("{v}");
        } else {
            print_human(scenario, &lab, &profile);
        }
        wait_for_stop().await;
        drop(lab);
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

fn up_fleet(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let fleet = Fleet::load(path)?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let lab = FleetLab::start(&fleet, path)
            .await
            .with_context(|| format!("starting the lab fleet {}", path.display()))?;
        let info = lab.info(&fleet);
        if json {
            println!("{}", serde_json::to_string(&info)?);
        } else {
            println!("milink lab fleet: {}", info.description);
            println!("  {} links, {} instances on loopback", info.links, info.instances);
            println!("  inventory         {}  (milink audit certs --inventory it)", info.inventory);
            println!("Ctrl-C stops the lab.");
        }
        wait_for_stop().await;
        drop(lab);
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_stop() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

fn print_human(scenario: &Scenario, lab: &Lab, profile: &Path) {
    println!("milink lab ({:?} mode): {}", lab.mode, scenario.description);
    for (label, s) in [("SQL Server", &lab.info.sql_server), ("managed instance", &lab.info.managed_instance)] {
        println!("  {label:<17} {} ({})", s.name, s.fqdn);
        println!("    TDS             {}:{}  login {} (password in --json output)", s.host, s.port, s.user);
        if let Some(ep) = &s.endpoint {
            println!("    mirroring       {}:{}", ep.host, ep.port);
        }
        if let Some(p) = s.redirect_port {
            println!("    redirect        {}:{p}", s.host);
        }
    }
    println!("  DNS               {}:{}", lab.info.dns.host, lab.info.dns.port);
    println!(
        "  ARM               {}  (subscription {}, resource group {})",
        lab.info.arm.base_url, lab.info.arm.subscription_id, lab.info.arm.resource_group
    );
    println!("  control           {}", lab.info.control);
    println!("  lab CA            {}", lab.info.sql_server.ca_cert);
    println!("  profile           {}  (milink check|diagnose|link … --profile it)", profile.display());
    println!("Ctrl-C stops the lab.");
}

fn ls(dir: &Path) -> anyhow::Result<ExitCode> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let width = files.iter().map(|p| p.file_stem().map(|s| s.len()).unwrap_or(0)).max().unwrap_or(0);
    let mut bad = false;
    for f in files {
        let stem = f.file_stem().unwrap_or_default().to_string_lossy().to_string();
        match Scenario::load(&f) {
            Ok(s) => println!("{stem:<width$}  {}", s.description),
            Err(e) => {
                bad = true;
                println!("{stem:<width$}  INVALID: {e}");
            }
        }
    }
    Ok(if bad { ExitCode::from(super::EXIT_TOOL_ERROR) } else { ExitCode::SUCCESS })
}
