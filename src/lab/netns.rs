//! Topology mode (root only): the SQL Server side, the managed instance side
//! and milink's host each in a network namespace of their own, joined through a
//! router namespace whose nftables rules make the faults, per direction and
//! port. The root namespace is never touched: no interface, no route, so
//! nothing can leave the machine. Addresses come only from the documentation
//! ranges and no namespace has a route beyond the router.
//!
//! ```text
//! milink's host    192.0.2.10    ── 192.0.2.1    ┐
//! SQL Server       198.51.100.10 ── 198.51.100.1 ├─ router (nftables, DNS)
//! managed instance 203.0.113.10  ── 203.0.113.1  ┘
//! ```

use std::fs::File;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::lab::scenario::{Fault, FaultAction};

pub const HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
pub const ROUTER_HOST_SIDE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const SQL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
pub const MI: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

const PREFIX: &str = "mlk";
static NEXT: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Router,
    SqlServer,
    ManagedInstance,
    /// Where milink runs.
    Host,
}

/// The namespaces of one lab. Dropping it deletes them.
pub struct Topology {
    tag: String,
}

fn run(args: &[&str]) -> io::Result<()> {
    let out = Command::new(args[0]).args(&args[1..]).stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

fn available() -> io::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, "topology mode needs root (network namespaces)"));
    }
    for tool in ["ip", "nft"] {
        let found = Command::new(tool).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if !found.is_ok_and(|s| s.success()) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("topology mode needs `{tool}` (iproute2, nftables)"),
            ));
        }
    }
    Ok(())
}

/// Namespaces left by a run that died (its pid is gone) are deleted.
pub fn remove_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let pid = name.strip_prefix(PREFIX).and_then(|r| r.split('x').next()).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = run(&["ip", "netns", "del", &name]);
        }
    }
}

impl Topology {
    pub fn create(faults: &[Fault]) -> io::Result<Topology> {
        available()?;
        remove_stale();
        let tag = format!("{PREFIX}{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let topo = Topology { tag };
        topo.build()?;
        topo.apply_faults(faults)?;
        Ok(topo)
    }

    pub fn ns(&self, place: Place) -> String {
        let suffix = match place {
            Place::Router => "rt",
            Place::SqlServer => "sql",
            Place::ManagedInstance => "mi",
            Place::Host => "host",
        };
        format!("{}-{suffix}", self.tag)
    }

    fn build(&self) -> io::Result<()> {
        let rt = self.ns(Place::Router);
        for place in [Place::Router, Place::SqlServer, Place::ManagedInstance, Place::Host] {
            let ns = self.ns(place);
            run(&["ip", "netns", "add", &ns])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        }
        // Each veth pair is created inside the router namespace and one end moved
        // to its side, so no interface ever exists in the root namespace.
        for (place, peer, addr, gw) in [
            (Place::SqlServer, "s0", "198.51.100.10/24", "198.51.100.1"),
            (Place::ManagedInstance, "m0", "203.0.113.10/24", "203.0.113.1"),
            (Place::Host, "h0", "192.0.2.10/24", "192.0.2.1"),
        ] {
            let ns = self.ns(place);
            run(&["ip", "-n", &rt, "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            run(&["ip", "-n", &ns, "addr", "add", addr, "dev", "eth0"])?;
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            run(&["ip", "-n", &ns, "route", "add", "default", "via", gw])?;
            run(&["ip", "-n", &rt, "addr", "add", &format!("{gw}/24"), "dev", peer])?;
            run(&["ip", "-n", &rt, "link", "set", peer, "up"])?;
        }
        run(&["ip", "netns", "exec", &rt, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
    }

    /// Replaces the router's fault rules (at start, and when the control channel
    /// adds or removes a fault).
    pub fn apply_faults(&self, faults: &[Fault]) -> io::Result<()> {
        // Declaring the table again is harmless; deleting it drops the old rules.
        let mut rules = String::from("table inet milink\ndelete table inet milink\n");
        rules
            .push_str("table inet milink {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n");
        for f in faults {
            rules.push_str(&format!("  {}\n", nft_rule(f)));
        }
        rules.push_str(" }\n}\n");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns(Place::Router), "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child.stdin.take().expect("piped").write_all(rules.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!("nft: {}", String::from_utf8_lossy(&out.stderr))));
        }
        Ok(())
    }

    /// Runs `f` on a thread inside `place`'s namespace: sockets made there stay
    /// there. The runtime `handle` is entered so tokio sockets can be registered.
    pub fn within<R: Send>(
        &self,
        place: Place,
        handle: &tokio::runtime::Handle,
        f: impl FnOnce() -> R + Send,
    ) -> io::Result<R> {
        let path = self.path(place);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    enter(&path)?;
                    let _guard = handle.enter();
                    Ok(f())
                })
                .join()
                .map_err(|_| io::Error::other("namespace thread panicked"))?
        })
    }

