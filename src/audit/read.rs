//! Reading one instance's certificates: its catalog over SQL, the TLS
//! certificate it presents on its TDS port (milink's own capture, beside the
//! login), and for a managed instance with an ARM resource ID, its trust
//! certificates and links as ARM reports them. Everything within one deadline.

use std::net::SocketAddr;
use std::time::Duration;

use crate::azure::arm::Arm;
use crate::deadline::Limit;
use crate::probe::sql::{self, Auth, Fields, Record, Target, unhex};
use crate::probe::tls;
use crate::profile::{ArmAuth, ArmSection, Profile};

use super::inventory::{Credential, Instance, Kind};

/// Where a certificate is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Usage {
    /// The mirroring endpoint's own certificate.
    Endpoint,
    /// SQL Server: the managed instance's certificate, imported under its FQDN.
    Partner,
    /// SQL Server: an Azure root CA.
    AzureRoot,
    /// The certificate presented on the TDS port.
    Tls,
    /// Managed instance: a SQL Server certificate it trusts.
    Trust,
    /// Managed instance: the partner certificate's validity as ARM reports it
    /// for a link (`partnerAuthCertValidity`).
    ArmPartnerValidity,
}

impl Usage {
    pub fn as_str(&self) -> &'static str {
        match self {
            Usage::Endpoint => "endpoint",
            Usage::Partner => "partner",
            Usage::AzureRoot => "azure-root",
            Usage::Tls => "tls",
            Usage::Trust => "trust",
            Usage::ArmPartnerValidity => "arm-partner-validity",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SeenCert {
    pub usage: Usage,
    pub name: String,
    pub subject: String,
    /// SHA-1 of the DER, upper-case hex (what sys.certificates and ARM show).
    pub thumbprint: Option<String>,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub key: Option<String>,
    pub signature: Option<String>,
    pub der: Option<Vec<u8>>,
}

/// A distributed availability group seen on one side: its name and the other
/// replica's endpoint host.
#[derive(Debug, Clone)]
pub struct Dag {
    pub name: String,
    pub partner_host: String,
}

#[derive(Debug, Default)]
pub struct Read {
    pub certs: Vec<SeenCert>,
    pub dags: Vec<Dag>,
    /// Managed instance: thumbprints ARM lists as server trust certificates.
    pub arm_trust: Option<Vec<String>>,
    /// What could not be read, though the instance could.
    pub notes: Vec<String>,
}

impl Read {
    pub fn of(&self, usage: Usage) -> impl Iterator<Item = &SeenCert> {
        self.certs.iter().filter(move |c| c.usage == usage)
    }
}

const CERTIFICATES: &str = "SELECT name, certificate_id, pvt_key_encryption_type, subject, expiry_date, start_date, \
     CERTENCODED(certificate_id) AS der FROM sys.certificates";
const ENDPOINT: &str = "SELECT certificate_id FROM sys.database_mirroring_endpoints";
const DAGS: &str = "SELECT ag.name AS ag_name, r.replica_server_name, r.endpoint_url FROM sys.availability_groups AS ag \
     JOIN sys.availability_replicas AS r ON r.group_id = ag.group_id WHERE ag.is_distributed = 1";
const MI_ENDPOINT_CERT: &str = "EXEC sp_get_endpoint_certificate 4";

/// Names of the Azure root CAs SQL Server should hold ("Azure Certificate
/// Authority details").
const AZURE_ROOTS: &[&str] = &[
    "DigiCert Global Root G2",
    "DigiCert Global Root G3",
    "DigiCert Global Root CA",
    "Microsoft RSA Root Certificate Authority 2017",
    "Microsoft ECC Root Certificate Authority 2017",
    "Baltimore CyberTrust Root",
];

fn seen(usage: Usage, name: &str, der: Option<Vec<u8>>, catalog: Option<&Record>) -> SeenCert {
    let info = der.as_deref().and_then(tls::describe);
    let catalog_time =
        |k: &str| catalog.and_then(|r| r.str(k)).and_then(sql::datetime).map(|t| t.assume_utc().unix_timestamp());
    SeenCert {
        usage,
        name: name.to_string(),
        subject: info
            .as_ref()
            .map(|i| i.subject.clone())
            .or_else(|| catalog.and_then(|r| r.str("subject")).map(str::to_string))
            .unwrap_or_default(),
        thumbprint: der.as_deref().map(crate::tsql::thumbprint),
        not_before: info.as_ref().map(|i| i.not_before_unix).or_else(|| catalog_time("start_date")),
        not_after: info.as_ref().map(|i| i.not_after_unix).or_else(|| catalog_time("expiry_date")),
        key: info.as_ref().map(|i| format!("{} {}", i.key_algorithm, i.key_bits)),
        signature: info.as_ref().map(|i| i.signature_algorithm.clone()),
        der,
    }
}

/// The host of an endpoint URL: `tcp://h:5022;Server=[x]` → `h`.
pub fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let hostport = rest.split([';', '/']).next().unwrap_or("");
    let host = match hostport.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => hostport,
    };
    host.trim_matches(['[', ']']).to_ascii_lowercase()
}

