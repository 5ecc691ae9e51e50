//! What the link's life reads before every step: for one link, each side's
//! role, connection, commit mode and the database's log position as its own
//! DMVs show them, its full backups, and the instance's DAG resource in ARM.
//! A side that cannot be read says why (a forced failover runs without it).

use serde::Serialize;
use serde_json::Value;

use super::super::observe::{NEW_API, OLD_API};
use crate::azure::arm::{Arm, segment};
use crate::probe::sql::{Fields, Record, Session, SqlFailure};
use crate::tsql::nstring;

/// One side's view of one link.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Half {
    /// Why the side could not be read (not logged in, a query failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    pub version: (u32, u32, u32),
    /// `SERVERPROPERTY('ProductUpdateType')` (a managed instance: CU or Continuous).
    pub update_type: String,
    /// The distributed AG exists here.
    pub dag: bool,
    /// The local replica's role: PRIMARY, SECONDARY, RESOLVING.
    pub role: Option<String>,
    /// Connected to the partner, as this side sees it (a primary: its remote
    /// replica; a secondary: its own replica).
    pub connected: Option<bool>,
    pub health: Option<String>,
    /// The distributed AG's members (AG names) and their availability modes.
    pub members: Vec<(String, String)>,
    /// The plain availability group the database is in here.
    pub local_ag: Option<String>,
    /// The local copy of the database in the link.
    pub database: Option<DatabaseState>,
    /// Full and log backups of the database: (type, copy_only, finished, device).
    pub backups: Vec<BackupRow>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DatabaseState {
    pub synchronization_state: String,
    /// numeric(25,0) as text: only equality means anything.
    pub last_hardened_lsn: String,
    pub end_of_log_lsn: String,
    pub last_commit_time: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BackupRow {
    pub kind: String,
    pub copy_only: bool,
    pub finished: String,
    pub device: Option<String>,
}

impl Half {
    pub fn is(&self, role: &str) -> bool {
        self.role.as_deref() == Some(role)
    }

    /// Every member of the distributed AG in `mode` (SYNCHRONOUS_COMMIT…).
    pub fn all_in(&self, mode: &str) -> bool {
        !self.members.is_empty() && self.members.iter().all(|(_, m)| m.eq_ignore_ascii_case(mode))
    }

    pub fn mode(&self) -> String {
        let modes: Vec<&str> = self.members.iter().map(|(_, m)| m.as_str()).collect();
        match modes.as_slice() {
            [] => "unknown".into(),
            [first, rest @ ..] if rest.iter().all(|m| m == first) => first.to_string(),
            _ => modes.join(" / "),
        }
    }
}

/// The instance's DAG resource as ARM shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArmView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// The api-version that answered (the new schema when the instance knows it).
    pub api: String,
    pub dag: bool,
    pub instance_role: Option<String>,
    pub partner_role: Option<String>,
    pub replication_mode: Option<String>,
    pub replica_state: Option<String>,
    pub last_hardened_lsn: Option<String>,
    /// The instance's `databaseFormat` (its update policy) and `hybridSecondaryUsage`.
    pub database_format: Option<String>,
    pub hybrid_secondary_usage: Option<String>,
}

impl ArmView {
    /// The instance knows `failover` and `setRole` (the new schema).
    pub fn new_schema(&self) -> bool {
        self.api == NEW_API
    }
}

/// One link: the DAG and its database, both sides and ARM.
#[derive(Debug, Clone, Default, Serialize)]
pub struct View {
    pub database: String,
    pub dag: String,
    pub sql: Half,
    pub mi: Half,
    pub arm: ArmView,
}

impl View {
    pub fn half(&self, sql: bool) -> &Half {
        if sql { &self.sql } else { &self.mi }
    }

    /// Neither side nor ARM has the distributed AG any more.
    pub fn gone(&self) -> bool {
        !self.sql.dag && !self.mi.dag && !self.arm.dag
    }

    /// Both sides say PRIMARY.
    pub fn split_brain(&self) -> bool {
        self.sql.is("PRIMARY") && self.mi.is("PRIMARY")
    }
}

fn text(r: &Record, k: &str) -> String {
    r.str(k).unwrap_or("").to_string()
}

/// Reads one side; a failing query makes the side unreadable, with its reason.
pub async fn half(s: Option<&mut Session>, dag: &str, db: &str) -> Half {
    let Some(s) = s else {
        return Half { unreadable: Some("not logged in".into()), ..Default::default() };
    };
    match read(s, dag, db).await {
        Ok(h) => h,
        Err(f) => Half { unreadable: Some(f.message), ..Default::default() },
    }
}

