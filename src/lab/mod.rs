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
pub mod scenario;
pub mod sql;
pub mod sqltime;
pub mod state;
pub mod tds;
pub mod timeline;

mod profile;
mod start;

use start::{Stage, ranges_refuse_at_once, zone_of};

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
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::task::JoinHandle;

use net::Net;

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
    /// SQL Server: the folder `BACKUP … TO DISK` may write to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_dir: Option<String>,
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
        // SQL Server's disk, where BACKUP … TO DISK writes.
        let backups = dir.join("sql_server-backups");
        std::fs::create_dir_all(&backups)?;
        world.lock().unwrap_or_else(|p| p.into_inner()).sql.backup_dir = Some(backups.clone());
        let zone = zone_of(scenario, &net)?;
        let ports = ports::Ports::new(net.topology.clone(), tokio::runtime::Handle::current());
        let mut tasks = Vec::new();
        let shift = match &scenario.replay {
            Some(r) => r.shift(now)?,
            None => time::Duration::ZERO,
        };
        let stage = Stage {
            scenario,
            now,
            mode,
            ca: &ca,
            ca_path: &ca_path,
            world: &world,
            zone: &zone,
            ports: &ports,
            topology: net.topology.clone(),
            shift,
        };
        let (mut infos, mut catalogs, mut side_nets) = stage.serve_sides(&net)?;

        let (dns, dns_info) = start::serve_dns(&net, &zone)?;
        let managed_instance = infos.pop().expect("two sides");
        let mut sql_server = infos.pop().expect("two sides");
        sql_server.backup_dir = Some(backups.display().to_string());
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
        let (first, decided) = tokio::sync::oneshot::channel();
        let dial_timeout = machine.params.dial_timeout;
        tasks.push(tokio::spawn(machine.run(first)));
        // Two dials in a row at most (the endpoint, then the node's HADR port).
        let _ = tokio::time::timeout(dial_timeout * 2 + std::time::Duration::from_secs(1), decided).await;

        let (arm_info, arm_task) =
            start::serve_arm(scenario, &world, &mi_catalog, mi_net_for_arm, &ca, &ca_path, &net)?;
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
        ranges_refuse_at_once(scenario, &control, &net)?;
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
