//! A link the scenario says exists, and how links the lab makes behave.

use serde::Deserialize;

use super::RelTime;
use super::defaults::*;

/// A link that exists: a distributed AG between the two sides' local AGs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The state machine keeps deciding the link from the network and the
    /// certificates, as for a link made in the lab; the file's status is where it
    /// starts. A timeline needs this to see a firewall change break the link.
    #[serde(default)]
    pub live: bool,
    pub name: String,
    pub database: String,
    #[serde(default)]
    pub sql_ag: Option<String>,
    #[serde(default)]
    pub mi_ag: Option<String>,
    /// Role of each side's local replica in the distributed AG.
    #[serde(default = "default_primary")]
    pub sql_role: String,
    #[serde(default = "default_secondary")]
    pub mi_role: String,
    #[serde(default = "yes")]
    pub connected: bool,
    #[serde(default = "default_health")]
    pub synchronization_health: String,
    #[serde(default = "default_sync_state")]
    pub synchronization_state: String,
    #[serde(default)]
    pub last_connect_error: Option<ConnectError>,
    #[serde(default)]
    pub log_send_queue_kb: i64,
    #[serde(default)]
    pub redo_queue_kb: i64,
    #[serde(default)]
    pub secondary_lag_seconds: i64,
    /// The send queue grows this much every second the lab runs (and the lag
    /// with the clock): a link that falls further behind.
    #[serde(default)]
    pub log_send_queue_growth_kb_per_s: i64,
    #[serde(default)]
    pub seeding: Option<Seeding>,
    /// The instance's `LISTENER_URL` in SQL Server's distributed AG, when it is
    /// not the documented `tcp://<FQDN>:5022;Server=[<instance name>]`.
    #[serde(default)]
    pub mi_listener_url: Option<String>,
    /// The name the instance's DAG resource gives SQL Server's AG, when it is
    /// not SQL Server's own (a half created with another name).
    #[serde(default)]
    pub arm_partner_ag: Option<String>,
    /// More replicas of SQL Server's AG (server names), besides SQL Server itself.
    #[serde(default)]
    pub sql_replicas: Vec<String>,
    /// The DNS name of SQL Server's AG listener: the link then names it, not the node.
    #[serde(default)]
    pub sql_listener: Option<String>,
    /// `false`: only SQL Server's half exists (the instance's was deleted, or never made).
    #[serde(default = "yes")]
    pub mi_half: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectError {
    /// Which side's DMV shows the error: `sql_server`, `managed_instance` or `both`.
    #[serde(default = "default_both")]
    pub side: String,
    pub number: i32,
    pub description: String,
    #[serde(default = "default_log_time")]
    pub at: RelTime,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seeding {
    #[serde(default = "default_seeding_state")]
    pub current_state: String,
    #[serde(default)]
    pub failure_state: i32,
    #[serde(default)]
    pub failure_state_desc: Option<String>,
    #[serde(default)]
    pub error_code: i32,
    #[serde(default = "one")]
    pub number_of_attempts: i64,
    #[serde(default)]
    pub failure_message: Option<String>,
    #[serde(default)]
    pub transferred_mb: i64,
    #[serde(default)]
    pub database_mb: i64,
    /// When this attempt started (`-2d`); an hour ago when absent.
    #[serde(default)]
    pub started: Option<RelTime>,
    /// The transfer rate `sys.dm_hadr_physical_seeding_stats` shows.
    #[serde(default = "default_seeding_mb_per_s")]
    pub rate_mb_per_s: f64,
}

fn default_seeding_mb_per_s() -> f64 {
    10.0
}

/// Timing of a link the lab creates (the real ones take about a minute to
/// connect and seed at network speed; tests want milliseconds).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replication {
    /// From both halves agreeing to CONNECTED.
    #[serde(default, with = "humantime_serde")]
    pub connect_after: std::time::Duration,
    /// How often a DISCONNECTED side tries its partner again.
    #[serde(default = "default_retry", with = "humantime_serde")]
    pub retry_every: std::time::Duration,
    /// A dial that gets no answer counts as a timeout after this.
    #[serde(default = "default_dial_timeout", with = "humantime_serde")]
    pub dial_timeout: std::time::Duration,
    #[serde(default = "default_seeding_rate")]
    pub seeding_mb_per_s: f64,
    /// In asynchronous commit the secondary hardens what the primary had this
    /// long ago; in synchronous commit at once.
    #[serde(default = "default_async_lag", with = "humantime_serde")]
    pub async_lag: std::time::Duration,
    /// A managed instance takes its first full backup of a database this long
    /// after the database becomes primary there.
    #[serde(default = "default_first_backup", with = "humantime_serde")]
    pub first_backup_after: std::time::Duration,
}

impl Default for Replication {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

/// The application's writes to the link databases, wherever the primary is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Transactions per second.
    pub tps: f64,
    /// The application stops writing this long after the lab starts (as a DBA
    /// stops it before a planned failover); without it, it never stops.
    #[serde(default, with = "humantime_serde")]
    pub stop_after: Option<std::time::Duration>,
}

fn default_retry() -> std::time::Duration {
    std::time::Duration::from_millis(200)
}
fn default_dial_timeout() -> std::time::Duration {
    std::time::Duration::from_millis(500)
}
fn default_seeding_rate() -> f64 {
    4096.0
}
fn default_async_lag() -> std::time::Duration {
    std::time::Duration::from_millis(300)
}
fn default_first_backup() -> std::time::Duration {
    std::time::Duration::from_secs(2)
}
