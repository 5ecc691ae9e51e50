//! A scenario's `[[timeline]]`: changes to the running lab at times after it
//! starts (a firewall rule, a certificate rotation, a log that fills, a forced
//! failover, a restart), made through the control channel as a person would.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::lab::control::Control;
use crate::lab::scenario::Fault;
use crate::lab::state::SideId;

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
            side_id(side)?;
        }
        Ok(())
    }

    fn apply(&self, c: &Control) -> Result<(), String> {
        if let Some(f) = &self.add_fault {
            return c.add_fault(f.clone());
        }
        if self.clear_faults {
            return c.clear_faults(false);
        }
        if self.rotate_mi_certificate {
            return c.rotate_mi_certificate();
        }
        if let Some(e) = &self.expire_certificate {
            return c.expire_certificate(side_id(&e.side)?, &e.name);
        }
        if self.force_failover {
            return c.force_failover();
        }
        if let Some(l) = &self.fill_log {
            return c.fill_log(&l.database, l.percent);
        }
        Ok(())
    }
}

fn side_id(s: &str) -> Result<SideId, String> {
    match s {
        "sql_server" => Ok(SideId::Sql),
        "managed_instance" => Ok(SideId::Mi),
        other => Err(format!("side `{other}` is not sql_server or managed_instance")),
    }
}

/// Plays the steps in time order from `start`; a step that fails is logged and
/// the rest still happen.
pub async fn play(steps: Vec<Step>, control: Arc<Control>, start: tokio::time::Instant) {
    let mut steps: Vec<(Duration, Step)> = steps.into_iter().filter_map(|s| Some((s.offset().ok()?, s))).collect();
    steps.sort_by_key(|(at, _)| *at);
    for (at, step) in steps {
        tokio::time::sleep_until(start + at).await;
        if let Some(r) = &step.restart {
            let down = Fault { from: "any".into(), to: r.side.clone(), port: None, port_to: None, action: refused() };
            if let Err(e) = control.add_fault(down) {
                tracing::warn!(at = %step.at, error = %e, "timeline step failed");
                continue;
            }
            let (c, back) = (control.clone(), r.down_for);
            let side = r.side.clone();
            tokio::spawn(async move {
                tokio::time::sleep(back).await;
                let _ = c.remove_fault(|f| f.to == side && f.port.is_none() && f.from == "any");
            });
            continue;
        }
        if let Err(e) = step.apply(&control) {
            tracing::warn!(at = %step.at, error = %e, "timeline step failed");
        }
    }
}

fn refused() -> crate::lab::scenario::FaultAction {
    crate::lab::scenario::FaultAction::Refused
}
