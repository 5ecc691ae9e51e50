//! One side's catalog: the documented catalog views in an in-memory SQLite
//! database. Facts that never change (server properties, host, backups, msdb)
//! are rows from the start; the link objects are shown from the state
//! (`show`), again after every change.

pub mod schema;
pub mod show;
pub mod types;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{Connection, types::Value};
use time::OffsetDateTime;

use crate::lab::certs::EndpointCert;
use crate::lab::scenario::{Scenario, Side};
use crate::lab::sqltime::datetime_text;
use crate::lab::state::{SideId, World};
use types::SqlType;

/// What never changes on a server: its properties and the scenario's settings.
pub struct Facts {
    pub server_name: String,
    pub version: String,
    pub is_managed_instance: bool,
    pub major: u32,
    pub properties: HashMap<String, Value>,
    pub trace_flags: Vec<i32>,
    pub view_server_state: bool,
    pub sysadmin: bool,
    pub collation: String,
    /// Agent has no PowerShell subsystem on Linux.
    pub linux: bool,
    pub agent_running: bool,
    pub agent_xps: bool,
    /// `sp_certificate_add_issuer` and `sp_get_endpoint_certificate` exist.
    pub connect_pack: bool,
    /// `sys.sp_multidb_milink` exists (multi-database links, preview).
    pub multidb: bool,
}

/// What the state shows outside rows: certificate bytes for CERTENCODED, the
/// databases a session can use, the error log.
#[derive(Default)]
pub struct Shown {
    /// certificate_id → (name, certificate)
    pub certs: BTreeMap<i64, (String, EndpointCert)>,
    pub databases: Vec<(i64, String)>,
    pub endpoint_cert: Option<Vec<u8>>,
    pub endpoint_cert_auth: bool,
    pub errorlog: Vec<(String, String, String)>,
    pub log_space: Vec<(String, f64, f64)>,
}

/// One step of an Agent job, as sp_add_jobstep stored it.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: i64,
    pub name: String,
    pub command: String,
    pub uid: String,
}

/// What the server's host does for a statement: run Agent jobs, listen on the
/// mirroring endpoint's port.
pub trait Host: Send + Sync {
    fn start_job(self: Arc<Self>, job_id: String, steps: Vec<Step>);
    /// The mirroring endpoint's port to listen on (`None`: no endpoint, or not
    /// STARTED). False when the port cannot be had.
    fn endpoint_port(&self, port: Option<u16>) -> bool;
}

pub struct Catalog {
    pub db: Connection,
    pub side: SideId,
    pub facts: Facts,
    pub shown: Arc<RwLock<Shown>>,
    /// The lab's state, which DDL changes and `show` reads. Lock order: a
    /// catalog first, then the world; never the other way round.
    pub world: Arc<Mutex<World>>,
    /// The session's database while a statement runs (for per-database views).
    pub current_db: Arc<AtomicI64>,
    /// The error a CATCH block is handling: ERROR_NUMBER() and ERROR_MESSAGE() read it.
    pub caught: Arc<Mutex<Option<(i64, String)>>>,
    /// Tables this server has (a 2016 server has no sys.dm_os_host_info…).
    pub tables: Vec<&'static schema::Table>,
    /// The scenario's raw rows for tables the state owns, shown after its own.
    pub extra_rows: Vec<(&'static str, Vec<(&'static str, Value)>)>,
    /// Runs Agent jobs and endpoints (set once the lab knows the side's network).
    pub host: Option<Arc<dyn Host>>,
    /// The world's `version` this catalog showed last.
    pub shown_version: std::sync::atomic::AtomicU64,
}

impl Catalog {
    pub fn shown(&self) -> std::sync::RwLockReadGuard<'_, Shown> {
        self.shown.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Shows the world again if it changed since this catalog last showed it.
    pub fn refresh(&self) {
        let w = self.world();
        if w.version != self.shown_version.load(std::sync::atomic::Ordering::Relaxed)
            && let Err(e) = self.show(&w)
        {
            tracing::warn!(error = %e, "lab catalog could not show the state");
        }
    }

    /// Locks the lab's state (the caller holds this catalog already).
    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("sqlite")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{side}.rows.\"{table}\": {message}")]
    Row { side: String, table: String, message: String },
}

pub struct BuildInput<'a> {
    pub side_id: SideId,
    pub scenario: &'a Scenario,
    pub side: &'a Side,
    pub world: Arc<Mutex<World>>,
    pub now: OffsetDateTime,
}

