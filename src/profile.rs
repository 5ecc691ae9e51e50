//! The link profile: which SQL Server, which managed instance, which
//! databases, thresholds and DNS servers. Secrets come from environment
//! variables, files or a prompt, never from the command line.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A password or token: never printed, never serialised.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
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

#[derive(Debug, Clone, Deserialize, Default)]
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    #[serde(default = "warn_days")]
    pub warn_days: i64,
    #[serde(default = "crit_days")]
    pub crit_days: i64,
    /// Per network step, e.g. "2s".
    #[serde(default = "timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { warn_days: warn_days(), crit_days: crit_days(), timeout: timeout() }
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
#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub sql_server: SqlServerSection,
    pub managed_instance: ManagedInstanceSection,
    #[serde(default)]
    pub databases: Vec<String>,
    #[serde(default)]
    pub thresholds: Thresholds,
    #[serde(default)]
    pub dns: DnsSection,
    #[serde(default)]
    pub probes: ProbesSection,
    /// Secrets, filled by `load_secrets` (or by `--lab`), never from the file itself.
    #[serde(skip)]
    pub sql_password: Option<Secret>,
    #[serde(skip)]
    pub mi_password: Option<Secret>,
    #[serde(skip)]
    pub mi_token: Option<Secret>,
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
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError::Read(path.display().to_string(), e))?;
        toml::from_str(&text).map_err(|e| ProfileError::Invalid {
            path: path.display().to_string(),
            line: e.span().map(|s| text[..s.start].matches('\n').count() + 1).unwrap_or(0),
            message: e.message().to_string(),
        })
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

    /// Reads passwords and tokens from the environment, files or a prompt.
    pub fn load_secrets(&mut self) -> Result<(), ProfileError> {
        if self.sql_password.is_none() {
            let env = self.sql_server.password_env.clone().unwrap_or_else(|| "MILINK_SQL_PASSWORD".into());
            self.sql_password = secret(&env, self.sql_server.password_file.as_deref(), "SQL Server password")?;
        }
        if self.mi_token.is_none() && self.mi_password.is_none() {
            let token_env = self.managed_instance.token_env.clone().unwrap_or_else(|| "MILINK_MI_TOKEN".into());
            self.mi_token = read_env_or_file(&token_env, self.managed_instance.token_file.as_deref())?;
            if self.mi_token.is_none() {
                let env = self.managed_instance.password_env.clone().unwrap_or_else(|| "MILINK_MI_PASSWORD".into());
                self.mi_password =
                    secret(&env, self.managed_instance.password_file.as_deref(), "managed instance password")?;
            }
        }
        Ok(())
    }
}

fn read_env_or_file(env: &str, file: Option<&Path>) -> Result<Option<Secret>, ProfileError> {
    if let Some(f) = file {
        let s = std::fs::read_to_string(f).map_err(|e| ProfileError::Read(f.display().to_string(), e))?;
        return Ok(Some(Secret::new(s.trim_end_matches(['\r', '\n']))));
    }
    Ok(std::env::var(env).ok().filter(|s| !s.is_empty()).map(Secret::new))
}

fn secret(env: &str, file: Option<&Path>, what: &str) -> Result<Option<Secret>, ProfileError> {
    if let Some(s) = read_env_or_file(env, file)? {
        return Ok(Some(s));
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let p =
            rpassword::prompt_password(format!("{what}: ")).map_err(|e| ProfileError::Read("terminal".into(), e))?;
        return Ok(Some(Secret::new(p)));
    }
    Ok(None)
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
