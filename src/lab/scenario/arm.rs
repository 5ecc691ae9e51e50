//! The fake Azure Resource Manager's settings and faults.

use serde::Deserialize;

/// The fake Azure Resource Manager: the managed instance's resource and its
/// link-related children, over HTTPS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    #[serde(default = "default_subscription")]
    pub subscription_id: String,
    #[serde(default = "default_resource_group")]
    pub resource_group: String,
    #[serde(default = "default_location")]
    pub location: String,
    /// api-versions the instance answers (default: all the lab knows, both schemas).
    #[serde(default)]
    pub api_versions: Option<Vec<String>>,
    /// `Retry-After` of long-running operations (sent as `retry-after-ms` too).
    #[serde(default = "default_arm_retry", with = "humantime_serde")]
    pub retry_after: std::time::Duration,
    /// How long a long-running operation takes.
    #[serde(default = "default_lro", with = "humantime_serde")]
    pub operation_time: std::time::Duration,
    /// Items per page of a list (`nextLink` beyond).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    #[serde(default)]
    pub faults: Vec<ArmFault>,
    /// The instance's `hybridSecondaryUsage` at start: Active (the default) or Passive.
    #[serde(default)]
    pub hybrid_secondary_usage: Option<String>,
    /// A replayed bundle's `hybridSecondaryUsageDetected` (otherwise the lab
    /// says Active while the instance is primary of a link).
    #[serde(default)]
    pub hybrid_secondary_usage_detected: Option<String>,
    /// A replayed bundle's `databaseFormat` (otherwise the lab derives it from
    /// the instance's update type and version).
    #[serde(default)]
    pub database_format: Option<String>,
    /// A replayed bundle's distributed availability groups, as the JSON array
    /// ARM returned: the list and each GET answer with them as recorded.
    #[serde(default)]
    pub recorded_dags: Option<String>,
}

impl Default for Arm {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

/// A fault of the fake ARM, for requests of one operation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmFault {
    /// `<resource>.<verb>`: resource is instance, trust, endpoint_certs or dag;
    /// verb is get, list, put, patch, delete (or `*` for any).
    pub operation: String,
    pub kind: ArmFaultKind,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// How many requests it hits (default: every one).
    #[serde(default)]
    pub times: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub delay: Option<std::time::Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArmFaultKind {
    /// Answer with `status`, `code` and `message`.
    Error,
    /// 429 with Retry-After (`delay`, default 1s).
    Throttle,
    /// The long-running operation ends Failed with `code`.
    OperationFails,
    /// The long-running operation stays InProgress for ever.
    OperationHangs,
    /// Answer after `delay`.
    Slow,
}

fn default_subscription() -> String {
    "6d9a4c1e-4b1f-4f4e-9a51-3c2d8e7f0a11".into()
}
fn default_resource_group() -> String {
    "rg-contoso-link".into()
}
fn default_location() -> String {
    "westeurope".into()
}
fn default_arm_retry() -> std::time::Duration {
    std::time::Duration::from_secs(1)
}
fn default_lro() -> std::time::Duration {
    std::time::Duration::from_millis(300)
}
fn default_page_size() -> usize {
    100
}
