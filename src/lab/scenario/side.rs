//! A scenario's sides: SQL Server and the managed instance as the file
//! describes them (version, login, TDS, endpoint, certificates, databases…).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::defaults::*;
use super::{RelTime, recorded};

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
    /// Whether the procedures of the link's update exist (`sp_certificate_add_issuer`,
    /// `sp_get_endpoint_certificate`: the Azure Connect pack on 2016/2017); by
    /// default, when the build is one that has them.
    #[serde(default)]
    pub connect_pack: Option<bool>,
    /// SQL Server Agent: whether its service runs and `Agent XPs` is on.
    #[serde(default)]
    pub agent: Agent,
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
    /// This many more user databases (`Filler0001`…, ONLINE): an instance near its limit.
    #[serde(default)]
    pub more_databases: u32,
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
pub struct Agent {
    /// The service (`sys.dm_server_services`); sp_start_job fails with 22022 when stopped.
    #[serde(default = "yes")]
    pub running: bool,
    /// `Agent XPs` in sys.configurations; the job procedures fail with 15281 when off.
    #[serde(default = "yes")]
    pub xps: bool,
}

impl Default for Agent {
    fn default() -> Self {
        Agent { running: true, xps: true }
    }
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
    /// `LISTENER_IP` when it is one address, not ALL (`sys.tcp_endpoints.ip_address`).
    #[serde(default)]
    pub listener_ip: Option<String>,
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

    /// Whether `sys.sp_multidb_milink` exists: SQL Server 2022 CU27 or later,
    /// 2025 CU9 or later (by the update level the scenario gives).
    pub fn has_multidb(&self) -> bool {
        let cu: u32 =
            self.update_level.as_deref().and_then(|l| l.strip_prefix("CU")).and_then(|n| n.parse().ok()).unwrap_or(0);
        match self.version_parts().0 {
            16 => cu >= 27,
            17 => cu >= 9,
            _ => false,
        }
    }

    /// Whether the link's procedures exist (`sp_certificate_add_issuer`,
    /// `sp_get_endpoint_certificate`): the scenario's word, else the builds
    /// that ship them (2022 and later, 2019 CU20+, the Azure Connect packs of
    /// 2017 and 2016; mi-link-facts §0).
    pub fn has_link_procedures(&self) -> bool {
        let (major, _, build, _) = self.version_parts();
        self.is_managed_instance()
            || self.connect_pack.unwrap_or(match major {
                16.. => true,
                15 => build >= 4312,
                14 => build >= 3490,
                13 => build >= 7000,
                _ => false,
            })
    }
}

pub fn parse_version(v: &str) -> Option<(u32, u32, u32, u32)> {
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    let r = (it.next()??, it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(r)
}