pub fn build(input: BuildInput<'_>) -> Result<Catalog, CatalogError> {
    let side = input.side;
    let (major, ..) = side.version_parts();
    let mi = side.is_managed_instance();
    let tables: Vec<&'static schema::Table> = schema::TABLES
        .iter()
        .filter(|t| match t.name {
            "sys.dm_os_host_info" => mi || major >= 14,
            "sys.dm_server_services" => !mi,
            "sys.dm_hadr_fabric_config_parameters" | "sys.server_resource_stats" => mi,
            _ => true,
        })
        .collect();
    let db = Connection::open_in_memory()?;
    // The view over log space calls this before the engine registers the real one.
    db.create_scalar_function("lab_current_db", 0, rusqlite::functions::FunctionFlags::SQLITE_UTF8, |_| Ok(1i64))?;
    for t in &tables {
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|(name, ty)| {
                let st = SqlType::parse(ty).expect("schema types parse");
                // Text compares case-insensitively, as under a _CI_ collation; so do GUIDs.
                let collate = if st.is_text() || st == SqlType::Guid { " COLLATE NOCASE" } else { "" };
                format!("[{name}] \"{ty}\"{collate}")
            })
            .collect();
        if let Some(all) = backing(t.name) {
            // Shows the current database only, as the real view does; rows of
            // every database live in the backing table.
            let mut all_cols = cols.clone();
            if !t.columns.iter().any(|(c, _)| *c == "database_id") {
                all_cols.push("[database_id] \"int\"".into());
            }
            db.execute_batch(&format!(
                "CREATE TABLE [{all}] ({}); CREATE VIEW [{}] AS SELECT {} FROM [{all}] WHERE database_id = lab_current_db();",
                all_cols.join(", "),
                t.name,
                column_list(t),
            ))?;
        } else {
            db.execute_batch(&format!("CREATE TABLE [{}] ({});", t.name, cols.join(", ")))?;
        }
    }
    let label = input.side_id.label();
    let mut b = Builder { db: &db, now: input.now, extra: Vec::new() };
    b.host(side, mi, major)?;
    b.services(side, mi)?;
    b.fabric(side)?;
    if mi {
        b.resource_stats(side)?;
    }
    for (table, rows) in &side.rows {
        b.raw_rows(label, table, rows)?;
    }
    let extra_rows = b.extra;
    let catalog = Catalog {
        db,
        side: input.side_id,
        facts: facts(side),
        shown: Arc::new(RwLock::new(Shown::default())),
        world: input.world,
        current_db: Arc::new(AtomicI64::new(1)),
        caught: Arc::new(Mutex::new(None)),
        tables,
        extra_rows,
        host: None,
        shown_version: std::sync::atomic::AtomicU64::new(u64::MAX),
    };
    {
        let world = catalog.world();
        catalog.show(&world)?;
    }
    Ok(catalog)
}

const LOG_SPACE_ALL: &str = "lab.log_space_all";
const FILEGROUPS_ALL: &str = "lab.filegroups_all";

/// The table behind a per-database view.
fn backing(view: &str) -> Option<&'static str> {
    match view {
        "sys.dm_db_log_space_usage" => Some(LOG_SPACE_ALL),
        "sys.filegroups" => Some(FILEGROUPS_ALL),
        _ => None,
    }
}

fn column_list(t: &schema::Table) -> String {
    t.columns.iter().map(|(c, _)| format!("[{c}]")).collect::<Vec<_>>().join(", ")
}

/// The SQLite view of a per-database view for one database, as a three-part
/// name (`[db].sys.filegroups`) reads it.
pub fn per_database_view(t: &schema::Table, database_id: i64) -> String {
    format!("{}@{database_id}", t.name)
}

pub(crate) fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}
pub(crate) fn int(i: i64) -> Value {
    Value::Integer(i)
}
pub(crate) fn bit(b: bool) -> Value {
    Value::Integer(b as i64)
}

pub(crate) fn insert(db: &Connection, table: &str, row: &[(&str, Value)]) -> Result<(), CatalogError> {
    let cols: Vec<String> = row.iter().map(|(c, _)| format!("[{c}]")).collect();
    let marks: Vec<&str> = row.iter().map(|_| "?").collect();
    let sql = format!("INSERT INTO [{table}] ({}) VALUES ({})", cols.join(","), marks.join(","));
    let params: Vec<&Value> = row.iter().map(|(_, v)| v).collect();
    db.execute(&sql, rusqlite::params_from_iter(params))?;
    Ok(())
}

