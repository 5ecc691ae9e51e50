//! Long-running operations the way ARM runs them: a request is accepted (202
//! with `Azure-AsyncOperation`, `Location` and `Retry-After`), the change lands
//! when the operation ends, and its status resource goes InProgress →
//! Succeeded or Failed.

use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use crate::lab::catalog::Catalog;
use crate::lab::certs::EndpointCert;
use crate::lab::link::roles::{self, RoleError};
use crate::lab::state::objects::{AvailabilityGroup, AvailabilityMode, Certificate, Origin, PrivateKey, Replica};
use crate::lab::state::{ArmDag, SideId, World};

/// What an operation changes once it ends.
#[derive(Debug, Clone)]
pub enum Change {
    PutTrust {
        name: String,
        cert: EndpointCert,
    },
    DeleteTrust {
        name: String,
    },
    PutDag(ArmDag),
    PatchDag {
        name: String,
        replication_mode: String,
    },
    DeleteDag {
        name: String,
    },
    /// `POST …/failover` (`failoverType`) or `…/setRole` (`instanceRole`,
    /// `roleChangeType`): a role change of the managed instance.
    Role {
        name: String,
        change: RoleChange,
    },
    /// `PATCH` of the instance: `hybridSecondaryUsage`.
    PatchInstance {
        hybrid_secondary_usage: String,
    },
    /// `POST …/addDatabases` or `…/removeDatabases` of a multi-database link.
    DagDatabases {
        name: String,
        databases: Vec<String>,
        add: bool,
    },
}

/// What a role change asks of the managed instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    /// Failover Planned: the instance becomes primary, nothing lost.
    PlannedToInstance,
    /// setRole Secondary, Planned: SQL Server becomes primary, nothing lost.
    PlannedToPartner,
    /// Failover ForcedAllowDataLoss, or setRole Primary, Forced.
    ForcedToInstance,
    /// setRole Secondary, Forced: the instance gives up the role (split brain).
    ForcedSecondary,
}

impl Change {
    /// The resource it touches (for conflicts).
    pub fn target(&self) -> String {
        match self {
            Change::PutTrust { name, .. } | Change::DeleteTrust { name } => format!("trust/{}", name.to_lowercase()),
            Change::PutDag(d) => format!("dag/{}", d.name.to_lowercase()),
            Change::PatchDag { name, .. }
            | Change::DeleteDag { name }
            | Change::Role { name, .. }
            | Change::DagDatabases { name, .. } => {
                format!("dag/{}", name.to_lowercase())
            }
            Change::PatchInstance { .. } => "instance".into(),
        }
    }

