//! `milink lab`: stand-ins on loopback that speak the real protocols, built
//! from a scenario file.

pub mod catalog;
pub mod certs;
pub mod dns;
pub mod listener;
pub mod scenario;
pub mod sql;
pub mod tds;

use time::OffsetDateTime;

use catalog::{BuildInput, Catalog, CatalogError};
use scenario::Scenario;

/// Both sides' catalogs. Certificates are made first so an import on one side
/// is byte-equal to the other side's certificate.
pub fn build_catalogs(
    scenario: &Scenario,
    now: OffsetDateTime,
    sql_endpoint_host: &str,
) -> Result<(Catalog, Catalog), CatalogError> {
    let sql_certs = catalog::make_certs(&scenario.sql_server, now, 0x1000)?;
    let mi_certs = catalog::make_certs(&scenario.managed_instance, now, 0x2000)?;
    let sql = catalog::build(BuildInput {
        label: "sql_server",
        scenario,
        side: &scenario.sql_server,
        own: &sql_certs,
        other_side: &scenario.managed_instance,
        other: &mi_certs,
        sql_endpoint_host: sql_endpoint_host.to_string(),
        now,
    })?;
    let mi = catalog::build(BuildInput {
        label: "managed_instance",
        scenario,
        side: &scenario.managed_instance,
        own: &mi_certs,
        other_side: &scenario.sql_server,
        other: &sql_certs,
        sql_endpoint_host: sql_endpoint_host.to_string(),
        now,
    })?;
    Ok((sql, mi))
}

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use scenario::Side;
use tds::server::TdsConfig;

