//! Where the lab's sides live on the network, and how a side's own programs
//! (Agent's Test-NetConnection, the link between the servers) dial out: from the
//! side's address and namespace, names through the side's DNS view, never past
//! what the mode allows.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::lab::addr::{self, Mode};
use crate::lab::netns::{self, Place, Topology};

pub fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    h.finish()
}

/// Addresses of the sides and the DNS server, and the namespaces in topology mode.
pub struct Net {
    pub sql: IpAddr,
    pub mi: IpAddr,
    pub dns: SocketAddr,
    pub topology: Option<Arc<Topology>>,
}

impl Net {
    /// Each loopback lab gets its own 127.a.b.0/24 so that both sides can use the
    /// real ports (1433, 5022) and labs can run side by side.
    pub fn loopback() -> Net {
        let r = random();
        let ip = |last: u8| IpAddr::V4(Ipv4Addr::new(127, 1 + (r % 250) as u8, (r >> 8) as u8, last));
        Net { sql: ip(2), mi: ip(3), dns: SocketAddr::new(ip(4), 0), topology: None }
    }

    pub fn topology(t: Topology) -> Net {
        Net {
            sql: IpAddr::V4(netns::SQL),
            mi: IpAddr::V4(netns::MI),
            dns: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 53),
            topology: Some(Arc::new(t)),
        }
    }

    pub fn mode(&self) -> Mode {
        if self.topology.is_some() { Mode::Topology } else { Mode::Loopback }
    }

    /// Runs `f` where `place`'s sockets must be made.
    pub fn within<R: Send>(&self, place: Place, f: impl FnOnce() -> R + Send) -> io::Result<R> {
        match &self.topology {
            Some(t) => t.within(place, &tokio::runtime::Handle::current(), f),
            None => Ok(f()),
        }
    }
}

/// A side's name lookup (its DNS view).
pub type Resolve = Arc<dyn Fn(&str) -> Option<IpAddr> + Send + Sync>;

/// How a dial ended, as a TCP client sees it.
#[derive(Debug)]
pub enum Dialed {
    Connected(tokio::net::TcpStream),
    /// RST: nothing listens (OS error 10061 on Windows).
    Refused,
    /// No answer within the time (10060).
    TimedOut,
    /// The name does not resolve from this side (11001).
    NoName,
    /// ICMP unreachable, or an address the lab never dials.
    Unreachable(String),
}

/// One side's view of the network.
#[derive(Clone)]
pub struct SideNet {
    pub from: IpAddr,
    pub place: Place,
    pub topology: Option<Arc<Topology>>,
    pub resolve: Resolve,
    pub handle: tokio::runtime::Handle,
}

impl SideNet {
    pub fn mode(&self) -> Mode {
        if self.topology.is_some() { Mode::Topology } else { Mode::Loopback }
    }

    /// A name (or address) as this side resolves it.
    pub fn lookup(&self, host: &str) -> Option<IpAddr> {
        host.parse::<IpAddr>().ok().or_else(|| (self.resolve)(host))
    }

    /// Connects from this side's address (and namespace) to `host:port`.
    pub async fn dial(&self, host: &str, port: u16, timeout: Duration) -> Dialed {
        let Some(ip) = self.lookup(host) else { return Dialed::NoName };
        let to = SocketAddr::new(ip, port);
        if let Err(e) = addr::guard(self.mode(), to) {
            return Dialed::Unreachable(e.to_string());
        }
        // A reset while connecting is the lab swapping a port's socket for a new
        // fault (the old one's queue is reset): the next SYN meets the new one.
        let mut tries = 2;
        loop {
            tries -= 1;
            let socket = match &self.topology {
                Some(t) => t.within(self.place, &self.handle, tokio::net::TcpSocket::new_v4),
                None => Ok(tokio::net::TcpSocket::new_v4()),
            };
            let socket = match socket {
                Ok(Ok(s)) => s,
                Ok(Err(e)) | Err(e) => return Dialed::Unreachable(e.to_string()),
            };
            if let Err(e) = socket.bind(SocketAddr::new(self.from, 0)) {
                return Dialed::Unreachable(e.to_string());
            }
            return match tokio::time::timeout(timeout, socket.connect(to)).await {
                Ok(Ok(s)) => Dialed::Connected(s),
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Dialed::Refused,
                Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => Dialed::TimedOut,
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset && tries > 0 => continue,
                Ok(Err(e)) => {
                    tracing::debug!(%to, error = %e, kind = ?e.kind(), "dial failed");
                    Dialed::Unreachable(e.to_string())
                }
                Err(_) => Dialed::TimedOut,
            };
        }
    }
}
