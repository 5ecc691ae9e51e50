//! The link objects of one server, shown as rows of the documented views. The
//! state is the truth; these rows are rewritten from it after every change.

use rusqlite::types::Value;
use time::Duration;

use super::{Catalog, CatalogError, FILEGROUPS_ALL, LOG_SPACE_ALL, Shown, bit, insert, int, text};
use crate::lab::sqltime::datetime_text;
use crate::lab::state::objects::{AvailabilityGroup, AvailabilityMode, Replica};
use crate::lab::state::{Link, Server, SideId, World};

/// Tables whose rows come from the state (plus the scenario's raw rows for them).
pub const OWNED: &[&str] = &[
    "sys.symmetric_keys",
    "sys.certificates",
    "sys.endpoints",
    "sys.tcp_endpoints",
    "sys.database_mirroring_endpoints",
    "sys.databases",
    "sys.master_files",
    LOG_SPACE_ALL,
    FILEGROUPS_ALL,
    "sys.dm_database_encryption_keys",
    "sys.availability_groups",
    "sys.availability_replicas",
    "sys.dm_hadr_availability_replica_states",
    "sys.dm_hadr_database_replica_states",
    "sys.dm_hadr_automatic_seeding",
    "sys.dm_hadr_physical_seeding_stats",
];

/// A database replica's row: which replica, and how far along it is.
struct DatabaseState<'a> {
    db_id: i64,
    group: &'a str,
    replica: &'a str,
    group_db: Option<&'a str>,
    local: bool,
    primary: bool,
    sync: &'a str,
    health: &'a str,
    commit_participant: bool,
    send_kb: i64,
    redo_kb: i64,
    lag_s: i64,
}

/// What a database keeps outside its data and log files.
#[derive(Default, Clone, Copy)]
struct Storage {
    filestream: bool,
    in_memory: bool,
}

fn when(t: time::OffsetDateTime) -> Value {
    text(datetime_text(t))
}

impl Catalog {
    /// Rewrites this side's link objects from the world.
    pub fn show(&self, world: &World) -> Result<(), CatalogError> {
        let server = world.server(self.side);
        let tx = self.db.unchecked_transaction()?;
        for t in OWNED {
            tx.execute(&format!("DELETE FROM [{t}]"), [])?;
        }
        let r = Rows { c: self, server };
        r.keys()?;
        r.certificates()?;
        r.endpoints()?;
        r.databases()?;
        r.encryption_keys()?;
        r.ags(world)?;
        for (table, row) in &self.extra_rows {
            insert(&self.db, table, row)?;
        }
        tx.commit()?;
        let new_ids: Vec<i64> = {
            let mut shown = self.shown.write().unwrap_or_else(|p| p.into_inner());
            let before: Vec<i64> = shown.databases.iter().map(|(id, _)| *id).collect();
            *shown = Shown::of(server, self.facts.is_managed_instance);
            shown.databases.iter().map(|(id, _)| *id).filter(|id| !before.contains(id)).collect()
        };
        // Three-part names read these: one view per database and per-database
        // view, made once for each database the server comes to have.
        for id in new_ids {
            for t in self.tables.iter().filter(|t| t.is_per_database()) {
                self.db.execute_batch(&format!(
                    "CREATE VIEW IF NOT EXISTS [{}] AS SELECT {} FROM [{}] WHERE database_id = {id};",
                    super::per_database_view(t, id),
                    super::column_list(t),
                    super::backing(t.name).expect("per-database views have a backing table"),
                ))?;
            }
        }
        Ok(())
    }
}