    /// `distributedAvailabilityGroups` or `serverTrustCertificates`: the
    /// operation resources are named after it.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::PutTrust { .. } | Change::DeleteTrust { .. } => "serverTrustCertificates",
            Change::PatchInstance { .. } => "managedInstances",
            _ => "distributedAvailabilityGroups",
        }
    }

    /// How the scenario's faults name its resource (`trust.put`, `dag.post`, `instance.patch`).
    pub fn fault_resource(&self) -> &'static str {
        match self {
            Change::PutTrust { .. } | Change::DeleteTrust { .. } => "trust",
            Change::PatchInstance { .. } => "instance",
            _ => "dag",
        }
    }

    pub fn is_delete(&self) -> bool {
        matches!(self, Change::DeleteTrust { .. } | Change::DeleteDag { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Succeeded,
    Failed { code: String, message: String },
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub id: String,
    pub started: OffsetDateTime,
    pub status: Status,
    pub change: Change,
    /// The resource's path, for the final GET of a PUT.
    pub resource_path: String,
    pub api_version: String,
}

impl Status {
    pub fn name(&self) -> &'static str {
        match self {
            Status::InProgress => "InProgress",
            Status::Succeeded => "Succeeded",
            Status::Failed { .. } => "Failed",
        }
    }
}

/// Ends an operation: the change lands (or the operation fails, as a fault asks).
pub fn finish(
    ops: &Mutex<Vec<Operation>>,
    id: &str,
    fail: Option<(String, String)>,
    world: &Arc<Mutex<World>>,
    mi_catalog: &Arc<Mutex<Catalog>>,
) {
    let change = {
        let mut ops = ops.lock().unwrap_or_else(|p| p.into_inner());
        let Some(op) = ops.iter_mut().find(|o| o.id == id && o.status == Status::InProgress) else { return };
        match fail {
            Some((code, message)) => {
                op.status = Status::Failed { code, message };
                return;
            }
            None => {
                op.status = Status::Succeeded;
                op.change.clone()
            }
        }
    };
    let c = mi_catalog.lock().unwrap_or_else(|p| p.into_inner());
    let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
    if let Err((code, message)) = apply(&mut w, change) {
        let mut ops = ops.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(op) = ops.iter_mut().find(|o| o.id == id) {
            op.status = Status::Failed { code, message };
        }
    }
    w.changed.notify_one();
    if let Err(e) = c.show(&w) {
        tracing::warn!(error = %e, "lab catalog could not show an ARM change");
    }
}

/// The change lands; a role change that cannot happen any more fails the
/// operation with ARM's code.
fn apply(w: &mut World, change: Change) -> Result<(), (String, String)> {
    let now = OffsetDateTime::now_utc();
    match change {
        Change::PutTrust { name, cert } => {
            w.mi.certificates.retain(|c| !(c.origin == Origin::ServerTrust && c.name.eq_ignore_ascii_case(&name)));
            let id = w.mi.next_certificate_id();
            w.mi.certificates.push(Certificate {
                id,
                name,
                cert,
                private_key: PrivateKey::None,
                origin: Origin::ServerTrust,
                issuer_for: vec![],
            });
        }
        Change::DeleteTrust { name } => {
            w.mi.certificates.retain(|c| !(c.origin == Origin::ServerTrust && c.name.eq_ignore_ascii_case(&name)));
        }
        Change::PutDag(d) => put_dag(w, d, now),
        Change::PatchDag { name, replication_mode } => {
            let mode = if replication_mode.eq_ignore_ascii_case("Sync") {
                AvailabilityMode::Synchronous
            } else {
                AvailabilityMode::Asynchronous
            };
            roles::set_mode(w, &name, SideId::Mi, mode);
        }
        Change::Role { name, change } => {
            if let Some(l) = w.links.iter_mut().find(|l| l.dag.eq_ignore_ascii_case(&name)) {
                l.status.failing_over = false;
            }
            let done = match change {
                RoleChange::PlannedToInstance => roles::planned(w, &name, SideId::Mi, roles::Planned::CatchUp, now),
                RoleChange::PlannedToPartner => roles::planned(w, &name, SideId::Sql, roles::Planned::CatchUp, now),
                RoleChange::ForcedToInstance => roles::forced(w, &name, SideId::Mi, now),
                RoleChange::ForcedSecondary => roles::set_secondary(w, &name, SideId::Mi),
            };
            done.map_err(|e| role_error(&e))?;
        }
        Change::PatchInstance { hybrid_secondary_usage } => {
            w.arm.hybrid_secondary_usage = hybrid_secondary_usage;
        }
        Change::DeleteDag { name } => delete_dag(w, &name),
        Change::DagDatabases { name, databases, add } => {
            if let Some(d) = w.arm.dags.iter_mut().find(|d| d.name.eq_ignore_ascii_case(&name)) {
                for db in databases {
                    let has = d.databases.iter().any(|x| x.eq_ignore_ascii_case(&db));
                    match (add, has) {
                        (true, false) => d.databases.push(db),
                        (false, true) => d.databases.retain(|x| !x.eq_ignore_ascii_case(&db)),
                        _ => {}
                    }
                }
            }
            w.mutated(SideId::Mi, if add { "POST addDatabases" } else { "POST removeDatabases" }, name);
        }
    }
    Ok(())
}

/// The instance's half of a link lands: its AG (made when missing) and the
/// distributed AG, in the instance's catalog and in ARM.
fn put_dag(w: &mut World, d: ArmDag, now: OffsetDateTime) {
    let own_url = format!("tcp://{}:5022;Server=[{}]", w.mi.fqdn, w.mi.name);
    let mode = if d.replication_mode.eq_ignore_ascii_case("Sync") {
        AvailabilityMode::Synchronous
    } else {
        AvailabilityMode::Asynchronous
    };
    let mi = &mut w.mi;
    if mi.ag(&d.instance_ag).is_none() {
        let replica = Replica {
            id: mi.guid(),
            name: mi.name.clone(),
            endpoint_url: own_url.clone(),
            mode: AvailabilityMode::Synchronous,
            failover_manual: true,
            seeding_automatic: true,
            session_timeout: 10,
        };
        let id = mi.guid();
        mi.ags.push(AvailabilityGroup {
            id,
            name: d.instance_ag.clone(),
            distributed: false,
            cluster_type: (2, "NONE"),
            replicas: vec![replica],
            databases: vec![],
            created: now,
        });
    }
    mi.ags.retain(|a| !(a.distributed && a.name.eq_ignore_ascii_case(&d.name)));
    let mk = |mi: &mut crate::lab::state::Server, name: &str, url: &str| Replica {
        id: mi.guid(),
        name: name.to_string(),
        endpoint_url: url.to_string(),
        mode,
        failover_manual: true,
        seeding_automatic: !d.seeding_mode.eq_ignore_ascii_case("Manual"),
        session_timeout: 20,
    };
    let local = mk(mi, &d.instance_ag, &own_url);
    let remote = mk(mi, &d.partner_ag, &d.partner_endpoint);
    let id = d.id.clone();
    mi.ags.push(AvailabilityGroup {
        id,
        name: d.name.clone(),
        distributed: true,
        cluster_type: (2, "NONE"),
        replicas: vec![local, remote],
        databases: vec![],
        created: now,
    });
    w.arm.dags.retain(|x| !x.name.eq_ignore_ascii_case(&d.name));
    w.arm.dags.push(d);
}

/// Breaking the link keeps the database on the instance, now its own.
/// The instance's half of a link gone, as an ARM DELETE leaves it.
pub(crate) fn delete_dag(w: &mut World, name: &str) {
    let Some(i) = w.arm.dags.iter().position(|d| d.name.eq_ignore_ascii_case(name)) else { return };
    let d = w.arm.dags.remove(i);
    w.mi.ags.retain(|a| !(a.distributed && a.name.eq_ignore_ascii_case(name)));
    let dbs = w.mi.ag(&d.instance_ag).map(|a| a.databases.clone()).unwrap_or_default();
    w.mi.ags.retain(|a| !a.name.eq_ignore_ascii_case(&d.instance_ag));
    for db in w.mi.databases.iter_mut().filter(|x| dbs.iter().any(|n| n.eq_ignore_ascii_case(&x.name))) {
        db.group_database_id = None;
        db.state = "ONLINE".into();
    }
}

/// ARM's code and message for a role change that cannot be carried out
/// (2025-01-01 spec; the message texts are the lab's, UNCONFIRMED).
pub fn role_error(e: &RoleError) -> (String, String) {
    let (code, message) = match e {
        RoleError::NoLink => ("ResourceNotFound", "The distributed availability group does not exist.".to_string()),
        RoleError::Seeding => (
            "OperationCanNotStartDueToMiLink",
            "The operation cannot start: a database is still being created through the link (41964).".to_string(),
        ),
        RoleError::NotConnected | RoleError::NotSynchronousCommit => (
            "DistributedAvailabilityGroupFailoverSecondariesNotSynchronizing",
            "The secondary replicas are not synchronizing: the link is not connected.".to_string(),
        ),
        RoleError::Behind(n) => (
            "DistributedAvailabilityGroupFailoverLogSendQueueSizeTooBig",
            format!("The log send queue is too big for a planned failover ({n} transactions behind)."),
        ),
        RoleError::AlreadyIn(role) => (
            "DistributedAvailabilityGroupSetRoleInstanceAlreadyInRequestedRole",
            format!("The managed instance is already {}.", role.to_ascii_lowercase()),
        ),
        RoleError::SplitBrain => (
            "DistributedAvailabilityGroupSetRoleFailed",
            "Both replicas are primary: set one of them to secondary first.".to_string(),
        ),
    };
    (code.to_string(), message)
}
