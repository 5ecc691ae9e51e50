//! `milink check`: the pre-flight report for one link; `milink checks`: the list.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::checks;
use crate::diagnose::{self, Diagnosis};
use crate::lab::scenario::Scenario;
use crate::lab::{Lab, Mode};
use crate::profile::{ManagedInstanceSection, Profile, SqlServerSection};
use crate::report;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Markdown,
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// How the report is shown.
#[derive(Args)]
struct OutputArgs {
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// The table lists every check, not only what needs attention.
    #[arg(short, long)]
    verbose: bool,
    /// Write every fix of the run to this file, worst first, each under its
    /// finding's id (T-SQL as it stands; fixes in words as comments).
    #[arg(long, value_name = "FILE")]
    fix_sql: Option<PathBuf>,
}

/// Which link, and how to look at it: a profile, a lab or a bundle, and the
/// flags that override the profile.
#[derive(Args)]
pub struct TargetArgs {
    /// Link profile (TOML). Flags override it.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Start the lab for this scenario in-process and check it.
    #[arg(long, value_name = "SCENARIO", conflicts_with = "profile")]
    lab: Option<PathBuf>,
    /// Replay a support bundle as a lab (its recorded answers, probe outcomes and names).
    #[arg(long, value_name = "ZIP", conflicts_with_all = ["profile", "lab"])]
    bundle: Option<PathBuf>,
    /// With --lab or --bundle: sides in network namespaces (root).
    #[arg(long)]
    topology: bool,
    #[arg(long)]
    sql_host: Option<String>,
    #[arg(long)]
    sql_port: Option<u16>,
    #[arg(long)]
    sql_user: Option<String>,
    /// Host the endpoint URL will use for SQL Server (IP or name).
    #[arg(long)]
    sql_endpoint_host: Option<String>,
    #[arg(long)]
    sql_endpoint_port: Option<u16>,
    #[arg(long)]
    sql_ca_cert: Option<PathBuf>,
    #[arg(long)]
    mi_fqdn: Option<String>,
    #[arg(long)]
    mi_user: Option<String>,
    #[arg(long)]
    mi_ca_cert: Option<PathBuf>,
    /// Database to check (repeat for several).
    #[arg(long = "database")]
    databases: Vec<String>,
    /// Every user database of SQL Server (and so every link of the pair).
    #[arg(long, conflicts_with = "databases")]
    all_databases: bool,
    #[arg(long)]
    warn_days: Option<i64>,
    #[arg(long)]
    crit_days: Option<i64>,
    /// Per network step, e.g. 2s or 500ms (10ms to 1h).
    #[arg(long, value_parser = crate::input::parse_timeout)]
    timeout: Option<Duration>,
    /// For the whole run, e.g. 20s (100ms to 24h). Default: 30s or 4 x --timeout,
    /// whichever is longer, plus 2 x --job-wait with --job-probes. What is not done
    /// by then is reported as a timeout.
    #[arg(long, value_parser = crate::input::parse_deadline)]
    deadline: Option<Duration>,
    /// DNS server to ask and compare (repeat).
    #[arg(long = "dns-server")]
    dns_servers: Vec<String>,
    /// Log in even when a TLS certificate does not verify (it is still reported).
    #[arg(long)]
    trust_server_certificate: bool,
    /// Test each direction from the servers themselves with a temporary SQL Agent
    /// job (created, run, and deleted).
    #[arg(long)]
    job_probes: bool,
    /// With --job-probes: if SQL Server has no mirroring endpoint, create the
    /// documented temporary one for the test, and drop it afterwards.
    #[arg(long, requires = "job_probes")]
    temp_endpoint: bool,
    /// How long to wait for a probe job, e.g. 90s.
    #[arg(long, value_parser = crate::input::parse_timeout)]
    job_wait: Option<Duration>,
}

/// A flag given on the command line overrides the profile.
fn set<T: Clone>(dst: &mut Option<T>, src: &Option<T>) {
    if src.is_some() {
        dst.clone_from(src)
    }
}

