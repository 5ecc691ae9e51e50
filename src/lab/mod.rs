//! `milink lab`: stand-ins on loopback that speak the real protocols, built
//! from a scenario file.

pub mod addr;
pub mod agent;
pub mod arm;
pub mod catalog;
pub mod certs;
pub mod control;
pub mod dns;
pub mod fleet;
pub mod link;
pub mod listener;
pub mod net;
pub mod netns;
pub mod ports;
pub mod replay;
pub mod scenario;
pub mod sql;
pub mod sqltime;
pub mod state;
pub mod tds;
pub mod timeline;

use time::OffsetDateTime;

use catalog::{BuildInput, Catalog, CatalogError};
use scenario::Scenario;
use state::{SideId, World};

/// Both sides' catalogs over one world. `sql_endpoint_host` is SQL Server's
/// endpoint host as endpoint URLs name it.
pub fn build_catalogs(
    scenario: &Scenario,
    now: OffsetDateTime,
    sql_endpoint_host: &str,
) -> Result<(Catalog, Catalog), LabError> {
    let world = Arc::new(Mutex::new(state::build(scenario, now, sql_endpoint_host)?));
    let mut out = Vec::new();
    for (side_id, side) in [(SideId::Sql, &scenario.sql_server), (SideId::Mi, &scenario.managed_instance)] {
        let c = catalog::build(BuildInput { side_id, scenario, side, world: world.clone(), now })?;
        sql::functions::register(&c).map_err(CatalogError::from)?;
        out.push(c);
    }
    let mi = out.pop().expect("two sides");
    let sql = out.pop().expect("two sides");
    Ok((sql, mi))
}

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::task::JoinHandle;

