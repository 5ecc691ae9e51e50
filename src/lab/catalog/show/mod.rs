//! The link objects of one server, shown as rows of the documented views. The
//! state is the truth; these rows are rewritten from it after every change.

use rusqlite::types::Value;
use time::Duration;

mod hadr;

use super::{Catalog, CatalogError, FILEGROUPS_ALL, LOG_SPACE_ALL, Shown, bit, insert, int, text};
use crate::lab::sqltime::datetime_text;
use crate::lab::state::{Server, World};

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
    "sys.availability_group_listeners",
    "sys.dm_hadr_availability_replica_states",
    "sys.dm_hadr_database_replica_states",
    "sys.dm_hadr_automatic_seeding",
    "sys.dm_hadr_physical_seeding_stats",
    "msdb.dbo.backupset",
    "msdb.dbo.backupmediafamily",
];

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
        r.backups()?;
        for (table, row) in &self.extra_rows {
            insert(&self.db, table, row)?;
        }
        tx.commit()?;
        self.shown_version.store(world.version, std::sync::atomic::Ordering::Relaxed);
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
        let ip = ep.listener_ip.clone().map(text).unwrap_or(Value::Null);
        tcp.extend([("port", int(ep.port as i64)), ("is_dynamic_port", bit(false)), ("ip_address", ip)]);
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
}

impl Rows<'_> {
    /// `msdb.dbo.backupset` and the file or URL each backup went to.
    fn backups(&self) -> Result<(), CatalogError> {
        for (i, b) in self.server.backups.iter().enumerate() {
            let id = i as i64 + 1;
            let (first, last) = (crate::lab::state::lsn(b.first), crate::lab::state::lsn(b.last));
            self.insert(
                "msdb.dbo.backupset",
                &[
                    ("backup_set_id", int(id)),
                    ("backup_set_uuid", text(format!("{:08X}-4241-4B00-8000-{:012X}", id, b.last))),
                    ("name", Value::Null),
                    ("database_name", text(&b.database)),
                    ("server_name", text(&self.server.name)),
                    ("type", text(b.kind.to_string())),
                    ("is_copy_only", bit(b.copy_only)),
                    ("backup_start_date", when(b.finished - Duration::minutes(5))),
                    ("backup_finish_date", when(b.finished)),
                    ("first_lsn", int(first)),
                    ("last_lsn", int(last.max(first + 500))),
                    ("database_backup_lsn", int(first)),
                    ("recovery_model", text("FULL")),
                    ("begins_log_chain", bit(b.kind == 'D' && !b.copy_only)),
                    ("has_backup_checksums", bit(true)),
                    ("backup_size", int(104_857_600)),
                    ("media_set_id", int(id)),
                ],
            )?;
            if let Some(device) = &b.device {
                let url = device.contains("://");
                self.insert(
                    "msdb.dbo.backupmediafamily",
                    &[
                        ("media_set_id", int(id)),
                        ("family_sequence_number", int(1)),
                        ("media_family_id", text(format!("{:08X}-4D46-4100-8000-{:012X}", id, b.last))),
                        ("logical_device_name", Value::Null),
                        ("physical_device_name", text(device)),
                        ("device_type", int(if url { 9 } else { 2 })),
                        ("physical_block_size", int(512)),
                    ],
                )?;
            }
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
