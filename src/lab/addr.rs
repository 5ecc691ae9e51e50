//! Which addresses the lab may hand out or dial, by mode. On these machines the
//! documentation ranges are a real network with a route out, so in loopback mode
//! only 127.0.0.0/8 and ::1 are allowed; the documentation ranges exist only
//! inside the namespaces topology mode makes itself.

use std::io;
use std::net::{IpAddr, SocketAddr};

/// Where the stand-ins live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Each lab on its own 127.a.b.0/24; needs no privileges. A network fault
    /// applies to its target port whoever connects.
    #[default]
    Loopback,
    /// Each side in its own network namespace (root): faults per direction.
    Topology,
}

pub fn allowed(mode: Mode, ip: IpAddr) -> bool {
    let loopback = ip.is_loopback();
    match mode {
        Mode::Loopback => loopback,
        Mode::Topology => loopback || documentation(ip),
    }
}

/// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32.
pub fn documentation(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => v.is_documentation(),
        IpAddr::V6(v) => v.segments()[0] == 0x2001 && v.segments()[1] == 0xdb8,
    }
}

/// What the mode allows, for error messages.
pub fn describe(mode: Mode) -> &'static str {
    match mode {
        Mode::Loopback => "127.0.0.0/8 and ::1 (loopback mode; documentation addresses need --topology)",
        Mode::Topology => {
            "127.0.0.0/8, ::1 and the documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32 (topology mode)"
        }
    }
}

/// The last word before the lab's own programs dial out (Agent's
/// Test-NetConnection, the link between the sides): never past the sandbox.
pub fn guard(mode: Mode, to: SocketAddr) -> io::Result<()> {
    if allowed(mode, to.ip()) {
        return Ok(());
    }
    // EHOSTUNREACH is what a dial to an address without a route gets.
    Err(io::Error::new(
        io::ErrorKind::HostUnreachable,
        format!("the lab does not dial {to}: only {} may be reached", describe(mode)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_mode_allows_loopback_only() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(allowed(Mode::Loopback, ip("127.9.8.2")));
        assert!(allowed(Mode::Loopback, ip("::1")));
        assert!(!allowed(Mode::Loopback, ip("192.0.2.1")));
        assert!(!allowed(Mode::Loopback, ip("203.0.113.10")));
        assert!(allowed(Mode::Topology, ip("203.0.113.10")));
        assert!(!allowed(Mode::Topology, ip("20.50.1.2")));
        assert!(!allowed(Mode::Topology, ip("10.0.0.4")));
        assert!(guard(Mode::Loopback, "198.51.100.10:5022".parse().unwrap()).is_err());
    }
}
