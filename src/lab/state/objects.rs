//! The objects a server holds that a link is made of, as values.

use time::OffsetDateTime;

use crate::lab::certs::EndpointCert;

/// `sys.certificates.pvt_key_encryption_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateKey {
    /// Encrypted by the database master key.
    MasterKey,
    Password,
    ServiceMasterKey,
    /// A public key only (an import).
    None,
}

impl PrivateKey {
    pub fn parse(code: &str) -> PrivateKey {
        match code.to_ascii_uppercase().as_str() {
            "MK" => PrivateKey::MasterKey,
            "PW" => PrivateKey::Password,
            "SK" => PrivateKey::ServiceMasterKey,
            _ => PrivateKey::None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            PrivateKey::MasterKey => "MK",
            PrivateKey::Password => "PW",
            PrivateKey::ServiceMasterKey => "SK",
            PrivateKey::None => "NA",
        }
    }

    pub fn desc(self) -> &'static str {
        match self {
            PrivateKey::MasterKey => "ENCRYPTED_BY_MASTER_KEY",
            PrivateKey::Password => "ENCRYPTED_BY_PASSWORD",
            PrivateKey::ServiceMasterKey => "ENCRYPTED_BY_SERVICE_MASTER_KEY",
            PrivateKey::None => "NO_PRIVATE_KEY",
        }
    }
}

/// How a certificate came to be on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The server's own (system certificates, or the scenario's).
    Own,
    /// `CREATE CERTIFICATE … WITH SUBJECT` or `FROM BINARY`.
    Statement,
    /// A server trust certificate uploaded over ARM (managed instance).
    ServerTrust,
}

#[derive(Debug, Clone)]
pub struct Certificate {
    pub id: i64,
    pub name: String,
    pub cert: EndpointCert,
    pub private_key: PrivateKey,
    pub origin: Origin,
    /// Domains `sp_certificate_add_issuer` registered this certificate for.
    pub issuer_for: Vec<String>,
}

impl Certificate {
    pub fn thumbprint(&self) -> Vec<u8> {
        use sha1::Digest;
        sha1::Sha1::digest(&self.cert.der).to_vec()
    }

    pub fn valid_at(&self, t: OffsetDateTime) -> bool {
        self.cert.start <= t && t <= self.cert.expiry
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointState {
    Started,
    Stopped,
    Disabled,
}

impl EndpointState {
    pub fn parse(s: &str) -> Option<EndpointState> {
        match s.to_ascii_uppercase().as_str() {
            "STARTED" => Some(EndpointState::Started),
            "STOPPED" => Some(EndpointState::Stopped),
            "DISABLED" => Some(EndpointState::Disabled),
            _ => None,
        }
    }

    pub fn id(self) -> i64 {
        self as i64
    }

    pub fn desc(self) -> &'static str {
        match self {
            EndpointState::Started => "STARTED",
            EndpointState::Stopped => "STOPPED",
            EndpointState::Disabled => "DISABLED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Windows {
    Ntlm,
    Kerberos,
    Negotiate,
}

impl Windows {
    fn desc(self) -> &'static str {
        match self {
            Windows::Ntlm => "NTLM",
            Windows::Kerberos => "KERBEROS",
            Windows::Negotiate => "NEGOTIATE",
        }
    }
}

/// `AUTHENTICATION = …` of a mirroring endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub windows: Option<Windows>,
    /// The certificate's name, when certificate authentication is on.
    pub certificate: Option<String>,
    /// `CERTIFICATE c WINDOWS …`: certificate tried first.
    pub certificate_first: bool,
}

/// The order `sys.database_mirroring_endpoints.connection_auth` numbers them (1-10).
const AUTH_DESCS: [&str; 10] = [
    "NTLM",
    "KERBEROS",
    "NEGOTIATE",
    "CERTIFICATE",
    "NTLM, CERTIFICATE",
    "KERBEROS, CERTIFICATE",
    "NEGOTIATE, CERTIFICATE",
    "CERTIFICATE, NTLM",
    "CERTIFICATE, KERBEROS",
    "CERTIFICATE, NEGOTIATE",
];

impl Auth {
    /// From a `connection_auth_desc` (as scenarios give it) and the certificate name.
    pub fn from_desc(desc: &str, certificate: Option<String>) -> Auth {
        let d = desc.to_ascii_uppercase();
        let windows = if d.contains("NTLM") {
            Some(Windows::Ntlm)
        } else if d.contains("KERBEROS") {
            Some(Windows::Kerberos)
        } else if d.contains("NEGOTIATE") {
            Some(Windows::Negotiate)
        } else {
            None
        };
        let has_cert = d.contains("CERTIFICATE") || windows.is_none();
        Auth {
            windows,
            certificate: if has_cert { certificate.or(Some(String::new())) } else { None },
            certificate_first: d.starts_with("CERTIFICATE,"),
        }
    }

    pub fn desc(&self) -> String {
        match (self.windows, self.certificate.is_some()) {
            (Some(w), false) => w.desc().into(),
            (None, _) => "CERTIFICATE".into(),
            (Some(w), true) if self.certificate_first => format!("CERTIFICATE, {}", w.desc()),
            (Some(w), true) => format!("{}, CERTIFICATE", w.desc()),
        }
    }

