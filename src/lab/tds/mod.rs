//! A TDS server that real clients (tiberius, python-tds, FreeTDS) accept.

pub mod login7;
pub mod rpc;
pub mod server;
pub mod tm;
pub mod token;
pub mod transport;

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::aws_lc_rs;

use crate::lab::certs::ServerIdentity;

/// (inside PRELOGIN: TLS 1.2 only, as SQL Server speaks it there; strict: TLS 1.2
/// or 1.3 with ALPN `tds/8.0`).
pub fn tls_configs(id: &ServerIdentity) -> Result<(Arc<ServerConfig>, Arc<ServerConfig>), rustls::Error> {
    let build = |versions: &[&'static rustls::SupportedProtocolVersion]| {
        ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_protocol_versions(versions)?
            .with_no_client_auth()
            .with_single_cert(id.chain.clone(), id.key.clone_key())
    };
    let prelogin = build(&[&rustls::version::TLS12])?;
    let mut strict = build(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    strict.alpn_protocols = vec![b"tds/8.0".to_vec()];
    Ok((Arc::new(prelogin), Arc::new(strict)))
}
