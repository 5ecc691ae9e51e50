//! Scenario files: the TOML that says what the lab stands up.
//!
//! High-level facts (version, collation, endpoint, certificates, databases…) are
//! materialised into catalog rows by `catalog::build`; `rows` gives raw rows for
//! oddities. Dates are relative to lab start (`"-3d"`, `"+400d"`) so files never rot.

pub mod recorded;
pub mod timeline;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use time::{Duration, OffsetDateTime};

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Side {
    /// `@@SERVERNAME` (short name for a managed instance).
    pub name: String,
    /// The DNS name clients use; also the TLS certificate's SAN.
    pub fqdn: String,
    /// `SERVERPROPERTY('ProductVersion')`, e.g. `16.0.4135.4`.
    pub version: String,
    #[serde(default)]
    pub update_level: Option<String>,
    #[serde(default = "default_edition")]
    pub edition: String,
    /// 3 = Enterprise/Developer, 2 = Standard, 8 = managed instance.
    #[serde(default)]
    pub engine_edition: Option<i64>,
    /// Managed instance update policy: `CU` (2022/2025 policy) or `Continuous`.
    #[serde(default)]
    pub update_type: Option<String>,
    /// Managed instance only: its service tier, GeneralPurpose (the default),
    /// BusinessCritical or NextGenGeneralPurpose.
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub host: Host,
    #[serde(default = "default_collation")]
    pub collation: String,
    #[serde(default = "yes")]
    pub hadr_enabled: bool,
    /// 0 not started, 1 running, 2 failed.
    #[serde(default = "one")]
    pub hadr_manager_status: i64,
    #[serde(default)]
    pub trace_flags: Vec<i32>,
    #[serde(default = "yes")]
    pub master_key: bool,
    #[serde(default)]
    pub login: Login,
    #[serde(default)]
    pub tds: Tds,
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    #[serde(default)]
    pub certificates: Vec<Certificate>,
    #[serde(default)]
    pub databases: Vec<Database>,
    #[serde(default)]
    pub backups: Vec<Backup>,
    /// Availability groups the server has already (not the link's).
    #[serde(default)]
    pub availability_groups: Vec<AvailabilityGroup>,
    #[serde(default)]
    pub errorlog: Vec<ErrorLogLine>,
    /// Managed instance only: `sys.dm_hadr_fabric_config_parameters`.
    #[serde(default)]
    pub fabric: Option<Fabric>,
    /// Raw rows appended to a catalog table, keyed by its name (`"sys.endpoints"`).
    #[serde(default)]
    pub rows: BTreeMap<String, Vec<toml::Table>>,
    /// Statements answered as a support bundle recorded them, before the catalog.
    #[serde(default)]
    pub recorded: Vec<recorded::Recorded>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    #[serde(default = "default_platform")]
    pub platform: String,
    #[serde(default = "default_distribution")]
    pub distribution: String,
    #[serde(default = "default_release")]
    pub release: String,
}

