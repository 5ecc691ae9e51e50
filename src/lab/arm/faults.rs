//! The scenario's ARM faults: an error, a throttle or a slow answer for a
//! request, or an operation that fails or never ends.

use std::time::Duration;

use hyper::{Method, StatusCode};

use super::route::Route;
use super::server::Resp;
use super::{Arm, error, lro::retry_after};
use crate::lab::scenario::{ArmFault, ArmFaultKind};

impl Arm {
    /// The scenario's faults for this operation: an error, a throttle, a delay.
    pub(super) async fn fault(&self, route: &Route, method: &Method) -> Option<Resp> {
        let resource = match route {
            Route::Instance => "instance",
            Route::TrustList | Route::Trust(_) => "trust",
            Route::EndpointCertList | Route::EndpointCert(_) => "endpoint_certs",
            Route::DagList | Route::Dag(_) | Route::DagAction(..) => "dag",
            Route::OperationStatus(_) | Route::OperationResult(_) => "operation",
        };
        let verb = match (method, route) {
            (&Method::GET, Route::TrustList | Route::EndpointCertList | Route::DagList) => "list",
            (&Method::GET, _) => "get",
            (&Method::PUT, _) => "put",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, _) => "delete",
            _ => "post",
        };
        for (i, f) in self.cfg.faults.iter().enumerate() {
            let (r, v) = f.operation.split_once('.').unwrap_or((&f.operation, "*"));
            if !(r == "*" || r == resource) || !(v == "*" || v == verb) {
                continue;
            }
            if matches!(f.kind, ArmFaultKind::OperationFails | ArmFaultKind::OperationHangs) {
                continue;
            }
            {
                let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
                if f.times.is_some_and(|t| hits[i] >= t) {
                    continue;
                }
                hits[i] += 1;
            }
            match f.kind {
                ArmFaultKind::Slow => tokio::time::sleep(f.delay.unwrap_or(Duration::from_secs(2))).await,
                ArmFaultKind::Throttle => {
                    let after = f.delay.unwrap_or(Duration::from_secs(1));
                    let mut r = error(
                        StatusCode::TOO_MANY_REQUESTS,
                        f.code.as_deref().unwrap_or("SubscriptionTooManyRequests"),
                        f.message.clone().unwrap_or_else(|| {
                            "Requests beyond max requests that can be processed by available resources.".into()
                        }),
                    );
                    retry_after(&mut r, after);
                    return Some(r);
                }
                ArmFaultKind::Error => {
                    let status =
                        StatusCode::from_u16(f.status.unwrap_or(500)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    return Some(error(
                        status,
                        f.code.as_deref().unwrap_or("InternalServerError"),
                        f.message
                            .clone()
                            .unwrap_or_else(|| "An unexpected error occured while processing the request.".into()),
                    ));
                }
                ArmFaultKind::OperationFails | ArmFaultKind::OperationHangs => {}
            }
        }
        None
    }

    /// The scenario's fault for the long-running operation this request starts
    /// (it fails, or never ends), counted against its `times`.
    pub(super) fn operation_fault(&self, resource: &str, method: &str) -> Option<&ArmFault> {
        let verb = method.to_ascii_lowercase();
        self.cfg
            .faults
            .iter()
            .enumerate()
            .find(|(i, f)| {
                let (r, v) = f.operation.split_once('.').unwrap_or((&f.operation, "*"));
                let matches = (r == "*" || r == resource)
                    && (v == "*" || v == verb)
                    && matches!(f.kind, ArmFaultKind::OperationFails | ArmFaultKind::OperationHangs);
                if !matches {
                    return false;
                }
                let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
                if f.times.is_some_and(|t| hits[*i] >= t) {
                    return false;
                }
                hits[*i] += 1;
                true
            })
            .map(|(_, f)| f)
    }
}
