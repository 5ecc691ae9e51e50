//! `…/distributedAvailabilityGroups/{name}/failover` and `…/setRole`: role
//! changes of the managed instance as long-running operations, refused up
//! front with ARM's codes when they cannot start.

use std::sync::Arc;

use hyper::StatusCode;

use super::ops::{Change, RoleChange, Status, role_error};
use super::server::{Req, Resp};
use super::{Arm, body, error};
use crate::lab::link::roles::{self, Planned, RoleError};
use crate::lab::state::SideId;

/// api-versions with `failover` (2024-05-01-preview and later; in 2025-01-01).
const FAILOVER_APIS: &[&str] =
    &["2024-05-01-preview", "2024-11-01-preview", "2025-01-01", "2025-02-01-preview", "2025-08-01-preview"];

/// A planned failover refuses a secondary this far behind (the service's
/// thresholds are not documented: UNCONFIRMED).
const QUEUE_LIMIT_KB: i64 = 1 << 20;

impl Arm {
    pub(super) fn dag_action(self: &Arc<Self>, req: &Req, name: &str, action: &str, api: &str) -> Resp {
        let action = action.to_ascii_lowercase();
        if matches!(action.as_str(), "adddatabases" | "removedatabases") && api == "2025-08-01-preview" {
            return self.dag_databases(req, name, action == "adddatabases", api);
        }
        let known = match action.as_str() {
            "failover" => FAILOVER_APIS.contains(&api),
            // setRole came with the preview schemas; the first ones lack it.
            "setrole" => !api.starts_with("2021-"),
            _ => false,
        };
        if !known {
            return error(
                StatusCode::NOT_FOUND,
                "InvalidResourceType",
                format!(
                    "The resource type 'managedInstances/distributedAvailabilityGroups/{action}' could not be found in the namespace 'Microsoft.Sql' for api version '{api}'."
                ),
            );
        }
        let body = match self.body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        if !self.world().arm.dags.iter().any(|d| d.name.eq_ignore_ascii_case(name)) {
            return self.not_found("distributedAvailabilityGroups", name);
        }
        let field = |k: &str| body::field(&body, k).unwrap_or_default().to_ascii_lowercase();
        let change = match action.as_str() {
            "failover" => match field("failoverType").as_str() {
                "planned" => RoleChange::PlannedToInstance,
                "forcedallowdataloss" => RoleChange::ForcedToInstance,
                _ => return invalid("failoverType must be Planned or ForcedAllowDataLoss"),
            },
            _ => match (field("instanceRole").as_str(), field("roleChangeType").as_str()) {
                ("primary", "planned") => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "DistributedAvailabilityGroupSetRolePrimaryPlannedNotSupported",
                        "A planned change to the primary role is not supported by setRole: use failover.",
                    );
                }
                ("primary", "forced") => RoleChange::ForcedToInstance,
                ("secondary", "planned") => RoleChange::PlannedToPartner,
                ("secondary", "forced") => RoleChange::ForcedSecondary,
                _ => {
                    return invalid(
                        "instanceRole (Primary or Secondary) and roleChangeType (Planned or Forced) are required",
                    );
                }
            },
        };
        let busy = self
            .ops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|o| o.status == Status::InProgress && o.change.target() == format!("dag/{}", name.to_lowercase()));
        if busy {
            return error(
                StatusCode::CONFLICT,
                "DistributedAvailabilityGroupSetRoleChangeRoleAlreadyInProgress",
                "A role change of this distributed availability group is already in progress.",
            );
        }
        if let Err(e) = self.can_start(name, change) {
            let status = match e {
                RoleError::Seeding => StatusCode::BAD_REQUEST,
                _ => StatusCode::CONFLICT,
            };
            let (code, message) = role_error(&e);
            return error(status, &code, message);
        }
        if let Some(l) = self.world().links.iter_mut().find(|l| l.dag.eq_ignore_ascii_case(name)) {
            l.status.failing_over = true;
        }
        self.accept(req, Change::Role { name: name.to_string(), change }, api)
    }

    /// What the service checks before it accepts a role change.
    fn can_start(&self, name: &str, change: RoleChange) -> Result<(), RoleError> {
        let w = self.world();
        let l = w.link(name).ok_or(RoleError::NoLink)?;
        let mi = l.status.mi_role.as_str();
        match change {
            RoleChange::ForcedToInstance if mi == "PRIMARY" => Err(RoleError::AlreadyIn("PRIMARY")),
            RoleChange::ForcedSecondary if mi != "PRIMARY" => Err(RoleError::AlreadyIn("SECONDARY")),
            RoleChange::ForcedToInstance | RoleChange::ForcedSecondary => Ok(()),
            RoleChange::PlannedToPartner if mi != "PRIMARY" => Err(RoleError::AlreadyIn("SECONDARY")),
            RoleChange::PlannedToInstance | RoleChange::PlannedToPartner => {
                let to = if change == RoleChange::PlannedToInstance { SideId::Mi } else { SideId::Sql };
                roles::can_fail_over(&w, name, to, Planned::CatchUp)?;
                if l.status.log_send_queue_kb > QUEUE_LIMIT_KB {
                    return Err(RoleError::Behind((l.status.log_send_queue_kb / 4) as u64));
                }
                Ok(())
            }
        }
    }
}

fn invalid(message: &str) -> Resp {
    error(StatusCode::BAD_REQUEST, "InvalidRequestContent", message)
}
