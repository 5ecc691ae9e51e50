//! What the pre-flight checks read of the managed instance's ARM resource,
//! when the profile names one: its update policy (`databaseFormat`), its
//! license-free DR setting (`hybridSecondaryUsage`) and its distributed
//! availability groups as ARM shows them (names, per-database health), which
//! `diagnose` holds beside the DMVs. Bounded by the run's step timeout; a
//! profile without `[arm]` is not an error, only no evidence.

use serde::{Deserialize, Serialize};

use super::arm::{Arm, instance_path};
use crate::profile::Profile;

/// api-versions the instance's properties are read with: the newest, then
/// the old stable one an instance that does not know it still answers.
const APIS: [&str; 2] = [super::arm::NEW_API, super::arm::OLD_API];

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InstanceFacts {
    /// AlwaysUpToDate, SQLServer2022, SQLServer2025 (absent: the 2022 policy, ARM's default).
    pub database_format: Option<String>,
    /// Active (the default) or Passive (a license-free disaster-recovery secondary).
    pub hybrid_secondary_usage: Option<String>,
    /// What the service sees the instance used as (Active: it carries workload).
    pub hybrid_secondary_usage_detected: Option<String>,
    /// `sku.tier`: GeneralPurpose or BusinessCritical.
    #[serde(default)]
    pub tier: Option<String>,
    /// Next-gen General Purpose (`isGeneralPurposeV2`): 500 databases, not 100.
    #[serde(default)]
    pub general_purpose_v2: Option<bool>,
    /// The instance's distributed availability groups, as ARM returned them;
    /// `None` when they could not be listed (or a bundle made before milink read them).
    #[serde(default)]
    pub dags: Option<Vec<serde_json::Value>>,
}

/// `None` when the profile names no instance resource; else what ARM said, or why not.
pub async fn read(p: &Profile) -> Option<Result<InstanceFacts, String>> {
    instance_path(p).ok()?;
    let step = p.limit().step();
    let read = async {
        let arm = Arm::new(p).map_err(|e| e.to_string())?;
        let mut api = APIS[0];
        let mut got = arm.get(&arm.url("", api)).await;
        if matches!(
            got.as_ref().err().and_then(|e| e.code()),
            Some("NoRegisteredProviderFound" | "InvalidApiVersionParameter")
        ) {
            api = APIS[1];
            got = arm.get(&arm.url("", api)).await;
        }
        let v = got.map_err(|e| e.to_string())?;
        let v = v.ok_or_else(|| "the instance's resource was not found".to_string())?;
        let s = |k: &str| v["properties"][k].as_str().map(str::to_string);
        // The links are evidence beside the DMVs: a failure to list them is not the instance's.
        // A planned multi-database link (preview) reads them in the preview, which shows each one's linkMode.
        let multi = p.link.mode == crate::profile::LinkMode::Multi;
        let preview = if multi {
            arm.list(&arm.url("distributedAvailabilityGroups", super::arm::MULTI_API)).await.ok()
        } else {
            None
        };
        let dags = match preview {
            Some(d) => Some(d),
            None => arm.list(&arm.url("distributedAvailabilityGroups", api)).await.ok(),
        };
        Ok(InstanceFacts {
            database_format: s("databaseFormat"),
            hybrid_secondary_usage: s("hybridSecondaryUsage"),
            hybrid_secondary_usage_detected: s("hybridSecondaryUsageDetected"),
            tier: v["sku"]["tier"].as_str().map(str::to_string),
            general_purpose_v2: v["properties"]["isGeneralPurposeV2"].as_bool(),
            dags,
        })
    };
    Some(match tokio::time::timeout(step, read).await {
        Ok(r) => r,
        Err(_) => Err(p.limit().why("ARM")),
    })
}