/// What `read` asks about one link's database, in one round trip.
fn queries(dag: &str, db: &str) -> [String; 5] {
    let (dag, db) = (nstring(dag), nstring(db));
    [
        "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS version, \
         CAST(SERVERPROPERTY('ProductUpdateType') AS nvarchar(128)) AS update_type"
            .to_string(),
        format!(
            "SELECT r.replica_server_name, r.availability_mode_desc, rs.is_local, rs.role_desc, rs.connected_state_desc, \
             rs.synchronization_health_desc FROM sys.availability_groups AS ag \
             JOIN sys.availability_replicas AS r ON r.group_id = ag.group_id \
             LEFT JOIN sys.dm_hadr_availability_replica_states AS rs ON rs.replica_id = r.replica_id \
             WHERE ag.is_distributed = 1 AND ag.name = {dag}"
        ),
        format!(
            "SELECT drs.synchronization_state_desc, drs.last_hardened_lsn, drs.end_of_log_lsn, drs.last_commit_time \
             FROM sys.dm_hadr_database_replica_states AS drs JOIN sys.databases AS d ON d.database_id = drs.database_id \
             JOIN sys.availability_groups AS ag ON ag.group_id = drs.group_id \
             WHERE ag.is_distributed = 1 AND ag.name = {dag} AND d.name = {db} AND drs.is_local = 1"
        ),
        format!(
            "SELECT ag.name FROM sys.availability_groups AS ag JOIN sys.availability_replicas AS r ON r.group_id = ag.group_id \
             JOIN sys.databases AS d ON d.replica_id = r.replica_id WHERE ag.is_distributed = 0 AND d.name = {db}"
        ),
        format!(
            "SELECT b.type, b.is_copy_only, b.backup_finish_date, f.physical_device_name FROM msdb.dbo.backupset AS b \
             LEFT JOIN msdb.dbo.backupmediafamily AS f ON f.media_set_id = b.media_set_id \
             WHERE b.database_name = {db} ORDER BY b.backup_finish_date"
        ),
    ]
}

async fn read(s: &mut Session, dag: &str, db: &str) -> Result<Half, SqlFailure> {
    let q = queries(dag, db);
    let mut a = s.answers(&q.each_ref().map(String::as_str)).await;
    let mut h = Half::default();
    if let Some(r) = a.rows()?.first() {
        h.version = crate::probe::sql::product_version(&text(r, "version"));
        h.update_type = text(r, "update_type");
    }
    let replicas = a.rows()?;
    h.dag = !replicas.is_empty();
    h.members = replicas.iter().map(|r| (text(r, "replica_server_name"), text(r, "availability_mode_desc"))).collect();
    let local = replicas.iter().find(|r| r.flag("is_local") == Some(true));
    h.role = local.map(|r| text(r, "role_desc")).filter(|x| !x.is_empty());
    // A primary sees its partner's connection; a secondary only its own row.
    let seen = if h.is("PRIMARY") { replicas.iter().find(|r| r.flag("is_local") == Some(false)) } else { local };
    h.connected = seen.and_then(|r| r.str("connected_state_desc")).map(|c| c == "CONNECTED");
    h.health = seen.and_then(|r| r.str("synchronization_health_desc")).map(str::to_string);
    h.database = a.rows()?.first().map(|r| DatabaseState {
        synchronization_state: text(r, "synchronization_state_desc"),
        last_hardened_lsn: text(r, "last_hardened_lsn"),
        end_of_log_lsn: text(r, "end_of_log_lsn"),
        last_commit_time: r.str("last_commit_time").map(str::to_string),
    });
    h.local_ag = a.rows()?.first().map(|r| text(r, "name"));
    h.backups = a
        .rows()?
        .iter()
        .map(|r| BackupRow {
            kind: text(r, "type"),
            copy_only: r.flag("is_copy_only").unwrap_or(false),
            finished: text(r, "backup_finish_date"),
            device: r.str("physical_device_name").map(str::to_string),
        })
        .collect();
    Ok(h)
}

/// The instance's DAG resource and its update policy, in the newest schema it answers.
pub async fn arm(arm: &Arm, dag: &str) -> ArmView {
    let mut v = ArmView::default();
    let child = format!("distributedAvailabilityGroups/{}", segment(dag));
    let mut got = arm.get(&arm.url(&child, NEW_API)).await.map(|r| (NEW_API, r));
    if matches!(
        got.as_ref().err().and_then(|e| e.code()),
        Some("NoRegisteredProviderFound" | "InvalidApiVersionParameter")
    ) {
        got = arm.get(&arm.url(&child, OLD_API)).await.map(|r| (OLD_API, r));
    }
    match got {
        Err(e) => v.unreadable = Some(e.to_string()),
        Ok((api, r)) => {
            v.api = api.to_string();
            if let Some(r) = r {
                let p = &r["properties"];
                let s = |x: &Value| x.as_str().map(str::to_string);
                let db = p["databases"].as_array().and_then(|a| a.first()).cloned().unwrap_or(Value::Null);
                v.dag = true;
                v.instance_role = s(&p["instanceLinkRole"]);
                v.partner_role = s(&p["partnerLinkRole"]);
                v.replication_mode = s(&p["replicationMode"]);
                v.replica_state = s(&db["replicaState"]).or(s(&p["linkState"]));
                v.last_hardened_lsn = s(&db["lastHardenedLsn"]).or(s(&p["lastHardenedLsn"]));
            }
        }
    }
    if let Ok(Some(i)) = arm.get(&arm.url("", if v.api.is_empty() { NEW_API } else { &v.api })).await {
        v.database_format = i["properties"]["databaseFormat"].as_str().map(str::to_string);
        v.hybrid_secondary_usage = i["properties"]["hybridSecondaryUsage"].as_str().map(str::to_string);
    }
    v
}
