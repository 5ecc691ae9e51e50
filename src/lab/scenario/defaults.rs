//! Defaults of scenario fields (serde calls them by name).

use super::RelTime;

pub(super) fn yes() -> bool {
    true
}
pub(super) fn one() -> i64 {
    1
}
pub(super) fn default_edition() -> String {
    "Enterprise Edition (64-bit)".into()
}
pub(super) fn default_collation() -> String {
    "SQL_Latin1_General_CP1_CI_AS".into()
}
pub(super) fn default_platform() -> String {
    "Windows".into()
}
pub(super) fn default_distribution() -> String {
    "Windows Server 2022 Datacenter".into()
}
pub(super) fn default_release() -> String {
    "10.0".into()
}
pub(super) fn default_user() -> String {
    "milink".into()
}
pub(super) fn default_password() -> String {
    "Lab-Only-Passw0rd".into()
}
pub(super) fn default_endpoint_name() -> String {
    "database_mirroring_endpoint".into()
}
pub(super) fn default_endpoint_port() -> u16 {
    5022
}
pub(super) fn default_started() -> String {
    "STARTED".into()
}
pub(super) fn default_role() -> String {
    "ALL".into()
}
pub(super) fn default_auth() -> String {
    "CERTIFICATE".into()
}
pub(super) fn default_algorithm() -> String {
    "AES".into()
}
pub(super) fn default_slow_ms() -> u64 {
    1500
}
pub(super) fn default_start() -> RelTime {
    RelTime("-30d".into())
}
pub(super) fn default_expiry() -> RelTime {
    RelTime("+400d".into())
}
pub(super) fn default_pvt() -> String {
    "MK".into()
}
pub(super) fn default_recovery() -> String {
    "FULL".into()
}
pub(super) fn default_online() -> String {
    "ONLINE".into()
}
pub(super) fn default_log_mb() -> f64 {
    1024.0
}
pub(super) fn default_size_mb() -> i64 {
    2048
}
pub(super) fn default_log_used() -> f64 {
    12.5
}
pub(super) fn default_reuse() -> String {
    "NOTHING".into()
}
pub(super) fn default_backup_type() -> String {
    "D".into()
}
pub(super) fn default_backup_time() -> RelTime {
    RelTime("-1d".into())
}
pub(super) fn default_log_time() -> RelTime {
    RelTime("-10m".into())
}
pub(super) fn default_process() -> String {
    "Logon".into()
}
pub(super) fn default_primary() -> String {
    "PRIMARY".into()
}
pub(super) fn default_secondary() -> String {
    "SECONDARY".into()
}
pub(super) fn default_health() -> String {
    "HEALTHY".into()
}
pub(super) fn default_sync_state() -> String {
    "SYNCHRONIZING".into()
}
pub(super) fn default_both() -> String {
    "both".into()
}
pub(super) fn default_seeding_state() -> String {
    "COMPLETED".into()
}
pub(super) fn default_any() -> String {
    "any".into()
}
pub(super) fn default_all() -> String {
    "all".into()
}