impl Default for Host {
    fn default() -> Self {
        Host { platform: default_platform(), distribution: default_distribution(), release: default_release() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    #[serde(default = "default_user")]
    pub user: String,
    #[serde(default = "default_password")]
    pub password: String,
    #[serde(default = "yes")]
    pub view_server_state: bool,
    #[serde(default = "yes")]
    pub sysadmin: bool,
    /// The login exists but is disabled: every login attempt gets 18470.
    #[serde(default)]
    pub disabled: bool,
    /// Accept an Azure AD access token (FEDAUTH). Managed instance default.
    #[serde(default)]
    pub aad_token: Option<bool>,
    /// Every login is refused with this error (a replayed failure).
    #[serde(default)]
    pub refuse: Option<recorded::RecordedError>,
}

impl Default for Login {
    fn default() -> Self {
        Login {
            user: default_user(),
            password: default_password(),
            view_server_state: true,
            sysadmin: true,
            disabled: false,
            aad_token: None,
            refuse: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Encryption {
    NotSupported,
    Off,
    #[default]
    On,
    Required,
    Strict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TlsCert {
    #[default]
    Valid,
    Expired,
    NotYetValid,
    WrongHost,
    SelfSigned,
    /// notBefore after notAfter: a certificate that is never valid.
    InvertedValidity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TdsFault {
    /// Answers PRELOGIN, then never says another word.
    StallAfterPrelogin,
    /// Answers PRELOGIN with bytes that are not TDS.
    Garbage,
    /// Accepts the connection and never reads or writes.
    Silent,
    /// Accepts, then closes (FIN) before reading anything.
    AcceptClose,
    /// Accepts, then resets the connection (RST).
    Reset,
    /// Answers PRELOGIN one byte a second.
    Drip,
    /// Answers PRELOGIN properly, then bytes that are not TLS in the handshake.
    TlsGarbage,
    /// A PRELOGIN answer whose header claims 65535 bytes, then nothing more.
    HugeLength,
    /// Answers PRELOGIN with a packet of the wrong type (SQL batch, 0x01).
    WrongPacketType,
    /// After login, every query gets rows without end.
    EndlessRows,
    /// After login, every batch is answered only after `tds.delay`.
    SlowQueries,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tds {
    #[serde(default)]
    pub encryption: Encryption,
    #[serde(default)]
    pub certificate: TlsCert,
    /// Frame the TLS handshake in 0x04 packets, as some older servers do.
    #[serde(default)]
    pub legacy_tls_framing: bool,
    /// Answer a login with a routing ENVCHANGE to this port (11000-11999).
    #[serde(default)]
    pub redirect_port: Option<u16>,
    /// The redirect port routes logins back to 1433 (a misconfigured gateway).
    #[serde(default)]
    pub redirect_loop: bool,
    #[serde(default)]
    pub fault: Option<TdsFault>,
    /// How long `slow_queries` waits before each answer.
    #[serde(default = "default_tds_delay", with = "humantime_serde")]
    pub delay: std::time::Duration,
    /// Days a `valid`, `self_signed` or `wrong_host` certificate has left (default 365).
    #[serde(default)]
    pub valid_days: Option<i64>,
}

fn default_tds_delay() -> std::time::Duration {
    std::time::Duration::from_millis(2500)
}

impl Default for Tds {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

/// How a TCP listener behaves, as a client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Listener {
    #[default]
    Open,
    /// Nothing listens: the SYN gets a RST.
    Refused,
    /// No answer at all: the SYN is dropped.
    Filtered,
    /// Accepts the connection, then closes it at once.
    AcceptClose,
    /// Accepts, but only starts reading after `slow_ms`.
    Slow,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// `false`: no endpoint at all (nothing in the catalog, nothing on the port).
    #[serde(default = "yes")]
    pub present: bool,
    #[serde(default = "default_endpoint_name")]
    pub name: String,
    #[serde(default = "default_endpoint_port")]
    pub port: u16,
    #[serde(default = "default_started")]
    pub state: String,
    #[serde(default = "default_role")]
    pub role: String,
    /// `connection_auth_desc`, e.g. `CERTIFICATE` or `NEGOTIATE, CERTIFICATE`.
    #[serde(default = "default_auth")]
    pub auth: String,
    #[serde(default = "yes")]
    pub encryption: bool,
    /// `encryption_algorithm_desc`, e.g. `AES` or `RC4`.
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    /// Name of the certificate in `certificates` that authenticates the endpoint
    /// (`""`: none, when a base file named one).
    #[serde(default)]
    pub certificate: Option<String>,
    #[serde(default)]
    pub listener: Listener,
    /// The host the endpoint URL will name (the deployment plan's choice): a host
    /// name here means the managed instance has to resolve it.
    #[serde(default)]
    pub url_host: Option<String>,
    #[serde(default = "default_slow_ms")]
    pub slow_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub name: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default = "default_start")]
    pub start: RelTime,
    #[serde(default = "default_expiry")]
    pub expiry: RelTime,
    /// `pvt_key_encryption_type`: MK, PW, SK or NA (no private key).
    #[serde(default = "default_pvt")]
    pub private_key: String,
    /// Take the DER of the other side's endpoint certificate (`"managed_instance"`
    /// or `"sql_server"`), as an import of it would.
    #[serde(default)]
    pub copy_of: Option<String>,
    /// With `copy_of`: the copy is of the certificate that side had before it was
    /// rotated (same subject and issuer, its own key, this entry's dates): a
    /// trust that went stale.
    #[serde(default)]
    pub previous: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub name: String,
    #[serde(default = "default_recovery")]
    pub recovery: String,
    #[serde(default = "default_online")]
    pub state: String,
    #[serde(default = "one")]
    pub log_files: i64,
    #[serde(default)]
    pub filestream: bool,
    #[serde(default)]
    pub in_memory: bool,
    #[serde(default)]
    pub tde: bool,
    /// The certificate in master that protects the database encryption key
    /// (implies `tde`); without it a TDE database's key is under an
    /// asymmetric key (EKM, Azure Key Vault).
    #[serde(default)]
    pub tde_certificate: Option<String>,
    #[serde(default = "default_log_mb")]
    pub log_size_mb: f64,
    /// What automatic seeding has to copy.
    #[serde(default = "default_size_mb")]
    pub size_mb: i64,
    #[serde(default = "default_log_used")]
    pub log_used_percent: f64,
    #[serde(default = "default_reuse")]
    pub log_reuse_wait: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    pub database: String,
    /// D full, I differential, L log.
    #[serde(rename = "type", default = "default_backup_type")]
    pub kind: String,
    #[serde(default)]
    pub copy_only: bool,
    #[serde(default = "default_backup_time")]
    pub finished: RelTime,
}

/// An AG of the server's own: one replica (the server), its databases.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityGroup {
    pub name: String,
    #[serde(default)]
    pub databases: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorLogLine {
    #[serde(default = "default_log_time")]
    pub at: RelTime,
    #[serde(default = "default_process")]
    pub process: String,
    pub text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fabric {
    pub node: String,
    pub hadr_port: u16,
}

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
}

/// The fake Azure Resource Manager: the managed instance's resource and its
/// link-related children, over HTTPS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    #[serde(default = "default_subscription")]
    pub subscription_id: String,
    #[serde(default = "default_resource_group")]
    pub resource_group: String,
    #[serde(default = "default_location")]
    pub location: String,
    /// api-versions the instance answers (default: all the lab knows, both schemas).
    #[serde(default)]
    pub api_versions: Option<Vec<String>>,
    /// `Retry-After` of long-running operations (sent as `retry-after-ms` too).
    #[serde(default = "default_arm_retry", with = "humantime_serde")]
    pub retry_after: std::time::Duration,
    /// How long a long-running operation takes.
    #[serde(default = "default_lro", with = "humantime_serde")]
    pub operation_time: std::time::Duration,
    /// Items per page of a list (`nextLink` beyond).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    #[serde(default)]
    pub faults: Vec<ArmFault>,
}

impl Default for Arm {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

/// A fault of the fake ARM, for requests of one operation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmFault {
    /// `<resource>.<verb>`: resource is instance, trust, endpoint_certs or dag;
    /// verb is get, list, put, patch, delete (or `*` for any).
    pub operation: String,
    pub kind: ArmFaultKind,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// How many requests it hits (default: every one).
    #[serde(default)]
    pub times: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub delay: Option<std::time::Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArmFaultKind {
    /// Answer with `status`, `code` and `message`.
    Error,
    /// 429 with Retry-After (`delay`, default 1s).
    Throttle,
    /// The long-running operation ends Failed with `code`.
    OperationFails,
    /// The long-running operation stays InProgress for ever.
    OperationHangs,
    /// Answer after `delay`.
    Slow,
}

fn default_subscription() -> String {
    "6d9a4c1e-4b1f-4f4e-9a51-3c2d8e7f0a11".into()
}
fn default_resource_group() -> String {
    "rg-contoso-link".into()
}
fn default_location() -> String {
    "westeurope".into()
}
fn default_arm_retry() -> std::time::Duration {
    std::time::Duration::from_secs(1)
}
fn default_lro() -> std::time::Duration {
    std::time::Duration::from_millis(300)
}
fn default_page_size() -> usize {
    100
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
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            connect_after: std::time::Duration::ZERO,
            retry_every: default_retry(),
            dial_timeout: default_dial_timeout(),
            seeding_mb_per_s: default_seeding_rate(),
        }
    }
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

/// Faults between the sides. In topology mode they are nftables rules per
/// direction and port; in loopback mode a fault applies to the target listener
/// whoever connects, and `unreachable` is not available.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default)]
    pub faults: Vec<Fault>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// `sql_server`, `managed_instance`, `host` (where milink runs) or `any`.
    #[serde(default = "default_any")]
    pub from: String,
    /// `sql_server` or `managed_instance`.
    pub to: String,
    /// All TCP ports when absent.
    #[serde(default)]
    pub port: Option<u16>,
    /// With `port`, the last port of a range.
    #[serde(default)]
    pub port_to: Option<u16>,
    pub action: FaultAction,
}

impl Fault {
    /// Loopback mode cannot make an ICMP error.
    pub fn needs_topology(&self) -> bool {
        self.action == FaultAction::Unreachable
    }

    /// Whether the fault is on `port` (every port when it names none).
    pub fn covers(&self, port: u16) -> bool {
        match self.port {
            None => true,
            Some(p) => (p..=self.port_to.unwrap_or(p)).contains(&port),
        }
    }

    /// The ports it names (none when it names none: then every port the side has).
    pub fn ports(&self) -> impl Iterator<Item = u16> {
        self.port.into_iter().flat_map(|p| p..=self.port_to.unwrap_or(p))
    }

    /// In loopback mode the first fault on a side's port decides how the port answers.
    pub fn listener_at(faults: &[Fault], to: &str, port: u16) -> Option<Listener> {
        faults.iter().find(|f| f.to == to && f.covers(port)).map(|f| match f.action {
            FaultAction::Refused => Listener::Refused,
            _ => Listener::Filtered,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    Refused,
    Filtered,
    Unreachable,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    #[serde(default)]
    pub records: Vec<DnsRecord>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsRecord {
    pub name: String,
    /// A, AAAA, CNAME, NXDOMAIN, SERVFAIL, NODATA (NOERROR, no records) or
    /// SILENT (no answer at all).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub value: Option<String>,
    /// Which side's resolver sees it: `sql_server`, `managed_instance` or `all`.
    #[serde(default = "default_all")]
    pub view: String,
}

/// A point in time relative to lab start: `now`, `-3d`, `+400d`, `-90m`, `+2h`, `-30s`,
/// or an absolute `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelTime(pub String);

impl<'de> Deserialize<'de> for RelTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_offset(&s).map_err(serde::de::Error::custom)?;
        Ok(RelTime(s))
    }
}

impl RelTime {
    pub fn at(&self, now: OffsetDateTime) -> OffsetDateTime {
        match parse_offset(&self.0).expect("checked when the scenario was read") {
            When::Offset(d) => now + d,
            When::Date(d) => d.midnight().assume_utc(),
        }
    }
}

enum When {
    Offset(Duration),
    Date(time::Date),
}

fn parse_offset(s: &str) -> Result<When, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(When::Offset(Duration::ZERO));
    }
    if let Ok(d) = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")) {
        return Ok(When::Date(d));
    }
    let bad = || format!("`{s}` is not a time: use now, -3d, +400d, -90m, +2h, -30s or YYYY-MM-DD");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'-') => (-1, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => return Err(bad()),
    };
    let unit = rest.chars().last().ok_or_else(bad)?;
    let n: i64 = rest[..rest.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let seconds_per = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return Err(bad()),
    };
    // Within a million days either way: a certificate date, not an overflow.
    let secs = n.checked_mul(seconds_per).filter(|s| s.abs() <= 86_400 * 1_000_000).ok_or_else(bad)?;
    Ok(When::Offset(Duration::seconds(secs * sign)))
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid { path: String, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    Inconsistent { path: String, message: String },
    #[error("{field} is {ip}: this lab may only hand out or dial {allowed}")]
    Address { field: String, ip: std::net::IpAddr, allowed: &'static str },
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        Scenario::parse_in(&read(path)?, &path.display().to_string(), path.parent())
    }

    /// Parses and validates; `origin` names the file in error messages, and
    /// `extends` is looked up in the project's scenarios folder.
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"));
        Scenario::parse_in(text, origin, Some(dir))
    }

    /// A scenario's table with its `extends` chain merged in (no `extends`
    /// left), for tools that derive scenarios from it (fleets).
    pub fn resolved_table(path: &Path) -> Result<toml::Table, ScenarioError> {
        let mut table = read_table(path)?;
        resolve_extends(&mut table, path.parent(), &mut vec![chain_key(path)])?;
        table.remove("extends");
        Ok(table)
    }

    /// Parses a scenario whose `extends` is already resolved.
    pub fn parse_resolved(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse_in(text, origin, None)
    }

    fn parse_in(text: &str, origin: &str, dir: Option<&Path>) -> Result<Scenario, ScenarioError> {
        let invalid = |e: toml::de::Error| {
            // A merged table has no spans of its own: point at the key's first mention.
            let span = e.span().map(|s| s.start).or_else(|| {
                let key = e.message().split('`').nth(1)?;
                text.find(&format!("\n{key}")).map(|i| i + 1).or_else(|| text.find(key))
            });
            let (line, column) = span.map(|s| line_col(text, s)).unwrap_or((0, 0));
            let message = crate::input::shorten(e.message(), 300);
            ScenarioError::Invalid { path: origin.to_string(), line, column, message }
        };
        let mut table: toml::Table = toml::from_str(text).map_err(invalid)?;
        let start = dir
            .map(|d| d.join(origin))
            .and_then(|p| std::fs::canonicalize(p).ok())
            .unwrap_or_else(|| PathBuf::from(origin));
        resolve_extends(&mut table, dir, &mut vec![start])?;
        let scenario: Scenario = table.try_into().map_err(invalid)?;
        scenario.validate().map_err(|message| ScenarioError::Inconsistent {
            path: origin.to_string(),
            message: crate::input::shorten(&message, 300),
        })?;
        Ok(scenario)
    }

    fn validate(&self) -> Result<(), String> {
        for step in &self.timeline {
            step.validate()?;
        }
        for (label, side) in self.sides() {
            parse_version(&side.version)
                .ok_or_else(|| format!("{label}.version `{}` is not major.minor.build.revision", side.version))?;
            if let Some(ep) = side.endpoint.as_ref().filter(|e| e.present)
                && let Some(cert) = ep.certificate.as_ref().filter(|c| !c.is_empty())
                && !side.certificates.iter().any(|c| &c.name == cert)
            {
                return Err(format!("{label}.endpoint.certificate `{cert}` is not in {label}.certificates"));
            }
            for c in &side.certificates {
                if let Some(other) = &c.copy_of {
                    let (from, named) = split_copy_of(other);
                    let Some((_, from_side)) = self.sides().into_iter().find(|(l, _)| *l == from) else {
                        return Err(format!(
                            "{label}.certificates `{}`: copy_of must be sql_server or managed_instance (or <side>:<certificate>)",
                            c.name
                        ));
                    };
                    if let Some(n) = named
                        && !from_side.certificates.iter().any(|x| x.name == n && x.copy_of.is_none())
                    {
                        return Err(format!(
                            "{label}.certificates `{}`: copy_of `{other}`: {from} has no certificate `{n}` of its own",
                            c.name
                        ));
                    }
                }
                if c.previous && c.copy_of.is_none() {
                    return Err(format!("{label}.certificates `{}`: previous needs copy_of", c.name));
                }
            }
            for ag in &side.availability_groups {
                if let Some(d) = ag.databases.iter().find(|d| !side.databases.iter().any(|x| &x.name == *d)) {
                    return Err(format!(
                        "{label}.availability_groups `{}`: database `{d}` is not in {label}.databases",
                        ag.name
                    ));
                }
            }
            for d in &side.databases {
                if let Some(c) = &d.tde_certificate
                    && !side.certificates.iter().any(|x| &x.name == c)
                {
                    return Err(format!(
                        "{label}.databases `{}`: tde_certificate `{c}` is not in {label}.certificates",
                        d.name
                    ));
                }
            }
            for b in &side.backups {
                if !side.databases.iter().any(|d| d.name == b.database) {
                    return Err(format!("{label}.backups: database `{}` is not in {label}.databases", b.database));
                }
            }
            match side.tier.as_deref() {
                None => {}
                Some(_) if !side.is_managed_instance() => {
                    return Err(format!("{label}.tier: only a managed instance (engine_edition 8) has a service tier"));
                }
                Some("GeneralPurpose" | "BusinessCritical" | "NextGenGeneralPurpose") => {}
                Some(t) => {
                    return Err(format!(
                        "{label}.tier `{t}` is not GeneralPurpose, BusinessCritical or NextGenGeneralPurpose"
                    ));
                }
            }
            if let Some(p) = side.tds.redirect_port
                && !(11000..=11999).contains(&p)
            {
                return Err(format!("{label}.tds.redirect_port {p} is outside 11000-11999"));
            }
        }
        for f in &self.network.faults {
            if !matches!(f.from.as_str(), "sql_server" | "managed_instance" | "host" | "any") {
                return Err(format!(
                    "network.faults: from `{}` is not sql_server, managed_instance, host or any",
                    f.from
                ));
            }
            if !matches!(f.to.as_str(), "sql_server" | "managed_instance") {
                return Err(format!("network.faults: to `{}` is not sql_server or managed_instance", f.to));
            }
        }
        for r in &self.dns.records {
            let kind = r.kind.to_ascii_uppercase();
            let needs_value = matches!(kind.as_str(), "A" | "AAAA" | "CNAME");
            if !needs_value && !matches!(kind.as_str(), "NXDOMAIN" | "SERVFAIL" | "SILENT") {
                return Err(format!("dns.records `{}`: unknown type `{}`", r.name, r.kind));
            }
            if needs_value && r.value.is_none() {
                return Err(format!("dns.records `{}`: type {} needs a value", r.name, r.kind));
            }
            // Never a real address, whatever the mode; loopback mode narrows this
            // further at start (`check_addresses`).
            if matches!(kind.as_str(), "A" | "AAAA") {
                let ip: std::net::IpAddr = r.value.as_deref().unwrap_or("").parse().map_err(|_| {
                    format!("dns.records `{}`: `{}` is not an address", r.name, r.value.as_deref().unwrap_or(""))
                })?;
                if !addr::allowed(Mode::Topology, ip) {
                    return Err(format!(
                        "dns.records `{}`: {ip} is outside {}; the lab hands out no other address",
                        r.name,
                        addr::describe(Mode::Topology)
                    ));
                }
            }
            if !matches!(r.view.as_str(), "all" | "sql_server" | "managed_instance") {
                return Err(format!("dns.records `{}`: view must be all, sql_server or managed_instance", r.name));
            }
        }
        Ok(())
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

impl Side {
    pub fn is_managed_instance(&self) -> bool {
        self.engine_edition() == 8
    }

    /// The managed instance's service tier (GeneralPurpose unless the scenario says).
    pub fn tier(&self) -> &str {
        self.tier.as_deref().unwrap_or("GeneralPurpose")
    }

    pub fn engine_edition(&self) -> i64 {
        self.engine_edition.unwrap_or(3)
    }

    /// (major, minor, build, revision)
    pub fn version_parts(&self) -> (u32, u32, u32, u32) {
        parse_version(&self.version).expect("validated")
    }
}

pub fn parse_version(v: &str) -> Option<(u32, u32, u32, u32)> {
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    let r = (it.next()??, it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(r)
}

/// Replaces `extends = "base.toml"` with the base's table merged under this one,
/// following the base's own `extends`. `chain` holds the files on the way, to
/// name a cycle.
fn resolve_extends(table: &mut toml::Table, dir: Option<&Path>, chain: &mut Vec<PathBuf>) -> Result<(), ScenarioError> {
    let Some(toml::Value::String(base)) = table.remove("extends") else {
        return Ok(());
    };
    let named_in = chain.last().map(|p| p.display().to_string()).unwrap_or_else(|| "the scenario".into());
    let refuse = |message: String| ScenarioError::Inconsistent { path: named_in.clone(), message };
    // Scenarios come from other people: `extends` stays inside the folder of the
    // file that names it.
    if !stays_inside(Path::new(&base)) {
        return Err(refuse(format!(
            "extends = \"{}\": only a relative path inside this file's folder (no leading `/`, no `..` above it)",
            crate::input::shorten(&base, 200)
        )));
    }
    let base_path = dir.unwrap_or(Path::new(".")).join(&base);
    let key = chain_key(&base_path);
    if chain.contains(&key) || chain.len() >= 8 {
        let mut names: Vec<String> = chain.iter().map(|p| p.display().to_string()).collect();
        names.push(key.display().to_string());
        return Err(refuse(format!("`extends` goes round in a cycle (or more than 8 deep): {}", names.join(" → "))));
    }
    let mut merged = read_table(&base_path)?;
    chain.push(key);
    resolve_extends(&mut merged, base_path.parent(), chain)?;
    chain.pop();
    // What a scenario expects is its own: a fault changes the outcome.
    merged.remove("expect");
    merge(&mut merged, std::mem::take(table));
    merged.insert("extends".into(), toml::Value::String(base));
    *table = merged;
    Ok(())
}

/// A file as the `extends` chain names it: its real path when it exists.
fn chain_key(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A scenario file's TOML, errors with the line and column.
fn read_table(path: &Path) -> Result<toml::Table, ScenarioError> {
    let text = read(path)?;
    toml::from_str(&text).map_err(|e| ScenarioError::Invalid {
        path: path.display().to_string(),
        line: e.span().map(|s| line_col(&text, s.start).0).unwrap_or(0),
        column: e.span().map(|s| line_col(&text, s.start).1).unwrap_or(0),
        message: crate::input::shorten(e.message(), 300),
    })
}

/// A relative path that never climbs above its starting folder.
fn stays_inside(p: &Path) -> bool {
    let mut depth = 0i32;
    for c in p.components() {
        match c {
            std::path::Component::Normal(_) => depth += 1,
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            std::path::Component::RootDir | std::path::Component::Prefix(_) => return false,
        }
    }
    true
}

fn read(path: &Path) -> Result<String, ScenarioError> {
    crate::input::read_file(path).map_err(|source| ScenarioError::Read { path: path.display().to_string(), source })
}

/// Tables merge key by key; anything else in `over` replaces what `base` had.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

fn yes() -> bool {
    true
}
fn one() -> i64 {
    1
}
fn default_edition() -> String {
    "Enterprise Edition (64-bit)".into()
}
fn default_collation() -> String {
    "SQL_Latin1_General_CP1_CI_AS".into()
}
fn default_platform() -> String {
    "Windows".into()
}
fn default_distribution() -> String {
    "Windows Server 2022 Datacenter".into()
}
fn default_release() -> String {
    "10.0".into()
}
fn default_user() -> String {
    "milink".into()
}
fn default_password() -> String {
    "Lab-Only-Passw0rd".into()
}
fn default_endpoint_name() -> String {
    "database_mirroring_endpoint".into()
}
fn default_endpoint_port() -> u16 {
    5022
}
fn default_started() -> String {
    "STARTED".into()
}
fn default_role() -> String {
    "ALL".into()
}
fn default_auth() -> String {
    "CERTIFICATE".into()
}
fn default_algorithm() -> String {
    "AES".into()
}
fn default_slow_ms() -> u64 {
    1500
}
fn default_start() -> RelTime {
    RelTime("-30d".into())
}
fn default_expiry() -> RelTime {
    RelTime("+400d".into())
}
fn default_pvt() -> String {
    "MK".into()
}
fn default_recovery() -> String {
    "FULL".into()
}
fn default_online() -> String {
    "ONLINE".into()
}
fn default_log_mb() -> f64 {
    1024.0
}
fn default_size_mb() -> i64 {
    2048
}
fn default_log_used() -> f64 {
    12.5
}
fn default_reuse() -> String {
    "NOTHING".into()
}
fn default_backup_type() -> String {
    "D".into()
}
fn default_backup_time() -> RelTime {
    RelTime("-1d".into())
}
fn default_log_time() -> RelTime {
    RelTime("-10m".into())
}
fn default_process() -> String {
    "Logon".into()
}
fn default_primary() -> String {
    "PRIMARY".into()
}
fn default_secondary() -> String {
    "SECONDARY".into()
}
fn default_health() -> String {
    "HEALTHY".into()
}
fn default_sync_state() -> String {
    "SYNCHRONIZING".into()
}
fn default_both() -> String {
    "both".into()
}
fn default_seeding_state() -> String {
    "COMPLETED".into()
}
fn default_any() -> String {
    "any".into()
}
fn default_all() -> String {
    "all".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1000);
        assert_eq!(RelTime("-3d".into()).at(now), now - Duration::days(3));
        assert_eq!(RelTime("+2h".into()).at(now), now + Duration::hours(2));
        assert_eq!(RelTime("now".into()).at(now), now);
        assert!(parse_offset("3d").is_err());
        assert!(parse_offset("-3w").is_err());
    }

    #[test]
    fn fault_class_fields_are_validated_with_the_field_named() {
        let bad = |extra: &str| {
            Scenario::parse(&format!("extends = \"healthy.toml\"\ndescription = \"x\"\n{extra}"), "x.toml")
                .unwrap_err()
                .to_string()
        };
        let e = bad("[managed_instance]\ntier = \"Hyperscale\"\n");
        assert!(e.contains("managed_instance.tier `Hyperscale`"), "{e}");
        let e = bad("[sql_server]\ntier = \"BusinessCritical\"\n");
        assert!(e.contains("sql_server.tier: only a managed instance"), "{e}");
        let e = bad("[[sql_server.databases]]\nname = \"A\"\ntde_certificate = \"Nope\"\n");
        assert!(e.contains("tde_certificate `Nope` is not in sql_server.certificates"), "{e}");
        let e = bad(
            "[[managed_instance.certificates]]\nname = \"mi-endpoint\"\nprivate_key = \"MK\"\n[[managed_instance.certificates]]\nname = \"T\"\ncopy_of = \"sql_server:Nope\"\nprivate_key = \"NA\"\n",
        );
        assert!(e.contains("sql_server has no certificate `Nope`"), "{e}");
        assert_eq!(split_copy_of("sql_server:TDE_A"), ("sql_server", Some("TDE_A")));
    }

    #[test]
    fn extends_stays_inside_its_folder_and_names_a_cycle() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        for base in ["/etc/passwd", "../healthy.toml", "a/../../x.toml"] {
            let f = write("abs.toml", &format!("extends = \"{base}\"\ndescription = \"x\"\n"));
            let e = Scenario::load(&f).unwrap_err().to_string();
            assert!(e.contains("only a relative path inside this file's folder"), "{base}: {e}");
        }
        write("a.toml", "extends = \"b.toml\"\ndescription = \"a\"\n");
        let b = write("b.toml", "extends = \"a.toml\"\ndescription = \"b\"\n");
        let e = Scenario::load(&b).unwrap_err().to_string();
        assert!(e.contains("cycle") && e.contains("b.toml → ") && e.contains("a.toml → "), "{e}");
        let zero = write("zero.toml", "extends = \"z\"\ndescription = \"x\"\n");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("z")).unwrap();
        let e = format!("{:#}", anyhow::Error::from(Scenario::load(&zero).unwrap_err()));
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_huge_bad_value_is_not_echoed_in_full() {
        let text = format!(
            "extends = \"healthy.toml\"\ndescription = \"x\"\n[sql_server]\nversion = \"{}\"\n",
            "9".repeat(100_000)
        );
        let e = Scenario::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(e.len() < 600 && e.contains("bytes)"), "{} bytes: {}", e.len(), &e[..200.min(e.len())]);
    }

    #[test]
    fn extends_merges_tables_and_replaces_arrays() {
        let text = "extends = \"healthy.toml\"\ndescription = \"x\"\n[sql_server]\ncollation = \"Latin1_General_CS_AS\"\ntrace_flags = []\n";
        let s = Scenario::parse(text, "x.toml").unwrap();
        assert_eq!(s.sql_server.collation, "Latin1_General_CS_AS");
        assert!(s.sql_server.trace_flags.is_empty());
        assert_eq!(s.sql_server.name, "SQLPROD01");
        let err =
            Scenario::parse("extends = \"healthy.toml\"\ndescription = \"x\"\n[sql_server]\nbogus = 1\n", "x.toml")
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("x.toml:4:") && err.contains("bogus"), "{err}");
    }

    #[test]
    fn dns_records_never_point_at_real_addresses() {
        let base = "extends = \"healthy.toml\"\ndescription = \"x\"\n[[dns.records]]\nname = \"a.lab\"\ntype = \"A\"\n";
        assert!(Scenario::parse(&format!("{base}value = \"203.0.113.7\"\n"), "x").is_ok());
        let err = Scenario::parse(&format!("{base}value = \"20.50.1.2\"\n"), "x").unwrap_err().to_string();
        assert!(err.contains("hands out no other address"), "{err}");
    }

    #[test]
    fn loopback_mode_refuses_every_field_that_names_a_documentation_address() {
        let base = "extends = \"healthy.toml\"\ndescription = \"x\"\n";
        let cases = [
            ("[[dns.records]]\nname = \"a.lab\"\ntype = \"A\"\nvalue = \"203.0.113.7\"\n", "dns.records[0].value"),
            ("[[dns.records]]\nname = \"a.lab\"\ntype = \"AAAA\"\nvalue = \"2001:db8::7\"\n", "dns.records[0].value"),
            ("[sql_server.endpoint]\nurl_host = \"198.51.100.20\"\n", "sql_server.endpoint.url_host"),
            ("[managed_instance.endpoint]\nurl_host = \"192.0.2.9\"\n", "managed_instance.endpoint.url_host"),
        ];
        for (extra, field) in cases {
            let s = Scenario::parse(&format!("{base}{extra}"), "x").unwrap();
            let err = s.check_addresses(Mode::Loopback).unwrap_err().to_string();
            assert!(err.starts_with(field) && err.contains("loopback mode"), "{err}");
            assert!(s.check_addresses(Mode::Topology).is_ok(), "{field} is fine inside namespaces");
        }
        let ok = Scenario::parse(&format!("{base}[sql_server.endpoint]\nurl_host = \"127.0.0.9\"\n"), "x").unwrap();
        assert!(ok.check_addresses(Mode::Loopback).is_ok());
        // A name is resolved by the lab's own DNS, whose records are checked above.
        let name = Scenario::parse(&format!("{base}[sql_server.endpoint]\nurl_host = \"sql.lab\"\n"), "x").unwrap();
        assert!(name.check_addresses(Mode::Loopback).is_ok());
    }

    #[test]
    fn errors_name_line_and_key() {
        let text = "description = \"x\"\n[sql_server]\nname = \"a\"\nbogus = 1\n";
        let err = Scenario::parse(text, "s.toml").unwrap_err().to_string();
        assert!(err.starts_with("s.toml:4:"), "{err}");
        assert!(err.contains("bogus"), "{err}");
    }
}
