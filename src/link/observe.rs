//! What `milink link` reads before every step: the link objects on SQL Server,
//! the managed instance's endpoint certificate, and its ARM resources.

use serde_json::Value;

use crate::azure::arm::{Arm, ArmError};
pub use crate::azure::arm::{NEW_API, OLD_API};
use crate::probe::sql::{Fields, Record, Session, SqlFailure, product_version, unhex};

#[derive(Debug, Clone)]
pub struct Cert {
    pub name: String,
    pub id: i64,
    /// MK, PW, SK or NA.
    pub private_key: String,
    pub subject: String,
    pub der: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    pub port: u16,
    pub state: String,
    pub role: String,
    pub auth: String,
    pub certificate_id: i64,
    pub encryption: bool,
    pub algorithm: String,
}

#[derive(Debug, Clone)]
pub struct Ag {
    pub name: String,
    pub distributed: bool,
    /// (replica or member AG name, endpoint URL)
    pub replicas: Vec<(String, String)>,
    pub databases: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Seeding {
    pub database: String,
    pub state: String,
    pub transferred: i64,
    pub size: i64,
    pub rate: i64,
}

#[derive(Debug, Clone, Default)]
pub struct SqlSide {
    pub server_name: String,
    pub version: (u32, u32, u32),
    pub master_key: bool,
    pub certificates: Vec<Cert>,
    pub endpoint: Option<Endpoint>,
    pub ags: Vec<Ag>,
    pub databases: Vec<(String, String)>,
    pub seeding: Vec<Seeding>,
    /// (DAG, connected, health) as the primary's remote replica shows them.
    pub links: Vec<(String, bool, String)>,
    /// DAGs whose remote replica shows a `last_connect_error_number`.
    pub link_errors: Vec<(String, i64)>,
    /// Seeding operations that failed (automatic seeding's `current_state`).
    pub seeding_failed: bool,
}

impl SqlSide {
    pub fn certificate(&self, name: &str) -> Option<&Cert> {
        self.certificates.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }

