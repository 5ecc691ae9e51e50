//! TCP reachability, classified as a port probe sees it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Open,
    /// Connected, then the peer closed at once: something answers, not SQL Server.
    ClosedByPeer,
    Refused,
    /// No answer within the timeout: a firewall or NSG drops the SYN.
    Filtered,
    HostUnreachable,
    NetworkUnreachable,
    Other,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Open => "open",
            Outcome::ClosedByPeer => "closed_by_peer",
            Outcome::Refused => "refused",
            Outcome::Filtered => "filtered",
            Outcome::HostUnreachable => "host_unreachable",
            Outcome::NetworkUnreachable => "network_unreachable",
            Outcome::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub addr: SocketAddr,
    pub outcome: Outcome,
    pub rtt_ms: f64,
    pub os_error: Option<String>,
}

/// How long to wait after connecting for the peer to hang up on us.
const LINGER_CHECK: Duration = Duration::from_millis(150);

pub async fn probe(addr: SocketAddr, timeout: Duration) -> Probe {
    let start = Instant::now();
    let socket = match if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() } {
        Ok(s) => s,
        Err(e) => return Probe { addr, outcome: Outcome::Other, rtt_ms: 0.0, os_error: Some(e.to_string()) },
    };
    let r = tokio::time::timeout(timeout, socket.connect(addr)).await;
    let rtt_ms = start.elapsed().as_secs_f64() * 1e3;
    let (outcome, os_error) = match r {
        Err(_) => (Outcome::Filtered, None),
        Ok(Ok(mut stream)) => {
            let mut b = [0u8; 1];
            // SQL Server and a mirroring endpoint wait for the client to speak.
            let closed =
                matches!(tokio::time::timeout(LINGER_CHECK, stream.read(&mut b)).await, Ok(Ok(0)) | Ok(Err(_)));
            (if closed { Outcome::ClosedByPeer } else { Outcome::Open }, None)
        }
        Ok(Err(e)) => {
            let o = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => Outcome::Refused,
                std::io::ErrorKind::HostUnreachable => Outcome::HostUnreachable,
                std::io::ErrorKind::NetworkUnreachable => Outcome::NetworkUnreachable,
                std::io::ErrorKind::TimedOut => Outcome::Filtered,
                // Accepted, then reset before connect() returned.
                std::io::ErrorKind::ConnectionReset => Outcome::ClosedByPeer,
                _ => Outcome::Other,
            };
            (o, Some(e.to_string()))
        }
    };
    Probe { addr, outcome, rtt_ms: (rtt_ms * 10.0).round() / 10.0, os_error }
}
