//! Standing a lab up: each side's catalog, TDS ports, endpoint and HADR
//! port; the lab's DNS names; the faults a port range needs at once.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use super::catalog::{self, BuildInput, Catalog, CatalogError};
use super::net::{self, Net};
use super::scenario::{self, Scenario, Side};
use super::sql::replay;
use super::state::{self, SideId, World};
use super::tds::server::TdsConfig;
use super::{EndpointInfo, LabError, Mode, SideInfo, agent, certs, control, dns, netns, ports, sql, tds};

/// The names the lab's DNS answers: both sides, the managed instance's current
/// node (its HADR listener), and the scenario's records, per side's view.
pub(super) fn zone_of(scenario: &Scenario, net: &Net) -> Result<Arc<dns::Zone>, LabError> {
    let mut names: Vec<(&str, IpAddr)> =
        vec![(&scenario.sql_server.fqdn, net.sql), (&scenario.managed_instance.fqdn, net.mi)];
    if let Some(f) = &scenario.managed_instance.fabric {
        names.push((&f.node, net.mi));
    }
    let views = vec![(net.sql, dns::View::SqlServer), (net.mi, dns::View::ManagedInstance)];
    Ok(Arc::new(dns::Zone::new(&names, &scenario.dns.records, views).map_err(LabError::Dns)?))
}

/// In loopback mode a port range's faults need sockets on ports nothing serves.
pub(super) fn ranges_refuse_at_once(
    scenario: &Scenario,
    control: &control::Control,
    net: &Net,
) -> Result<(), LabError> {
    if net.mode() == Mode::Loopback && scenario.network.faults.iter().any(|f| f.port_to.is_some()) {
        control.apply_faults().map_err(|source| LabError::Bind {
            what: "faulted ports".into(),
            addr: SocketAddr::new(net.mi, 0),
            source,
        })?;
    }
    Ok(())
}

/// What every side is stood up with.
pub(super) struct Stage<'a> {
    pub(super) scenario: &'a Scenario,
    pub(super) now: OffsetDateTime,
    pub(super) mode: Mode,
    pub(super) ca: &'a certs::LabCa,
    pub(super) ca_path: &'a std::path::Path,
    pub(super) world: &'a Arc<Mutex<World>>,
    pub(super) zone: &'a Arc<dns::Zone>,
    pub(super) ports: &'a Arc<ports::Ports>,
    pub(super) topology: Option<Arc<netns::Topology>>,
    pub(super) shift: time::Duration,
}

/// What standing the sides up gives: their infos, catalogs and networks, SQL Server's first.
type Sides = (Vec<SideInfo>, Vec<Arc<Mutex<Catalog>>>, Vec<net::SideNet>);