impl TargetArgs {
    fn apply(&self, p: &mut Profile) {
        if let Some(h) = &self.sql_host {
            p.sql_server.host = h.clone();
        }
        set(&mut p.sql_server.port, &self.sql_port);
        set(&mut p.sql_server.user, &self.sql_user);
        set(&mut p.sql_server.endpoint_host, &self.sql_endpoint_host);
        set(&mut p.sql_server.endpoint_port, &self.sql_endpoint_port);
        set(&mut p.sql_server.ca_cert, &self.sql_ca_cert);
        if let Some(f) = &self.mi_fqdn {
            p.managed_instance.fqdn = f.clone();
        }
        set(&mut p.managed_instance.user, &self.mi_user);
        set(&mut p.managed_instance.ca_cert, &self.mi_ca_cert);
        if !self.databases.is_empty() {
            p.databases = self.databases.clone();
            p.all_databases = false;
        }
        if self.all_databases {
            p.all_databases = true;
        }
        if let Some(d) = self.warn_days {
            p.thresholds.warn_days = d;
        }
        if let Some(d) = self.crit_days {
            p.thresholds.crit_days = d;
        }
        if let Some(t) = self.timeout {
            p.thresholds.timeout = t;
        }
        set(&mut p.thresholds.deadline, &self.deadline);
        if !self.dns_servers.is_empty() {
            p.dns.servers = self.dns_servers.clone();
        }
        if self.job_probes {
            p.probes.agent_jobs = true;
        }
        if self.temp_endpoint {
            p.probes.temp_endpoint = true;
        }
        if let Some(w) = self.job_wait {
            p.probes.job_wait = w;
        }
        if self.trust_server_certificate {
            p.sql_server.trust_server_certificate = true;
            p.managed_instance.trust_server_certificate = true;
        }
    }
}

/// Runs `job` with the profile the arguments name: a lab's, started here (and
/// run where the lab's host is), or a file's with its secrets loaded. The
/// run's deadline starts inside `job`.
pub fn with_profile<T, F, Fut>(args: &TargetArgs, job: F) -> anyhow::Result<T>
where
    F: FnOnce(Profile) -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let scenario = match (&args.lab, &args.bundle) {
            (Some(path), _) => Some((Scenario::load(path)?, path)),
            (None, Some(zip)) => Some((crate::bundle::replay::scenario(zip)?, zip)),
            (None, None) => None,
        };
        anyhow::ensure!(!args.topology || scenario.is_some(), "--topology needs --lab or --bundle");
        match scenario {
            Some((scenario, path)) => {
                let mode = if args.topology { Mode::Topology } else { Mode::Loopback };
                let lab = Lab::start_in(&scenario, mode)
                    .await
                    .with_context(|| format!("starting the lab for {}", path.display()))?;
                let mut profile = lab.profile(&scenario);
                args.apply(&mut profile);
                profile.validate().map_err(anyhow::Error::msg)?;
                // milink runs where the lab's host is: in topology mode, its namespace.
                Ok(lab.on_host(move || job(profile)).await?)
            }
            None => {
                let mut profile = match &args.profile {
                    Some(p) => Profile::load(p)?,
                    None => {
                        let (Some(sql), Some(mi)) = (&args.sql_host, &args.mi_fqdn) else {
                            anyhow::bail!(
                                "give a --profile, or at least --sql-host and --mi-fqdn (or --lab <scenario>)"
                            );
                        };
                        Profile {
                            sql_server: SqlServerSection { host: sql.clone(), ..Default::default() },
                            managed_instance: ManagedInstanceSection { fqdn: mi.clone(), ..Default::default() },
                            ..Default::default()
                        }
                    }
                };
                args.apply(&mut profile);
                profile.validate().map_err(anyhow::Error::msg)?;
                profile.dns_servers()?;
                profile.load_secrets()?;
                crate::azure::auth::sql_login_token(&mut profile).await?;
                Ok(job(profile).await)
            }
        }
    })
}

/// What to produce from the evidence.
#[derive(Clone, Copy)]
pub enum Job {
    Check,
    Diagnose,
}

/// Runs the job under the profile's deadline, which starts here.
async fn produce(mut profile: Profile, job: Job) -> Diagnosis {
    profile.start_clock();
    match job {
        Job::Check => Diagnosis::checks_only(checks::run(&profile).await),
        Job::Diagnose => diagnose::run(&profile).await,
    }
}

