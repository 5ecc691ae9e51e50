//! One side's catalog: the scenario's facts materialised into rows of the
//! documented catalog views, held in an in-memory SQLite database.

pub mod schema;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use rusqlite::{Connection, types::Value};
use sha1::{Digest, Sha1};
use time::OffsetDateTime;

use crate::lab::certs::{self, EndpointCert};
use crate::lab::scenario::{Link, Scenario, Side};
use crate::lab::sql::types::SqlType;

/// Facts that are not rows of a view: server properties, certificate bytes,
/// the error log, trace flags.
pub struct Facts {
    pub server_name: String,
    pub version: String,
    pub is_managed_instance: bool,
    pub major: u32,
    pub properties: HashMap<String, Value>,
    /// certificate_id → certificate
    pub certs: BTreeMap<i64, (String, EndpointCert)>,
    pub endpoint_cert: Option<Vec<u8>>,
    pub endpoint_cert_auth: bool,
    pub errorlog: Vec<(String, String, String)>,
    pub trace_flags: Vec<i32>,
    pub databases: Vec<(i64, String)>,
    pub log_space: Vec<(String, f64, f64)>,
    pub view_server_state: bool,
    pub sysadmin: bool,
    pub collation: String,
    /// Agent has no PowerShell subsystem on Linux.
    pub linux: bool,
}

pub struct Catalog {
    pub db: Connection,
    pub facts: Facts,
    /// The session's database while a statement runs (for per-database views).
    pub current_db: Arc<AtomicI64>,
    /// Tables this server has (a 2016 server has no sys.dm_os_host_info…).
    pub tables: Vec<&'static schema::Table>,
    /// Runs Agent jobs (set once the lab knows the side's network).
    pub agent: Option<Arc<dyn crate::lab::agent::Runner>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Cert(#[from] certs::CertError),
    #[error("sqlite")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{side}.rows.\"{table}\": {message}")]
    Row { side: String, table: String, message: String },
}

/// Endpoint certificates of both sides, made once so that an import on one side
/// can be byte-equal to the other side's certificate.
pub struct SideCerts {
    pub by_name: BTreeMap<String, EndpointCert>,
}

pub fn make_certs(side: &Side, now: OffsetDateTime, serial_base: u64) -> Result<SideCerts, certs::CertError> {
    let mut by_name = BTreeMap::new();
    for (i, c) in side.certificates.iter().filter(|c| c.copy_of.is_none()).enumerate() {
        let subject = c.subject.clone().unwrap_or_else(|| format!("Certificate for {}", side.name));
        let cert = certs::endpoint_cert(
            &subject,
            c.issuer.as_deref(),
            c.start.at(now),
            c.expiry.at(now),
            serial_base + i as u64,
        )?;
        by_name.insert(c.name.clone(), cert);
    }
    Ok(SideCerts { by_name })
}

impl SideCerts {
    pub fn endpoint_cert(&self, side: &Side) -> Option<&EndpointCert> {
        let name = side.endpoint.as_ref()?.certificate.as_ref()?;
        self.by_name.get(name)
    }
}

pub struct BuildInput<'a> {
    pub label: &'a str,
    pub scenario: &'a Scenario,
    pub side: &'a Side,
    pub own: &'a SideCerts,
    pub other_side: &'a Side,
    pub other: &'a SideCerts,
    /// SQL Server's endpoint host as endpoint URLs name it (IP or name).
    pub sql_endpoint_host: String,
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
            "sys.dm_hadr_fabric_config_parameters" => mi,
            _ => true,
        })
        .collect();
    let db = Connection::open_in_memory()?;
    // The view over log space calls this before the real one is registered.
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
        if t.name == LOG_SPACE {
            // Shows the current database only, as the real DMV does.
            db.execute_batch(&format!(
                "CREATE TABLE [{LOG_SPACE_ALL}] ({}); CREATE VIEW [{LOG_SPACE}] AS SELECT * FROM [{LOG_SPACE_ALL}] WHERE database_id = lab_current_db();",
                cols.join(", ")
            ))?;
        } else {
            db.execute_batch(&format!("CREATE TABLE [{}] ({});", t.name, cols.join(", ")))?;
        }
    }
    let mut b = Builder { db: &db, now: input.now, guid_seed: if mi { 0x4d49 } else { 0x5351 }, guid_n: 0 };
    let facts = b.materialise(&input)?;
    let current_db = Arc::new(AtomicI64::new(1));
    crate::lab::sql::functions::register(&db, &facts, current_db.clone())?;
    Ok(Catalog { db, facts, tables, current_db, agent: None })
}

