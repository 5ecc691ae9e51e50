//! Catalog views and tables the lab serves, with Microsoft's documented column
//! names and types (see shared/reference/mi-link-facts.md §5). The T-SQL type
//! text drives both the SQLite column and the TDS type on the wire.

pub struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, &'static str)],
}

impl Table {
    /// Server-scoped DMVs need VIEW SERVER STATE.
    pub fn needs_view_server_state(&self) -> bool {
        self.name.starts_with("sys.dm_") && self.name != "sys.dm_db_log_space_usage"
    }
}

pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name.eq_ignore_ascii_case(name))
}

const ENDPOINT_COLS: [(&str, &str); 10] = [
    ("name", "sysname"),
    ("endpoint_id", "int"),
    ("principal_id", "int"),
    ("protocol", "tinyint"),
    ("protocol_desc", "nvarchar(60)"),
    ("type", "tinyint"),
    ("type_desc", "nvarchar(60)"),
    ("state", "tinyint"),
    ("state_desc", "nvarchar(60)"),
    ("is_admin_endpoint", "bit"),
];

macro_rules! endpoint_view {
    ($name:expr, [$($extra:expr),* $(,)?]) => {
        Table {
            name: $name,
            columns: &[
                ENDPOINT_COLS[0], ENDPOINT_COLS[1], ENDPOINT_COLS[2], ENDPOINT_COLS[3], ENDPOINT_COLS[4],
                ENDPOINT_COLS[5], ENDPOINT_COLS[6], ENDPOINT_COLS[7], ENDPOINT_COLS[8], ENDPOINT_COLS[9],
                $($extra),*
            ],
        }
    };
}

