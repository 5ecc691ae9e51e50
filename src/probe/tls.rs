//! The certificate chain a server presents on 1433, captured by milink's own
//! PRELOGIN + TLS exchange (tiberius does not expose it), then judged apart
//! from the handshake so that every problem is a finding, not an abort.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::deadline::Limit;
use crate::tds::{packet, prelogin};

#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    pub days_left: i64,
    pub key_algorithm: String,
    pub key_bits: usize,
    pub signature_algorithm: String,
    pub self_signed: bool,
    /// The validity period as Unix seconds, for arithmetic.
    #[serde(skip)]
    pub not_before_unix: i64,
    #[serde(skip)]
    pub not_after_unix: i64,
}

/// How the chain fares against the trusted roots, for `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Trusted,
    Expired,
    NotYetValid,
    WrongName,
    Untrusted,
    Invalid,
    /// notBefore is after notAfter: no moment exists when it is valid.
    InvalidValidity,
}

#[derive(Debug, Clone, Serialize)]
pub struct Capture {
    /// `tds7` (TLS inside PRELOGIN) or `tds8-strict` (TLS first).
    pub mode: &'static str,
    pub tls_version: Option<String>,
    pub chain: Vec<CertInfo>,
    pub verdict: Verdict,
    pub verdict_detail: Option<String>,
    #[serde(skip)]
    pub der: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Captured(Capture),
    /// PRELOGIN answered ENCRYPT_NOT_SUP: the server has no certificate to offer.
    NoTls,
    Failed {
        message: String,
    },
}

#[derive(Debug, Default)]
struct Recorder {
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

#[derive(Debug)]
struct Recording {
    rec: Arc<Recorder>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        *self.rec.chain.lock().unwrap_or_else(|p| p.into_inner()) = chain;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

fn client(rec: Arc<Recorder>, strict: bool) -> Arc<ClientConfig> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Recording { rec, provider }))
        .with_no_client_auth();
    if strict {
        cfg.alpn_protocols = vec![b"tds/8.0".to_vec()];
    }
    Arc::new(cfg)
}

/// Runs the handshake far enough to see the chain. `framed`: inside PRELOGIN packets.
async fn handshake(tcp: &mut TcpStream, name: &str, strict: bool) -> Result<Capture, String> {
    let rec = Arc::new(Recorder::default());
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let mut tls = ClientConnection::new(client(rec.clone(), strict), server_name).map_err(|e| e.to_string())?;
    let mut raw = vec![0u8; 16 * 1024];
    for _ in 0..32 {
        if !rec.chain.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
            break;
        }
        if tls.wants_write() {
            let mut out = Vec::new();
            while tls.wants_write() {
                tls.write_tls(&mut out).map_err(|e| e.to_string())?;
            }
            let wire = if strict { out } else { packet::frame(packet::PRELOGIN, &out, 4096) };
            tcp.write_all(&wire).await.map_err(|e| e.to_string())?;
            continue;
        }
        let data = if strict {
            let n = tcp.read(&mut raw).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the server closed the connection during the TLS handshake".into());
            }
            raw[..n].to_vec()
        } else {
            // Older servers frame their flight as 0x04; both are accepted.
            packet::read_message_of(tcp, packet::FROM_SERVER_PRELOGIN).await.map_err(|e| e.to_string())?.1
        };
        let mut rd = &data[..];
        while !rd.is_empty() {
            tls.read_tls(&mut rd).map_err(|e| e.to_string())?;
            tls.process_new_packets().map_err(|e| format!("TLS: {e}"))?;
        }
    }
    let der: Vec<Vec<u8>> = rec.chain.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|c| c.to_vec()).collect();
    if der.is_empty() {
        return Err("the server sent no certificate".into());
    }
    Ok(Capture {
        mode: if strict { "tds8-strict" } else { "tds7" },
        tls_version: tls.protocol_version().map(|v| format!("{v:?}")),
        chain: der.iter().filter_map(|d| describe(d)).collect(),
        verdict: Verdict::Invalid,
        verdict_detail: None,
        der,
    })
}

