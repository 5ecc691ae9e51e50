//! Certificates the lab makes per scenario: a lab CA, each side's TDS server
//! certificate (valid or deliberately broken), and the endpoint certificates
//! that `sys.certificates` and `CERTENCODED` serve.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::lab::scenario::TlsCert;

pub struct LabCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
    pub der: Vec<u8>,
}

/// A server certificate and its key, ready for rustls.
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// An endpoint certificate as the catalog shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointCert {
    pub der: Vec<u8>,
    pub subject: String,
    pub issuer: String,
    pub serial_hex: String,
    pub start: OffsetDateTime,
    pub expiry: OffsetDateTime,
}

#[derive(Debug, thiserror::Error)]
#[error("certificate generation failed")]
pub struct CertError(#[from] rcgen::Error);

impl LabCa {
    pub fn new() -> Result<LabCa, CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn("milink lab CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3650);
        let cert = params.self_signed(&key)?;
        Ok(LabCa { pem: cert.pem(), der: cert.der().to_vec(), issuer: Issuer::new(params, key) })
    }

    /// The TDS server certificate for `host`, broken the way `kind` says.
    /// `valid_days`: how long a certificate that is not broken in time has left (default 365).
    pub fn server_identity(
        &self,
        host: &str,
        kind: TlsCert,
        valid_days: Option<i64>,
    ) -> Result<ServerIdentity, CertError> {
        let key = KeyPair::generate()?;
        let now = OffsetDateTime::now_utc();
        let san = match kind {
            TlsCert::WrongHost => format!("not-{host}"),
            _ => host.to_string(),
        };
        let mut params = CertificateParams::new(vec![san.clone()])?;
        params.distinguished_name = dn(&san);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        (params.not_before, params.not_after) = match kind {
            TlsCert::Expired => (now - Duration::days(400), now - Duration::days(3)),
            TlsCert::NotYetValid => (now + Duration::days(10), now + Duration::days(400)),
            TlsCert::InvertedValidity => (now + Duration::days(30), now - Duration::days(30)),
            _ => (now - Duration::days(30), now + Duration::days(valid_days.unwrap_or(365))),
        };
        let cert = match kind {
            TlsCert::SelfSigned => params.self_signed(&key)?,
            _ => params.signed_by(&key, &self.issuer)?,
        };
        let mut chain = vec![CertificateDer::from(cert.der().to_vec())];
        if kind != TlsCert::SelfSigned {
            chain.push(CertificateDer::from(self.der.clone()));
        }
        Ok(ServerIdentity { chain, key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())) })
    }
}

impl LabCa {
    /// A web server certificate for an address (the fake ARM, addressed by IP).
    pub fn web_identity(&self, ip: std::net::IpAddr) -> Result<ServerIdentity, CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.subject_alt_names = vec![rcgen::SanType::IpAddress(ip)];
        params.distinguished_name = dn(&ip.to_string());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = OffsetDateTime::now_utc();
        (params.not_before, params.not_after) = (now - Duration::days(1), now + Duration::days(365));
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServerIdentity {
            chain: vec![CertificateDer::from(cert.der().to_vec()), CertificateDer::from(self.der.clone())],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }
}

/// A certificate as `CREATE CERTIFICATE … WITH SUBJECT` makes one: self-signed
/// unless another issuer name is given, in which case a throwaway issuer signs it.
pub fn endpoint_cert(
    subject: &str,
    issuer: Option<&str>,
    start: OffsetDateTime,
    expiry: OffsetDateTime,
    serial: u64,
) -> Result<EndpointCert, CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = dn(subject);
    params.not_before = start;
    params.not_after = expiry;
    params.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
    let issuer_name = issuer.unwrap_or(subject).to_string();
    let cert = match issuer {
        Some(name) if name != subject => {
            let ikey = KeyPair::generate()?;
            let mut iparams = CertificateParams::new(Vec::<String>::new())?;
            iparams.distinguished_name = dn(name);
            iparams.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.signed_by(&key, &Issuer::new(iparams, ikey))?
        }
        _ => params.self_signed(&key)?,
    };
    Ok(EndpointCert {
        der: cert.der().to_vec(),
        subject: subject.to_string(),
        issuer: issuer_name,
        serial_hex: serial.to_be_bytes().iter().map(|b| format!("{b:02x} ")).collect::<String>().trim_end().to_string(),
        start,
        expiry,
    })
}

/// A certificate's bytes read back: subject, issuer, serial and dates (an import).
pub fn read_der(der: &[u8]) -> Option<EndpointCert> {
    let (rest, x) = x509_parser::parse_x509_certificate(der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let v = x.validity();
    let serial: Vec<String> = x.raw_serial().iter().map(|b| format!("{b:02x}")).collect();
    Some(EndpointCert {
        der: der.to_vec(),
        subject: x.subject().to_string(),
        issuer: x.issuer().to_string(),
        serial_hex: serial.join(" "),
        start: v.not_before.to_datetime(),
        expiry: v.not_after.to_datetime(),
    })
}

/// `CN=x` or, when the text already names attributes (`CN=a, O=b`), those.
fn dn(text: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if text.contains('=') {
        for part in text.split(',') {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            let kind = match k.trim().to_ascii_uppercase().as_str() {
                "CN" => DnType::CommonName,
                "O" => DnType::OrganizationName,
                "OU" => DnType::OrganizationalUnitName,
                "C" => DnType::CountryName,
                "L" => DnType::LocalityName,
                "S" | "ST" => DnType::StateOrProvinceName,
                _ => continue,
            };
            dn.push(kind, v.trim());
        }
    } else {
        dn.push(DnType::CommonName, text);
    }
    dn
}
