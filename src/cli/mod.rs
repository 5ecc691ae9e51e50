//! Command line: parse, dispatch, map to an exit code. Errors print their
//! whole context chain.

mod audit;
mod bundle;
mod check;
mod lab;
mod link;
mod link_life;
mod shell;
mod target;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code when milink itself could not do its job.
pub const EXIT_TOOL_ERROR: u8 = 3;

#[derive(Parser)]
#[command(
    name = "milink",
    version,
    about = "Pre-flight checks and diagnosis for the SQL Server <-> Azure SQL Managed Instance link"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The pre-flight report for one link, both sides, in one run.
    Check(Box<check::CheckArgs>),
    /// For an existing link: the checks, the link's own state, and the most likely root cause first.
    Diagnose(Box<check::CheckArgs>),
    /// Every check ID with its family, title and doc URL.
    Checks {
        #[arg(long)]
        json: bool,
        /// The README's table.
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
    },
    /// Create the link: a plan of the remaining steps, then carried out.
    Link {
        #[command(subcommand)]
        command: link::LinkCommand,
    },
    /// Audits across a fleet of instances (certificates), for schedulers.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// One redacted support bundle (zip) for a ticket: the diagnosis, a picture
    /// of the link, the raw evidence and a manifest; `bundle verify FILE` checks one.
    Bundle(Box<bundle::BundleArgs>),
    /// Follow a link over time: one line per change, a SQLite history,
    /// Prometheus metrics, a command per change, and the root cause when it breaks.
    Watch(Box<watch::WatchArgs>),
    /// The events earlier watches kept.
    History(watch::HistoryArgs),
    /// Stand-ins for SQL Server and a managed instance, driven by scenario files.
    Lab {
        #[command(subcommand)]
        command: lab::LabCommand,
    },
    /// Shell completions on stdout: milink completions bash > ~/.local/share/bash-completion/completions/milink
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The manual page on stdout, or with --dir every page (one per command) written there.
    Man {
        /// Write milink.1 and one page per command here (e.g. ~/.local/share/man/man1).
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    tracing_subscriber::fmt()
        // Quiet unless asked: the report is the output (drivers log server errors as ERROR).
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MILINK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into a pipe or file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none())
        .init();
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(EXIT_TOOL_ERROR) } else { ExitCode::SUCCESS };
        }
    };
    let result = match args.command {
        Command::Lab { command } => lab::run(command),
        Command::Link { command } => link::run(command),
        Command::Audit { command } => audit::run(command),
        Command::Bundle(args) => bundle::run(*args),
        Command::Check(args) => check::run(*args, check::Job::Check),
        Command::Diagnose(args) => check::run(*args, check::Job::Diagnose),
        Command::Watch(args) => watch::run(*args),
        Command::History(args) => watch::history(args),
        Command::Checks { json, markdown } => check::list(json, markdown),
        Command::Completions { shell } => shell::completions(shell),
        Command::Man { dir } => shell::man(dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("milink: {e:#}");
            ExitCode::from(EXIT_TOOL_ERROR)
        }
    }
}