/// What a client needs to reach one side; the first line of `lab up --json`.
#[derive(Debug, Clone, Serialize)]
pub struct SideInfo {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// PEM file of the lab CA that signed the TDS certificates.
    pub ca_cert: String,
    pub name: String,
    pub fqdn: String,
    pub endpoint: Option<EndpointInfo>,
    pub redirect_port: Option<u16>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EndpointInfo {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct DnsInfo {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabInfo {
    pub sql_server: SideInfo,
    pub managed_instance: SideInfo,
    pub dns: DnsInfo,
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Scenario(#[from] scenario::ScenarioError),
    #[error("building the catalogs: {0}")]
    Catalog(#[from] CatalogError),
    #[error("making certificates: {0}")]
    Cert(#[from] certs::CertError),
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("DNS zone: {0}")]
    Dns(String),
    #[error("binding {what} on {addr}: {source}")]
    Bind {
        what: String,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A running lab. Dropping it stops every stand-in and removes its files.
pub struct Lab {
    pub info: LabInfo,
    dir: PathBuf,
    tasks: Vec<JoinHandle<()>>,
    _listeners: Vec<listener::EndpointListener>,
    _dns: dns::DnsServer,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Each lab gets its own 127.a.b.0/24 so that both sides can use the real
/// ports (1433, 5022) and labs can run side by side.
fn loopback_base() -> [u8; 3] {
    let r = random();
    [127, 1 + (r % 250) as u8, (r >> 8) as u8]
}

impl Lab {
    pub async fn start(scenario: &Scenario) -> Result<Lab, LabError> {
        let mut last = None;
        for _ in 0..8 {
            match Lab::start_at(scenario, loopback_base()).await {
                Err(LabError::Bind { source, .. }) if source.kind() == io::ErrorKind::AddrInUse => {
                    last = Some(source)
                }
                other => return other,
            }
        }
        Err(LabError::Io(
            last.unwrap_or_else(|| io::ErrorKind::AddrInUse.into()),
        ))
    }

    async fn start_at(scenario: &Scenario, base: [u8; 3]) -> Result<Lab, LabError> {
        let ip = |last: u8| IpAddr::V4(Ipv4Addr::new(base[0], base[1], base[2], last));
        let (sql_ip, mi_ip, dns_ip) = (ip(2), ip(3), ip(4));
        let now = time::OffsetDateTime::now_utc();

        let ca = certs::LabCa::new()?;
        let dir =
            std::env::temp_dir().join(format!("milink-lab-{}-{:x}", std::process::id(), random()));
        std::fs::create_dir_all(&dir)?;
        let ca_path = dir.join("lab-ca.pem");
        std::fs::write(&ca_path, &ca.pem)?;

        let (sql_catalog, mi_catalog) = build_catalogs(scenario, now, &sql_ip.to_string())?;
        let mut tasks = Vec::new();
        let mut listeners = Vec::new();
        let mut infos = Vec::new();
        for ((_, side), (catalog, ip)) in scenario
            .sides()
            .into_iter()
            .zip([(sql_catalog, sql_ip), (mi_catalog, mi_ip)])
        {
            let identity = ca.server_identity(&side.fqdn, side.tds.certificate)?;
            let (tls_prelogin, tls_strict) = tds::tls_configs(&identity)?;
            let catalog = Arc::new(Mutex::new(catalog));
            let (major, minor, build, _) = side.version_parts();
            let cfg = |redirect: Option<(String, u16)>| TdsConfig {
                server_name: side.name.clone(),
                version: (major, minor, build),
                catalog: catalog.clone(),
                encryption: side.tds.encryption,
                tls_prelogin: tls_prelogin.clone(),
                tls_strict: tls_strict.clone(),
                legacy_framing: side.tds.legacy_tls_framing,
                user: side.login.user.clone(),
                password: side.login.password.clone(),
                accept_access_token: side.login.aad_token.unwrap_or(side.is_managed_instance()),
                redirect,
                fault: side.tds.fault,
            };
            let tds_addr = SocketAddr::new(ip, 1433);
            let listener = bind_tcp(tds_addr, "TDS").await?;
            let redirect = side.tds.redirect_port.map(|p| (ip.to_string(), p));
            if let Some((_, port)) = &redirect {
                let node = bind_tcp(SocketAddr::new(ip, *port), "TDS redirect target").await?;
                tasks.push(tokio::spawn(tds::server::serve(node, Arc::new(cfg(None)))));
            }
            tasks.push(tokio::spawn(tds::server::serve(
                listener,
                Arc::new(cfg(redirect)),
            )));
            let endpoint = match &side.endpoint {
                Some(ep) => {
                    let addr = SocketAddr::new(ip, ep.port);
                    let l = listener::bind(addr, ep.listener, ep.slow_ms).map_err(|source| {
                        LabError::Bind {
                            what: "mirroring endpoint".into(),
                            addr,
                            source,
                        }
                    })?;
                    let info = EndpointInfo {
                        host: ip.to_string(),
                        port: l.addr.port(),
                    };
                    listeners.push(l);
                    Some(info)
                }
                None => None,
            };
            infos.push(side_info(side, ip, &ca_path, endpoint));
        }
        let zone = dns::Zone::new(
            &[
                (&scenario.sql_server.fqdn, sql_ip),
                (&scenario.managed_instance.fqdn, mi_ip),
            ],
            &scenario.dns.records,
            vec![
                (sql_ip, dns::View::SqlServer),
                (mi_ip, dns::View::ManagedInstance),
            ],
        )
        .map_err(LabError::Dns)?;
        let dns = dns::start(dns_ip, zone).await?;
        let managed_instance = infos.pop().expect("two sides");
        let sql_server = infos.pop().expect("two sides");
        Ok(Lab {
            info: LabInfo {
                sql_server,
                managed_instance,
                dns: DnsInfo {
                    host: dns.addr.ip().to_string(),
                    port: dns.addr.port(),
                },
            },
            dir,
            tasks,
            _listeners: listeners,
            _dns: dns,
        })
    }
}

async fn bind_tcp(addr: SocketAddr, what: &str) -> Result<TcpListener, LabError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| LabError::Bind {
            what: what.into(),
            addr,
            source,
        })
}

fn side_info(
    side: &Side,
    ip: IpAddr,
    ca: &std::path::Path,
    endpoint: Option<EndpointInfo>,
) -> SideInfo {
    SideInfo {
        host: ip.to_string(),
        port: 1433,
        user: side.login.user.clone(),
        password: side.login.password.clone(),
        ca_cert: ca.display().to_string(),
        name: side.name.clone(),
        fqdn: side.fqdn.clone(),
        endpoint,
        redirect_port: side.tds.redirect_port,
    }
}