    pub fn path(&self, place: Place) -> String {
        format!("/run/netns/{}", self.ns(place))
    }
}

/// Moves the calling thread into the network namespace at `path`.
pub fn enter(path: &str) -> io::Result<()> {
    let ns = File::open(path)?;
    // SAFETY: setns affects this thread only; the fd is ours and open.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Topology {
    /// Deletes the namespaces (again harmlessly if they are gone). The lab calls it
    /// on shutdown, since tasks still being cancelled may hold a reference.
    pub fn remove(&self) {
        for place in [Place::SqlServer, Place::ManagedInstance, Place::Host, Place::Router] {
            let path = self.path(place);
            if std::path::Path::new(&path).exists() {
                let _ = run(&["ip", "netns", "del", &self.ns(place)]);
            }
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.remove();
    }
}

fn subnet(place: &str) -> Option<&'static str> {
    match place {
        "sql_server" => Some("198.51.100.0/24"),
        "managed_instance" => Some("203.0.113.0/24"),
        "host" => Some("192.0.2.10/32"),
        _ => None,
    }
}

fn nft_rule(f: &Fault) -> String {
    let mut m = String::new();
    if let Some(s) = subnet(&f.from) {
        m.push_str(&format!("ip saddr {s} "));
    }
    let dst = match f.to.as_str() {
        "sql_server" => IpAddr::V4(SQL),
        _ => IpAddr::V4(MI),
    };
    m.push_str(&format!("ip daddr {dst} "));
    m.push_str("meta l4proto tcp ");
    match (f.port, f.port_to) {
        (Some(p), Some(to)) => m.push_str(&format!("tcp dport {p}-{to} ")),
        (Some(p), None) => m.push_str(&format!("tcp dport {p} ")),
        _ => {}
    }
    m.push_str(match f.action {
        FaultAction::Filtered => "drop",
        FaultAction::Refused => "reject with tcp reset",
        FaultAction::Unreachable => "reject with icmp type host-unreachable",
    });
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_name_direction_port_and_action() {
        let f = Fault {
            from: "managed_instance".into(),
            to: "sql_server".into(),
            port: Some(5022),
            port_to: None,
            action: FaultAction::Filtered,
        };
        assert_eq!(nft_rule(&f), "ip saddr 203.0.113.0/24 ip daddr 198.51.100.10 meta l4proto tcp tcp dport 5022 drop");
        let f = Fault {
            from: "any".into(),
            to: "managed_instance".into(),
            port: None,
            port_to: None,
            action: FaultAction::Unreachable,
        };
        assert_eq!(nft_rule(&f), "ip daddr 203.0.113.10 meta l4proto tcp reject with icmp type host-unreachable");
        let f = Fault { port: Some(11100), port_to: Some(11999), action: FaultAction::Filtered, ..f };
        assert!(nft_rule(&f).contains("tcp dport 11100-11999 drop"));
    }
}