fn facts(side: &Side) -> Facts {
    let (major, minor, build, rev) = side.version_parts();
    let mi = side.is_managed_instance();
    let version_text = if mi {
        format!(
            "Microsoft SQL Azure (RTM) - {}.{}.{}.{} (X64) \n\tCopyright (C) 2022 Microsoft Corporation\n",
            major, minor, build, rev
        )
    } else {
        format!(
            "Microsoft SQL Server {} (RTM-{}) (KB0000000) - {}.{}.{}.{} (X64) \n\t{}\n\t{} on {} {} <X64>\n",
            product_year(major),
            side.update_level.clone().unwrap_or_else(|| "GDR".into()),
            major,
            minor,
            build,
            rev,
            "Copyright (C) 2022 Microsoft Corporation",
            side.edition,
            side.host.distribution,
            side.host.release
        )
    };
    let mut p: HashMap<String, Value> = HashMap::new();
    let mut set = |k: &str, v: Value| {
        p.insert(k.to_ascii_lowercase(), v);
    };
    set("ServerName", text(&side.name));
    set("MachineName", text(side.name.split('\\').next().unwrap_or(&side.name)));
    set("InstanceName", Value::Null);
    set("Collation", text(&side.collation));
    set("Edition", text(&side.edition));
    set("EngineEdition", int(side.engine_edition()));
    set("ProductVersion", text(&side.version));
    set("ProductMajorVersion", text(major.to_string()));
    set("ProductMinorVersion", text(minor.to_string()));
    set("ProductBuild", text(build.to_string()));
    set("ProductLevel", text("RTM"));
    set("ProductUpdateLevel", side.update_level.clone().map(text).unwrap_or(Value::Null));
    set("ProductUpdateType", side.update_type.clone().map(text).unwrap_or(Value::Null));
    set("IsHadrEnabled", int(side.hadr_enabled as i64));
    set("HadrManagerStatus", int(side.hadr_manager_status));
    set("IsClustered", int(0));
    set("IsIntegratedSecurityOnly", int(0));
    set("@@VERSION", text(version_text));
    Facts {
        server_name: side.name.clone(),
        version: side.version.clone(),
        is_managed_instance: mi,
        major,
        properties: p,
        trace_flags: side.trace_flags.clone(),
        view_server_state: side.login.view_server_state,
        sysadmin: side.login.sysadmin,
        collation: side.collation.clone(),
        linux: side.host.platform.eq_ignore_ascii_case("Linux"),
        // A managed instance's Agent always runs.
        agent_running: mi || side.agent.running,
        agent_xps: mi || side.agent.xps,
        connect_pack: side.has_link_procedures(),
        multidb: !mi && side.has_multidb(),
    }
}

/// The rows that never change.
struct Builder<'a> {
    db: &'a Connection,
    now: OffsetDateTime,
    extra: Vec<(&'static str, Vec<(&'static str, Value)>)>,
}