    pub fn ag(&self, name: &str) -> Option<&Ag> {
        self.ags.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The plain AG a database is in.
    pub fn ag_of(&self, db: &str) -> Option<&Ag> {
        self.ags.iter().find(|a| !a.distributed && a.databases.iter().any(|d| d.eq_ignore_ascii_case(db)))
    }

    /// The certificate the endpoint authenticates with.
    pub fn endpoint_certificate(&self) -> Option<&Cert> {
        let id = self.endpoint.as_ref()?.certificate_id;
        self.certificates.iter().find(|c| c.id == id && id != 0)
    }

    /// `sp_certificate_add_issuer` came with the updates the link needs.
    pub fn has_add_issuer(&self) -> bool {
        let (major, _, build) = self.version;
        match major {
            16.. => true,
            15 => build >= 4312,
            14 => build >= 3490,
            13 => build >= 7000,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ArmSide {
    /// The api-version the instance answers (the new schema when it can).
    pub api: String,
    /// (name, thumbprint in upper-case hex)
    pub trust: Vec<(String, String)>,
    /// DAG name → the resource
    pub dags: Vec<(String, Value)>,
    pub endpoint_cert: Option<Vec<u8>>,
}

impl ArmSide {
    pub fn new_schema(&self) -> bool {
        self.api == NEW_API
    }

    pub fn dag(&self, name: &str) -> Option<&Value> {
        self.dags.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub sql: SqlSide,
    /// The instance's endpoint certificate as it presents it now.
    pub mi_cert: Option<Vec<u8>>,
    pub arm: ArmSide,
}

fn num(r: &Record, k: &str) -> i64 {
    r.int(k).unwrap_or(0)
}

fn text(r: &Record, k: &str) -> String {
    r.str(k).unwrap_or("").to_string()
}

/// What `sql_side` asks, in one round trip, in the order it reads the answers.
const SQL_QUERIES: [&str; 10] = [
    "SELECT @@SERVERNAME AS server_name, CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS version",
    "SELECT name FROM master.sys.symmetric_keys WHERE name = N'##MS_DatabaseMasterKey##'",
    "SELECT name, certificate_id, pvt_key_encryption_type, subject, CERTENCODED(certificate_id) AS der FROM master.sys.certificates",
    "SELECT e.name, e.state_desc, e.role_desc, e.connection_auth_desc, e.certificate_id, e.is_encryption_enabled, \
     e.encryption_algorithm_desc, t.port FROM sys.database_mirroring_endpoints AS e \
     JOIN sys.tcp_endpoints AS t ON t.endpoint_id = e.endpoint_id",
    "SELECT ag.name, ag.is_distributed, r.replica_server_name, r.endpoint_url FROM sys.availability_groups AS ag \
     JOIN sys.availability_replicas AS r ON r.group_id = ag.group_id",
    "SELECT ag.name AS ag_name, d.name AS db FROM sys.databases AS d \
     JOIN sys.availability_replicas AS r ON r.replica_id = d.replica_id \
     JOIN sys.availability_groups AS ag ON ag.group_id = r.group_id",
    "SELECT name, recovery_model_desc FROM sys.databases",
    "SELECT local_database_name, internal_state_desc, transferred_size_bytes, database_size_bytes, \
     transfer_rate_bytes_per_second FROM sys.dm_hadr_physical_seeding_stats",
    "SELECT ag.name, rs.connected_state_desc, rs.synchronization_health_desc, rs.last_connect_error_number \
     FROM sys.availability_groups AS ag JOIN sys.dm_hadr_availability_replica_states AS rs ON rs.group_id = ag.group_id \
     WHERE ag.is_distributed = 1 AND rs.is_local = 0",
    "SELECT current_state FROM sys.dm_hadr_automatic_seeding",
];

/// SQL Server's link objects, read in one batch.
pub async fn sql_side(s: &mut Session) -> Result<SqlSide, SqlFailure> {
    let mut a = s.answers(&SQL_QUERIES).await;
    let mut out = SqlSide::default();
    if let Some(r) = a.rows()?.first() {
        out.server_name = text(r, "server_name");
        out.version = product_version(&text(r, "version"));
    }
    out.master_key = !a.rows()?.is_empty();
    out.certificates = a.rows()?.iter().map(cert).collect();
    out.endpoint = a.rows()?.first().map(endpoint);
    let (replicas, members) = (a.rows()?, a.rows()?);
    out.ags = ags(&replicas, &members);
    out.databases = a.rows()?.iter().map(|r| (text(r, "name"), text(r, "recovery_model_desc"))).collect();
    out.seeding = a.rows()?.iter().map(seeding).collect();
    let remote = a.rows()?;
    out.links = remote
        .iter()
        .map(|r| {
            (text(r, "name"), text(r, "connected_state_desc") == "CONNECTED", text(r, "synchronization_health_desc"))
        })
        .collect();
    out.link_errors =
        remote.iter().filter_map(|r| r.int("last_connect_error_number").map(|n| (text(r, "name"), n))).collect();
    out.seeding_failed = a.rows()?.iter().any(|r| text(r, "current_state").eq_ignore_ascii_case("FAILED"));
    Ok(out)
}

fn cert(r: &Record) -> Cert {
    Cert {
        name: text(r, "name"),
        id: num(r, "certificate_id"),
        private_key: text(r, "pvt_key_encryption_type"),
        subject: text(r, "subject"),
        der: r.str("der").and_then(unhex).unwrap_or_default(),
    }
}

fn endpoint(r: &Record) -> Endpoint {
    Endpoint {
        name: text(r, "name"),
        port: num(r, "port") as u16,
        state: text(r, "state_desc"),
        role: text(r, "role_desc"),
        auth: text(r, "connection_auth_desc"),
        certificate_id: num(r, "certificate_id"),
        encryption: r.flag("is_encryption_enabled").unwrap_or(false),
        algorithm: text(r, "encryption_algorithm_desc"),
    }
}

/// Each AG with its replicas (a row each) and its databases.
fn ags(replicas: &[Record], databases: &[Record]) -> Vec<Ag> {
    let mut out: Vec<Ag> = Vec::new();
    for r in replicas {
        let name = text(r, "name");
        let replica = (text(r, "replica_server_name"), text(r, "endpoint_url"));
        match out.iter_mut().find(|a| a.name == name) {
            Some(a) => a.replicas.push(replica),
            None => out.push(Ag {
                name,
                distributed: r.flag("is_distributed").unwrap_or(false),
                replicas: vec![replica],
                databases: vec![],
            }),
        }
    }
    for r in databases {
        if let Some(a) = out.iter_mut().find(|a| a.name == text(r, "ag_name")) {
            a.databases.push(text(r, "db"));
        }
    }
    out
}

fn seeding(r: &Record) -> Seeding {
    Seeding {
        database: text(r, "local_database_name"),
        state: text(r, "internal_state_desc"),
        transferred: num(r, "transferred_size_bytes"),
        size: num(r, "database_size_bytes"),
        rate: num(r, "transfer_rate_bytes_per_second"),
    }
}

/// The link's errors as the managed instance records them (its local DAG rows):
/// (DAG, connected, last_connect_error_number).
pub async fn mi_links(s: &mut Session) -> Vec<(String, bool, Option<i64>)> {
    let q = "SELECT ag.name, rs.connected_state_desc, rs.last_connect_error_number FROM sys.availability_groups AS ag \
             JOIN sys.dm_hadr_availability_replica_states AS rs ON rs.group_id = ag.group_id \
             WHERE ag.is_distributed = 1 AND rs.is_local = 1";
    s.rows(q)
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| (text(r, "name"), text(r, "connected_state_desc") == "CONNECTED", r.int("last_connect_error_number")))
        .collect()
}

/// The instance's endpoint certificate, from T-SQL (`sp_get_endpoint_certificate 4`).
pub async fn mi_certificate(s: &mut Session) -> Option<Vec<u8>> {
    let r = s.rows("EXEC sp_get_endpoint_certificate @endpoint_type = 4").await.ok()?;
    r.first()?.str("endpointcertificatepublickey").and_then(unhex)
}

/// The instance's ARM resources, in the newest schema it answers.
pub async fn arm_side(arm: &Arm) -> Result<ArmSide, ArmError> {
    let mut api = NEW_API;
    let dags = match arm.list(&arm.url("distributedAvailabilityGroups", api)).await {
        Err(e) if matches!(e.code(), Some("NoRegisteredProviderFound" | "InvalidApiVersionParameter")) => {
            api = OLD_API;
            arm.list(&arm.url("distributedAvailabilityGroups", api)).await?
        }
        other => other?,
    };
    let trust = arm
        .list(&arm.url("serverTrustCertificates", api))
        .await?
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap_or("").to_string(),
                v["properties"]["thumbprint"].as_str().unwrap_or("").to_ascii_uppercase(),
            )
        })
        .collect();
    let endpoint_cert = arm
        .get(&arm.url("endpointCertificates/DATABASE_MIRRORING", api))
        .await?
        .and_then(|v| v["properties"]["publicBlob"].as_str().and_then(unhex));
    Ok(ArmSide {
        api: api.to_string(),
        trust,
        dags: dags.into_iter().map(|v| (v["name"].as_str().unwrap_or("").to_string(), v)).collect(),
        endpoint_cert,
    })
}

/// The databases SQL Server's distributed AGs carry (its side of every link).
pub async fn linked_databases(s: &mut Session) -> Result<Vec<String>, SqlFailure> {
    let q = "SELECT DISTINCT DB_NAME(drs.database_id) AS name FROM sys.dm_hadr_database_replica_states AS drs \
             JOIN sys.availability_groups AS ag ON ag.group_id = drs.group_id \
             WHERE ag.is_distributed = 1 AND drs.is_local = 1";
    let mut out: Vec<String> = s.rows(q).await?.iter().filter_map(|r| r.str("name").map(str::to_string)).collect();
    out.sort();
    Ok(out)
}
