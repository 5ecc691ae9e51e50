//! Plays a scenario's `[[timeline]]` on the running lab (a firewall rule, a
//! certificate rotation, a log that fills, a forced failover, a restart),
//! through the control channel as a person would.

use std::sync::Arc;
use std::time::Duration;

use crate::lab::control::Control;
use crate::lab::scenario::{Fault, FaultAction};
use crate::lab::state::SideId;

pub use crate::lab::scenario::timeline::Step;

/// Makes one step's change (a restart is played in `play`).
fn apply(step: &Step, c: &Control) -> Result<(), String> {
    if let Some(f) = &step.add_fault {
        return c.add_fault(f.clone());
    }
    if step.clear_faults {
        return c.clear_faults(false);
    }
    if step.rotate_mi_certificate {
        return c.rotate_mi_certificate();
    }
    if let Some(e) = &step.expire_certificate {
        return c.expire_certificate(side_id(&e.side)?, &e.name);
    }
    if step.force_failover {
        return c.force_failover();
    }
    if let Some(l) = &step.fill_log {
        return c.fill_log(&l.database, l.percent);
    }
    if let Some(w) = &step.workload {
        return c.set_workload(w.tps);
    }
    if let Some(dag) = &step.remove_mi_link {
        return c.remove_mi_link(dag);
    }
    Ok(())
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
            let down = Fault {
                from: "any".into(),
                to: r.side.clone(),
                port: None,
                port_to: None,
                action: FaultAction::Refused,
            };
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
        if let Err(e) = apply(&step, &control) {
            tracing::warn!(at = %step.at, error = %e, "timeline step failed");
        }
    }
}
