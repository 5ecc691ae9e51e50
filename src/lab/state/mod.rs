//! What the lab's two servers hold that a link is made of (master key,
//! certificates, the mirroring endpoint, availability groups, databases, the
//! error log), the managed instance's Azure resources, and each link's status.
//!
//! One way through the lab: T-SQL DDL and ARM requests change this state, the
//! link state machine (`lab::link`) decides each link's status from it and the
//! network, and the catalogs (`lab::catalog::show`) only show it.

mod from_scenario;
pub mod objects;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use time::OffsetDateTime;

pub use from_scenario::build;
use objects::{AvailabilityGroup, Certificate, Database, Endpoint, LogLine};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SideId {
    Sql,
    Mi,
}

impl SideId {
    pub fn label(self) -> &'static str {
        match self {
            SideId::Sql => "sql_server",
            SideId::Mi => "managed_instance",
        }
    }

    pub fn other(self) -> SideId {
        match self {
            SideId::Sql => SideId::Mi,
            SideId::Mi => SideId::Sql,
        }
    }
}

/// One server's link objects.
#[derive(Debug, Clone)]
pub struct Server {
    pub side: SideId,
    /// `@@SERVERNAME` (the short name of a managed instance).
    pub name: String,
    pub fqdn: String,
    pub version: (u32, u32, u32, u32),
    /// The link's procedures exist (2016/2017: the Azure Connect pack).
    pub connect_pack: bool,
    /// Databases with a database master key (`master` is the one the link needs).
    pub master_keys: Vec<String>,
    pub certificates: Vec<Certificate>,
    pub endpoint: Option<Endpoint>,
    pub ags: Vec<AvailabilityGroup>,
    /// AG listeners: (AG name, DNS name, port).
    pub ag_listeners: Vec<(String, String, u16)>,
    pub databases: Vec<Database>,
    pub errorlog: Vec<LogLine>,
    /// `msdb.dbo.backupset`: the scenario's, and those taken while the lab runs.
    pub backups: Vec<BackupSet>,
    /// Where `BACKUP … TO DISK` writes (the lab's folder for this side); none: no disk.
    pub backup_dir: Option<PathBuf>,
    /// The side's system objects were made this long ago (dates in rows).
    pub born: OffsetDateTime,
    guid_seed: u32,
    guid_n: u32,
}

impl Server {
    pub fn is_managed_instance(&self) -> bool {
        self.side == SideId::Mi
    }

    /// A new GUID, stable for a scenario (tests compare rows across runs).
    pub fn guid(&mut self) -> String {
        self.guid_n += 1;
        format!("{:08X}-4C41-4200-8000-{:012X}", self.guid_seed, self.guid_n)
    }

    pub fn certificate(&self, name: &str) -> Option<&Certificate> {
        self.certificates.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }

    pub fn next_certificate_id(&self) -> i64 {
        self.certificates.iter().map(|c| c.id).filter(|i| *i >= 256).max().unwrap_or(255) + 1
    }

    /// The certificate the mirroring endpoint authenticates with.
    pub fn endpoint_certificate(&self) -> Option<&Certificate> {
        let name = self.endpoint.as_ref()?.auth.certificate.as_ref()?;
        self.certificate(name)
    }

    pub fn database(&self, name: &str) -> Option<&Database> {
        self.databases.iter().find(|d| d.name.eq_ignore_ascii_case(name))
    }

    pub fn ag(&self, name: &str) -> Option<&AvailabilityGroup> {
        self.ags.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    pub fn has_master_key(&self) -> bool {
        self.master_keys.iter().any(|d| d.eq_ignore_ascii_case("master"))
    }

    pub fn log(&mut self, process: &str, text: impl Into<String>) {
        self.errorlog.push(LogLine { at: OffsetDateTime::now_utc(), process: process.into(), text: text.into() });
    }
}

/// One backup set in `msdb.dbo.backupset`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupSet {
    pub database: String,
    /// D full, I differential, L log.
    pub kind: char,
    pub copy_only: bool,
    pub finished: OffsetDateTime,
    /// Transactions in the database's log at the backup's start and end (`lsn`).
    pub first: u64,
    pub last: u64,
    /// The file or URL written (`msdb.dbo.backupmediafamily.physical_device_name`).
    pub device: Option<String>,
}

/// The log sequence number the lab shows after `n` transactions: numeric(25,0)
/// like SQL Server's (`39000000030400001` at the start; only equality means anything).
pub fn lsn(n: u64) -> i64 {
    39_000_000_000_000_000 + (304 + n as i64) * 100_000 + 1
}

/// How far each side's copy of a link's database is: transactions in its log
/// (the lab's LSNs count them), and when the last one committed there.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LogPositions {
    pub sql: u64,
    pub mi: u64,
    pub sql_commit: Option<OffsetDateTime>,
    pub mi_commit: Option<OffsetDateTime>,
}