    pub fn id(&self) -> i64 {
        let d = self.desc();
        AUTH_DESCS.iter().position(|a| *a == d).map(|i| i as i64 + 1).unwrap_or(4)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    Disabled,
    Supported,
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Aes,
    Rc4,
}

const ALGORITHM_DESCS: [&str; 9] =
    ["NONE", "RC4", "AES", "NONE, RC4", "NONE, AES", "RC4, AES", "AES, RC4", "NONE, RC4, AES", "NONE, AES, RC4"];

/// `ENCRYPTION = … ALGORITHM …` of a mirroring endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cipher {
    pub encryption: Encryption,
    /// In the order given (`AES RC4` prefers AES).
    pub algorithms: Vec<Algorithm>,
}

impl Cipher {
    /// From an `encryption_algorithm_desc` (as scenarios give it).
    pub fn from_desc(enabled: bool, desc: &str) -> Cipher {
        let d = desc.to_ascii_uppercase();
        let mut algorithms: Vec<(usize, Algorithm)> = Vec::new();
        if let Some(i) = d.find("AES") {
            algorithms.push((i, Algorithm::Aes));
        }
        if let Some(i) = d.find("RC4") {
            algorithms.push((i, Algorithm::Rc4));
        }
        algorithms.sort_by_key(|(i, _)| *i);
        let encryption = match (enabled, d.starts_with("NONE")) {
            (false, _) => Encryption::Disabled,
            (true, true) if algorithms.is_empty() => Encryption::Disabled,
            (true, true) => Encryption::Supported,
            (true, false) => Encryption::Required,
        };
        Cipher { encryption, algorithms: algorithms.into_iter().map(|(_, a)| a).collect() }
    }

    pub fn enabled(&self) -> bool {
        self.encryption != Encryption::Disabled
    }

    pub fn desc(&self) -> String {
        let names: Vec<&str> = self
            .algorithms
            .iter()
            .map(|a| match a {
                Algorithm::Aes => "AES",
                Algorithm::Rc4 => "RC4",
            })
            .collect();
        match self.encryption {
            Encryption::Disabled => "NONE".into(),
            Encryption::Supported => format!("NONE, {}", names.join(", ")),
            Encryption::Required => names.join(", "),
        }
    }

    pub fn id(&self) -> i64 {
        let d = self.desc();
        ALGORITHM_DESCS.iter().position(|a| *a == d).unwrap_or(0) as i64
    }

    /// Whether two endpoints can agree on an algorithm.
    pub fn compatible(&self, other: &Cipher) -> bool {
        match (self.encryption, other.encryption) {
            (Encryption::Disabled, Encryption::Disabled) => true,
            (Encryption::Disabled, Encryption::Required) | (Encryption::Required, Encryption::Disabled) => false,
            (Encryption::Disabled, Encryption::Supported) | (Encryption::Supported, Encryption::Disabled) => true,
            _ => self.algorithms.iter().any(|a| other.algorithms.contains(a)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: i64,
    pub name: String,
    pub port: u16,
    pub state: EndpointState,
    /// NONE, PARTNER, WITNESS or ALL.
    pub role: String,
    pub auth: Auth,
    pub cipher: Cipher,
    /// `LISTENER_IP`: one address, or all (`None`, `sys.tcp_endpoints.ip_address` NULL).
    pub listener_ip: Option<String>,
}

impl Endpoint {
    pub fn role_id(&self) -> i64 {
        ["NONE", "PARTNER", "WITNESS", "ALL"].iter().position(|r| r.eq_ignore_ascii_case(&self.role)).unwrap_or(3)
            as i64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvailabilityMode {
    Asynchronous,
    Synchronous,
}

#[derive(Debug, Clone)]
pub struct Replica {
    pub id: String,
    /// The server's name, or in a distributed AG the member AG's name.
    pub name: String,
    /// `ENDPOINT_URL`, or `LISTENER_URL` in a distributed AG.
    pub endpoint_url: String,
    pub mode: AvailabilityMode,
    pub failover_manual: bool,
    pub seeding_automatic: bool,
    pub session_timeout: i64,
}

#[derive(Debug, Clone)]
pub struct AvailabilityGroup {
    pub id: String,
    pub name: String,
    pub distributed: bool,
    /// (cluster_type, cluster_type_desc): 0 WSFC, 1 EXTERNAL, 2 NONE.
    pub cluster_type: (i64, &'static str),
    pub replicas: Vec<Replica>,
    /// Databases of a plain AG.
    pub databases: Vec<String>,
    pub created: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct Database {
    pub id: i64,
    pub name: String,
    /// ONLINE, RESTORING…
    pub state: String,
    pub recovery: String,
    pub log_files: i64,
    pub filestream: bool,
    pub in_memory: bool,
    pub tde: bool,
    /// The certificate in master under the database encryption key (else an asymmetric key).
    pub tde_certificate: Option<String>,
    pub log_size_mb: f64,
    pub log_used_percent: f64,
    pub log_reuse_wait: String,
    pub size_mb: i64,
    pub created: OffsetDateTime,
    /// The AG database id, once the database is in an availability group.
    pub group_database_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LogLine {
    pub at: OffsetDateTime,
    pub process: String,
    pub text: String,
}