use net::Net;

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
    /// The managed instance's Azure Resource Manager.
    pub arm: arm::ArmInfo,
    /// The control channel (HTTP on loopback): faults, rotations, seeding.
    pub control: String,
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
    #[error("{0}")]
    Replay(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

pub use addr::Mode;

/// The password a lab profile gives for a database master key milink creates.
pub const LAB_MASTER_KEY_PASSWORD: &str = "Lab-Master-Key-Passw0rd";

/// A running lab. Dropping it stops every stand-in and removes its files and
/// namespaces.
pub struct Lab {
    pub info: LabInfo,
    pub mode: Mode,
    /// Both sides' link objects and the links' status.
    pub world: Arc<Mutex<World>>,
    pub sql_catalog: Arc<Mutex<Catalog>>,
    pub mi_catalog: Arc<Mutex<Catalog>>,
    pub ports: Arc<ports::Ports>,
    /// Changes to the running lab (also served at `info.control`).
    pub control: Arc<control::Control>,
    dir: PathBuf,
    tasks: Vec<JoinHandle<()>>,
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
        let mode = net.mode();
        let now = time::OffsetDateTime::now_utc();
        let ca = certs::LabCa::new()?;
        let dir = std::env::temp_dir().join(format!("milink-lab-{}-{:x}", std::process::id(), net::random()));
        std::fs::create_dir_all(&dir)?;
        let ca_path = dir.join("lab-ca.pem");
        std::fs::write(&ca_path, &ca.pem)?;

        let world = Arc::new(Mutex::new(state::build(scenario, now, &net.sql.to_string())?));
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
        let ports = ports::Ports::new(net.topology.clone(), tokio::runtime::Handle::current());
        let mut tasks = Vec::new();
        let mut infos = Vec::new();
        let mut catalogs = Vec::new();
        let mut side_nets = Vec::new();
        let sides = [
            (SideId::Sql, &scenario.sql_server, net.sql, netns::Place::SqlServer),
            (SideId::Mi, &scenario.managed_instance, net.mi, netns::Place::ManagedInstance),
        ];
        let shift = match &scenario.replay {
            Some(r) => r.shift(now)?,
            None => time::Duration::ZERO,
        };
        for (side_id, side, ip, place) in sides {
            let label = side_id.label();
            let replay = Arc::new(
                replay::Answers::build(&side.recorded, shift)
                    .map_err(|e| LabError::Replay(format!("{label}.recorded: {e}")))?,
            );
            let catalog = catalog::build(BuildInput { side_id, scenario, side, world: world.clone(), now })?;
            sql::functions::register(&catalog).map_err(CatalogError::from)?;
            let catalog = Arc::new(Mutex::new(catalog));
            let identity = ca.server_identity(&side.fqdn, side.tds.certificate, side.tds.valid_days)?;
            let (tls_prelogin, tls_strict) = tds::tls_configs(&identity)?;
            let view = if place == netns::Place::SqlServer { dns::View::SqlServer } else { dns::View::ManagedInstance };
            let names = zone.clone();
            let side_net = net::SideNet {
                from: ip,
                place,
                topology: net.topology.clone(),
                resolve: Arc::new(move |name: &str| names.resolve(view, name)),
                handle: tokio::runtime::Handle::current(),
            };
            side_nets.push(side_net.clone());
            let ep = side.endpoint.as_ref();
            let agent = Arc::new(agent::Agent {
                catalog: Arc::downgrade(&catalog),
                net: side_net,
                server: side.name.clone(),
                ports: ports.clone(),
                endpoint: Mutex::new(None),
                endpoint_behaviour: (ep.map(|e| e.listener).unwrap_or_default(), ep.map(|e| e.slow_ms).unwrap_or(0)),
            });
            catalog.lock().unwrap_or_else(|p| p.into_inner()).host = Some(agent.clone());
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
                refusal: side.login.refuse.as_ref().map(|e| replay::sql_error(e, 14)).or(side.login.disabled.then(
                    || {
                        sql::SqlError::new(
                            18470,
                            14,
                            1,
                            format!("Login failed for user '{}'. Reason: The account is disabled.", side.login.user),
                        )
                    },
                )),
                replay: replay.clone(),
                redirect,
                fault: side.tds.fault,
                delay: side.tds.delay,
            };
            // In loopback mode a network fault is a property of the target port.
            let loopback_fault = |port: u16| -> Option<scenario::Listener> {
                if mode == Mode::Topology {
                    return None;
                }
                scenario::Fault::listener_at(&scenario.network.faults, label, port)
            };
            let bind_err = |what: &str, addr: SocketAddr| {
                let what = what.to_string();
                move |source| LabError::Bind { what, addr, source }
            };
            let redirect = side.tds.redirect_port.map(|p| (ip.to_string(), p));
            let mut tds_ports = vec![(1433, redirect.clone())];
            if let Some((_, p)) = &redirect {
                let back = side.tds.redirect_loop.then(|| (ip.to_string(), 1433));
                tds_ports.push((*p, back));
            }
            for (port, redirect) in tds_ports {
                let addr = SocketAddr::new(ip, port);
                ports
                    .serve(place, addr, ports::Service::Tds(Arc::new(cfg(redirect))))
                    .map_err(bind_err("TDS", addr))?;
                if let Some(f) = loopback_fault(port) {
                    ports.fault(place, addr, Some(f)).map_err(bind_err("TDS", addr))?;
                }
            }
            // The mirroring endpoint listens while it is STARTED; CREATE/ALTER/DROP
            // ENDPOINT change that at run time.
            let started = world
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .server(side_id)
                .endpoint
                .as_ref()
                .filter(|e| e.state == state::objects::EndpointState::Started)
                .map(|e| e.port);
            if !catalog::Host::endpoint_port(agent.as_ref(), started) {
                let addr = SocketAddr::new(ip, started.unwrap_or(5022));
                return Err(LabError::Bind {
                    what: "mirroring endpoint".into(),
                    addr,
                    source: io::ErrorKind::AddrInUse.into(),
                });
            }
            let mut endpoint = None;
            if let Some(ep) = side.endpoint.as_ref() {
                let addr = SocketAddr::new(ip, ep.port);
                if let Some(f) = loopback_fault(ep.port) {
                    ports.fault(place, addr, Some(f)).map_err(bind_err("mirroring endpoint", addr))?;
                }
                if ep.present || loopback_fault(ep.port).is_some() {
                    endpoint = Some(EndpointInfo { host: ip.to_string(), port: ep.port });
                }
            }
            // The node's HADR port answers like the endpoint (unless the redirect
            // target already listens there).
            if let (Some(f), Some(ep)) = (&side.fabric, &side.endpoint)
                && Some(f.hadr_port) != side.tds.redirect_port
            {
                let addr = SocketAddr::new(ip, f.hadr_port);
                let own = if ep.present { ep.listener } else { scenario::Listener::Refused };
                let behaviour = loopback_fault(f.hadr_port).unwrap_or(own);
                ports
                    .serve(place, addr, ports::Service::Endpoint { behaviour, slow_ms: ep.slow_ms })
                    .map_err(bind_err("HADR port", addr))?;
            }
            infos.push(side_info(side, ip, &ca_path, endpoint));
            catalogs.push(catalog);
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
        let mi_catalog = catalogs.pop().expect("two sides");
        let sql_catalog = catalogs.pop().expect("two sides");
        let mi_net = side_nets.pop().expect("two sides");
        let sql_net = side_nets.pop().expect("two sides");
        let machine = link::Machine {
            world: world.clone(),
            sql_catalog: sql_catalog.clone(),
            mi_catalog: mi_catalog.clone(),
            sql_net,
            mi_net,
            params: scenario.replication.clone(),
            node: scenario.managed_instance.fabric.as_ref().map(|f| (f.node.clone(), f.hadr_port)),
        };
        let mi_net_for_arm = machine.mi_net.clone();
        tasks.push(tokio::spawn(machine.run()));

        // The managed instance's ARM, on its own address (inside its namespace).
        let token = format!("{:016x}{:016x}", net::random(), net::random().rotate_left(23));
        let arm = arm::Arm::new(scenario, token, world.clone(), mi_catalog.clone(), mi_net_for_arm);
        let arm_tls = arm::server::tls_config(&ca.web_identity(net.mi)?)?;
        let arm_addr = SocketAddr::new(net.mi, 443);
        let ca_text = ca_path.display().to_string();
        let (arm_info, arm_task) = net
            .within(netns::Place::ManagedInstance, || arm.start(arm_addr, arm_tls, &ca_text))?
            .map_err(|source| LabError::Bind { what: "ARM".into(), addr: arm_addr, source })?;
        tasks.push(arm_task);

        let control = Arc::new(control::Control {
            world: world.clone(),
            sql_catalog: sql_catalog.clone(),
            mi_catalog: mi_catalog.clone(),
            ports: ports.clone(),
            topology: net.topology.clone(),
            sql_ip: net.sql,
            mi_ip: net.mi,
            faults: Mutex::new(scenario.network.faults.clone()),
            scenario_faults: scenario.network.faults.len(),
            arm_token: arm_info.token.clone(),
        });
        // In loopback mode a port range's faults need sockets on ports nothing serves.
        if mode == Mode::Loopback && scenario.network.faults.iter().any(|f| f.port_to.is_some()) {
            control.apply_faults().map_err(|source| LabError::Bind {
                what: "faulted ports".into(),
                addr: SocketAddr::new(net.mi, 0),
                source,
            })?;
        }
        let (control_url, control_task) = control.start()?;
        tasks.push(control_task);
        if !scenario.timeline.is_empty() {
            let start = tokio::time::Instant::now();
            tasks.push(tokio::spawn(timeline::play(scenario.timeline.clone(), control.clone(), start)));
        }
        Ok(Lab {
            info: LabInfo {
                sql_server,
                managed_instance,
                dns: dns_info,
                arm: arm_info,
                control: control_url,
                host_netns: net.topology.as_ref().map(|t| t.ns(netns::Place::Host)),
            },
            mode,
            world,
            sql_catalog,
            mi_catalog,
            ports,
            control,
            dir,
            tasks,
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
                trust_server_certificate: scenario.plan.trust_server_certificate,
                ..Default::default()
            },
            managed_instance: ManagedInstanceSection {
                fqdn: m.fqdn.clone(),
                user: Some(m.user.clone()),
                ca_cert: Some(m.ca_cert.clone().into()),
                failback: scenario.plan.failback,
                trust_server_certificate: scenario.plan.trust_server_certificate,
                ..Default::default()
            },
            databases: scenario
                .plan
                .databases
                .clone()
                .unwrap_or_else(|| scenario.sql_server.databases.iter().map(|d| d.name.clone()).collect()),
            thresholds: scenario.plan.thresholds.clone().unwrap_or_default(),
            probes: ProbesSection {
                agent_jobs: scenario.plan.job_probes,
                temp_endpoint: scenario.plan.temp_endpoint,
                ..Default::default()
            },
            dns: DnsSection {
                servers: vec![format!("{}:{}", self.info.dns.host, self.info.dns.port)],
                // The lab's names exist only in its own DNS server.
                os_resolver: false,
            },
            arm: crate::profile::ArmSection {
                base_url: self.info.arm.base_url.clone(),
                subscription_id: Some(self.info.arm.subscription_id.clone()),
                resource_group: Some(self.info.arm.resource_group.clone()),
                managed_instance: Some(self.info.arm.managed_instance.clone()),
                auth: crate::profile::ArmAuth::Token,
                ca_cert: Some(self.info.arm.ca_cert.clone().into()),
                ..Default::default()
            },
            sql_password: Some(Secret::new(s.password.clone())),
            mi_password: Some(Secret::new(m.password.clone())),
            link: crate::profile::LinkSection {
                journal: Some(self.dir.join("link.journal.jsonl")),
                ..Default::default()
            },
            arm_token: Some(Secret::new(self.info.arm.token.clone())),
            master_key_password: Some(Secret::new(LAB_MASTER_KEY_PASSWORD)),
            ..Default::default()
        }
    }

    /// Writes a ready link profile for this lab (`link.toml`, its secrets in
    /// `link.secrets.toml` beside it, mode 0600), so `milink … --profile` works
    /// against the running lab as against production.
    pub fn write_profile(&self, scenario: &Scenario) -> io::Result<PathBuf> {
        let mut p = self.profile(scenario);
        let secrets = crate::profile::Secrets {
            sql_password: p.sql_password.take().map(|s| s.expose().to_string()),
            mi_password: p.mi_password.take().map(|s| s.expose().to_string()),
            mi_token: None,
            arm_token: p.arm_token.take().map(|s| s.expose().to_string()),
            master_key_password: p.master_key_password.take().map(|s| s.expose().to_string()),
        };
        let secrets_path = self.dir.join("link.secrets.toml");
        secrets.write(&secrets_path)?;
        p.secrets_file = Some("link.secrets.toml".into());
        let path = self.dir.join("link.toml");
        let text = toml::to_string(&p).map_err(io::Error::other)?;
        std::fs::write(
            &path,
            format!("# A link profile for the running milink lab ({}).\n{text}", scenario.description),
        )?;
        Ok(path)
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
        // A thread of its own, named, with room for a whole run's future.
        let thread = std::thread::Builder::new().name("milink-host".into()).stack_size(16 << 20);
        thread.spawn(move || {
            let run = || -> io::Result<R> {
                if let Some(p) = &path {
                    netns::enter(p)?;
                }
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                Ok(rt.block_on(f()))
            };
            let _ = tx.send(run());
        })?;
        rx.await.map_err(|_| io::Error::other("host thread panicked"))?
    }

    /// The namespace milink's host is in (topology mode only).
    pub fn host_namespace(&self) -> Option<String> {
        self.net.topology.as_ref().map(|t| t.ns(netns::Place::Host))
    }
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