impl LogPositions {
    pub fn of(&self, side: SideId) -> u64 {
        match side {
            SideId::Sql => self.sql,
            SideId::Mi => self.mi,
        }
    }

    pub fn set(&mut self, side: SideId, n: u64) {
        match side {
            SideId::Sql => self.sql = n,
            SideId::Mi => self.mi = n,
        }
    }

    pub fn committed(&self, side: SideId) -> Option<OffsetDateTime> {
        match side {
            SideId::Sql => self.sql_commit,
            SideId::Mi => self.mi_commit,
        }
    }

    pub fn commit(&mut self, side: SideId, n: u64, at: OffsetDateTime) {
        self.set(side, n);
        match side {
            SideId::Sql => self.sql_commit = Some(at),
            SideId::Mi => self.mi_commit = Some(at),
        }
    }
}

/// The application's writes to the link databases, in transactions per second.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub tps: f64,
    /// The application stops writing at this time (a DBA stopping it).
    pub stop_at: Option<OffsetDateTime>,
    /// Writes were counted up to here; a fraction of a transaction carries over.
    pub counted_to: OffsetDateTime,
    pub carry: f64,
}

impl Workload {
    pub fn idle(now: OffsetDateTime) -> Workload {
        Workload { tps: 0.0, stop_at: None, counted_to: now, carry: 0.0 }
    }

    pub fn writing(&self, now: OffsetDateTime) -> bool {
        self.tps > 0.0 && self.stop_at.is_none_or(|t| now < t)
    }
}

/// A managed instance takes its first full backup a little after a database
/// becomes primary there (automated backups).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingBackup {
    pub side: SideId,
    pub database: String,
    pub due: OffsetDateTime,
}

/// A `last_connect_error_*` as a side's DMV shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    /// Which side's DMV carries it (`None`: both).
    pub side: Option<SideId>,
    pub number: i32,
    pub description: String,
    pub at: OffsetDateTime,
}

/// Automatic seeding of the link's database, as the seeding DMVs show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seeding {
    /// COMPLETED, FAILED, or a transfer state.
    pub current_state: String,
    pub failure_state: i32,
    pub failure_state_desc: Option<String>,
    pub error_code: i32,
    pub failure_message: Option<String>,
    pub attempts: i64,
    pub transferred_bytes: i64,
    pub size_bytes: i64,
    pub rate_bytes_per_second: i64,
    pub started: OffsetDateTime,
    pub finished: Option<OffsetDateTime>,
}

/// What one link (a distributed AG between the sides) is doing.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkStatus {
    pub sql_role: String,
    pub mi_role: String,
    pub connected: bool,
    pub error: Option<ConnectError>,
    /// NOT_HEALTHY, PARTIALLY_HEALTHY, HEALTHY.
    pub health: String,
    /// NOT SYNCHRONIZING, SYNCHRONIZING, SYNCHRONIZED…
    pub sync_state: String,
    pub log_send_queue_kb: i64,
    pub redo_queue_kb: i64,
    pub lag_seconds: i64,
    pub seeding: Option<Seeding>,
    /// Each side's copy of the database: how far its log is.
    pub log: LogPositions,
    /// A role change ARM is carrying out (`replicaState` LinkFailoverInProgress).
    pub failing_over: bool,
}

impl LinkStatus {
    /// A link whose halves have not met yet.
    pub fn waiting() -> LinkStatus {
        LinkStatus {
            sql_role: "PRIMARY".into(),
            mi_role: "SECONDARY".into(),
            connected: false,
            error: None,
            health: "NOT_HEALTHY".into(),
            sync_state: "NOT SYNCHRONIZING".into(),
            log_send_queue_kb: 0,
            redo_queue_kb: 0,
            lag_seconds: 0,
            seeding: None,
            log: LogPositions::default(),
            failing_over: false,
        }
    }

    pub fn role(&self, side: SideId) -> &str {
        match side {
            SideId::Sql => &self.sql_role,
            SideId::Mi => &self.mi_role,
        }
    }

    pub fn set_role(&mut self, side: SideId, role: &str) {
        match side {
            SideId::Sql => self.sql_role = role.into(),
            SideId::Mi => self.mi_role = role.into(),
        }
    }

    /// The one side that is PRIMARY (none in a split brain or while resolving).
    pub fn primary(&self) -> Option<SideId> {
        match (self.sql_role == "PRIMARY", self.mi_role == "PRIMARY") {
            (true, false) => Some(SideId::Sql),
            (false, true) => Some(SideId::Mi),
            _ => None,
        }
    }

    pub fn split_brain(&self) -> bool {
        self.sql_role == "PRIMARY" && self.mi_role == "PRIMARY"
    }

    pub fn seeded(&self) -> bool {
        self.seeding.as_ref().is_none_or(|s| s.finished.is_some() && s.failure_state == 0)
    }
}

