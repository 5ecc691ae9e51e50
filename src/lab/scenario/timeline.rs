//! A scenario's `[[timeline]]`: changes to the running lab at times after it
//! starts; `lab::timeline` plays them.

use std::time::Duration;

use serde::Deserialize;

use super::Fault;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// After the lab starts: `+2s`, `+500ms`, `+1m`.
    pub at: String,
    /// What a person reading the timeline should know.
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub add_fault: Option<Fault>,
    /// Removes the faults added at run time (the scenario's own stay).
    #[serde(default)]
    pub clear_faults: bool,
    /// The managed instance presents a new endpoint certificate (SQL Server keeps the old one).
    #[serde(default)]
    pub rotate_mi_certificate: bool,
    #[serde(default)]
    pub expire_certificate: Option<CertificateRef>,
    /// The managed instance is forced to PRIMARY while SQL Server stays PRIMARY.
    #[serde(default)]
    pub force_failover: bool,
    /// SQL Server's log of `database` fills to `percent`, held by the replica.
    #[serde(default)]
    pub fill_log: Option<FillLog>,
    /// The side stops answering on every port for `for`, then comes back.
    #[serde(default)]
    pub restart: Option<Restart>,
    /// The application's writes change: `{ tps = 0 }` stops them.
    #[serde(default)]
    pub workload: Option<WorkloadChange>,
    /// The instance's half of this link (its DAG resource) is deleted.
    #[serde(default)]
    pub remove_mi_link: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadChange {
    pub tps: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateRef {
    pub side: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillLog {
    pub database: String,
    pub percent: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    pub side: String,
    #[serde(rename = "for", with = "humantime_serde")]
    pub down_for: Duration,
}

impl Step {
    /// When, after the lab starts.
    pub fn offset(&self) -> Result<Duration, String> {
        let t = self.at.trim().trim_start_matches('+');
        humantime::parse_duration(t).map_err(|e| format!("timeline at `{}`: {e}", self.at))
    }

    /// Exactly one change per step, so the order of changes is the file's.
    pub fn validate(&self) -> Result<(), String> {
        self.offset()?;
        let n = [
            self.add_fault.is_some(),
            self.clear_faults,
            self.rotate_mi_certificate,
            self.expire_certificate.is_some(),
            self.force_failover,
            self.fill_log.is_some(),
            self.restart.is_some(),
            self.workload.is_some(),
            self.remove_mi_link.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n != 1 {
            return Err(format!("timeline at `{}`: give exactly one change ({n} given)", self.at));
        }
        for side in [self.expire_certificate.as_ref().map(|c| &c.side), self.restart.as_ref().map(|r| &r.side)]
            .into_iter()
            .flatten()
        {
            if !matches!(side.as_str(), "sql_server" | "managed_instance") {
                return Err(format!("timeline at `{}`: side `{side}` is not sql_server or managed_instance", self.at));
            }
        }
        Ok(())
    }
}
