//! The lab's TCP ports, whose behaviour changes while the lab runs: a mirroring
//! endpoint listens while it is STARTED (DDL decides), a TDS port serves, and a
//! network fault (loopback mode) overrides either with a refused or filtered
//! socket. Every change rebinds the port for real.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::lab::listener::{self, EndpointListener};
use crate::lab::netns::{Place, Topology};
use crate::lab::scenario::Listener;
use crate::lab::tds::server::{self, TdsConfig};

/// What should answer on a port when no fault overrides it.
#[derive(Clone)]
pub enum Service {
    /// Nothing: the kernel refuses connections.
    Nothing,
    /// A mirroring endpoint (or the node's HADR port) behaving as the scenario says.
    Endpoint {
        behaviour: Listener,
        slow_ms: u64,
    },
    Tds(Arc<TdsConfig>),
}

enum Live {
    Listener(#[allow(dead_code)] EndpointListener),
    Task(JoinHandle<()>),
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Live::Task(t) = self {
            t.abort();
        }
    }
}

struct Slot {
    place: Place,
    service: Service,
    fault: Option<Listener>,
    live: Option<Live>,
}

/// Whether two services answer the same way (a rebind would change nothing).
fn same(a: &Service, b: &Service) -> bool {
    match (a, b) {
        (Service::Nothing, Service::Nothing) => true,
        (Service::Endpoint { behaviour: x, slow_ms: s }, Service::Endpoint { behaviour: y, slow_ms: t }) => {
            x == y && s == t
        }
        (Service::Tds(x), Service::Tds(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

pub struct Ports {
    slots: Mutex<HashMap<SocketAddr, Slot>>,
    topology: Option<Arc<Topology>>,
    handle: tokio::runtime::Handle,
}

impl Ports {
    pub fn new(topology: Option<Arc<Topology>>, handle: tokio::runtime::Handle) -> Arc<Ports> {
        Arc::new(Ports { slots: Mutex::new(HashMap::new()), topology, handle })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets what serves `addr`, rebinding at once. False when the port could not
    /// be had (someone else holds it).
    pub fn serve(self: &Arc<Self>, place: Place, addr: SocketAddr, service: Service) -> io::Result<()> {
        let mut slots = self.lock();
        let slot = slots.entry(addr).or_insert(Slot { place, service: Service::Nothing, fault: None, live: None });
        let unchanged = slot.fault.is_some() || same(&slot.service, &service);
        slot.service = service;
        if unchanged && (slot.live.is_some() || slot.fault.is_some()) {
            return Ok(());
        }
        self.rebind(addr, slot)
    }

    /// Sets or clears the fault on `addr`, rebinding at once.
    pub fn fault(self: &Arc<Self>, place: Place, addr: SocketAddr, fault: Option<Listener>) -> io::Result<()> {
        let mut slots = self.lock();
        let slot = slots.entry(addr).or_insert(Slot { place, service: Service::Nothing, fault: None, live: None });
        // Rebinding a TDS port would drop its sessions: only when something changes.
        if slot.fault == fault {
            return Ok(());
        }
        slot.fault = fault;
        self.rebind(addr, slot)
    }

    /// The ports of a side (for a fault on "all ports").
    pub fn of(&self, ip: std::net::IpAddr) -> Vec<SocketAddr> {
        self.lock().keys().filter(|a| a.ip() == ip).copied().collect()
    }

    fn rebind(self: &Arc<Self>, addr: SocketAddr, slot: &mut Slot) -> io::Result<()> {
        // The old socket stops listening as it is dropped (see `EndpointListener`)
        // and the new one binds beside its descriptor (SO_REUSEPORT) at once: a
        // firewall change leaves the port unbound for microseconds, not until the
        // runtime drops the old listener's task.
        let ours = slot.live.take().is_some();
        match self.bind(addr, slot) {
            Ok(live) => {
                slot.live = live;
                Ok(())
            }
            // Our own listener's task lets go of the port a moment after it is
            // aborted: bind again from the runtime shortly.
            Err(e) if ours && e.kind() == io::ErrorKind::AddrInUse => {
                let ports = self.clone();
                self.handle.spawn(async move {
                    for _ in 0..200 {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        let mut slots = ports.lock();
                        let Some(slot) = slots.get_mut(&addr) else { return };
                        if slot.live.is_some() {
                            return;
                        }
                        match ports.bind(addr, slot) {
                            Ok(live) => {
                                slot.live = live;
                                return;
                            }
                            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                            Err(e) => {
                                tracing::warn!(%addr, error = %e, "lab port could not be bound again");
                                return;
                            }
                        }
                    }
                });
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn bind(&self, addr: SocketAddr, slot: &Slot) -> io::Result<Option<Live>> {
        let within = |f: &(dyn Fn() -> io::Result<Option<Live>> + Sync)| -> io::Result<Option<Live>> {
            match &self.topology {
                Some(t) => t.within(slot.place, &self.handle, f)?,
                None => {
                    let _guard = self.handle.enter();
                    f()
                }
            }
        };
        if let Some(f) = slot.fault {
            return within(&|| listener::bind(addr, f, 0).map(|l| Some(Live::Listener(l))));
        }
        match &slot.service {
            Service::Nothing => Ok(None),
            Service::Endpoint { behaviour, slow_ms } => {
                within(&|| listener::bind(addr, *behaviour, *slow_ms).map(|l| Some(Live::Listener(l))))
            }
            Service::Tds(cfg) => within(&|| {
                let l = std::net::TcpListener::bind(addr)?;
                l.set_nonblocking(true)?;
                let l = tokio::net::TcpListener::from_std(l)?;
                Ok(Some(Live::Task(tokio::spawn(server::serve(l, cfg.clone())))))
            }),
        }
    }
}
