//! Long-running operations as ARM runs them: 202 with `Azure-AsyncOperation`,
//! `Location` and `Retry-After`; the status resource, and the final result.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;

use super::ops::{self, Change, Operation, Status};
use super::server::{Req, Resp, empty, json as reply};
use super::{Arm, error, views};
use crate::lab::scenario::ArmFaultKind;
use crate::lab::state::SideId;

impl Arm {
    /// Starts a long-running operation: 202 with where to poll.
    pub(super) fn accept(self: &Arc<Self>, req: &Req, change: Change, api: &str) -> Resp {
        let target = change.target();
        let kind = change.kind();
        let id = {
            let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
            if ops.iter().any(|o| o.status == Status::InProgress && o.change.target() == target) {
                return error(
                    StatusCode::CONFLICT,
                    "ConflictingServerOperation",
                    "An operation is currently in progress for the server.",
                );
            }
            let id = uuid4();
            ops.push(Operation {
                id: id.clone(),
                started: time::OffsetDateTime::now_utc(),
                status: Status::InProgress,
                change: change.clone(),
                resource_path: req.path.clone(),
                api_version: api.to_string(),
            });
            id
        };
        {
            let mut w = self.world();
            let object = target.split_once('/').map(|(_, n)| n.to_string()).unwrap_or_default();
            w.mutated(SideId::Mi, format!("{} {kind}", req.method), object);
        }
        let fault = self.operation_fault(change.fault_resource(), req.method.as_str());
        if fault.is_none_or(|f| f.kind == ArmFaultKind::OperationFails) {
            let fail = fault.map(|f| {
                (
                    f.code.clone().unwrap_or_else(|| "OperationFailed".into()),
                    f.message.clone().unwrap_or_else(|| "The operation failed.".into()),
                )
            });
            let (ops, world, catalog, id2) =
                (self.ops.clone(), self.world.clone(), self.mi_catalog.clone(), id.clone());
            let after = self.cfg.operation_time;
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                ops::finish(&ops, &id2, fail, &world, &catalog);
            });
        }
        let mut r = empty(StatusCode::ACCEPTED);
        let loc = format!(
            "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Sql/locations/{}",
            req.base, self.cfg.subscription_id, self.cfg.resource_group, self.cfg.location
        );
        let h = r.headers_mut();
        h.insert(
            "azure-asyncoperation",
            format!("{loc}/{kind}AzureAsyncOperation/{id}?api-version={api}").parse().expect("ascii"),
        );
        h.insert("location", format!("{loc}/{kind}OperationResults/{id}?api-version={api}").parse().expect("ascii"));
        retry_after(&mut r, self.cfg.retry_after);
        r
    }

    fn op(&self, id: &str) -> Option<Operation> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|o| o.id.eq_ignore_ascii_case(id)).cloned()
    }

    pub(super) fn operation_status(&self, id: &str) -> Resp {
        let Some(op) = self.op(id) else {
            return error(StatusCode::NOT_FOUND, "ResourceNotFound", format!("The operation '{id}' was not found."));
        };
        let err = match &op.status {
            Status::Failed { code, message } => Some((code.as_str(), message.as_str())),
            _ => None,
        };
        let mut r = reply(StatusCode::OK, &views::operation(&op.id, op.status.name(), op.started, err));
        if op.status == Status::InProgress {
            retry_after(&mut r, self.cfg.retry_after);
        }
        r
    }

    pub(super) fn operation_result(&self, req: &Req, id: &str, api: &str) -> Resp {
        let Some(op) = self.op(id) else {
            return error(StatusCode::NOT_FOUND, "ResourceNotFound", format!("The operation '{id}' was not found."));
        };
        match &op.status {
            Status::InProgress => {
                let mut r = empty(StatusCode::ACCEPTED);
                r.headers_mut()
                    .insert("location", format!("{}{}?api-version={api}", req.base, req.path).parse().expect("ascii"));
                retry_after(&mut r, self.cfg.retry_after);
                r
            }
            Status::Failed { code, message } => error(StatusCode::BAD_REQUEST, code, message.clone()),
            Status::Succeeded if op.change.is_delete() => empty(StatusCode::NO_CONTENT),
            Status::Succeeded => {
                let n = self.names();
                let w = self.world();
                let body = match &op.change {
                    Change::PutTrust { name, cert } => Some(views::trust(&n, name, &cert.der)),
                    Change::PatchInstance { .. } => Some(self.instance_view(&w)),
                    Change::PutDag(_) | Change::PatchDag { .. } | Change::Role { .. } | Change::DagDatabases { .. } => {
                        w.arm
                            .dags
                            .iter()
                            .find(|x| x.name.eq_ignore_ascii_case(dag_name(&op.change)))
                            .map(|d| views::dag(&n, &w, d, &op.api_version))
                    }
                    _ => None,
                };
                match body {
                    Some(b) => reply(StatusCode::OK, &b),
                    None => empty(StatusCode::NO_CONTENT),
                }
            }
        }
    }
}

fn dag_name(c: &Change) -> &str {
    match c {
        Change::PutDag(d) => &d.name,
        Change::PatchDag { name, .. }
        | Change::DeleteDag { name }
        | Change::Role { name, .. }
        | Change::DagDatabases { name, .. } => name,
        Change::PutTrust { name, .. } | Change::DeleteTrust { name } => name,
        Change::PatchInstance { .. } => "",
    }
}

/// `Retry-After` in whole seconds, and `retry-after-ms` for sub-second waits
/// (Azure clients read the latter first).
pub(super) fn retry_after(r: &mut Resp, d: Duration) {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let h = r.headers_mut();
    h.insert("retry-after", secs.to_string().parse().expect("digits"));
    h.insert("retry-after-ms", d.as_millis().to_string().parse().expect("digits"));
}

fn uuid4() -> String {
    let a = crate::lab::net::random();
    let b = crate::lab::net::random().rotate_left(17) ^ a;
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}