pub fn run(args: CheckArgs, job: Job) -> anyhow::Result<ExitCode> {
    let report = with_profile(&args.target, move |profile| async move { produce(profile, job).await })?;
    let args = args.output;
    if let Some(file) = &args.fix_sql {
        let lead = report.root_cause.as_ref().map(|rc| (rc.id, &*rc.remedy));
        std::fs::write(file, report::fix_sql(&report.report.findings, lead))
            .with_context(|| format!("writing {}", file.display()))?;
    }
    print(&report, args.format, job, args.verbose);
    Ok(ExitCode::from(report.report.summary.exit_code))
}

fn print(d: &Diagnosis, format: Format, job: Job, verbose: bool) {
    let text = match (format, job) {
        (Format::Json, Job::Check) => report::json(&d.report),
        (Format::Json, Job::Diagnose) => serde_json::to_string_pretty(d).expect("a diagnosis serialises"),
        (Format::Table, _) => format!("{}{}", headline(d, job), report::table(&d.report, verbose)),
        (Format::Markdown, Job::Check) => report::markdown(&d.report, None),
        (Format::Markdown, Job::Diagnose) => report::markdown(&d.report, Some(&d.root_cause_markdown())),
    };
    println!("{}", text.trim_end());
}

/// What a person reads first: for a check with nothing to fix, that the link
/// can be created; for a diagnosis, the root cause.
pub fn headline(d: &Diagnosis, job: Job) -> String {
    let s = &d.report.summary;
    match (job, &d.root_cause) {
        (Job::Check, _) if s.warn + s.fail + s.error == 0 => {
            let skipped = match s.skip {
                0 => String::new(),
                n => format!(" ({n} could not run here: -v says why)"),
            };
            format!("Ready to create the link: {} checks passed{skipped}.\n\n", s.pass + s.info)
        }
        (Job::Check, _) => String::new(),
        (Job::Diagnose, _) => {
            let causes = d.root_causes();
            let mut s = String::new();
            if d.links.len() > 1 {
                let healthy = d.healthy_links();
                s.push_str(&format!(
                    "{} links: {} broken, {} healthy{}\n",
                    d.links.len(),
                    causes.len(),
                    healthy.len(),
                    if healthy.is_empty() { String::new() } else { format!(" ({})", healthy.join(", ")) }
                ));
            }
            if causes.is_empty() {
                s.push_str(match d.links.len() {
                    0 | 1 => "Root cause: none — the link is connected and healthy.\n",
                    _ => "Root cause: none — every link is connected and healthy.\n",
                });
            }
            let named = d.links.len() > 1;
            for rc in causes {
                s.push_str(&cause_text(rc, named));
            }
            s.push('\n');
            s
        }
    }
}

/// One root cause, as a person reads it.
fn cause_text(rc: &crate::diagnose::RootCause, named: bool) -> String {
    let of = rc.link.as_ref().filter(|_| named).map(|l| format!(" of {l}")).unwrap_or_default();
    let mut s = format!("Root cause{of} ({} confidence): {} [{}]\n", rc.confidence, rc.summary, rc.id);
    for e in &rc.evidence {
        s.push_str(&format!("  evidence: {e}\n"));
    }
    s.push_str(&format!("  fix: {}\n", rc.remedy));
    for m in &rc.missing_evidence {
        s.push_str(&format!("  missing: {m}\n"));
    }
    if !rc.candidates.is_empty() {
        let other: Vec<String> = rc.candidates.iter().map(|c| format!("{} ({})", c.id, c.confidence)).collect();
        s.push_str(&format!("  other candidates: {}\n", other.join(", ")));
    }
    s
}

/// `milink checks`: every check ID, from the same list the checks use.
pub fn list(json: bool, markdown: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(checks::CHECKS)?);
    } else if markdown {
        println!("| id | family | what it checks |\n|---|---|---|");
        for c in checks::CHECKS {
            println!("| `{}` | {} | [{}]({}) |", c.id, c.family, c.title, c.doc_url);
        }
    } else {
        for c in checks::CHECKS {
            println!("{:<28} {:<13} {}  {}", c.id, c.family, c.title, c.doc_url);
        }
    }
    Ok(ExitCode::SUCCESS)
}
