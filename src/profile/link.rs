//! The `[link]` section: names and choices for `milink link`, and the rules
//! of a multi-database link's name.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Names and choices for `milink link`; `{db}` stands for each database.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSection {
    #[serde(default = "default_dag")]
    pub dag: String,
    #[serde(default = "default_sql_ag")]
    pub sql_ag: String,
    #[serde(default = "default_mi_ag")]
    pub mi_ag: String,
    /// SQL Server's endpoint certificate (default `Cert_<@@SERVERNAME>_endpoint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Days a certificate milink creates is valid.
    #[serde(default = "cert_days")]
    pub certificate_days: u32,
    /// The mirroring endpoint milink creates when there is none.
    #[serde(default = "default_endpoint_name")]
    pub endpoint_name: String,
    /// Environment variable with the database master key's password (default
    /// MILINK_MASTER_KEY_PASSWORD), or a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key_password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key_password_file: Option<PathBuf>,
    /// The journal of what `apply` did (default: `<profile>.journal.jsonl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<PathBuf>,
    /// How long `apply` waits for seeding.
    #[serde(default = "seeding_wait", with = "humantime_serde")]
    pub seeding_wait: Duration,
    /// `single` (a link per database, the default) or `multi` (one link for
    /// every database of an AG: the preview multi-database mode).
    #[serde(default)]
    pub mode: LinkMode,
    /// The link's name in multi-database mode (lowercase, no leading or
    /// trailing hyphen); by default `link-<SQL Server's host name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LinkMode {
    #[default]
    Single,
    Multi,
}

impl LinkSection {
    /// The multi-database link's name, as the profile gives it or from SQL Server's host.
    pub fn multi_name(&self, sql_host: &str) -> String {
        self.name.clone().unwrap_or_else(|| {
            let host: String = sql_host.split('.').next().unwrap_or("sql").to_ascii_lowercase();
            let clean: String = host.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
            format!("link-{}", clean.trim_matches('-'))
        })
    }
}

/// Why a multi-database link name breaks the documented rules, if it does.
pub fn link_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".into());
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Some(format!("`{name}` has capitals: multi-database link names are lowercase"));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some(format!("`{name}` begins or ends with a hyphen"));
    }
    None
}

impl Default for LinkSection {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

fn default_dag() -> String {
    "DAG_{db}".into()
}
fn default_sql_ag() -> String {
    "AG_{db}".into()
}
fn default_mi_ag() -> String {
    "AG_{db}_MI".into()
}
fn default_endpoint_name() -> String {
    "database_mirroring_endpoint".into()
}
fn cert_days() -> u32 {
    365
}
fn seeding_wait() -> Duration {
    Duration::from_secs(3600)
}