impl Builder<'_> {
    fn when(&self, t: OffsetDateTime) -> Value {
        text(datetime_text(t))
    }

    fn insert(&self, table: &str, row: &[(&str, Value)]) -> Result<(), CatalogError> {
        insert(self.db, table, row)
    }

    /// The last minute of 15-second samples, each naming the service tier.
    /// The sku texts are documented; Next-gen General Purpose showing as
    /// "General Purpose" there, and the resource_type text, are UNCONFIRMED.
    fn resource_stats(&mut self, side: &Side) -> Result<(), CatalogError> {
        let sku = match side.tier() {
            "BusinessCritical" => "Business Critical",
            _ => "General Purpose",
        };
        for i in 0..4i64 {
            let end = self.now - time::Duration::seconds(15 * i);
            self.insert(
                "sys.server_resource_stats",
                &[
                    ("start_time", self.when(end - time::Duration::seconds(15))),
                    ("end_time", self.when(end)),
                    ("resource_type", text("SQL instance")),
                    ("resource_name", text(&side.name)),
                    ("sku", text(sku)),
                    ("hardware_generation", text("Gen5")),
                    ("virtual_core_count", int(8)),
                    ("avg_cpu_percent", Value::Real(3.5 + i as f64)),
                    ("reserved_storage_mb", int(262_144)),
                    ("storage_space_used_mb", Value::Real(10_240.0)),
                    ("io_request", int(1200)),
                    ("io_bytes_read", int(9_437_184)),
                    ("io_bytes_written", int(4_194_304)),
                ],
            )?;
        }
        Ok(())
    }

    fn host(&mut self, side: &Side, mi: bool, major: u32) -> Result<(), CatalogError> {
        if !(mi || major >= 14) {
            return Ok(());
        }
        self.insert(
            "sys.dm_os_host_info",
            &[
                ("host_platform", text(&side.host.platform)),
                ("host_distribution", text(&side.host.distribution)),
                ("host_release", text(&side.host.release)),
                ("host_service_pack_level", text("")),
                ("host_sku", int(if side.host.platform.eq_ignore_ascii_case("Windows") { 8 } else { 0 })),
                ("os_language_version", int(1033)),
                ("host_architecture", text("X64")),
            ],
        )
    }

    /// The engine's and Agent's services (SQL Server only), and the options
    /// the checks read from sys.configurations.
    fn services(&mut self, side: &Side, mi: bool) -> Result<(), CatalogError> {
        let agent = mi || side.agent.running;
        if !mi {
            for (name, running, file) in [
                (
                    "SQL Server (MSSQLSERVER)",
                    true,
                    "\"C:\\Program Files\\Microsoft SQL Server\\MSSQL\\Binn\\sqlservr.exe\" -sMSSQLSERVER",
                ),
                (
                    "SQL Server Agent (MSSQLSERVER)",
                    agent,
                    "\"C:\\Program Files\\Microsoft SQL Server\\MSSQL\\Binn\\SQLAGENT.EXE\" -i MSSQLSERVER",
                ),
            ] {
                self.insert(
                    "sys.dm_server_services",
                    &[
                        ("servicename", text(name)),
                        ("startup_type", int(if running { 2 } else { 3 })),
                        ("startup_type_desc", text(if running { "Automatic" } else { "Manual" })),
                        ("status", int(if running { 4 } else { 1 })),
                        ("status_desc", text(if running { "Running" } else { "Stopped" })),
                        ("process_id", if running { int(4242) } else { Value::Null }),
                        (
                            "last_startup_time",
                            if running { self.when(self.now - time::Duration::days(3)) } else { Value::Null },
                        ),
                        ("service_account", text("NT Service\\MSSQLSERVER")),
                        ("filename", text(file)),
                        ("is_clustered", text("N")),
                        ("cluster_nodename", Value::Null),
                        ("instant_file_initialization_enabled", text("Y")),
                    ],
                )?;
            }
        }
        let xps = i64::from(mi || side.agent.xps);
        for (id, name, value, min, max, what, advanced) in [
            (16384, "Agent XPs", xps, 0, 1, "Enable or disable Agent XPs", true),
            (1568, "default trace enabled", 1, 0, 1, "Enable or disable the default trace", true),
        ] {
            self.insert(
                "sys.configurations",
                &[
                    ("configuration_id", int(id)),
                    ("name", text(name)),
                    ("value", int(value)),
                    ("minimum", int(min)),
                    ("maximum", int(max)),
                    ("value_in_use", int(value)),
                    ("description", text(what)),
                    ("is_dynamic", bit(true)),
                    ("is_advanced", bit(advanced)),
                ],
            )?;
        }
        Ok(())
    }

    fn fabric(&mut self, side: &Side) -> Result<(), CatalogError> {
        let Some(f) = &side.fabric else {
            return Ok(());
        };
        for (name, value) in [
            ("DnsRecordName", side.fqdn.clone()),
            ("HadrPort", f.hadr_port.to_string()),
            ("ClusterName", f.node.clone()),
            ("InstanceName", side.name.clone()),
        ] {
            self.insert(
                "sys.dm_hadr_fabric_config_parameters",
                &[
                    ("section_name", text("SQL")),
                    ("parameter_name", text(name)),
                    ("value", text(value)),
                    ("is_encrypted", bit(false)),
                ],
            )?;
        }
        Ok(())
    }

    /// Raw rows go straight in, or, for a table the state owns, after its rows.
    fn raw_rows(&mut self, label: &str, table: &str, rows: &[toml::Table]) -> Result<(), CatalogError> {
        let Some(t) = schema::table(table) else {
            return Err(CatalogError::Row {
                side: label.into(),
                table: table.into(),
                message: "not a catalog table the lab has".into(),
            });
        };
        for row in rows {
            let mut values = Vec::new();
            for (k, v) in row {
                let Some((col, _)) = t.columns.iter().find(|(c, _)| c.eq_ignore_ascii_case(k)) else {
                    return Err(CatalogError::Row {
                        side: label.into(),
                        table: table.into(),
                        message: format!("no column `{k}` in {}", t.name),
                    });
                };
                let v = match v {
                    toml::Value::String(s) => text(s.clone()),
                    toml::Value::Integer(i) => int(*i),
                    toml::Value::Float(f) => Value::Real(*f),
                    toml::Value::Boolean(b) => bit(*b),
                    other => text(other.to_string()),
                };
                values.push((*col, v));
            }
            if show::OWNED.contains(&t.name) {
                // Checked now, so a bad row fails the scenario at start.
                self.insert(t.name, &values)?;
                self.db.execute(&format!("DELETE FROM [{}]", t.name), [])?;
                self.extra.push((t.name, values));
            } else {
                self.insert(t.name, &values)?;
            }
        }
        Ok(())
    }
}

fn product_year(major: u32) -> &'static str {
    match major {
        13 => "2016",
        14 => "2017",
        15 => "2019",
        16 => "2022",
        17 => "2025",
        _ => "",
    }
}
