//! The availability groups, distributed AGs and link states of one server, as
//! rows of `sys.availability_groups`, `sys.availability_replicas` and the
//! `sys.dm_hadr_*` views.

use rusqlite::types::Value;
use time::Duration;

use super::super::{CatalogError, bit, int, text};
use super::{Rows, when};
use crate::lab::state::objects::{AvailabilityGroup, AvailabilityMode, Replica};
use crate::lab::state::{Link, SideId, World};

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
    /// Transactions in this replica's copy of the log, and the primary's.
    log: u64,
    primary_log: u64,
    /// When the last of them committed.
    commit: Option<time::OffsetDateTime>,
}

impl Rows<'_> {
    pub(super) fn ags(&self, world: &World) -> Result<(), CatalogError> {
        for ag in &self.server.ags {
            self.ag_row(ag)?;
            for r in &ag.replicas {
                self.replica_row(ag, r)?;
            }
            if ag.distributed {
                let links: Vec<&Link> = world.links_of(&ag.name).collect();
                match links.first() {
                    // The replicas' connection is the DAG's; each database has its own rows.
                    Some(first) => {
                        self.link_replicas(ag, first)?;
                        for link in links {
                            self.link_database(ag, link, &world.server(self.server.side.other()).fqdn)?;
                        }
                    }
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
        // The primary sees its other replicas (connected, healthy secondaries).
        for r in ag.replicas.iter().skip(1) {
            self.replica_state(r, ag, false, "SECONDARY", true, "HEALTHY", None)?;
        }
        for (i, (_, dns, port)) in
            self.server.ag_listeners.iter().filter(|(n, ..)| n.eq_ignore_ascii_case(&ag.name)).enumerate()
        {
            self.insert(
                "sys.availability_group_listeners",
                &[
                    ("group_id", text(&ag.id)),
                    ("listener_id", text(format!("{:08x}-0000-4000-8000-{:012x}", ag.id.len(), i + 1))),
                    ("dns_name", text(dns)),
                    ("port", int(*port as i64)),
                    ("is_conformant", bit(true)),
                    ("ip_configuration_string_from_cluster", text("('IP Address: 10.0.0.20')")),
                    ("is_distributed_network_name", bit(false)),
                ],
            )?;
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
                    log: 0,
                    primary_log: 0,
                    commit: None,
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

    /// The distributed AG's replica rows as the link's status says.
    fn link_replicas(&self, ag: &AvailabilityGroup, link: &Link) -> Result<(), CatalogError> {
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
        Ok(())
    }

    /// One database's rows of the distributed AG (and its seeding).
    fn link_database(&self, ag: &AvailabilityGroup, link: &Link, other_fqdn: &str) -> Result<(), CatalogError> {
        let st = &link.status;
        let local_role = if self.server.side == SideId::Sql { &st.sql_role } else { &st.mi_role };
        let (Some(local), remote) = (ag.replicas.first(), ag.replicas.get(1)) else {
            return Ok(());
        };
        let Some(db) = self.server.database(&link.database) else {
            return Ok(());
        };
        let group_db = db.group_database_id.clone().unwrap_or_default();
        let primary = local_role == "PRIMARY";
        let here = self.server.side;
        for (r, is_local) in [(Some(local), true), (remote, false)] {
            let Some(r) = r else { continue };
            if !is_local && !primary {
                continue;
            }
            let side = if is_local { here } else { here.other() };
            let primary_side = st.primary().unwrap_or(here);
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
                log: st.log.of(side),
                primary_log: st.log.of(primary_side),
                commit: st.log.committed(side),
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
        let lsn = crate::lab::state::lsn(d.log);
        let sent = crate::lab::state::lsn(d.primary_log.max(d.log));
        let now = time::OffsetDateTime::now_utc();
        let commit = d.commit.unwrap_or(now);
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
                ("last_sent_lsn", int(if d.local { lsn } else { sent })),
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
                ("last_commit_time", when(commit)),
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