impl Shown {
    fn of(s: &Server, mi: bool) -> Shown {
        let endpoint_cert = s.endpoint_certificate().map(|c| c.cert.der.clone());
        let cert_auth = s.endpoint.as_ref().is_some_and(|e| e.auth.certificate.is_some());
        Shown {
            certs: s.certificates.iter().map(|c| (c.id, (c.name.clone(), c.cert.clone()))).collect(),
            databases: system_databases(mi)
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (i as i64 + 1, n.to_string()))
                .chain(s.databases.iter().map(|d| (d.id, d.name.clone())))
                .collect(),
            endpoint_cert,
            endpoint_cert_auth: cert_auth,
            errorlog: s.errorlog.iter().map(|l| (datetime_text(l.at), l.process.clone(), l.text.clone())).collect(),
            log_space: s.databases.iter().map(|d| (d.name.clone(), d.log_size_mb, d.log_used_percent)).collect(),
        }
    }
}

fn system_databases(_mi: bool) -> [(&'static str, &'static str); 4] {
    [("master", "SIMPLE"), ("tempdb", "SIMPLE"), ("model", "FULL"), ("msdb", "SIMPLE")]
}

struct Rows<'a> {
    c: &'a Catalog,
    server: &'a Server,
}

impl Rows<'_> {
    fn insert(&self, table: &str, row: &[(&str, Value)]) -> Result<(), CatalogError> {
        insert(&self.c.db, table, row)
    }

    fn keys(&self) -> Result<(), CatalogError> {
        let born = self.server.born - Duration::days(700);
        let mut keys = vec![("##MS_ServiceMasterKey##", 102, "4D4B0000-0000-4000-8000-000000000102")];
        if self.server.has_master_key() {
            keys.insert(0, ("##MS_DatabaseMasterKey##", 101, "4D4B0000-0000-4000-8000-000000000101"));
        }
        for (name, id, guid) in keys {
            self.insert(
                "sys.symmetric_keys",
                &[
                    ("name", text(name)),
                    ("principal_id", int(1)),
                    ("symmetric_key_id", int(id)),
                    ("key_length", int(256)),
                    ("key_algorithm", text("A3")),
                    ("algorithm_desc", text("AES_256")),
                    ("create_date", when(born)),
                    ("modify_date", when(born)),
                    ("key_guid", text(guid)),
                ],
            )?;
        }
        Ok(())
    }

    fn certificates(&self) -> Result<(), CatalogError> {
        for c in &self.server.certificates {
            let id = c.id;
            self.insert(
                "sys.certificates",
                &[
                    ("name", text(&c.name)),
                    ("certificate_id", int(id)),
                    ("principal_id", int(1)),
                    ("pvt_key_encryption_type", text(c.private_key.code())),
                    ("pvt_key_encryption_type_desc", text(c.private_key.desc())),
                    ("is_active_for_begin_dialog", bit(true)),
                    ("issuer_name", text(strip_cn(&c.cert.issuer))),
                    ("cert_serial_number", text(&c.cert.serial_hex)),
                    ("sid", Value::Blob(vec![1, 6, 0, 0, 0, 0, 0, 9, 1, 0, 0, 0, (id & 0xff) as u8])),
                    ("string_sid", text(format!("S-1-9-1-{id}"))),
                    ("subject", text(strip_cn(&c.cert.subject))),
                    ("expiry_date", when(c.cert.expiry)),
                    ("start_date", when(c.cert.start)),
                    ("thumbprint", Value::Blob(c.thumbprint())),
                    ("attested_by", Value::Null),
                    ("pvt_key_last_backup_date", Value::Null),
                ],
            )?;
        }
        Ok(())
    }

    fn endpoints(&self) -> Result<(), CatalogError> {
        // System endpoints every instance has.
        let system: [(&str, i64, i64, &str, bool); 5] = [
            ("Dedicated Admin Connection", 1, 2, "TCP", true),
            ("TSQL Local Machine", 2, 4, "SHARED_MEMORY", false),
            ("TSQL Named Pipes", 3, 3, "NAMED_PIPES", false),
            ("TSQL Default TCP", 4, 2, "TCP", false),
            ("TSQL Default VIA", 5, 5, "VIA", false),
        ];
        for (name, id, proto, proto_desc, admin) in system {
            let row = endpoint_row(name, id, proto, proto_desc, 2, "TSQL", 0, "STARTED", admin);
            self.insert("sys.endpoints", &row)?;
            if proto == 2 {
                let mut r = row.clone();
                r.push(("port", int(if admin { 0 } else { 1433 })));
                r.push(("is_dynamic_port", bit(admin)));
                r.push(("ip_address", Value::Null));
                self.insert("sys.tcp_endpoints", &r)?;
            }
        }
        let Some(ep) = &self.server.endpoint else {
            return Ok(());
        };
        let row =
            endpoint_row(&ep.name, ep.id, 2, "TCP", 4, "DATABASE_MIRRORING", ep.state.id(), ep.state.desc(), false);
        self.insert("sys.endpoints", &row)?;
        let mut tcp = row.clone();
        tcp.extend([("port", int(ep.port as i64)), ("is_dynamic_port", bit(false)), ("ip_address", Value::Null)]);
        self.insert("sys.tcp_endpoints", &tcp)?;
        let cert_id =
            ep.auth.certificate.as_deref().and_then(|n| self.server.certificate(n)).map(|c| c.id).unwrap_or(0);
        let mut dm = row;
        dm.extend([
            ("role", int(ep.role_id())),
            ("role_desc", text(&ep.role)),
            ("is_encryption_enabled", bit(ep.cipher.enabled())),
            ("connection_auth", int(ep.auth.id())),
            ("connection_auth_desc", text(ep.auth.desc())),
            ("certificate_id", int(cert_id)),
            ("encryption_algorithm", int(ep.cipher.id())),
            ("encryption_algorithm_desc", text(ep.cipher.desc())),
        ]);
        self.insert("sys.database_mirroring_endpoints", &dm)
    }

    fn databases(&self) -> Result<(), CatalogError> {
        let s = self.server;
        let old = s.born - Duration::days(400);
        for (i, (name, recovery)) in system_databases(s.is_managed_instance()).iter().enumerate() {
            let id = i as i64 + 1;
            self.database_row(id, name, recovery, "ONLINE", false, false, "NOTHING", old, None)?;
            self.files(id, name, 1, Storage::default())?;
        }
        for d in &s.databases {
            let replica = d.group_database_id.as_ref().and_then(|_| self.local_replica_of(&d.name));
            self.database_row(
                d.id,
                &d.name,
                &d.recovery,
                &d.state,
                d.tde,
                d.in_memory,
                &d.log_reuse_wait,
                d.created,
                d.group_database_id.clone().zip(replica),
            )?;
            self.files(d.id, &d.name, d.log_files, Storage { filestream: d.filestream, in_memory: d.in_memory })?;
            let total = (d.log_size_mb * 1024.0 * 1024.0) as i64;
            self.insert(
                LOG_SPACE_ALL,
                &[
                    ("database_id", int(d.id)),
                    ("total_log_size_in_bytes", int(total)),
                    ("used_log_space_in_bytes", int((total as f64 * d.log_used_percent / 100.0) as i64)),
                    ("used_log_space_in_percent", Value::Real(d.log_used_percent)),
                    ("log_space_in_bytes_since_last_backup", int((total as f64 * d.log_used_percent / 200.0) as i64)),
                ],
            )?;
        }
        Ok(())
    }

    /// A database encryption key per TDE database, and tempdb's once any
    /// database uses TDE (SQL Server encrypts it then, under an asymmetric key).
    fn encryption_keys(&self) -> Result<(), CatalogError> {
        let s = self.server;
        let tde: Vec<_> = s.databases.iter().filter(|d| d.tde).collect();
        if tde.is_empty() {
            return Ok(());
        }
        let made = when(s.born - Duration::days(200));
        let mut keys: Vec<(i64, Value, &str)> = vec![(2, Value::Blob(vec![]), "ASYMMETRIC KEY")];
        for d in tde {
            let cert = d.tde_certificate.as_ref().and_then(|n| s.certificates.iter().find(|c| &c.name == n));
            keys.push(match cert {
                Some(c) => (d.id, Value::Blob(c.thumbprint()), "CERTIFICATE"),
                // An EKM / Key Vault key: a thumbprint of its own.
                None => (
                    d.id,
                    Value::Blob((0..20).map(|i| (d.id as u8).wrapping_mul(31).wrapping_add(i)).collect()),
                    "ASYMMETRIC KEY",
                ),
            });
        }
        for (id, thumbprint, kind) in keys {
            self.insert(
                "sys.dm_database_encryption_keys",
                &[
                    ("database_id", int(id)),
                    ("encryption_state", int(3)),
                    ("create_date", made.clone()),
                    ("regenerate_date", made.clone()),
                    ("modify_date", made.clone()),
                    ("set_date", made.clone()),
                    ("opened_date", made.clone()),
                    ("key_algorithm", text("AES")),
                    ("key_length", int(256)),
                    ("encryptor_thumbprint", thumbprint),
                    ("encryptor_type", text(kind)),
                    ("percent_complete", Value::Real(0.0)),
                    ("encryption_state_desc", text("ENCRYPTED")),
                    ("encryption_scan_state", int(4)),
                    ("encryption_scan_state_desc", text("COMPLETE")),
                    ("encryption_scan_modify_date", made.clone()),
                ],
            )?;
        }
        Ok(())
    }

    /// The local replica of the plain AG that holds `db`.
    fn local_replica_of(&self, db: &str) -> Option<String> {
        let ag = self
            .server
            .ags
            .iter()
            .find(|a| !a.distributed && a.databases.iter().any(|d| d.eq_ignore_ascii_case(db)))?;
        ag.replicas.first().map(|r| r.id.clone())
    }

    #[allow(clippy::too_many_arguments)]
    fn database_row(
        &self,
        id: i64,
        name: &str,
        recovery: &str,
        state: &str,
        tde: bool,
        in_memory: bool,
        reuse: &str,
        created: time::OffsetDateTime,
        ag: Option<(String, String)>,
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
        let (group_db, replica) = match ag {
            Some((g, r)) => (text(g), text(r)),
            None => (Value::Null, Value::Null),
        };
        self.insert(
            "sys.databases",
            &[
                ("name", text(name)),
                ("database_id", int(id)),
                ("source_database_id", Value::Null),
                ("owner_sid", Value::Blob(vec![1])),
                ("create_date", when(created)),
                ("compatibility_level", int(self.server.version.0 as i64 * 10)),
                ("collation_name", text(&self.c.facts.collation)),
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
                ("group_database_id", group_db),
                ("replica_id", replica),
            ],
        )
    }

    /// A database's filegroups and files: PRIMARY, then a FILESTREAM and a
    /// memory-optimized filegroup when it has them. In sys.master_files both
    /// kinds of container are type 2, FILESTREAM: only sys.filegroups tells them apart.
    fn files(&self, db_id: i64, name: &str, log_files: i64, storage: Storage) -> Result<(), CatalogError> {
        let mut groups = vec![("PRIMARY".to_string(), "FG", "ROWS_FILEGROUP")];
        if storage.filestream {
            groups.push((format!("{name}_fsgroup"), "FD", "FILESTREAM_DATA_FILEGROUP"));
        }
        if storage.in_memory {
            groups.push((format!("{name}_mod"), "FX", "MEMORY_OPTIMIZED_DATA_FILEGROUP"));
        }
        let mut files = vec![(0, "ROWS", name.to_string(), format!("D:\\Data\\{name}.mdf"), 1)];
        for i in 0..log_files {
            let suffix = if i == 0 { String::new() } else { format!("_{}", i + 1) };
            files.push((1, "LOG", format!("{name}_log{suffix}"), format!("L:\\Log\\{name}_log{suffix}.ldf"), 0));
        }
        for (i, (group, ty, desc)) in groups.iter().enumerate() {
            let space = i as i64 + 1;
            self.insert(
                FILEGROUPS_ALL,
                &[
                    ("database_id", int(db_id)),
                    ("name", text(group.clone())),
                    ("data_space_id", int(space)),
                    ("type", text(*ty)),
                    ("type_desc", text(*desc)),
                    ("is_default", bit(space == 1)),
                    ("is_system", bit(false)),
                    (
                        "filegroup_guid",
                        if space == 1 { Value::Null } else { text(format!("{db_id:08X}-4647-4C45-8000-{space:012X}")) },
                    ),
                    ("log_filegroup_id", Value::Null),
                    ("is_read_only", bit(false)),
                    ("is_autogrow_all_files", bit(false)),
                ],
            )?;
            let container = match *ty {
                "FD" => format!("{name}_fs"),
                "FX" => format!("{name}_mod1"),
                _ => continue,
            };
            files.push((2, "FILESTREAM", container.clone(), format!("D:\\Data\\{container}"), space));
        }
        for (i, (ty, desc, lname, path, space)) in files.into_iter().enumerate() {
            let guid = format!("{:08X}-4649-4C45-8000-{:012X}", db_id, i + 1);
            self.insert(
                "sys.master_files",
                &[
                    ("database_id", int(db_id)),
                    ("file_id", int(i as i64 + 1)),
                    ("file_guid", text(guid)),
                    ("type", int(ty)),
                    ("type_desc", text(desc)),
                    ("data_space_id", int(space)),
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

    fn ags(&self, world: &World) -> Result<(), CatalogError> {
        for ag in &self.server.ags {
            self.ag_row(ag)?;
            for r in &ag.replicas {
                self.replica_row(ag, r)?;
            }
            if ag.distributed {
                match world.link(&ag.name) {
                    Some(link) => self.link_states(ag, link, &world.server(self.server.side.other()).fqdn)?,
                    // A half with no partner yet: the documented "created, DISCONNECTED" state.
                    None => self.unjoined_states(ag)?,
                }
            } else {
                self.local_ag_states(ag)?;
            }
        }
        Ok(())
    }

    fn ag_row(&self, ag: &AvailabilityGroup) -> Result<(), CatalogError> {
        self.insert(
            "sys.availability_groups",
            &[
                ("group_id", text(&ag.id)),
                ("name", text(&ag.name)),
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
                ("is_distributed", bit(ag.distributed)),
                ("cluster_type", int(ag.cluster_type.0)),
                ("cluster_type_desc", text(ag.cluster_type.1)),
                ("required_synchronized_secondaries_to_commit", int(0)),
                ("sequence_number", int(4294967297)),
                ("is_contained", bit(false)),
            ],
        )
    }

    fn replica_row(&self, ag: &AvailabilityGroup, r: &Replica) -> Result<(), CatalogError> {
        let (mode, mode_desc) = match r.mode {
            AvailabilityMode::Asynchronous => (0, "ASYNCHRONOUS_COMMIT"),
            AvailabilityMode::Synchronous => (1, "SYNCHRONOUS_COMMIT"),
        };
        let (failover, failover_desc) = if r.failover_manual { (1, "MANUAL") } else { (0, "AUTOMATIC") };
        let (seeding, seeding_desc) = if r.seeding_automatic { (0, "AUTOMATIC") } else { (1, "MANUAL") };
        self.insert(
            "sys.availability_replicas",
            &[
                ("replica_id", text(&r.id)),
                ("group_id", text(&ag.id)),
                ("replica_metadata_id", int(1)),
                ("replica_server_name", text(&r.name)),
                ("owner_sid", Value::Blob(vec![1])),
                ("endpoint_url", text(&r.endpoint_url)),
                ("availability_mode", int(mode)),
                ("availability_mode_desc", text(mode_desc)),
                ("failover_mode", int(failover)),
                ("failover_mode_desc", text(failover_desc)),
                ("session_timeout", int(r.session_timeout)),
                ("primary_role_allow_connections", int(2)),
                ("primary_role_allow_connections_desc", text("ALL")),
                ("secondary_role_allow_connections", int(0)),
                ("secondary_role_allow_connections_desc", text("NO")),
                ("create_date", when(ag.created)),
                ("modify_date", when(ag.created)),
                ("backup_priority", int(50)),
                ("read_only_routing_url", Value::Null),
                ("seeding_mode", int(seeding)),
                ("seeding_mode_desc", text(seeding_desc)),
            ],
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn replica_state(
        &self,
        r: &Replica,
        ag: &AvailabilityGroup,
        local: bool,
        role: &str,
        connected: bool,
        health: &str,
        err: Option<&crate::lab::state::ConnectError>,
    ) -> Result<(), CatalogError> {
        let role_id = match role {
            "PRIMARY" => 1,
            "SECONDARY" => 2,
            _ => 0,
        };
        let health_id =
            ["NOT_HEALTHY", "PARTIALLY_HEALTHY", "HEALTHY"].iter().position(|h| *h == health).unwrap_or(2) as i64;
        self.insert(
            "sys.dm_hadr_availability_replica_states",
            &[
                ("replica_id", text(&r.id)),
                ("group_id", text(&ag.id)),
                ("is_local", bit(local)),
                ("role", int(role_id)),
                ("role_desc", text(role)),
                ("operational_state", if local { int(2) } else { Value::Null }),
                ("operational_state_desc", if local { text("ONLINE") } else { Value::Null }),
                ("connected_state", int(connected as i64)),
                ("connected_state_desc", text(if connected { "CONNECTED" } else { "DISCONNECTED" })),
                ("recovery_health", if local { int(1) } else { Value::Null }),
                ("recovery_health_desc", if local { text("ONLINE") } else { Value::Null }),
                ("synchronization_health", int(health_id)),
                ("synchronization_health_desc", text(health)),
                ("last_connect_error_number", err.map(|e| int(e.number as i64)).unwrap_or(Value::Null)),
                ("last_connect_error_description", err.map(|e| text(&e.description)).unwrap_or(Value::Null)),
                ("last_connect_error_timestamp", err.map(|e| when(e.at)).unwrap_or(Value::Null)),
            ],
        )
    }

    fn local_ag_states(&self, ag: &AvailabilityGroup) -> Result<(), CatalogError> {
        if let Some(r) = ag.replicas.first() {
            self.replica_state(r, ag, true, "PRIMARY", true, "HEALTHY", None)?;
        }
        for db in &ag.databases {
            if let Some(d) = self.server.database(db) {
                let replica = ag.replicas.first().map(|r| r.id.clone()).unwrap_or_default();
                self.database_state(DatabaseState {
                    db_id: d.id,
                    group: &ag.id,
                    replica: &replica,
                    group_db: d.group_database_id.as_deref(),
                    local: true,
                    primary: true,
                    sync: "SYNCHRONIZED",
                    health: "HEALTHY",
                    commit_participant: true,
                    send_kb: 0,
                    redo_kb: 0,
                    lag_s: 0,
                })?;
            }
        }
        Ok(())
    }

    /// A distributed AG whose other half does not exist yet.
    fn unjoined_states(&self, ag: &AvailabilityGroup) -> Result<(), CatalogError> {
        let role = if self.server.side == SideId::Sql { "PRIMARY" } else { "SECONDARY" };
        if let Some(local) = ag.replicas.first() {
            self.replica_state(local, ag, true, role, role == "PRIMARY", "NOT_HEALTHY", None)?;
        }
        if role == "PRIMARY" {
            for r in ag.replicas.iter().skip(1) {
                self.replica_state(r, ag, false, "SECONDARY", false, "NOT_HEALTHY", None)?;
            }
        }
        Ok(())
    }

    /// The distributed AG's rows as the link's status says.
    fn link_states(&self, ag: &AvailabilityGroup, link: &Link, other_fqdn: &str) -> Result<(), CatalogError> {
        let st = &link.status;
        let here_sql = self.server.side == SideId::Sql;
        let (local_role, remote_role) =
            if here_sql { (&st.sql_role, &st.mi_role) } else { (&st.mi_role, &st.sql_role) };
        let err = st.error.as_ref().filter(|e| e.side.is_none_or(|s| s == self.server.side));
        let secondary = local_role == "SECONDARY";
        let (Some(local), remote) = (ag.replicas.first(), ag.replicas.get(1)) else {
            return Ok(());
        };
        // On a secondary the local row carries the connection to the primary, and
        // the secondary sees only its own rows.
        self.replica_state(
            local,
            ag,
            true,
            local_role,
            if secondary { st.connected } else { true },
            &st.health,
            if secondary { err } else { None },
        )?;
        if let (Some(remote), false) = (remote, secondary) {
            self.replica_state(remote, ag, false, remote_role, st.connected, &st.health, err)?;
        }
        let Some(db) = self.server.database(&link.database) else {
            return Ok(());
        };
        let group_db = db.group_database_id.clone().unwrap_or_default();
        let primary = local_role == "PRIMARY";
        for (r, is_local) in [(Some(local), true), (remote, false)] {
            let Some(r) = r else { continue };
            if !is_local && !primary {
                continue;
            }
            self.database_state(DatabaseState {
                db_id: db.id,
                group: &ag.id,
                replica: &r.id,
                group_db: Some(&group_db),
                local: is_local,
                primary: is_local && primary,
                sync: &st.sync_state,
                health: &st.health,
                commit_participant: false,
                send_kb: st.log_send_queue_kb,
                redo_kb: st.redo_queue_kb,
                lag_s: st.lag_seconds,
            })?;
        }
        if let Some(s) = &st.seeding {
            let remote = remote.map(|r| r.id.as_str()).unwrap_or("");
            self.seeding(ag, link, db.id, &group_db, remote, other_fqdn, s)?;
        }
        Ok(())
    }

    /// One row of sys.dm_hadr_database_replica_states; the state ids follow from their descriptions.
    fn database_state(&self, d: DatabaseState<'_>) -> Result<(), CatalogError> {
        let sync_id = ["NOT SYNCHRONIZING", "SYNCHRONIZING", "SYNCHRONIZED", "REVERTING", "INITIALIZING"]
            .iter()
            .position(|s| *s == d.sync)
            .unwrap_or(1) as i64;
        let health_id =
            ["NOT_HEALTHY", "PARTIALLY_HEALTHY", "HEALTHY"].iter().position(|h| *h == d.health).unwrap_or(2) as i64;
        let lsn = 39_000_000_030_400_001i64;
        let now = time::OffsetDateTime::now_utc();
        self.insert(
            "sys.dm_hadr_database_replica_states",
            &[
                ("database_id", int(d.db_id)),
                ("group_id", text(d.group)),
                ("replica_id", text(d.replica)),
                ("group_database_id", d.group_db.map(text).unwrap_or(Value::Null)),
                ("is_local", bit(d.local)),
                ("is_primary_replica", bit(d.primary)),
                ("synchronization_state", int(sync_id)),
                ("synchronization_state_desc", text(d.sync)),
                ("is_commit_participant", bit(d.commit_participant)),
                ("synchronization_health", int(health_id)),
                ("synchronization_health_desc", text(d.health)),
                ("database_state", int(0)),
                ("database_state_desc", text("ONLINE")),
                ("is_suspended", bit(false)),
                ("suspend_reason", Value::Null),
                ("suspend_reason_desc", Value::Null),
                ("recovery_lsn", int(lsn)),
                ("truncation_lsn", int(lsn)),
                ("last_sent_lsn", int(lsn)),
                ("last_sent_time", when(now)),
                ("last_received_lsn", int(lsn)),
                ("last_received_time", when(now)),
                ("last_hardened_lsn", int(lsn)),
                ("last_hardened_time", when(now)),
                ("last_redone_lsn", int(lsn)),
                ("last_redone_time", when(now)),
                ("log_send_queue_size", int(d.send_kb)),
                ("log_send_rate", int(0)),
                ("redo_queue_size", int(d.redo_kb)),
                ("redo_rate", int(0)),
                ("filestream_send_rate", int(0)),
                ("end_of_log_lsn", int(lsn)),
                ("last_commit_lsn", int(lsn)),
                ("last_commit_time", when(now)),
                ("low_water_mark_for_ghosts", int(1)),
                ("secondary_lag_seconds", int(d.lag_s)),
            ],
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn seeding(
        &self,
        ag: &AvailabilityGroup,
        link: &Link,
        db_id: i64,
        group_db: &str,
        remote: &str,
        other_fqdn: &str,
        s: &crate::lab::state::Seeding,
    ) -> Result<(), CatalogError> {
        let here_sql = self.server.side == SideId::Sql;
        // Stable per side and link, so a reader can join the two views.
        let op = format!("{:08X}-5345-4544-8000-{:012X}", ag.id.len() + link.dag.len(), db_id);
        let remote_op = format!("{:08X}-5345-4544-8001-{:012X}", ag.id.len() + link.dag.len(), db_id);
        let rate = s.rate_bytes_per_second.max(1);
        let estimate = s.started + Duration::seconds(s.size_bytes / rate);
        self.insert(
            "sys.dm_hadr_automatic_seeding",
            &[
                ("start_time", when(s.started)),
                ("completion_time", s.finished.map(when).unwrap_or(Value::Null)),
                ("ag_id", text(&ag.id)),
                ("ag_db_id", text(group_db)),
                ("ag_remote_replica_id", text(remote)),
                ("operation_id", text(&op)),
                ("is_source", bit(here_sql)),
                ("current_state", text(&s.current_state)),
                ("performed_seeding", bit(true)),
                ("failure_state", int(s.failure_state as i64)),
                ("failure_state_desc", s.failure_state_desc.clone().map(text).unwrap_or(Value::Null)),
                ("error_code", int(s.error_code as i64)),
                ("number_of_attempts", int(s.attempts)),
            ],
        )?;
        self.insert(
            "sys.dm_hadr_physical_seeding_stats",
            &[
                ("local_physical_seeding_id", text(op)),
                ("remote_physical_seeding_id", text(remote_op)),
                ("local_database_id", int(db_id)),
                ("local_database_name", text(&link.database)),
                ("remote_machine_name", text(other_fqdn)),
                ("role_desc", text(if here_sql { "Source" } else { "Destination" })),
                ("internal_state_desc", text(&s.current_state)),
                ("transfer_rate_bytes_per_second", int(s.rate_bytes_per_second)),
                ("transferred_size_bytes", int(s.transferred_bytes)),
                ("database_size_bytes", int(s.size_bytes)),
                ("start_time_utc", when(s.started)),
                ("end_time_utc", s.finished.map(when).unwrap_or(Value::Null)),
                ("estimate_time_complete_utc", when(estimate)),
                ("total_disk_io_wait_time_ms", int(1200)),
                ("total_network_wait_time_ms", int(800)),
                ("failure_code", int(s.error_code as i64)),
                ("failure_message", s.failure_message.clone().map(text).unwrap_or(Value::Null)),
                ("failure_time_utc", Value::Null),
                ("is_compression_enabled", bit(true)),
            ],
        )
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
