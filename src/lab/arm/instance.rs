//! `PATCH` of the managed instance: the settings the link's life touches
//! (`hybridSecondaryUsage`, the license-free disaster-recovery secondary).

use std::sync::Arc;

use hyper::StatusCode;

use super::ops::Change;
use super::server::{Req, Resp};
use super::{Arm, body, error};

impl Arm {
    pub(super) fn patch_instance(self: &Arc<Self>, req: &Req, api: &str) -> Resp {
        let body = match self.body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Some(usage) = body::prop(&body, "hybridSecondaryUsage") else {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                "The lab's instance takes properties.hybridSecondaryUsage (Active or Passive) in a PATCH.",
            );
        };
        let usage = match usage.to_ascii_lowercase().as_str() {
            "active" => "Active",
            "passive" => "Passive",
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameterValue",
                    format!("Invalid value '{usage}' for hybridSecondaryUsage: Active or Passive."),
                );
            }
        };
        self.accept(req, Change::PatchInstance { hybrid_secondary_usage: usage.into() }, api)
    }
}
