//! Name resolution through the OS resolver (getaddrinfo, which honours the
//! hosts file) and through the DNS servers the profile names.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Answer {
    Addresses { addresses: Vec<IpAddr> },
    NxDomain,
    ServFail,
    NoAnswer,
    Timeout,
    Error { message: String },
}

impl Answer {
    pub fn addresses(&self) -> &[IpAddr] {
        match self {
            Answer::Addresses { addresses } => addresses,
            _ => &[],
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Answer::Addresses { addresses } => addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "),
            Answer::NxDomain => "NXDOMAIN".into(),
            Answer::ServFail => "SERVFAIL".into(),
            Answer::NoAnswer => "no records".into(),
            Answer::Timeout => "no answer (timeout)".into(),
            Answer::Error { message } => message.clone(),
        }
    }
}

pub async fn os(name: &str, timeout: Duration) -> Answer {
    match tokio::time::timeout(timeout, tokio::net::lookup_host((name, 0))).await {
        Err(_) => Answer::Timeout,
        Ok(Ok(addrs)) => {
            let mut v: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
            v.sort();
            v.dedup();
            if v.is_empty() { Answer::NoAnswer } else { Answer::Addresses { addresses: v } }
        }
        Ok(Err(e)) => {
            let m = e.to_string();
            if m.contains("not known") || m.contains("No address") || m.contains("failed to lookup") {
                Answer::NxDomain
            } else {
                Answer::Error { message: m }
            }
        }
    }
}

pub async fn server(name: &str, server: SocketAddr, timeout: Duration) -> Answer {
    let mut udp = ConnectionConfig::udp();
    udp.port = server.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = server.port();
    let mut ns = NameServerConfig::udp(server.ip());
    ns.connections = vec![udp, tcp];
    let mut opts = ResolverOpts::default();
    opts.timeout = timeout;
    opts.attempts = 1;
    opts.cache_size = 0;
    let resolver = match hickory_resolver::Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    {
        Ok(r) => r,
        Err(e) => return Answer::Error { message: e.to_string() },
    };
    let fqdn = if name.ends_with('.') { name.to_string() } else { format!("{name}.") };
    // Bounded twice: the resolver's own timeout, and ours around the whole lookup.
    match tokio::time::timeout(timeout * 3, resolver.lookup_ip(fqdn.as_str())).await {
        Err(_) => Answer::Timeout,
        Ok(Ok(ips)) => {
            let mut v: Vec<IpAddr> = ips.iter().collect();
            v.sort();
            if v.is_empty() { Answer::NoAnswer } else { Answer::Addresses { addresses: v } }
        }
        Ok(Err(e)) if e.is_nx_domain() => Answer::NxDomain,
        Ok(Err(e)) if e.is_no_records_found() => Answer::NoAnswer,
        Ok(Err(e)) => {
            let m = format!("{e:?}");
            if m.contains("ServFail") {
                Answer::ServFail
            } else if m.contains("Timeout") || m.contains("timed out") {
                Answer::Timeout
            } else {
                Answer::Error { message: e.to_string() }
            }
        }
    }
}