#[derive(Debug, Clone)]
pub struct Link {
    /// The distributed AG's name (the same on both sides and in ARM).
    pub dag: String,
    pub database: String,
    /// A link the scenario describes keeps the status the file gives it; a link
    /// created in the lab gets its status from the state machine.
    pub pinned: bool,
    pub status: LinkStatus,
    /// When the state machine first saw both halves (for `connect_after`).
    pub since: Option<OffsetDateTime>,
    /// A pinned link falling further behind as time passes.
    pub growth: Option<Growth>,
    /// Where the application writes: the side it was pointed at last.
    pub writer: SideId,
    /// (when, transactions) of the writer's log, for a secondary that hardens
    /// what the primary had a moment ago (asynchronous commit).
    pub history: VecDeque<(OffsetDateTime, u64)>,
}

impl Link {
    /// A link whose halves have not met yet, SQL Server its primary.
    pub fn new(dag: &str, database: &str) -> Link {
        Link {
            dag: dag.into(),
            database: database.into(),
            pinned: false,
            status: LinkStatus::waiting(),
            since: None,
            growth: None,
            writer: SideId::Sql,
            history: VecDeque::new(),
        }
    }
}

/// A send queue that grows by `kb_per_s` from `send_kb`, and a lag that grows
/// with the clock from `lag_s`, both counted from the link's `since`.
#[derive(Debug, Clone, Copy)]
pub struct Growth {
    pub kb_per_s: i64,
    pub send_kb: i64,
    pub lag_s: i64,
}

/// A statement or request that changed the state, in order: tests read it to see
/// that nothing ran twice.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mutation {
    pub side: &'static str,
    /// `CREATE CERTIFICATE`, `PUT serverTrustCertificates`…
    pub kind: String,
    pub object: String,
    pub at: String,
}

/// A server trust certificate or DAG the managed instance has through ARM lives
/// in `mi` (certificates, AGs); this holds what only ARM knows.
#[derive(Debug, Clone)]
pub struct ArmSide {
    /// DAG name → the ARM properties that are not T-SQL objects.
    pub dags: Vec<ArmDag>,
    /// The instance's `hybridSecondaryUsage`: Active (the default) or Passive
    /// (a license-free disaster-recovery secondary).
    pub hybrid_secondary_usage: String,
}

impl Default for ArmSide {
    fn default() -> ArmSide {
        ArmSide { dags: vec![], hybrid_secondary_usage: "Active".into() }
    }
}

#[derive(Debug, Clone)]
pub struct ArmDag {
    pub name: String,
    pub id: String,
    pub partner_ag: String,
    pub instance_ag: String,
    pub partner_endpoint: String,
    pub databases: Vec<String>,
    pub replication_mode: String,
    pub failover_mode: String,
    pub seeding_mode: String,
    pub instance_role: String,
    /// `linkMode` (2025-08-01-preview): SingleDatabase, or MultiDatabase.
    pub link_mode: String,
}

pub struct World {
    pub sql: Server,
    pub mi: Server,
    pub arm: ArmSide,
    pub links: Vec<Link>,
    pub record: Vec<Mutation>,
    pub workload: Workload,
    pub pending_backups: Vec<PendingBackup>,
    /// How links behave here: how fast they connect, seed and harden.
    pub replication: crate::lab::scenario::Replication,
    /// Counts the changes `mutated` notes: a catalog that showed an older one
    /// shows the world again before it answers (a change on one side, or in
    /// ARM, can change what the other side shows).
    pub version: u64,
    /// Woken whenever something changes, so the state machine re-decides at once.
    pub changed: Arc<tokio::sync::Notify>,
}

impl World {
    pub fn server(&self, side: SideId) -> &Server {
        match side {
            SideId::Sql => &self.sql,
            SideId::Mi => &self.mi,
        }
    }

    pub fn server_mut(&mut self, side: SideId) -> &mut Server {
        match side {
            SideId::Sql => &mut self.sql,
            SideId::Mi => &mut self.mi,
        }
    }

    /// One database's link state of a DAG.
    pub fn link_of(&self, dag: &str, db: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.dag.eq_ignore_ascii_case(dag) && l.database.eq_ignore_ascii_case(db))
    }

    /// Every database's link state of a DAG (one, but in multi-database mode).
    pub fn links_of<'a>(&'a self, dag: &'a str) -> impl Iterator<Item = &'a Link> + 'a {
        self.links.iter().filter(move |l| l.dag.eq_ignore_ascii_case(dag))
    }

    pub fn link(&self, dag: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.dag.eq_ignore_ascii_case(dag))
    }

    /// Notes a change: recorded, and the state machine woken.
    pub fn mutated(&mut self, side: SideId, kind: impl Into<String>, object: impl Into<String>) {
        self.record.push(Mutation {
            side: side.label(),
            kind: kind.into(),
            object: object.into(),
            at: crate::lab::sqltime::datetime_text(OffsetDateTime::now_utc()),
        });
        self.version += 1;
        self.changed.notify_one();
    }
}