impl Stage<'_> {
    /// Both sides, SQL Server first.
    pub(super) fn serve_sides(&self, net: &Net) -> Result<Sides, LabError> {
        let sides = [
            (SideId::Sql, &self.scenario.sql_server, net.sql, netns::Place::SqlServer),
            (SideId::Mi, &self.scenario.managed_instance, net.mi, netns::Place::ManagedInstance),
        ];
        let mut out: Sides = (Vec::new(), Vec::new(), Vec::new());
        for (side_id, side, ip, place) in sides {
            let (info, catalog, side_net) = self.serve_side(side_id, side, ip, place)?;
            out.0.push(info);
            out.1.push(catalog);
            out.2.push(side_net);
        }
        Ok(out)
    }

    /// One side: its catalog, its TDS ports, its mirroring endpoint and HADR
    /// port, and how it reaches the network.
    pub(super) fn serve_side(
        &self,
        side_id: SideId,
        side: &Side,
        ip: IpAddr,
        place: netns::Place,
    ) -> Result<(SideInfo, Arc<Mutex<Catalog>>, net::SideNet), LabError> {
        let Stage { scenario, now, ca, ca_path, world, zone, ports, shift, .. } = *self;
        let world = world.clone();
        let ports = ports.clone();
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
            topology: self.topology.clone(),
            resolve: Arc::new(move |name: &str| names.resolve(view, name)),
            handle: tokio::runtime::Handle::current(),
        };
        let ep = side.endpoint.as_ref();
        let agent = Arc::new(agent::Agent {
            catalog: Arc::downgrade(&catalog),
            net: side_net.clone(),
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
            refusal: side.login.refuse.as_ref().map(|e| replay::sql_error(e, 14)).or(side.login.disabled.then(|| {
                sql::SqlError::new(
                    18470,
                    14,
                    1,
                    format!("Login failed for user '{}'. Reason: The account is disabled.", side.login.user),
                )
            })),
            replay: replay.clone(),
            redirect,
            fault: side.tds.fault,
            delay: side.tds.delay,
            rtt: scenario.network.rtt(label),
        };
        let loopback_fault = |port: u16| self.loopback_fault(label, port);
        let redirect = side.tds.redirect_port.map(|p| (ip.to_string(), p));
        let mut tds_ports = vec![(1433, redirect.clone())];
        if let Some((_, p)) = &redirect {
            let back = side.tds.redirect_loop.then(|| (ip.to_string(), 1433));
            tds_ports.push((*p, back));
        }
        for (port, redirect) in tds_ports {
            let addr = SocketAddr::new(ip, port);
            // The fault first: a TDS listener replaced by it would leave the port
            // unbound (refused) for a moment after the lab says it is up.
            if let Some(f) = loopback_fault(port) {
                ports.fault(place, addr, Some(f)).map_err(bind_err("TDS", addr))?;
            }
            ports.serve(place, addr, ports::Service::Tds(Arc::new(cfg(redirect)))).map_err(bind_err("TDS", addr))?;
        }
        let endpoint = self.serve_endpoint(side_id, side, ip, place, agent.as_ref())?;
        Ok((side_info(side, ip, ca_path, endpoint), catalog, side_net))
    }
    /// In loopback mode a network fault is a property of the target port.
    fn loopback_fault(&self, label: &str, port: u16) -> Option<scenario::Listener> {
        if self.mode == Mode::Topology {
            return None;
        }
        scenario::Fault::listener_at(&self.scenario.network.faults, label, port)
    }

    /// The mirroring endpoint's port (listening while it is STARTED: CREATE,
    /// ALTER and DROP ENDPOINT change that at run time), its faults, and the
    /// managed instance's HADR port, which answers like the endpoint.
    fn serve_endpoint(
        &self,
        side_id: SideId,
        side: &Side,
        ip: IpAddr,
        place: netns::Place,
        agent: &dyn catalog::Host,
    ) -> Result<Option<EndpointInfo>, LabError> {
        let Stage { world, ports, .. } = *self;
        let label = side_id.label();
        let loopback_fault = |port: u16| self.loopback_fault(label, port);
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
        if !agent.endpoint_port(started) {
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
        Ok(endpoint)
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
        backup_dir: None,
    }
}

/// The lab's DNS server (in the router's namespace in topology mode), and how
/// a client reaches it.
pub(super) fn serve_dns(net: &Net, zone: &Arc<dns::Zone>) -> Result<(dns::DnsServer, super::DnsInfo), LabError> {
    let addr = net.dns;
    let dns = net
        .within(netns::Place::Router, || dns::start(addr, zone.clone()))?
        .map_err(|source| LabError::Bind { what: "DNS".into(), addr, source })?;
    let info = match net.mode() {
        Mode::Topology => super::DnsInfo { host: netns::ROUTER_HOST_SIDE.to_string(), port: dns.addr.port() },
        Mode::Loopback => super::DnsInfo { host: dns.addr.ip().to_string(), port: dns.addr.port() },
    };
    Ok((dns, info))
}

/// The managed instance's ARM, on its own address (inside its namespace),
/// handing out a JWT-shaped token of the lab's own.
pub(super) fn serve_arm(
    scenario: &Scenario,
    world: &Arc<Mutex<World>>,
    mi_catalog: &Arc<Mutex<Catalog>>,
    mi_net: net::SideNet,
    ca: &certs::LabCa,
    ca_path: &std::path::Path,
    net: &Net,
) -> Result<(super::arm::ArmInfo, tokio::task::JoinHandle<()>), LabError> {
    let mut key = [0u8; 32];
    for (i, chunk) in key.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&net::random().rotate_left(i as u32 * 13).to_le_bytes());
    }
    let token = super::arm::token::issue(&key, &uuid_from(net::random(), net::random()));
    let arm = super::arm::Arm::new(scenario, token, world.clone(), mi_catalog.clone(), mi_net);
    let arm_tls = super::arm::server::tls_config(&ca.web_identity(net.mi)?)?;
    let arm_addr = SocketAddr::new(net.mi, 443);
    let ca_text = ca_path.display().to_string();
    net.within(netns::Place::ManagedInstance, || arm.start(arm_addr, arm_tls, &ca_text))?
        .map_err(|source| LabError::Bind { what: "ARM".into(), addr: arm_addr, source })
}

/// A UUID-shaped identifier from two random numbers (the lab's identity's object ID).
fn uuid_from(a: u64, b: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 50),
        b & 0xffff_ffff_ffff
    )
}

/// A port that could not be bound, named by what was to listen there.
fn bind_err(what: &str, addr: SocketAddr) -> impl FnOnce(std::io::Error) -> LabError {
    let what = what.to_string();
    move |source| LabError::Bind { what, addr, source }
}
