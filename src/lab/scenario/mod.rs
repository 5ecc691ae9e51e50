//! Scenario files: the TOML that says what the lab stands up, one file per
//! section: the sides (`side.rs`), a link that exists (`link.rs`), the network
//! and DNS (`network.rs`), the fake ARM (`arm.rs`), relative times, reading
//! with `extends` (`load.rs`) and the checks a file must pass (`validate.rs`).
//!
//! High-level facts (version, collation, endpoint, certificates, databases…) are
//! materialised into catalog rows by `catalog::build`; `rows` gives raw rows for
//! oddities. Dates are relative to lab start (`"-3d"`, `"+400d"`) so files never rot.

mod arm;
mod defaults;
mod link;
mod load;
mod network;
pub mod recorded;
mod reltime;
mod side;
pub mod timeline;
mod validate;

use serde::Deserialize;
use time::{Duration, OffsetDateTime};

pub use arm::{Arm, ArmFault, ArmFaultKind};
pub use link::{ConnectError, Link, Replication, Seeding, Workload};
pub use load::ScenarioError;
pub use network::{Dns, DnsRecord, Fault, FaultAction, Network};
pub use reltime::RelTime;
pub use side::{
    AvailabilityGroup, Backup, Certificate, Database, Encryption, Endpoint, ErrorLogLine, Fabric, Host, Listener,
    Login, Side, Tds, TdsFault, TlsCert, parse_version,
};

use crate::lab::addr::{self, Mode};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// One line shown by `milink lab ls`.
    pub description: String,
    /// A scenario file this one starts from (path relative to this file); tables
    /// merge key by key, arrays are replaced whole.
    #[serde(default)]
    pub extends: Option<String>,
    pub sql_server: Side,
    pub managed_instance: Side,
    #[serde(default)]
    pub link: Option<Link>,
    /// More links on the same pair (`[[links]]`), one per database.
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(default)]
    pub dns: Dns,
    #[serde(default)]
    pub network: Network,
    /// What the DBA plans for the link, as `check --lab` puts it in the profile.
    #[serde(default)]
    pub plan: Plan,
    /// How a link created in the lab behaves: how fast it connects and seeds.
    #[serde(default)]
    pub replication: Replication,
    /// The application's writes to the link databases.
    #[serde(default)]
    pub workload: Option<Workload>,
    /// The managed instance's Azure Resource Manager stand-in.
    #[serde(default)]
    pub arm: Arm,
    /// What later issues assert; the lab only keeps it.
    #[serde(default)]
    pub expect: toml::Table,
    /// Set when the scenario came from a support bundle.
    #[serde(default)]
    pub replay: Option<Replay>,
    /// Changes to the running lab at times after it starts.
    #[serde(default)]
    pub timeline: Vec<timeline::Step>,
}

/// Where a replayed scenario came from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    pub bundle: String,
    /// When the bundle was made (RFC 3339): recorded datetimes move forward by its age.
    pub taken_at: String,
}

impl Replay {
    /// How far recorded datetimes move: from when the bundle was made to `now`.
    pub fn shift(&self, now: OffsetDateTime) -> Result<Duration, ScenarioError> {
        let taken =
            OffsetDateTime::parse(&self.taken_at, &time::format_description::well_known::Rfc3339).map_err(|e| {
                ScenarioError::Inconsistent {
                    path: self.bundle.clone(),
                    message: format!("replay.taken_at `{}`: {e}", self.taken_at),
                }
            })?;
        Ok(now - taken)
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The link will fail back to SQL Server (needs the matching MI update policy).
    #[serde(default)]
    pub failback: bool,
    /// The endpoint port the endpoint URL will use (default: the endpoint's own).
    #[serde(default)]
    pub endpoint_port: Option<u16>,
    /// Databases to check (default: every user database of SQL Server).
    #[serde(default)]
    pub databases: Option<Vec<String>>,
    /// Test each direction with temporary Agent jobs (`--job-probes`).
    #[serde(default)]
    pub job_probes: bool,
    /// With `job_probes`: the temporary endpoint (`--temp-endpoint`).
    #[serde(default)]
    pub temp_endpoint: bool,
    /// The profile's thresholds (timeouts, expiry days), when not the defaults.
    #[serde(default)]
    pub thresholds: Option<crate::profile::Thresholds>,
    /// Log in even when a TLS certificate does not verify.
    #[serde(default)]
    pub trust_server_certificate: bool,
    /// `single` (default) or `multi`: the link mode the DBA plans (`--link-mode`).
    #[serde(default)]
    pub link_mode: crate::profile::LinkMode,
    /// The multi-database link's name (`[link] name`), when not the default.
    #[serde(default)]
    pub link_name: Option<String>,
}

impl Scenario {
    /// Every link the file describes: `[link]`, then `[[links]]`.
    pub fn all_links(&self) -> impl Iterator<Item = &Link> {
        self.link.iter().chain(&self.links)
    }

    pub fn sides(&self) -> [(&'static str, &Side); 2] {
        [("sql_server", &self.sql_server), ("managed_instance", &self.managed_instance)]
    }

    /// Every address the scenario would make the lab hand out or dial, with the
    /// field that names it.
    pub fn addresses(&self) -> Vec<(String, std::net::IpAddr)> {
        let mut out = Vec::new();
        for (i, r) in self.dns.records.iter().enumerate() {
            if let Some(ip) = r.value.as_deref().and_then(|v| v.parse().ok()) {
                out.push((format!("dns.records[{i}].value ({})", r.name), ip));
            }
        }
        for (label, side) in self.sides() {
            if let Some(ip) = side.endpoint.as_ref().and_then(|e| e.url_host.as_deref()).and_then(|h| h.parse().ok()) {
                out.push((format!("{label}.endpoint.url_host"), ip));
            }
        }
        out
    }

    /// Whether only topology mode can run it: an ICMP fault, or an address
    /// loopback mode would refuse.
    pub fn needs_topology(&self) -> bool {
        self.network.faults.iter().any(|f| f.needs_topology()) || self.check_addresses(Mode::Loopback).is_err()
    }

    /// Refuses, before anything listens, a scenario that would make the lab hand
    /// out or dial an address the mode does not allow.
    pub fn check_addresses(&self, mode: Mode) -> Result<(), ScenarioError> {
        for (field, ip) in self.addresses() {
            if !addr::allowed(mode, ip) {
                return Err(ScenarioError::Address { field, ip, allowed: addr::describe(mode) });
            }
        }
        Ok(())
    }
}

/// `sql_server` → (sql_server, None); `sql_server:TDE_Cert` → (sql_server, Some(TDE_Cert)).
pub fn split_copy_of(s: &str) -> (&str, Option<&str>) {
    match s.split_once(':') {
        Some((side, name)) => (side, Some(name)),
        None => (s, None),
    }
}

#[cfg(test)]
mod tests;
