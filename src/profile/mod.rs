//! The link profile: which SQL Server, which managed instance, which
//! databases, thresholds and DNS servers. Secrets come from environment
//! variables, files or a prompt, never from the command line.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod link;
mod secrets;

pub use link::{LinkMode, LinkSection, link_name_problem};
pub use secrets::{Secret, Secrets};
use secrets::{read_env_or_file, secret};

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SqlServerSection {
    /// Host name (or IP) of SQL Server, for TDS and as the TLS name.
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    /// Connect here instead of resolving `host` (like a hosts-file pin).
    #[serde(default)]
    pub address: Option<IpAddr>,
    #[serde(default)]
    pub user: Option<String>,
    /// Environment variable with the password (default MILINK_SQL_PASSWORD).
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Host in the endpoint URL the managed instance will use (IP or name).
    #[serde(default)]
    pub endpoint_host: Option<String>,
    #[serde(default)]
    pub endpoint_port: Option<u16>,
    /// PEM file of the CA that signed SQL Server's TLS certificate.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// Log in even when the TLS certificate does not verify (it is still reported).
    #[serde(default)]
    pub trust_server_certificate: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ManagedInstanceSection {
    pub fqdn: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub address: Option<IpAddr>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable or file with an Azure AD access token (az account get-access-token).
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    #[serde(default)]
    pub trust_server_certificate: bool,
    /// The link will be used for failback (MI → SQL Server): the update policy must match.
    #[serde(default)]
    pub failback: bool,
    /// Log in with Azure AD: a token from the same sign-in as ARM ([arm] auth),
    /// unless one is given (token_env / token_file).
    #[serde(default)]
    pub azure_ad: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    #[serde(default = "warn_days")]
    pub warn_days: i64,
    #[serde(default = "crit_days")]
    pub crit_days: i64,
    /// Per network step, e.g. "2s".
    #[serde(default = "timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// For the whole command, e.g. "1m" (default: `deadline::default_for`).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Duration>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { warn_days: warn_days(), crit_days: crit_days(), timeout: timeout(), deadline: None }
    }
}

fn warn_days() -> i64 {
    30
}
fn crit_days() -> i64 {
    7
}
fn timeout() -> Duration {
    Duration::from_secs(2)
}

/// Probes that change something on a server, temporarily: off unless asked.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProbesSection {
    /// Test each direction from the servers themselves with a temporary SQL
    /// Agent job (Test-NetConnection), deleted afterwards.
    #[serde(default)]
    pub agent_jobs: bool,
    #[serde(default = "job_wait", with = "humantime_serde")]
    pub job_wait: Duration,
    /// When SQL Server has no mirroring endpoint yet, create the documented
    /// temporary one for the managed instance's job to reach, and drop it after.
    #[serde(default)]
    pub temp_endpoint: bool,
}

impl Default for ProbesSection {
    fn default() -> Self {
        ProbesSection { agent_jobs: false, job_wait: job_wait(), temp_endpoint: false }
    }
}