pub static TABLES: &[Table] = &[
    endpoint_view!("sys.endpoints", []),
    endpoint_view!(
        "sys.database_mirroring_endpoints",
        [
            ("role", "tinyint"),
            ("role_desc", "nvarchar(60)"),
            ("is_encryption_enabled", "bit"),
            ("connection_auth", "tinyint"),
            ("connection_auth_desc", "nvarchar(60)"),
            ("certificate_id", "int"),
            ("encryption_algorithm", "tinyint"),
            ("encryption_algorithm_desc", "nvarchar(60)"),
        ]
    ),
    endpoint_view!(
        "sys.tcp_endpoints",
        [
            ("port", "int"),
            ("is_dynamic_port", "bit"),
            ("ip_address", "nvarchar(45)")
        ]
    ),
    Table {
        name: "sys.certificates",
        columns: &[
            ("name", "sysname"),
            ("certificate_id", "int"),
            ("principal_id", "int"),
            ("pvt_key_encryption_type", "char(2)"),
            ("pvt_key_encryption_type_desc", "nvarchar(60)"),
            ("is_active_for_begin_dialog", "bit"),
            ("issuer_name", "nvarchar(442)"),
            ("cert_serial_number", "nvarchar(64)"),
            ("sid", "varbinary(85)"),
            ("string_sid", "nvarchar(128)"),
            ("subject", "nvarchar(4000)"),
            ("expiry_date", "datetime"),
            ("start_date", "datetime"),
            ("thumbprint", "varbinary(32)"),
            ("attested_by", "nvarchar(260)"),
            ("pvt_key_last_backup_date", "datetime"),
        ],
    },
    Table {
        name: "sys.symmetric_keys",
        columns: &[
            ("name", "sysname"),
            ("principal_id", "int"),
            ("symmetric_key_id", "int"),
            ("key_length", "int"),
            ("key_algorithm", "char(2)"),
            ("algorithm_desc", "nvarchar(60)"),
            ("create_date", "datetime"),
            ("modify_date", "datetime"),
            ("key_guid", "uniqueidentifier"),
        ],
    },
    Table {
        name: "sys.databases",
        columns: &[
            ("name", "sysname"),
            ("database_id", "int"),
            ("source_database_id", "int"),
            ("owner_sid", "varbinary(85)"),
            ("create_date", "datetime"),
            ("compatibility_level", "tinyint"),
            ("collation_name", "sysname"),
            ("user_access", "tinyint"),
            ("user_access_desc", "nvarchar(60)"),
            ("is_read_only", "bit"),
            ("state", "tinyint"),
            ("state_desc", "nvarchar(60)"),
            ("recovery_model", "tinyint"),
            ("recovery_model_desc", "nvarchar(60)"),
            ("log_reuse_wait", "tinyint"),
            ("log_reuse_wait_desc", "nvarchar(60)"),
            ("is_encrypted", "bit"),
            ("is_broker_enabled", "bit"),
            ("is_memory_optimized_elevate_to_snapshot_on", "bit"),
            ("is_accelerated_database_recovery_on", "bit"),
            ("group_database_id", "uniqueidentifier"),
            ("replica_id", "uniqueidentifier"),
        ],
    },
    Table {
        name: "sys.master_files",
        columns: &[
            ("database_id", "int"),
            ("file_id", "int"),
            ("file_guid", "uniqueidentifier"),
            ("type", "tinyint"),
            ("type_desc", "nvarchar(60)"),
            ("data_space_id", "int"),
            ("name", "sysname"),
            ("physical_name", "nvarchar(260)"),
            ("state", "tinyint"),
            ("state_desc", "nvarchar(60)"),
            ("size", "int"),
            ("max_size", "int"),
            ("growth", "int"),
        ],
    },
    Table {
        name: "sys.availability_groups",
        columns: &[
            ("group_id", "uniqueidentifier"),
            ("name", "sysname"),
            ("resource_id", "nvarchar(40)"),
            ("resource_group_id", "nvarchar(40)"),
            ("failure_condition_level", "int"),
            ("health_check_timeout", "int"),
            ("automated_backup_preference", "tinyint"),
            ("automated_backup_preference_desc", "nvarchar(60)"),
            ("version", "smallint"),
            ("basic_features", "bit"),
            ("dtc_support", "bit"),
            ("db_failover", "bit"),
            ("is_distributed", "bit"),
            ("cluster_type", "tinyint"),
            ("cluster_type_desc", "nvarchar(60)"),
            ("required_synchronized_secondaries_to_commit", "int"),
            ("sequence_number", "bigint"),
            ("is_contained", "bit"),
        ],
    },
    Table {
        name: "sys.availability_replicas",
        columns: &[
            ("replica_id", "uniqueidentifier"),
            ("group_id", "uniqueidentifier"),
            ("replica_metadata_id", "int"),
            ("replica_server_name", "nvarchar(256)"),
            ("owner_sid", "varbinary(85)"),
            ("endpoint_url", "nvarchar(128)"),
            ("availability_mode", "tinyint"),
            ("availability_mode_desc", "nvarchar(60)"),
            ("failover_mode", "tinyint"),
            ("failover_mode_desc", "nvarchar(60)"),
            ("session_timeout", "int"),
            ("primary_role_allow_connections", "tinyint"),
            ("primary_role_allow_connections_desc", "nvarchar(60)"),
            ("secondary_role_allow_connections", "tinyint"),
            ("secondary_role_allow_connections_desc", "nvarchar(60)"),
            ("create_date", "datetime"),
            ("modify_date", "datetime"),
            ("backup_priority", "int"),
            ("read_only_routing_url", "nvarchar(256)"),
            ("seeding_mode", "tinyint"),
            ("seeding_mode_desc", "nvarchar(60)"),
        ],
    },
    Table {
        name: "sys.dm_hadr_availability_replica_states",
        columns: &[
            ("replica_id", "uniqueidentifier"),
            ("group_id", "uniqueidentifier"),
            ("is_local", "bit"),
            ("role", "tinyint"),
            ("role_desc", "nvarchar(60)"),
            ("operational_state", "tinyint"),
            ("operational_state_desc", "nvarchar(60)"),
            ("connected_state", "tinyint"),
            ("connected_state_desc", "nvarchar(60)"),
            ("recovery_health", "tinyint"),
            ("recovery_health_desc", "nvarchar(60)"),
            ("synchronization_health", "tinyint"),
            ("synchronization_health_desc", "nvarchar(60)"),
            ("last_connect_error_number", "int"),
            ("last_connect_error_description", "nvarchar(1024)"),
            ("last_connect_error_timestamp", "datetime"),
        ],
    },
    Table {
        name: "sys.dm_hadr_database_replica_states",
        columns: &[
            ("database_id", "int"),
            ("group_id", "uniqueidentifier"),
            ("replica_id", "uniqueidentifier"),
            ("group_database_id", "uniqueidentifier"),
            ("is_local", "bit"),
            ("is_primary_replica", "bit"),
            ("synchronization_state", "tinyint"),
            ("synchronization_state_desc", "nvarchar(60)"),
            ("is_commit_participant", "bit"),
            ("synchronization_health", "tinyint"),
            ("synchronization_health_desc", "nvarchar(60)"),
            ("database_state", "tinyint"),
            ("database_state_desc", "nvarchar(60)"),
            ("is_suspended", "bit"),
            ("suspend_reason", "tinyint"),
            ("suspend_reason_desc", "nvarchar(60)"),
            ("recovery_lsn", "numeric(25,0)"),
            ("truncation_lsn", "numeric(25,0)"),
            ("last_sent_lsn", "numeric(25,0)"),
            ("last_sent_time", "datetime"),
            ("last_received_lsn", "numeric(25,0)"),
            ("last_received_time", "datetime"),
            ("last_hardened_lsn", "numeric(25,0)"),
            ("last_hardened_time", "datetime"),
            ("last_redone_lsn", "numeric(25,0)"),
            ("last_redone_time", "datetime"),
            ("log_send_queue_size", "bigint"),
            ("log_send_rate", "bigint"),
            ("redo_queue_size", "bigint"),
            ("redo_rate", "bigint"),
            ("filestream_send_rate", "bigint"),
            ("end_of_log_lsn", "numeric(25,0)"),
            ("last_commit_lsn", "numeric(25,0)"),
            ("last_commit_time", "datetime"),
            ("low_water_mark_for_ghosts", "bigint"),
            ("secondary_lag_seconds", "bigint"),
        ],
    },
    Table {
        name: "sys.dm_hadr_automatic_seeding",
        columns: &[
            ("start_time", "datetime"),
            ("completion_time", "datetime"),
            ("ag_id", "uniqueidentifier"),
            ("ag_db_id", "uniqueidentifier"),
            ("ag_remote_replica_id", "uniqueidentifier"),
            ("operation_id", "uniqueidentifier"),
            ("is_source", "bit"),
            ("current_state", "nvarchar(60)"),
            ("performed_seeding", "bit"),
            ("failure_state", "int"),
            ("failure_state_desc", "nvarchar(60)"),
            ("error_code", "int"),
            ("number_of_attempts", "int"),
        ],
    },
    Table {
        name: "sys.dm_hadr_physical_seeding_stats",
        columns: &[
            ("local_physical_seeding_id", "uniqueidentifier"),
            ("remote_physical_seeding_id", "uniqueidentifier"),
            ("local_database_id", "int"),
            ("local_database_name", "nvarchar(128)"),
            ("remote_machine_name", "nvarchar(128)"),
            ("role_desc", "nvarchar(60)"),
            ("internal_state_desc", "nvarchar(60)"),
            ("transfer_rate_bytes_per_second", "bigint"),
            ("transferred_size_bytes", "bigint"),
            ("database_size_bytes", "bigint"),
            ("start_time_utc", "datetime"),
            ("end_time_utc", "datetime"),
            ("estimate_time_complete_utc", "datetime"),
            ("total_disk_io_wait_time_ms", "bigint"),
            ("total_network_wait_time_ms", "bigint"),
            ("failure_code", "int"),
            ("failure_message", "nvarchar(4000)"),
            ("failure_time_utc", "datetime"),
            ("is_compression_enabled", "bit"),
        ],
    },
    Table {
        name: "sys.dm_hadr_fabric_config_parameters",
        columns: &[
            ("section_name", "nvarchar(256)"),
            ("parameter_name", "nvarchar(256)"),
            ("value", "nvarchar(4000)"),
            ("is_encrypted", "bit"),
        ],
    },
    Table {
        name: "sys.dm_os_host_info",
        columns: &[
            ("host_platform", "nvarchar(256)"),
            ("host_distribution", "nvarchar(256)"),
            ("host_release", "nvarchar(256)"),
            ("host_service_pack_level", "nvarchar(256)"),
            ("host_sku", "int"),
            ("os_language_version", "int"),
            ("host_architecture", "nvarchar(256)"),
        ],
    },
    Table {
        name: "sys.dm_db_log_space_usage",
        columns: &[
            ("database_id", "smallint"),
            ("total_log_size_in_bytes", "bigint"),
            ("used_log_space_in_bytes", "bigint"),
            ("used_log_space_in_percent", "real"),
            ("log_space_in_bytes_since_last_backup", "bigint"),
        ],
    },
    Table {
        name: "msdb.dbo.backupset",
        columns: &[
            ("backup_set_id", "int"),
            ("backup_set_uuid", "uniqueidentifier"),
            ("name", "nvarchar(128)"),
            ("database_name", "nvarchar(128)"),
            ("server_name", "nvarchar(128)"),
            ("type", "char(1)"),
            ("is_copy_only", "bit"),
            ("backup_start_date", "datetime"),
            ("backup_finish_date", "datetime"),
            ("first_lsn", "numeric(25,0)"),
            ("last_lsn", "numeric(25,0)"),
            ("database_backup_lsn", "numeric(25,0)"),
            ("recovery_model", "nvarchar(60)"),
            ("begins_log_chain", "bit"),
            ("has_backup_checksums", "bit"),
            ("backup_size", "numeric(20,0)"),
        ],
    },
    Table {
        name: "msdb.dbo.sysjobs",
        columns: &[
            ("job_id", "uniqueidentifier"),
            ("originating_server_id", "int"),
            ("name", "sysname"),
            ("enabled", "tinyint"),
            ("description", "nvarchar(512)"),
            ("owner_sid", "varbinary(85)"),
            ("date_created", "datetime"),
            ("date_modified", "datetime"),
        ],
    },
    Table {
        name: "msdb.dbo.sysjobsteps",
        columns: &[
            ("job_id", "uniqueidentifier"),
            ("step_id", "int"),
            ("step_name", "sysname"),
            ("subsystem", "nvarchar(40)"),
            ("command", "nvarchar(4000)"),
            ("flags", "int"),
            ("database_name", "sysname"),
            ("last_run_outcome", "int"),
            ("step_uid", "uniqueidentifier"),
        ],
    },
    Table {
        name: "msdb.dbo.sysjobhistory",
        columns: &[
            ("instance_id", "int"),
            ("job_id", "uniqueidentifier"),
            ("step_id", "int"),
            ("step_name", "sysname"),
            ("sql_message_id", "int"),
            ("sql_severity", "int"),
            ("message", "nvarchar(4000)"),
            ("run_status", "int"),
            ("run_date", "int"),
            ("run_time", "int"),
            ("run_duration", "int"),
            ("server", "sysname"),
        ],
    },
    Table {
        name: "msdb.dbo.sysjobactivity",
        columns: &[
            ("session_id", "int"),
            ("job_id", "uniqueidentifier"),
            ("run_requested_date", "datetime"),
            ("start_execution_date", "datetime"),
            ("last_executed_step_id", "int"),
            ("stop_execution_date", "datetime"),
        ],
    },
    Table {
        name: "msdb.dbo.sysjobstepslogs",
        columns: &[
            ("log_id", "int"),
            ("log", "nvarchar(4000)"),
            ("date_created", "datetime"),
            ("date_modified", "datetime"),
            ("log_size", "bigint"),
            ("step_uid", "uniqueidentifier"),
        ],
    },
];

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = super::TABLES.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), super::TABLES.len());
    }
}