/// Reads one instance; `Err` is why it could not be read (the instance is
/// UNKNOWN). The whole read ends within `timeout`.
pub async fn read(i: &Instance, timeout: Duration) -> Result<Read, String> {
    match tokio::time::timeout(timeout, read_unbounded(i, timeout)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no complete answer within {timeout:?}")),
    }
}

async fn read_unbounded(i: &Instance, timeout: Duration) -> Result<Read, String> {
    let auth = match &i.credential {
        Err(why) => return Err(why.clone()),
        Ok(Credential::Password(p)) => Auth::Sql { user: i.user.clone(), password: p.clone() },
        Ok(Credential::Token(t)) => Auth::Token(t.clone()),
    };
    let addr = match i.address {
        Some(ip) => SocketAddr::new(ip, i.port),
        None => tokio::net::lookup_host((i.host.as_str(), i.port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("{} does not resolve", i.host))?,
    };
    let target = Target {
        name: i.host.clone(),
        addr,
        auth,
        ca_cert: i.ca_cert.clone(),
        trust_server_certificate: i.trust_server_certificate,
        strict: false,
    };
    // The TLS capture and the login don't wait for each other.
    let (captured, catalog) =
        tokio::join!(tls::capture(addr, &i.host, Limit::new(timeout)), catalog(&target, i.kind, timeout));
    let mut read = catalog?;
    match captured {
        tls::Outcome::Captured(c) => {
            if let Some(der) = c.der.first() {
                let mut cert = seen(Usage::Tls, "", Some(der.clone()), None);
                cert.name = cert.subject.clone();
                read.certs.push(cert);
            }
        }
        tls::Outcome::NoTls => read.notes.push("the TDS port offers no TLS certificate".into()),
        tls::Outcome::Failed { message } => read.notes.push(format!("TLS capture: {message}")),
    }
    if let Some(arm) = &i.arm {
        match arm {
            Err(why) => read.notes.push(format!("ARM: {why}")),
            Ok(a) => {
                if let Err(e) = from_arm(a, timeout, &mut read).await {
                    read.notes.push(format!("ARM: {e}"));
                }
            }
        }
    }
    Ok(read)
}

async fn catalog(t: &Target, kind: Kind, timeout: Duration) -> Result<Read, String> {
    let mut s = sql::login(t, Limit::new(timeout)).await.map_err(|f| match f.code {
        Some(code) => format!("login failed: {} (error {code})", f.message),
        None => format!("login failed: {}", f.message),
    })?;
    let mut read = Read::default();
    // One round trip: the third query is the endpoint's, by the kind of server.
    let third = if kind == Kind::SqlServer { ENDPOINT } else { MI_ENDPOINT_CERT };
    let mut a = s.answers(&[CERTIFICATES, DAGS, third]).await;
    let certs = a.rows().map_err(|f| format!("reading sys.certificates: {}", f.message))?;
    let der = |r: &Record| r.str("der").and_then(unhex);
    match a.rows() {
        Ok(rows) => read.dags = dags(&rows, kind, &t.name),
        Err(f) => read.notes.push(format!("reading the distributed availability groups: {}", f.message)),
    }
    match kind {
        Kind::SqlServer => {
            let endpoint_ids: Vec<i64> = match a.rows() {
                Ok(rows) => rows.iter().filter_map(|r| r.int("certificate_id")).filter(|&id| id != 0).collect(),
                Err(f) => {
                    read.notes.push(format!("reading the mirroring endpoint: {}", f.message));
                    Vec::new()
                }
            };
            let partners: Vec<&str> = read.dags.iter().map(|d| d.partner_host.as_str()).collect();
            for r in &certs {
                let name = r.str("name").unwrap_or("");
                let subject = r.str("subject").unwrap_or("");
                let usage = if r.int("certificate_id").is_some_and(|id| endpoint_ids.contains(&id)) {
                    Usage::Endpoint
                } else if partners.iter().any(|p| p.eq_ignore_ascii_case(name)) || is_mi_fqdn(name) {
                    Usage::Partner
                } else if AZURE_ROOTS.iter().any(|root| name.contains(root) || subject.contains(root)) {
                    Usage::AzureRoot
                } else {
                    continue;
                };
                read.certs.push(seen(usage, name, der(r), Some(r)));
            }
        }
        Kind::ManagedInstance => {
            let presented = match a.rows() {
                Ok(rows) => rows.first().and_then(|r| r.str("endpointcertificatepublickey")).and_then(unhex),
                Err(f) => {
                    read.notes.push(format!("sp_get_endpoint_certificate: {}", f.message));
                    None
                }
            };
            if let Some(d) = &presented {
                let name = certs.iter().find(|r| der(r).as_ref() == Some(d)).and_then(|r| r.str("name"));
                read.certs.push(seen(Usage::Endpoint, name.unwrap_or("DATABASE_MIRRORING"), Some(d.clone()), None));
            }
            // The certificates it trusts: no private key of its own. Whether server
            // trust certificates show in sys.certificates is UNCONFIRMED; ARM's list
            // is read too when the inventory gives the resource ID.
            for r in &certs {
                let name = r.str("name").unwrap_or("");
                if name.starts_with("##") || r.str("pvt_key_encryption_type") != Some("NA") {
                    continue;
                }
                let d = der(r);
                if d.is_some() && d == presented {
                    continue;
                }
                read.certs.push(seen(Usage::Trust, name, d, Some(r)));
            }
        }
    }
    Ok(read)
}

fn is_mi_fqdn(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [".database.windows.net", ".database.usgovcloudapi.net", ".database.chinacloudapi.cn"]
        .iter()
        .any(|zone| n.ends_with(zone))
}

/// The other replica of each DAG: the one whose endpoint is not this host's.
fn dags(rows: &[Record], kind: Kind, own_host: &str) -> Vec<Dag> {
    let mut out: Vec<Dag> = Vec::new();
    for r in rows {
        let name = r.str("ag_name").unwrap_or("").to_string();
        let host = url_host(r.str("endpoint_url").unwrap_or(""));
        // On SQL Server the partner is the managed instance (its FQDN in the URL);
        // on the managed instance, the partner is whatever is not its own FQDN.
        let partner = match kind {
            Kind::SqlServer => is_mi_fqdn(&host),
            Kind::ManagedInstance => !host.eq_ignore_ascii_case(own_host),
        };
        if partner && !out.iter().any(|d| d.name == name) {
            out.push(Dag { name, partner_host: host });
        }
    }
    out
}

async fn from_arm(a: &super::inventory::ArmAccess, timeout: Duration, read: &mut Read) -> Result<(), String> {
    let profile = Profile {
        arm: ArmSection {
            base_url: a.base_url.clone(),
            resource_id: Some(a.resource_id.clone()),
            auth: if a.token.is_some() { ArmAuth::Token } else { ArmAuth::Auto },
            ca_cert: a.ca_cert.clone(),
            timeout,
            ..Default::default()
        },
        arm_token: a.token.clone(),
        ..Default::default()
    };
    let arm = Arm::new(&profile).map_err(|e| e.to_string())?;
    let api = crate::azure::arm::NEW_API;
    let trust = arm.list(&arm.url("serverTrustCertificates", api)).await.map_err(|e| e.to_string())?;
    read.arm_trust = Some(
        trust.iter().filter_map(|t| t["properties"]["thumbprint"].as_str()).map(|t| t.to_ascii_uppercase()).collect(),
    );
    let dags = arm.list(&arm.url("distributedAvailabilityGroups", api)).await.map_err(|e| e.to_string())?;
    for d in &dags {
        let link = d["name"].as_str().unwrap_or("");
        for db in d["properties"]["databases"].as_array().into_iter().flatten() {
            let v = &db["partnerAuthCertValidity"];
            let (Some(name), Some(expiry)) = (v["certificateName"].as_str(), v["expiryDate"].as_str()) else {
                continue;
            };
            let not_after = time::OffsetDateTime::parse(expiry, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| t.unix_timestamp());
            let label = format!("{name} (link {link})");
            if read.certs.iter().any(|c| c.usage == Usage::ArmPartnerValidity && c.name == label) {
                continue;
            }
            read.certs.push(SeenCert {
                usage: Usage::ArmPartnerValidity,
                name: label,
                subject: String::new(),
                thumbprint: None,
                not_before: None,
                not_after,
                key: None,
                signature: None,
                der: None,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_url_hosts() {
        assert_eq!(url_host("tcp://mi-1.abc.database.windows.net:5022;Server=[mi-1]"), "mi-1.abc.database.windows.net");
        assert_eq!(url_host("TCP://127.1.2.3:5022"), "127.1.2.3");
        assert_eq!(url_host("TCP://[::1]:5022"), "::1");
        assert_eq!(url_host("TCP://SQL01"), "sql01");
    }
}