/// PRELOGIN (TDS 7.x) first; if the server hangs up on that, TLS first (strict).
/// Each attempt gets one step of `limit`; the TDS 8.0 fallback only what is left.
pub async fn capture(addr: SocketAddr, name: &str, limit: Limit) -> Outcome {
    let tds7 = tokio::time::timeout(limit.step(), async {
        let mut tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let hello = prelogin::build((0, 0, 0), prelogin::ENCRYPT_ON, false);
        packet::write_message(&mut tcp, packet::PRELOGIN, &hello, 4096).await.map_err(|e| e.to_string())?;
        let reply = packet::read_message_of(&mut tcp, packet::FROM_SERVER_PRELOGIN)
            .await
            .map_err(|e| format!("PRELOGIN: {e}"))?
            .1;
        let p = prelogin::parse(&reply).map_err(|e| format!("PRELOGIN reply: {e}"))?;
        if p.encryption == prelogin::ENCRYPT_NOT_SUP {
            return Ok(None);
        }
        handshake(&mut tcp, name, false).await.map(Some)
    })
    .await;
    let first = match tds7 {
        Ok(Ok(Some(c))) => return Outcome::Captured(c),
        Ok(Ok(None)) => return Outcome::NoTls,
        Err(_) => return Outcome::Failed { message: limit.why("TLS handshake") },
        Ok(Err(e)) => e,
    };
    if limit.passed() {
        return Outcome::Failed {
            message: format!("TDS 7.x: {first}; TDS 8.0 strict not tried: the run's deadline was reached"),
        };
    }
    let strict = tokio::time::timeout(limit.step(), async {
        let mut tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        handshake(&mut tcp, name, true).await
    })
    .await;
    // The first error is the real one; the fallback's goes beside it.
    let second = match strict {
        Ok(Ok(c)) => return Outcome::Captured(c),
        Ok(Err(e)) => e,
        Err(_) => limit.why("TLS handshake"),
    };
    Outcome::Failed { message: format!("TDS 7.x: {first}; then TDS 8.0 strict: {second}") }
}

/// Judges the captured chain against `roots`, for `name`, now.
pub fn judge(capture: &mut Capture, name: &str, roots: &RootCertStore) {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let verifier =
        match rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots.clone()), provider).build() {
            Ok(v) => v,
            Err(e) => {
                capture.verdict = Verdict::Untrusted;
                capture.verdict_detail = Some(format!("no trusted roots: {e}"));
                return;
            }
        };
    if let Some(c) = capture.chain.first()
        && c.not_before_unix > c.not_after_unix
    {
        capture.verdict = Verdict::InvalidValidity;
        capture.verdict_detail =
            Some(format!("invalid validity period: not before {} is after not after {}", c.not_before, c.not_after));
        return;
    }
    let certs: Vec<CertificateDer<'_>> = capture.der.iter().map(|d| CertificateDer::from(d.as_slice())).collect();
    let Ok(server_name) = ServerName::try_from(name.to_string()) else {
        capture.verdict = Verdict::WrongName;
        return;
    };
    let r = verifier.verify_server_cert(&certs[0], &certs[1..], &server_name, &[], UnixTime::now());
    (capture.verdict, capture.verdict_detail) = match r {
        Ok(_) => (Verdict::Trusted, None),
        Err(e) => {
            let v = match &e {
                rustls::Error::InvalidCertificate(c) => match c {
                    rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. } => {
                        Verdict::Expired
                    }
                    rustls::CertificateError::NotValidYet | rustls::CertificateError::NotValidYetContext { .. } => {
                        Verdict::NotYetValid
                    }
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. } => Verdict::WrongName,
                    rustls::CertificateError::UnknownIssuer => Verdict::Untrusted,
                    _ => Verdict::Invalid,
                },
                _ => Verdict::Invalid,
            };
            (v, Some(e.to_string()))
        }
    };
}

/// Subject, SANs, dates, key and signature of one DER certificate.
pub fn describe(der: &[u8]) -> Option<CertInfo> {
    use x509_parser::prelude::*;
    let (_, c) = parse_x509_certificate(der).ok()?;
    let sans = c
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .map(|n| match n {
                    GeneralName::DNSName(d) => d.to_string(),
                    GeneralName::IPAddress(ip) => format!("{ip:?}"),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let (key_algorithm, key_bits) = match c.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(r)) => ("RSA".to_string(), r.key_size()),
        Ok(x509_parser::public_key::PublicKey::EC(e)) => ("EC".to_string(), e.key_size()),
        Ok(other) => (format!("{other:?}").chars().take(12).collect(), 0),
        Err(_) => ("unknown".to_string(), 0),
    };
    let sig_oid = &c.signature_algorithm.algorithm;
    let signature_algorithm = oid_registry::OidRegistry::default()
        .with_all_crypto()
        .get(sig_oid)
        .map(|e| e.sn().to_string())
        .unwrap_or_else(|| sig_oid.to_id_string());
    let not_after = c.validity().not_after.to_datetime();
    Some(CertInfo {
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        sans,
        not_before: c.validity().not_before.to_datetime().to_string(),
        not_after: not_after.to_string(),
        days_left: (not_after - ::time::OffsetDateTime::now_utc()).whole_days(),
        key_algorithm,
        key_bits,
        signature_algorithm,
        self_signed: c.subject() == c.issuer(),
        not_before_unix: c.validity().not_before.timestamp(),
        not_after_unix: c.validity().not_after.timestamp(),
    })
}
