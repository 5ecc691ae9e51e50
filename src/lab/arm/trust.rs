//! `serverTrustCertificates`: SQL Server's certificates the instance trusts.

use std::sync::Arc;

use hyper::StatusCode;

use super::ops::Change;
use super::server::{Req, Resp, json as reply};
use super::{Arm, body, error, views};

impl Arm {
    pub(super) fn put_trust(self: &Arc<Self>, req: &Req, name: &str, api: &str) -> Resp {
        let body = match self.body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Some(blob) = body::prop(&body, "publicBlob").filter(|b| !b.trim().is_empty()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "MissingPublicBlob",
                "The public blob of the server trust certificate is missing.",
            );
        };
        let hex = blob.trim().trim_start_matches("0x").trim_start_matches("0X");
        let der: Option<Vec<u8>> = (hex.len() % 2 == 0)
            .then(|| (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect())
            .flatten();
        let cert = der.and_then(|d| crate::lab::certs::read_der(&d));
        let Some(cert) = cert else {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidPublicBlob",
                "The public blob of the server trust certificate is not a valid certificate.",
            );
        };
        let existing = views::trust_list(&self.world());
        if let Some((x, der)) = existing.iter().find(|(x, _)| x.eq_ignore_ascii_case(name)) {
            if der == &cert.der {
                return reply(StatusCode::OK, &views::trust(&self.names(), x, der));
            }
            return error(
                StatusCode::BAD_REQUEST,
                "CertificateAlreadyExists",
                format!("A server trust certificate named '{name}' already exists with another public key."),
            );
        }
        if let Some((x, _)) = existing.iter().find(|(_, der)| der == &cert.der) {
            return error(
                StatusCode::BAD_REQUEST,
                "CertificateAlreadyExists",
                format!("The certificate is already trusted as '{x}'."),
            );
        }
        self.accept(req, Change::PutTrust { name: name.to_string(), cert }, api)
    }
}
