//! `milink lab`: stand-ins on loopback that speak the real protocols, built
//! from a scenario file.

pub mod addr;
pub mod agent;
pub mod catalog;
pub mod certs;
pub mod dns;
pub mod listener;
pub mod netns;
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

use crate::profile::{DnsSection, ManagedInstanceSection, ProbesSection, Profile, Secret, SqlServerSection};
use scenario::Side;
use tds::server::TdsConfig;

/// What a client needs to reach one side; the first line of `lab up --json`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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
    /// Topology mode: the namespace to run clients in (`ip netns exec <it> …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_netns: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Scenario(#[from] scenario::ScenarioError),
    #[error("building the catalogs")]
    Catalog(#[from] CatalogError),
    #[error("making certificates")]
    Cert(#[from] certs::CertError),
    #[error("TLS setup")]
    Tls(#[from] rustls::Error),
    #[error("DNS zone: {0}")]
    Dns(String),
    #[error("binding {what} on {addr}")]
    Bind { what: String, addr: SocketAddr, source: io::Error },
    #[error("{0} needs topology mode (root; milink lab up --topology)")]
    NeedsTopology(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

pub use addr::Mode;

/// A running lab. Dropping it stops every stand-in and removes its files and
/// namespaces.
pub struct Lab {
    pub info: LabInfo,
    pub mode: Mode,
    dir: PathBuf,
    tasks: Vec<JoinHandle<()>>,
    _listeners: Vec<listener::EndpointListener>,
    _dns: dns::DnsServer,
    // Dropped last: the namespaces go once nothing in them is served.
    net: Net,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(t) = &self.net.topology {
            t.remove();
        }
    }
}

fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    h.finish()
}

/// Addresses of the sides and the DNS server, and the namespaces in topology mode.
struct Net {
    sql: IpAddr,
    mi: IpAddr,
    dns: SocketAddr,
    topology: Option<Arc<netns::Topology>>,
}

impl Net {
    /// Each loopback lab gets its own 127.a.b.0/24 so that both sides can use the
    /// real ports (1433, 5022) and labs can run side by side.
    fn loopback() -> Net {
        let r = random();
        let ip = |last: u8| IpAddr::V4(Ipv4Addr::new(127, 1 + (r % 250) as u8, (r >> 8) as u8, last));
        Net { sql: ip(2), mi: ip(3), dns: SocketAddr::new(ip(4), 0), topology: None }
    }

    fn topology(t: netns::Topology) -> Net {
        Net {
            sql: IpAddr::V4(netns::SQL),
            mi: IpAddr::V4(netns::MI),
            dns: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 53),
            topology: Some(Arc::new(t)),
        }
    }

    /// Runs `f` where `place`'s sockets must be made.
    fn within<R: Send>(&self, place: netns::Place, f: impl FnOnce() -> R + Send) -> io::Result<R> {
        match &self.topology {
            Some(t) => t.within(place, &tokio::runtime::Handle::current(), f),
            None => Ok(f()),
        }
    }
}

impl Lab {
    pub async fn start(scenario: &Scenario) -> Result<Lab, LabError> {
        Lab::start_in(scenario, Mode::Loopback).await
    }

    pub async fn start_in(scenario: &Scenario, mode: Mode) -> Result<Lab, LabError> {
        scenario.check_addresses(mode)?;
        if mode == Mode::Topology {
            let topology = netns::Topology::create(&scenario.network.faults)?;
            return Lab::start_on(scenario, Net::topology(topology)).await;
        }
        if let Some(f) = scenario.network.faults.iter().find(|f| f.needs_topology()) {
            return Err(LabError::NeedsTopology(format!(
                "the fault to {} ({:?}, ports {:?}-{:?})",
                f.to, f.action, f.port, f.port_to
            )));
        }
        let mut last = None;
        for _ in 0..8 {
            match Lab::start_on(scenario, Net::loopback()).await {
                Err(LabError::Bind { source, .. }) if source.kind() == io::ErrorKind::AddrInUse => last = Some(source),
                other => return other,
            }
        }
        Err(LabError::Io(last.unwrap_or_else(|| io::ErrorKind::AddrInUse.into())))
    }

    async fn start_on(scenario: &Scenario, net: Net) -> Result<Lab, LabError> {
        let mode = if net.topology.is_some() { Mode::Topology } else { Mode::Loopback };
        let now = time::OffsetDateTime::now_utc();
        let ca = certs::LabCa::new()?;
        let dir = std::env::temp_dir().join(format!("milink-lab-{}-{:x}", std::process::id(), random()));
        std::fs::create_dir_all(&dir)?;
        let ca_path = dir.join("lab-ca.pem");
        std::fs::write(&ca_path, &ca.pem)?;

        let (sql_catalog, mi_catalog) = build_catalogs(scenario, now, &net.sql.to_string())?;
        // The sides' names, and the managed instance's current node (its HADR listener).
        let mut names: Vec<(&str, IpAddr)> =
            vec![(&scenario.sql_server.fqdn, net.sql), (&scenario.managed_instance.fqdn, net.mi)];
        if let Some(f) = &scenario.managed_instance.fabric {
            names.push((&f.node, net.mi));
        }
        let zone = Arc::new(
            dns::Zone::new(
                &names,
                &scenario.dns.records,
                vec![(net.sql, dns::View::SqlServer), (net.mi, dns::View::ManagedInstance)],
            )
            .map_err(LabError::Dns)?,
        );
        let mut tasks = Vec::new();
        let mut listeners = Vec::new();
        let mut infos = Vec::new();
        let sides = [
            ("sql_server", &scenario.sql_server, sql_catalog, net.sql, netns::Place::SqlServer),
            ("managed_instance", &scenario.managed_instance, mi_catalog, net.mi, netns::Place::ManagedInstance),
        ];
        for (label, side, catalog, ip, place) in sides {
            let identity = ca.server_identity(&side.fqdn, side.tds.certificate)?;
            let (tls_prelogin, tls_strict) = tds::tls_configs(&identity)?;
            let catalog = Arc::new(Mutex::new(catalog));
            let view = if place == netns::Place::SqlServer { dns::View::SqlServer } else { dns::View::ManagedInstance };
            let names = zone.clone();
            let agent = agent::Agent {
                catalog: Arc::downgrade(&catalog),
                from: ip,
                place,
                topology: net.topology.clone(),
                resolve: Arc::new(move |name: &str| names.resolve(view, name)),
                handle: tokio::runtime::Handle::current(),
                server: side.name.clone(),
                endpoints: Default::default(),
            };
            catalog.lock().unwrap_or_else(|p| p.into_inner()).agent = Some(Arc::new(agent));
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
                login_disabled: side.login.disabled,
                redirect,
                fault: side.tds.fault,
            };
            // In loopback mode a network fault is a property of the target port.
            let loopback_fault = |port: u16| -> Option<scenario::Listener> {
                if mode == Mode::Topology {
                    return None;
                }
                scenario.network.faults.iter().find(|f| f.to == label && f.port.is_none_or(|p| p == port)).map(|f| {
                    match f.action {
                        scenario::FaultAction::Refused => scenario::Listener::Refused,
                        _ => scenario::Listener::Filtered,
                    }
                })
            };
            let redirect = side.tds.redirect_port.map(|p| (ip.to_string(), p));
            let mut ports = vec![(1433, redirect.clone())];
            if let Some((_, p)) = &redirect {
                ports.push((*p, None));
            }
            for (port, redirect) in ports {
                let addr = SocketAddr::new(ip, port);
                match loopback_fault(port) {
                    Some(behaviour) => {
                        listeners.push(
                            net.within(place, || listener::bind(addr, behaviour, 0))?
                                .map_err(|source| LabError::Bind { what: "TDS".into(), addr, source })?,
                        )
                    }
                    None => {
                        let l = net.within(place, || bind_tcp(addr, "TDS"))??;
                        tasks.push(tokio::spawn(tds::server::serve(l, Arc::new(cfg(redirect)))));
                    }
                }
            }
            let endpoint = match side.endpoint.as_ref().filter(|e| e.present || loopback_fault(e.port).is_some()) {
                Some(ep) => {
                    let addr = SocketAddr::new(ip, ep.port);
                    // An absent endpoint has no socket at all (connects are refused, and
                    // CREATE ENDPOINT can take the port) unless a fault claims the port.
                    let behaviour = loopback_fault(ep.port).unwrap_or(ep.listener);
                    let l = net
                        .within(place, || listener::bind(addr, behaviour, ep.slow_ms))?
                        .map_err(|source| LabError::Bind { what: "mirroring endpoint".into(), addr, source })?;
                    let info = EndpointInfo { host: ip.to_string(), port: l.addr.port() };
                    listeners.push(l);
                    Some(info)
                }
                None => None,
            };
            // The node's HADR port answers like the mirroring endpoint (unless the
            // redirect target already listens there).
            if let (Some(f), Some(ep)) = (&side.fabric, &side.endpoint)
                && Some(f.hadr_port) != side.tds.redirect_port
            {
                let addr = SocketAddr::new(ip, f.hadr_port);
                let own = if ep.present { ep.listener } else { scenario::Listener::Refused };
                let l = net
                    .within(place, || listener::bind(addr, loopback_fault(f.hadr_port).unwrap_or(own), ep.slow_ms))?
                    .map_err(|source| LabError::Bind { what: "HADR port".into(), addr, source })?;
                listeners.push(l);
            }
            infos.push(side_info(side, ip, &ca_path, endpoint));
        }

        let dns_addr = net.dns;
        let dns = net
            .within(netns::Place::Router, || dns::start(dns_addr, zone.clone()))?
            .map_err(|source| LabError::Bind { what: "DNS".into(), addr: dns_addr, source })?;
        let dns_info = match mode {
            Mode::Topology => DnsInfo { host: netns::ROUTER_HOST_SIDE.to_string(), port: dns.addr.port() },
            Mode::Loopback => DnsInfo { host: dns.addr.ip().to_string(), port: dns.addr.port() },
        };
        let managed_instance = infos.pop().expect("two sides");
        let sql_server = infos.pop().expect("two sides");
        Ok(Lab {
            info: LabInfo {
                sql_server,
                managed_instance,
                dns: dns_info,
                host_netns: net.topology.as_ref().map(|t| t.ns(netns::Place::Host)),
            },
            mode,
            dir,
            tasks,
            _listeners: listeners,
            _dns: dns,
            net,
        })
    }

    /// A profile for a running lab, as a DBA would write it for those servers.
    pub fn profile(&self, scenario: &Scenario) -> Profile {
        let (s, m) = (&self.info.sql_server, &self.info.managed_instance);
        Profile {
            sql_server: SqlServerSection {
                host: s.fqdn.clone(),
                user: Some(s.user.clone()),
                endpoint_host: scenario.sql_server.endpoint.as_ref().and_then(|e| e.url_host.clone()),
                endpoint_port: scenario.plan.endpoint_port.or(scenario.sql_server.endpoint.as_ref().map(|e| e.port)),
                ca_cert: Some(s.ca_cert.clone().into()),
                ..Default::default()
            },
            managed_instance: ManagedInstanceSection {
                fqdn: m.fqdn.clone(),
                user: Some(m.user.clone()),
                ca_cert: Some(m.ca_cert.clone().into()),
                failback: scenario.plan.failback,
                ..Default::default()
            },
            databases: scenario
                .plan
                .databases
                .clone()
                .unwrap_or_else(|| scenario.sql_server.databases.iter().map(|d| d.name.clone()).collect()),
            thresholds: Default::default(),
            probes: ProbesSection { agent_jobs: scenario.plan.job_probes, ..Default::default() },
            dns: DnsSection {
                servers: vec![format!("{}:{}", self.info.dns.host, self.info.dns.port)],
                // The lab's names exist only in its own DNS server.
                os_resolver: false,
            },
            sql_password: Some(Secret::new(s.password.clone())),
            mi_password: Some(Secret::new(m.password.clone())),
            mi_token: None,
        }
    }

    /// A TCP connection made from inside a side (its address, its namespace), as
    /// that side's own programs would make it.
    pub async fn connect_from(&self, place: netns::Place, to: SocketAddr) -> io::Result<tokio::net::TcpStream> {
        let from = match place {
            netns::Place::SqlServer => Some(self.net.sql),
            netns::Place::ManagedInstance => Some(self.net.mi),
            _ => None,
        };
        let socket = self.net.within(place, || -> io::Result<tokio::net::TcpSocket> {
            let s = tokio::net::TcpSocket::new_v4()?;
            if let Some(ip) = from {
                s.bind(SocketAddr::new(ip, 0))?;
            }
            Ok(s)
        })??;
        socket.connect(to).await
    }

    /// Runs `f` on a thread of its own where milink's host is: in topology mode
    /// inside the host namespace, so every socket `f` makes starts there, as if
    /// milink ran on that machine (`ip netns exec … milink`).
    pub async fn on_host<F, Fut, R>(&self, f: F) -> io::Result<R>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = R>,
        R: Send + 'static,
    {
        let path = self.net.topology.as_ref().map(|t| t.path(netns::Place::Host));
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let run = || -> io::Result<R> {
                if let Some(p) = &path {
                    netns::enter(p)?;
                }
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                Ok(rt.block_on(f()))
            };
            let _ = tx.send(run());
        });
        rx.await.map_err(|_| io::Error::other("host thread panicked"))?
    }

    /// The namespace milink's host is in (topology mode only).
    pub fn host_namespace(&self) -> Option<String> {
        self.net.topology.as_ref().map(|t| t.ns(netns::Place::Host))
    }
}

fn bind_tcp(addr: SocketAddr, what: &str) -> Result<TcpListener, LabError> {
    let bind = || -> io::Result<TcpListener> {
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        TcpListener::from_std(l)
    };
    bind().map_err(|source| LabError::Bind { what: what.into(), addr, source })
}

fn side_info(side: &Side, ip: IpAddr, ca: &std::path::Path, endpoint: Option<EndpointInfo>) -> SideInfo {
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