fn job_wait() -> Duration {
    Duration::from_secs(90)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSection {
    /// DNS servers to ask and compare with the OS resolver (`ip` or `ip:port`).
    #[serde(default)]
    pub servers: Vec<String>,
    /// Resolve through the OS (hosts file, resolv.conf). When false, the first
    /// configured server is authoritative (a jump host outside the corporate DNS).
    #[serde(default = "yes")]
    pub os_resolver: bool,
}

impl Default for DnsSection {
    fn default() -> Self {
        DnsSection { servers: vec![], os_resolver: true }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub sql_server: SqlServerSection,
    pub managed_instance: ManagedInstanceSection,
    #[serde(default)]
    pub databases: Vec<String>,
    /// Every user database of SQL Server instead of `databases` (read at run time).
    #[serde(default)]
    pub all_databases: bool,
    #[serde(default)]
    pub thresholds: Thresholds,
    #[serde(default)]
    pub dns: DnsSection,
    #[serde(default)]
    pub probes: ProbesSection,
    /// Azure Resource Manager: where the managed instance's resource is, and how to sign in.
    #[serde(default)]
    pub arm: ArmSection,
    /// What `milink link` creates, and how it names things.
    #[serde(default)]
    pub link: LinkSection,
    /// A TOML file of secrets beside the profile (mode 0600): `sql_password`,
    /// `mi_password`, `mi_token`, `arm_token`, `master_key_password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_file: Option<PathBuf>,
    /// Secrets, filled by `load_secrets` (or by `--lab`), never from the file itself.
    #[serde(skip)]
    pub sql_password: Option<Secret>,
    #[serde(skip)]
    pub mi_password: Option<Secret>,
    #[serde(skip)]
    pub mi_token: Option<Secret>,
    #[serde(skip)]
    pub arm_token: Option<Secret>,
    #[serde(skip)]
    pub master_key_password: Option<Secret>,
    /// When the whole run must end, set by `start_clock`.
    #[serde(skip)]
    pub until: Option<std::time::Instant>,
}

/// How milink gets a token for Azure Resource Manager.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArmAuth {
    /// A token from the environment or a file if one is there, else a service
    /// principal from AZURE_* variables, else the Azure CLI's login, else a
    /// managed identity.
    #[default]
    Auto,
    /// Only `token_env` / `token_file` (or the secrets file).
    Token,
    /// `az account get-access-token` (the Azure CLI's cached login).
    Cli,
    ManagedIdentity,
    /// AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET.
    ServicePrincipal,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArmSection {
    /// `https://management.azure.com`; another cloud's, or the lab's.
    #[serde(default = "default_arm_url")]
    pub base_url: String,
    /// The managed instance's full resource ID, instead of the three parts below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
    /// Default: the first label of the instance's FQDN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_instance: Option<String>,
    #[serde(default)]
    pub auth: ArmAuth,
    /// Environment variable with a bearer token (default MILINK_ARM_TOKEN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Trust only this CA for ARM (the lab's); default: the OS trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// Bounds every ARM request and each long-running operation.
    #[serde(default = "arm_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for ArmSection {
    fn default() -> Self {
        ArmSection {
            base_url: default_arm_url(),
            resource_id: None,
            subscription_id: None,
            resource_group: None,
            managed_instance: None,
            auth: ArmAuth::Auto,
            token_env: None,
            token_file: None,
            ca_cert: None,
            timeout: arm_timeout(),
        }
    }
}

fn default_arm_url() -> String {
    "https://management.azure.com".into()
}
fn arm_timeout() -> Duration {
    Duration::from_secs(600)
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{path}:{line}: {message}")]
    Invalid { path: String, line: usize, message: String },
    #[error("{0}")]
    Missing(String),
}

impl Profile {
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = crate::input::read_file(path).map_err(|e| ProfileError::Read(path.display().to_string(), e))?;
        let mut p: Profile = toml::from_str(&text).map_err(|e| ProfileError::Invalid {
            path: path.display().to_string(),
            line: e.span().map(|s| text[..s.start].matches('\n').count() + 1).unwrap_or(0),
            message: crate::input::shorten(e.message(), 300),
        })?;
        p.validate().map_err(|message| ProfileError::Invalid { path: path.display().to_string(), line: 0, message })?;
        // Paths in a profile are relative to it.
        let dir = path.parent().unwrap_or(Path::new("."));
        for f in [
            &mut p.secrets_file,
            &mut p.sql_server.password_file,
            &mut p.sql_server.ca_cert,
            &mut p.managed_instance.password_file,
            &mut p.managed_instance.token_file,
            &mut p.managed_instance.ca_cert,
            &mut p.arm.token_file,
            &mut p.arm.ca_cert,
            &mut p.link.master_key_password_file,
            &mut p.link.journal,
        ] {
            if let Some(x) = f.as_mut()
                && x.is_relative()
            {
                *x = dir.join(&*x);
            }
        }
        if p.link.journal.is_none() {
            p.link.journal = Some(path.with_extension("journal.jsonl"));
        }
        Ok(p)
    }

    /// The run's deadline starts now: `thresholds.deadline`, or the default for
    /// this timeout and these probes.
    pub fn start_clock(&mut self) -> Duration {
        let jobs = self.probes.agent_jobs.then_some(self.probes.job_wait);
        let d = self.thresholds.deadline.unwrap_or_else(|| crate::deadline::default_for(self.thresholds.timeout, jobs));
        self.until = Some(std::time::Instant::now() + d);
        d
    }

    /// One network step's limit under the run's deadline.
    pub fn limit(&self) -> crate::deadline::Limit {
        crate::deadline::Limit { timeout: self.thresholds.timeout, until: self.until }
    }

    /// Numbers and durations in range, whether from the file or the command line.
    pub fn validate(&self) -> Result<(), String> {
        use crate::input::check_timeout;
        check_timeout("thresholds.timeout", self.thresholds.timeout)?;
        if let Some(d) = self.thresholds.deadline {
            crate::input::check_deadline("thresholds.deadline", d)?;
        }
        check_timeout("probes.job_wait", self.probes.job_wait)?;
        check_timeout("arm.timeout", self.arm.timeout)?;
        for (what, d) in
            [("thresholds.warn_days", self.thresholds.warn_days), ("thresholds.crit_days", self.thresholds.crit_days)]
        {
            if !(0..=36_500).contains(&d) {
                return Err(format!("{what} {d} is outside 0..36500"));
            }
        }
        if self.thresholds.crit_days > self.thresholds.warn_days {
            return Err(format!(
                "thresholds.crit_days ({}) is more than thresholds.warn_days ({})",
                self.thresholds.crit_days, self.thresholds.warn_days
            ));
        }
        Ok(())
    }

    pub fn dns_servers(&self) -> Result<Vec<SocketAddr>, ProfileError> {
        self.dns
            .servers
            .iter()
            .map(|s| {
                s.parse::<SocketAddr>()
                    .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| ProfileError::Missing(format!("dns.servers: `{s}` is not an address")))
            })
            .collect()
    }

    /// Reads passwords and tokens from the secrets file, the environment, files or a prompt.
    pub fn load_secrets(&mut self) -> Result<(), ProfileError> {
        if let Some(path) = self.secrets_file.clone() {
            let s = Secrets::load(&path)?;
            for (slot, value) in [
                (&mut self.sql_password, s.sql_password),
                (&mut self.mi_password, s.mi_password),
                (&mut self.mi_token, s.mi_token),
                (&mut self.arm_token, s.arm_token),
                (&mut self.master_key_password, s.master_key_password),
            ] {
                if slot.is_none() {
                    *slot = value.map(Secret::new);
                }
            }
        }
        if self.arm_token.is_none() {
            let env = self.arm.token_env.clone().unwrap_or_else(|| "MILINK_ARM_TOKEN".into());
            self.arm_token = read_env_or_file(&env, self.arm.token_file.as_deref())?;
        }
        if self.sql_password.is_none() {
            let env = self.sql_server.password_env.clone().unwrap_or_else(|| "MILINK_SQL_PASSWORD".into());
            self.sql_password = secret(&env, self.sql_server.password_file.as_deref(), "SQL Server password")?;
        }
        if self.mi_token.is_none() && self.mi_password.is_none() {
            let token_env = self.managed_instance.token_env.clone().unwrap_or_else(|| "MILINK_MI_TOKEN".into());
            self.mi_token = read_env_or_file(&token_env, self.managed_instance.token_file.as_deref())?;
            if self.mi_token.is_none() && !self.managed_instance.azure_ad {
                let env = self.managed_instance.password_env.clone().unwrap_or_else(|| "MILINK_MI_PASSWORD".into());
                self.mi_password =
                    secret(&env, self.managed_instance.password_file.as_deref(), "managed instance password")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_profile_parses() {
        let p = Profile::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/link.toml"))).unwrap();
        assert_eq!(p.databases, ["SalesDB"]);
        assert_eq!(p.thresholds.timeout, Duration::from_secs(2));
        assert_eq!(p.probes.job_wait, Duration::from_secs(90));
        assert_eq!(p.dns_servers().unwrap()[0].port(), 53);
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "<redacted>");
    }
}