const LOG_SPACE: &str = "sys.dm_db_log_space_usage";
const LOG_SPACE_ALL: &str = "lab.log_space_all";

struct Builder<'a> {
    db: &'a Connection,
    now: OffsetDateTime,
    guid_seed: u32,
    guid_n: u32,
}

pub fn datetime_text(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}
fn int(i: i64) -> Value {
    Value::Integer(i)
}
fn bit(b: bool) -> Value {
    Value::Integer(b as i64)
}

impl Builder<'_> {
    fn guid(&mut self) -> Value {
        self.guid_n += 1;
        text(format!("{:08X}-4C41-4200-8000-{:012X}", self.guid_seed, self.guid_n))
    }

    fn when(&self, t: OffsetDateTime) -> Value {
        text(datetime_text(t))
    }

    fn insert(&self, table: &str, row: &[(&str, Value)]) -> Result<(), CatalogError> {
        let cols: Vec<String> = row.iter().map(|(c, _)| format!("[{c}]")).collect();
        let marks: Vec<&str> = row.iter().map(|_| "?").collect();
        let sql = format!("INSERT INTO [{table}] ({}) VALUES ({})", cols.join(","), marks.join(","));
        let params: Vec<&Value> = row.iter().map(|(_, v)| v).collect();
        self.db.execute(&sql, rusqlite::params_from_iter(params))?;
        Ok(())
    }

    fn materialise(&mut self, input: &BuildInput<'_>) -> Result<Facts, CatalogError> {
        let side = input.side;
        let (major, minor, build, rev) = side.version_parts();
        let mi = side.is_managed_instance();
        self.endpoints(side)?;
        let certs = self.certificates(input)?;
        self.keys(side)?;
        let databases = self.databases(side)?;
        self.backups(side)?;
        self.host(side, mi, major)?;
        if let Some(f) = &side.fabric {
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
        }
        if let Some(link) = &input.scenario.link {
            self.link(input, link, &databases)?;
        }
        for (table, rows) in &side.rows {
            self.raw_rows(input.label, table, rows)?;
        }

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

        let endpoint_cert = input
            .own
            .endpoint_cert(side)
            .filter(|_| side.endpoint.as_ref().is_some_and(|e| e.present))
            .map(|c| c.der.clone());
        let log_space = side.databases.iter().map(|d| (d.name.clone(), d.log_size_mb, d.log_used_percent)).collect();
        Ok(Facts {
            server_name: side.name.clone(),
            version: side.version.clone(),
            is_managed_instance: mi,
            major,
            properties: p,
            certs,
            endpoint_cert,
            endpoint_cert_auth: side.endpoint.as_ref().is_some_and(|e| e.present && e.auth.contains("CERTIFICATE")),
            errorlog: side
                .errorlog
                .iter()
                .map(|l| (datetime_text(l.at.at(self.now)), l.process.clone(), l.text.clone()))
                .collect(),
            trace_flags: side.trace_flags.clone(),
            databases,
            log_space,
            view_server_state: side.login.view_server_state,
            sysadmin: side.login.sysadmin,
            collation: side.collation.clone(),
            linux: side.host.platform.eq_ignore_ascii_case("Linux"),
        })
    }

    fn endpoints(&mut self, side: &Side) -> Result<(), CatalogError> {
        // System endpoints every instance has.
        let system: [(&str, i64, i64, &str, i64, &str, bool); 5] = [
            ("Dedicated Admin Connection", 1, 2, "TCP", 2, "TSQL", true),
            ("TSQL Local Machine", 2, 4, "SHARED_MEMORY", 2, "TSQL", false),
            ("TSQL Named Pipes", 3, 3, "NAMED_PIPES", 2, "TSQL", false),
            ("TSQL Default TCP", 4, 2, "TCP", 2, "TSQL", false),
            ("TSQL Default VIA", 5, 5, "VIA", 2, "TSQL", false),
        ];
        for (name, id, proto, proto_desc, ty, ty_desc, admin) in system {
            let row = endpoint_row(name, id, proto, proto_desc, ty, ty_desc, 0, "STARTED", admin);
            self.insert("sys.endpoints", &row)?;
            if proto == 2 {
                let mut r = row.clone();
                r.push(("port", int(if admin { 0 } else { 1433 })));
                r.push(("is_dynamic_port", bit(admin)));
                r.push(("ip_address", Value::Null));
                self.insert("sys.tcp_endpoints", &r)?;
            }
        }
        let Some(ep) = side.endpoint.as_ref().filter(|e| e.present) else {
            return Ok(());
        };
        let state = match ep.state.to_ascii_uppercase().as_str() {
            "STOPPED" => 1,
            "DISABLED" => 2,
            _ => 0,
        };
        let row = endpoint_row(
            &ep.name,
            65536,
            2,
            "TCP",
            4,
            "DATABASE_MIRRORING",
            state,
            &ep.state.to_ascii_uppercase(),
            false,
        );
        self.insert("sys.endpoints", &row)?;
        let mut tcp = row.clone();
        tcp.extend([("port", int(ep.port as i64)), ("is_dynamic_port", bit(false)), ("ip_address", Value::Null)]);
        self.insert("sys.tcp_endpoints", &tcp)?;
        let role =
            ["NONE", "PARTNER", "WITNESS", "ALL"].iter().position(|r| r.eq_ignore_ascii_case(&ep.role)).unwrap_or(3)
                as i64;
        let auths = [
            "NTLM",
            "KERBEROS",
            "NEGOTIATE",
            "CERTIFICATE",
            "NTLM, CERTIFICATE",
            "KERBEROS, CERTIFICATE",
            "NEGOTIATE, CERTIFICATE",
            "CERTIFICATE, NTLM",
            "CERTIFICATE, KERBEROS",
            "CERTIFICATE, NEGOTIATE",
        ];
        let auth = auths.iter().position(|a| a.eq_ignore_ascii_case(&ep.auth)).map(|i| i as i64 + 1).unwrap_or(4);
        let algos = [
            "NONE",
            "RC4",
            "AES",
            "NONE, RC4",
            "NONE, AES",
            "RC4, AES",
            "AES, RC4",
            "NONE, RC4, AES",
            "NONE, AES, RC4",
        ];
        let algo_desc = if ep.encryption { ep.algorithm.to_ascii_uppercase() } else { "NONE".to_string() };
        let algo = algos.iter().position(|a| a.eq_ignore_ascii_case(&algo_desc)).unwrap_or(0) as i64;
        let cert_id = ep
            .certificate
            .as_ref()
            .and_then(|n| side.certificates.iter().position(|c| &c.name == n))
            .map(|i| 256 + i as i64)
            .unwrap_or(0);
        let mut dm = row;
        dm.extend([
            ("role", int(role)),
            ("role_desc", text(ep.role.to_ascii_uppercase())),
            ("is_encryption_enabled", bit(ep.encryption)),
            ("connection_auth", int(auth)),
            ("connection_auth_desc", text(ep.auth.to_ascii_uppercase())),
            ("certificate_id", int(cert_id)),
            ("encryption_algorithm", int(algo)),
            ("encryption_algorithm_desc", text(algo_desc)),
        ]);
        self.insert("sys.database_mirroring_endpoints", &dm)
    }

    fn certificates(&mut self, input: &BuildInput<'_>) -> Result<BTreeMap<i64, (String, EndpointCert)>, CatalogError> {
        let mut out = BTreeMap::new();
        // A system certificate, so checks cannot assume the endpoint's is the only one.
        let sys = certs::endpoint_cert(
            "CN=##MS_AgentSigningCertificate##",
            None,
            self.now - time::Duration::days(900),
            self.now + time::Duration::days(3000),
            0x5a5a,
        )?;
        out.insert(101, ("##MS_AgentSigningCertificate##".to_string(), sys));
        for (i, c) in input.side.certificates.iter().enumerate() {
            let cert = match &c.copy_of {
                Some(other) => {
                    let (side, certs) =
                        if other == input.label { (input.side, input.own) } else { (input.other_side, input.other) };
                    match certs.endpoint_cert(side) {
                        Some(c) => c.clone(),
                        None => {
                            return Err(CatalogError::Row {
                                side: input.label.into(),
                                table: "sys.certificates".into(),
                                message: format!(
                                    "`{}` copies {other}'s endpoint certificate, which it has none of",
                                    c.name
                                ),
                            });
                        }
                    }
                }
                None => input.own.by_name[&c.name].clone(),
            };
            out.insert(256 + i as i64, (c.name.clone(), cert));
        }
        for (id, (name, cert)) in &out {
            let pvt = if *id == 101 {
                "SK".to_string()
            } else {
                input.side.certificates[(*id - 256) as usize].private_key.to_ascii_uppercase()
            };
            let pvt_desc = match pvt.as_str() {
                "MK" => "ENCRYPTED_BY_MASTER_KEY",
                "PW" => "ENCRYPTED_BY_PASSWORD",
                "SK" => "ENCRYPTED_BY_SERVICE_MASTER_KEY",
                _ => "NO_PRIVATE_KEY",
            };
            let thumb = Sha1::digest(&cert.der).to_vec();
            self.insert(
                "sys.certificates",
                &[
                    ("name", text(name)),
                    ("certificate_id", int(*id)),
                    ("principal_id", int(1)),
                    ("pvt_key_encryption_type", text(&pvt)),
                    ("pvt_key_encryption_type_desc", text(pvt_desc)),
                    ("is_active_for_begin_dialog", bit(true)),
                    ("issuer_name", text(strip_cn(&cert.issuer))),
                    ("cert_serial_number", text(&cert.serial_hex)),
                    ("sid", Value::Blob(vec![1, 6, 0, 0, 0, 0, 0, 9, 1, 0, 0, 0, (*id & 0xff) as u8])),
                    ("string_sid", text(format!("S-1-9-1-{id}"))),
                    ("subject", text(strip_cn(&cert.subject))),
                    ("expiry_date", self.when(cert.expiry)),
                    ("start_date", self.when(cert.start)),
                    ("thumbprint", Value::Blob(thumb)),
                    ("attested_by", Value::Null),
                    ("pvt_key_last_backup_date", Value::Null),
                ],
            )?;
        }
        Ok(out)
    }

    fn keys(&mut self, side: &Side) -> Result<(), CatalogError> {
        let mut keys = vec![("##MS_ServiceMasterKey##", 102)];
        if side.master_key {
            keys.insert(0, ("##MS_DatabaseMasterKey##", 101));
        }
        for (name, id) in keys {
            let guid = self.guid();
            self.insert(
                "sys.symmetric_keys",
                &[
                    ("name", text(name)),
                    ("principal_id", int(1)),
                    ("symmetric_key_id", int(id)),
                    ("key_length", int(256)),
                    ("key_algorithm", text("A3")),
                    ("algorithm_desc", text("AES_256")),
                    ("create_date", self.when(self.now - time::Duration::days(700))),
                    ("modify_date", self.when(self.now - time::Duration::days(700))),
                    ("key_guid", guid),
                ],
            )?;
        }
        Ok(())
    }

    fn databases(&mut self, side: &Side) -> Result<Vec<(i64, String)>, CatalogError> {
        let system = [("master", "SIMPLE"), ("tempdb", "SIMPLE"), ("model", "FULL"), ("msdb", "SIMPLE")];
        let mut all: Vec<(i64, String)> = Vec::new();
        for (i, (name, recovery)) in system.iter().enumerate() {
            let id = i as i64 + 1;
            self.database_row(side, id, name, recovery, "ONLINE", false, false, "NOTHING")?;
            self.files(id, name, 1, false)?;
            all.push((id, name.to_string()));
        }
        for (i, d) in side.databases.iter().enumerate() {
            let id = i as i64 + 5;
            self.database_row(side, id, &d.name, &d.recovery, &d.state, d.tde, d.in_memory, &d.log_reuse_wait)?;
            self.files(id, &d.name, d.log_files, d.filestream)?;
            let total = (d.log_size_mb * 1024.0 * 1024.0) as i64;
            self.insert(
                LOG_SPACE_ALL,
                &[
                    ("database_id", int(id)),
                    ("total_log_size_in_bytes", int(total)),
                    ("used_log_space_in_bytes", int((total as f64 * d.log_used_percent / 100.0) as i64)),
                    ("used_log_space_in_percent", Value::Real(d.log_used_percent)),
                    ("log_space_in_bytes_since_last_backup", int((total as f64 * d.log_used_percent / 200.0) as i64)),
                ],
            )?;
            all.push((id, d.name.clone()));
        }
        Ok(all)
    }

    #[allow(clippy::too_many_arguments)]
    fn database_row(
        &mut self,
        side: &Side,
        id: i64,
        name: &str,
        recovery: &str,
        state: &str,
        tde: bool,
        in_memory: bool,
        reuse: &str,
    ) -> Result<(), CatalogError> {
        let recovery = recovery.to_ascii_uppercase();
        let rm = match recovery.as_str() {
            "FULL" => 1,
            "BULK_LOGGED" => 2,
            _ => 3,
        };
        let states = ["ONLINE", "RESTORING", "RECOVERING", "RECOVERY_PENDING", "SUSPECT", "EMERGENCY", "OFFLINE"];
        let st = states.iter().position(|s| s.eq_ignore_ascii_case(state)).unwrap_or(0) as i64;
        let reuses = [
            "NOTHING",
            "CHECKPOINT",
            "LOG_BACKUP",
            "ACTIVE_BACKUP_OR_RESTORE",
            "ACTIVE_TRANSACTION",
            "DATABASE_MIRRORING",
            "REPLICATION",
            "DATABASE_SNAPSHOT_CREATION",
            "LOG_SCAN",
            "AVAILABILITY_REPLICA",
        ];
        let reuse_id = reuses.iter().position(|s| s.eq_ignore_ascii_case(reuse)).unwrap_or(0) as i64;
        self.insert(
            "sys.databases",
            &[
                ("name", text(name)),
                ("database_id", int(id)),
                ("source_database_id", Value::Null),
                ("owner_sid", Value::Blob(vec![1])),
                ("create_date", self.when(self.now - time::Duration::days(400))),
                ("compatibility_level", int(side.version_parts().0 as i64 * 10)),
                ("collation_name", text(&side.collation)),
                ("user_access", int(0)),
                ("user_access_desc", text("MULTI_USER")),
                ("is_read_only", bit(false)),
                ("state", int(st)),
                ("state_desc", text(state.to_ascii_uppercase())),
                ("recovery_model", int(rm)),
                ("recovery_model_desc", text(recovery)),
                ("log_reuse_wait", int(reuse_id)),
                ("log_reuse_wait_desc", text(reuse.to_ascii_uppercase())),
                ("is_encrypted", bit(tde)),
                ("is_broker_enabled", bit(false)),
                ("is_memory_optimized_elevate_to_snapshot_on", bit(in_memory)),
                ("is_accelerated_database_recovery_on", bit(false)),
                ("group_database_id", Value::Null),
                ("replica_id", Value::Null),
            ],
        )
    }

    fn files(&mut self, db_id: i64, name: &str, log_files: i64, filestream: bool) -> Result<(), CatalogError> {
        let mut files = vec![(0, "ROWS", name.to_string(), format!("D:\\Data\\{name}.mdf"))];
        for i in 0..log_files {
            let suffix = if i == 0 { String::new() } else { format!("_{}", i + 1) };
            files.push((1, "LOG", format!("{name}_log{suffix}"), format!("L:\\Log\\{name}_log{suffix}.ldf")));
        }
        if filestream {
            files.push((2, "FILESTREAM", format!("{name}_fs"), format!("D:\\Data\\{name}_fs")));
        }
        for (i, (ty, desc, lname, path)) in files.into_iter().enumerate() {
            let guid = self.guid();
            self.insert(
                "sys.master_files",
                &[
                    ("database_id", int(db_id)),
                    ("file_id", int(i as i64 + 1)),
                    ("file_guid", guid),
                    ("type", int(ty)),
                    ("type_desc", text(desc)),
                    ("data_space_id", int(if ty == 1 { 0 } else { 1 })),
                    ("name", text(lname)),
                    ("physical_name", text(path)),
                    ("state", int(0)),
                    ("state_desc", text("ONLINE")),
                    ("size", int(131072)),
                    ("max_size", int(-1)),
                    ("growth", int(8192)),
                ],
            )?;
        }
        Ok(())
    }

    fn backups(&mut self, side: &Side) -> Result<(), CatalogError> {
        for (i, b) in side.backups.iter().enumerate() {
            let finished = b.finished.at(self.now);
            let guid = self.guid();
            let lsn = 39_000_000_030_400_001i64 + i as i64 * 1_000_000;
            self.insert(
                "msdb.dbo.backupset",
                &[
                    ("backup_set_id", int(i as i64 + 1)),
                    ("backup_set_uuid", guid),
                    ("name", Value::Null),
                    ("database_name", text(&b.database)),
                    ("server_name", text(&side.name)),
                    ("type", text(b.kind.to_ascii_uppercase())),
                    ("is_copy_only", bit(b.copy_only)),
                    ("backup_start_date", self.when(finished - time::Duration::minutes(5))),
                    ("backup_finish_date", self.when(finished)),
                    ("first_lsn", int(lsn)),
                    ("last_lsn", int(lsn + 500)),
                    ("database_backup_lsn", int(lsn)),
                    ("recovery_model", text("FULL")),
                    ("begins_log_chain", bit(b.kind.eq_ignore_ascii_case("D") && !b.copy_only)),
                    ("has_backup_checksums", bit(true)),
                    ("backup_size", int(104_857_600)),
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

    /// The distributed AG between the two sides, as each side's DMVs show it.
    fn link(&mut self, input: &BuildInput<'_>, link: &Link, dbs: &[(i64, String)]) -> Result<(), CatalogError> {
        let sc = input.scenario;
        let here_is_sql = input.label == "sql_server";
        let sql_ag = link.sql_ag.clone().unwrap_or_else(|| format!("AG_{}", link.database));
        let mi_ag = link.mi_ag.clone().unwrap_or_else(|| format!("AG_{}_MI", link.database));
        let (local_ag, remote_ag) = if here_is_sql { (&sql_ag, &mi_ag) } else { (&mi_ag, &sql_ag) };
        let (local_role, remote_role) =
            if here_is_sql { (&link.sql_role, &link.mi_role) } else { (&link.mi_role, &link.sql_role) };
        let sql_port = sc.sql_server.endpoint.as_ref().map(|e| e.port).unwrap_or(5022);
        let sql_url = format!("TCP://{}:{}", input.sql_endpoint_host, sql_port);
        let mi_url = format!("tcp://{}:5022;Server=[{}]", sc.managed_instance.fqdn, sc.managed_instance.name);
        let (local_url, remote_url) = if here_is_sql { (sql_url, mi_url) } else { (mi_url, sql_url) };

        let ag_id = self.guid();
        let dag_id = self.guid();
        let local_rep = self.guid();
        let dag_local = self.guid();
        let dag_remote = self.guid();
        let created = self.when(self.now - time::Duration::days(2));
        let cluster_type = if here_is_sql && input.side.version_parts().0 == 13 { (0, "WSFC") } else { (2, "NONE") };
        for (id, name, dist) in [(&ag_id, local_ag.as_str(), false), (&dag_id, link.name.as_str(), true)] {
            self.insert(
                "sys.availability_groups",
                &[
                    ("group_id", id.clone()),
                    ("name", text(name)),
                    ("resource_id", Value::Null),
                    ("resource_group_id", Value::Null),
                    ("failure_condition_level", int(3)),
                    ("health_check_timeout", int(30000)),
                    ("automated_backup_preference", int(2)),
                    ("automated_backup_preference_desc", text("secondary")),
                    ("version", int(1)),
                    ("basic_features", bit(false)),
                    ("dtc_support", bit(false)),
                    ("db_failover", bit(false)),
                    ("is_distributed", bit(dist)),
                    ("cluster_type", int(cluster_type.0)),
                    ("cluster_type_desc", text(cluster_type.1)),
                    ("required_synchronized_secondaries_to_commit", int(0)),
                    ("sequence_number", int(4294967297)),
                    ("is_contained", bit(false)),
                ],
            )?;
        }
        let replicas = [
            (&local_rep, &ag_id, input.side.name.clone(), local_url.clone()),
            (&dag_local, &dag_id, local_ag.clone(), local_url),
            (&dag_remote, &dag_id, remote_ag.clone(), remote_url),
        ];
        for (rid, gid, server, url) in replicas {
            self.insert(
                "sys.availability_replicas",
                &[
                    ("replica_id", rid.clone()),
                    ("group_id", gid.clone()),
                    ("replica_metadata_id", int(1)),
                    ("replica_server_name", text(server)),
                    ("owner_sid", Value::Blob(vec![1])),
                    ("endpoint_url", text(url)),
                    ("availability_mode", int(0)),
                    ("availability_mode_desc", text("ASYNCHRONOUS_COMMIT")),
                    ("failover_mode", int(1)),
                    ("failover_mode_desc", text("MANUAL")),
                    ("session_timeout", int(10)),
                    ("primary_role_allow_connections", int(2)),
                    ("primary_role_allow_connections_desc", text("ALL")),
                    ("secondary_role_allow_connections", int(0)),
                    ("secondary_role_allow_connections_desc", text("NO")),
                    ("create_date", created.clone()),
                    ("modify_date", created.clone()),
                    ("backup_priority", int(50)),
                    ("read_only_routing_url", Value::Null),
                    ("seeding_mode", int(0)),
                    ("seeding_mode_desc", text("AUTOMATIC")),
                ],
            )?;
        }
        let err = link.last_connect_error.as_ref().filter(|e| e.side == "both" || e.side == input.label);
        let health = link.synchronization_health.to_ascii_uppercase();
        let health_id =
            ["NOT_HEALTHY", "PARTIALLY_HEALTHY", "HEALTHY"].iter().position(|h| *h == health).unwrap_or(2) as i64;
        let role_id = |r: &str| match r.to_ascii_uppercase().as_str() {
            "PRIMARY" => 1,
            "SECONDARY" => 2,
            _ => 0,
        };
        let secondary = local_role.eq_ignore_ascii_case("SECONDARY");
        let states = [
            (&local_rep, &ag_id, true, "PRIMARY".to_string(), true, None),
            // On a secondary the local row carries the connection to the primary.
            (
                &dag_local,
                &dag_id,
                true,
                local_role.to_ascii_uppercase(),
                if secondary { link.connected } else { true },
                if secondary { err } else { None },
            ),
            (&dag_remote, &dag_id, false, remote_role.to_ascii_uppercase(), link.connected, err),
        ];
        for (rid, gid, local, role, connected, err) in states {
            // A secondary sees only its own rows of the distributed AG.
            if !local && local_role.eq_ignore_ascii_case("SECONDARY") {
                continue;
            }
            self.insert(
                "sys.dm_hadr_availability_replica_states",
                &[
                    ("replica_id", rid.clone()),
                    ("group_id", gid.clone()),
                    ("is_local", bit(local)),
                    ("role", int(role_id(&role))),
                    ("role_desc", text(role)),
                    ("operational_state", if local { int(2) } else { Value::Null }),
                    ("operational_state_desc", if local { text("ONLINE") } else { Value::Null }),
                    ("connected_state", int(connected as i64)),
                    ("connected_state_desc", text(if connected { "CONNECTED" } else { "DISCONNECTED" })),
                    ("recovery_health", if local { int(1) } else { Value::Null }),
                    ("recovery_health_desc", if local { text("ONLINE") } else { Value::Null }),
                    ("synchronization_health", int(health_id)),
                    ("synchronization_health_desc", text(&health)),
                    ("last_connect_error_number", err.map(|e| int(e.number as i64)).unwrap_or(Value::Null)),
                    ("last_connect_error_description", err.map(|e| text(&e.description)).unwrap_or(Value::Null)),
                    ("last_connect_error_timestamp", err.map(|e| self.when(e.at.at(self.now))).unwrap_or(Value::Null)),
                ],
            )?;
        }
        let db_id = dbs.iter().find(|(_, n)| n.eq_ignore_ascii_case(&link.database)).map(|(i, _)| *i).unwrap_or(5);
        let group_db = self.guid();
        let sync = link.synchronization_state.to_ascii_uppercase();
        let sync_id = ["NOT SYNCHRONIZING", "SYNCHRONIZING", "SYNCHRONIZED", "REVERTING", "INITIALIZING"]
            .iter()
            .position(|s| *s == sync.replace('_', " "))
            .unwrap_or(1) as i64;
        let local_primary = local_role.eq_ignore_ascii_case("PRIMARY");
        for (rid, local) in [(&dag_local, true), (&dag_remote, false)] {
            if !local && !local_primary {
                continue;
            }
            let lsn = 39_000_000_030_400_001i64;
            self.insert(
                "sys.dm_hadr_database_replica_states",
                &[
                    ("database_id", int(db_id)),
                    ("group_id", dag_id.clone()),
                    ("replica_id", rid.clone()),
                    ("group_database_id", group_db.clone()),
                    ("is_local", bit(local)),
                    ("is_primary_replica", bit(local && local_primary)),
                    ("synchronization_state", int(sync_id)),
                    ("synchronization_state_desc", text(&sync)),
                    ("is_commit_participant", bit(false)),
                    ("synchronization_health", int(health_id)),
                    ("synchronization_health_desc", text(&health)),
                    ("database_state", int(0)),
                    ("database_state_desc", text("ONLINE")),
                    ("is_suspended", bit(false)),
                    ("suspend_reason", Value::Null),
                    ("suspend_reason_desc", Value::Null),
                    ("recovery_lsn", int(lsn)),
                    ("truncation_lsn", int(lsn)),
                    ("last_sent_lsn", int(lsn)),
                    ("last_sent_time", self.when(self.now)),
                    ("last_received_lsn", int(lsn)),
                    ("last_received_time", self.when(self.now)),
                    ("last_hardened_lsn", int(lsn)),
                    ("last_hardened_time", self.when(self.now)),
                    ("last_redone_lsn", int(lsn)),
                    ("last_redone_time", self.when(self.now)),
                    ("log_send_queue_size", int(link.log_send_queue_kb)),
                    ("log_send_rate", int(0)),
                    ("redo_queue_size", int(link.redo_queue_kb)),
                    ("redo_rate", int(0)),
                    ("filestream_send_rate", int(0)),
                    ("end_of_log_lsn", int(lsn)),
                    ("last_commit_lsn", int(lsn)),
                    ("last_commit_time", self.when(self.now)),
                    ("low_water_mark_for_ghosts", int(1)),
                    ("secondary_lag_seconds", int(link.secondary_lag_seconds)),
                ],
            )?;
        }
        if let Some(s) = &link.seeding {
            let op = self.guid();
            let remote = self.guid();
            self.insert(
                "sys.dm_hadr_automatic_seeding",
                &[
                    ("start_time", self.when(self.now - time::Duration::hours(1))),
                    ("completion_time", self.when(self.now - time::Duration::minutes(5))),
                    ("ag_id", ag_id.clone()),
                    ("ag_db_id", group_db.clone()),
                    ("ag_remote_replica_id", dag_remote.clone()),
                    ("operation_id", op.clone()),
                    ("is_source", bit(here_is_sql)),
                    ("current_state", text(&s.current_state)),
                    ("performed_seeding", bit(true)),
                    ("failure_state", int(s.failure_state as i64)),
                    ("failure_state_desc", s.failure_state_desc.clone().map(text).unwrap_or(Value::Null)),
                    ("error_code", int(s.error_code as i64)),
                    ("number_of_attempts", int(s.number_of_attempts)),
                ],
            )?;
            self.insert(
                "sys.dm_hadr_physical_seeding_stats",
                &[
                    ("local_physical_seeding_id", op),
                    ("remote_physical_seeding_id", remote),
                    ("local_database_id", int(db_id)),
                    ("local_database_name", text(&link.database)),
                    ("remote_machine_name", text(input.other_side.fqdn.clone())),
                    ("role_desc", text(if here_is_sql { "Source" } else { "Destination" })),
                    ("internal_state_desc", text(&s.current_state)),
                    ("transfer_rate_bytes_per_second", int(10_485_760)),
                    ("transferred_size_bytes", int(s.transferred_mb * 1_048_576)),
                    ("database_size_bytes", int(s.database_mb * 1_048_576)),
                    ("start_time_utc", self.when(self.now - time::Duration::hours(1))),
                    ("end_time_utc", Value::Null),
                    ("estimate_time_complete_utc", self.when(self.now + time::Duration::hours(1))),
                    ("total_disk_io_wait_time_ms", int(1200)),
                    ("total_network_wait_time_ms", int(800)),
                    ("failure_code", int(s.error_code as i64)),
                    ("failure_message", s.failure_message.clone().map(text).unwrap_or(Value::Null)),
                    ("failure_time_utc", Value::Null),
                    ("is_compression_enabled", bit(true)),
                ],
            )?;
        }
        Ok(())
    }

    fn raw_rows(&mut self, label: &str, table: &str, rows: &[toml::Table]) -> Result<(), CatalogError> {
        let t = schema::table(table).expect("validated");
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
            self.insert(t.name, &values)?;
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn endpoint_row(
    name: &str,
    id: i64,
    proto: i64,
    proto_desc: &str,
    ty: i64,
    ty_desc: &str,
    state: i64,
    state_desc: &str,
    admin: bool,
) -> Vec<(&'static str, Value)> {
    vec![
        ("name", text(name)),
        ("endpoint_id", int(id)),
        ("principal_id", int(1)),
        ("protocol", int(proto)),
        ("protocol_desc", text(proto_desc)),
        ("type", int(ty)),
        ("type_desc", text(ty_desc)),
        ("state", int(state)),
        ("state_desc", text(state_desc)),
        ("is_admin_endpoint", bit(admin)),
    ]
}

fn strip_cn(dn: &str) -> String {
    dn.strip_prefix("CN=").unwrap_or(dn).to_string()
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
