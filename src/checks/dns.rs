//! Names: each resolves through the OS and the configured servers, the answers
//! agree, and the managed instance's name leads to its VNet-local endpoint.

use std::net::IpAddr;

use super::F;
use super::collect::{Evidence, Resolution};
use crate::probe::dns::Answer;
use crate::profile::Profile;
use crate::report::{Finding, Severity, Side};

/// Globally routable: not private, loopback, link-local, shared or documentation space.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            !(v.is_private()
                || v.is_loopback()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.is_documentation()
                || (o[0] == 100 && (64..128).contains(&o[1])))
        }
        IpAddr::V6(v) => {
            let s = v.segments();
            !(v.is_loopback()
                || v.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0xdb8))
        }
    }
}

fn answer_json(r: &Resolution) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    if let Some(os) = &r.os {
        m.insert("os".into(), os.describe().into());
    }
    for (server, a) in &r.servers {
        m.insert(format!("server {server}"), a.describe().into());
    }
    serde_json::Value::Object(m)
}

fn name(id: &'static str, side: Side, r: &Resolution) -> F {
    if r.pinned {
        return F::new(id, side, Severity::Info)
            .ev("name", r.name.clone())
            .ev("address", r.chosen.map(|a| a.to_string()).unwrap_or_default())
            .ev("note", "address given in the profile: not resolved");
    }
    let f = F::new(id, side, Severity::Pass).ev("name", r.name.clone()).ev("answers", answer_json(r));
    match r.primary() {
        Some(a @ Answer::Addresses { .. }) => f.found(format!("resolves to {}", a.describe())),
        Some(a) => f.severity(Severity::Fail)
            .found(a.describe())
            .ev("result", a.describe())
            .remedy(match a {
                Answer::NxDomain => "The name does not exist for this resolver: add the record (for a managed instance, link the private DNS zone or add a conditional forwarder), or pin `address` in the profile.",
                Answer::Timeout => "The DNS server does not answer: check the forwarder and that UDP/TCP 53 is open to it.",
                _ => "The DNS server failed to answer: check its forwarders and zone.",
            }),
        None => f.severity(Severity::Fail).ev("result", "no resolver configured"),
    }
}

pub fn evaluate(ev: &Evidence, p: &Profile, out: &mut Vec<Finding>) {
    out.push(name("dns-sql-host", Side::SqlServer, &ev.sql_name).done());

    let mut mi = name("dns-mi-fqdn", Side::ManagedInstance, &ev.mi_name);
    let fqdn = p.managed_instance.fqdn.to_ascii_lowercase();
    if fqdn.contains(".public.") || p.managed_instance.port == Some(3342) {
        mi = mi.severity(Severity::Fail).remedy(
            "This is the managed instance's public endpoint (port 3342): the link works only over the VNet-local endpoint `<name>.<dns-zone>.database.windows.net` on 1433.",
        );
    } else if let Some(ip) = ev
        .mi_name
        .chosen
        .filter(|ip| ev.mi_public_name.as_ref().and_then(|r| r.primary()).is_some_and(|a| a.addresses().contains(ip)))
    {
        let public = ev.mi_public_name.as_ref().map(|r| r.name.clone()).unwrap_or_default();
        mi = mi.severity(Severity::Fail).ev("public_endpoint", public.clone()).ev("public_address", ip.to_string()).remedy(format!(
            "The VNet-local name resolves to the address of the public endpoint ({public}): the link needs the VNet-local (private) endpoint. Look for a hosts-file entry, a conditional forwarder or a private DNS zone that is missing or points the wrong way on SQL Server's network."
        ));
    } else if mi.current() == Severity::Pass
        && let Some(ip) = ev.mi_name.chosen.filter(|ip| is_public(*ip))
    {
        mi = mi.severity(Severity::Warn).ev("public_address", ip.to_string()).remedy(
            "The name resolves to a public address: the link needs the VNet-local (private) endpoint. Check the private DNS zone seen from SQL Server's network.",
        );
    }
    out.push(mi.done());

    // Do the OS resolver and the configured servers agree?
    let agree = if p.dns.servers.is_empty() {
        F::skip("dns-resolvers-agree", Side::Host, "no DNS servers in the profile to compare with")
    } else if !p.dns.os_resolver {
        F::new("dns-resolvers-agree", Side::Host, Severity::Info)
            .found("not compared: the OS resolver is off in the profile")
            .ev("note", "os_resolver = false in the profile: the first DNS server is used")
    } else {
        let mut f = F::new("dns-resolvers-agree", Side::Host, Severity::Pass);
        for r in [&ev.sql_name, &ev.mi_name] {
            let os = r.os.as_ref().map(|a| a.addresses().to_vec()).unwrap_or_default();
            for (server, a) in &r.servers {
                if a.addresses() != os.as_slice() {
                    f = f.severity(Severity::Warn)
                        .ev(&format!("{} via OS", r.name), r.os.as_ref().map(|a| a.describe()).unwrap_or_default())
                        .ev(&format!("{} via {server}", r.name), a.describe())
                        .remedy("The OS resolver answers differently from the DNS server: look for a hosts-file entry or a split-horizon zone, and make both agree.");
                }
            }
        }
        let agreed = f.current() == Severity::Pass;
        f.found(if agreed {
            "the OS resolver and the DNS servers agree"
        } else {
            "the OS resolver and a DNS server disagree"
        })
    };
    out.push(agree.done());

    // The endpoint URL's host, as the managed instance will have to resolve it.
    let f = match p.sql_server.endpoint_host.as_deref() {
        Some(h) if h.parse::<IpAddr>().is_err() => {
            let here = ev.endpoint_name.as_ref().unwrap_or(&ev.sql_name);
            F::new("dns-sql-host-from-mi", Side::Link, Severity::Warn)
                .found(format!("the endpoint URL names `{h}`, which the managed instance must resolve"))
                .ev("endpoint_host", h)
                .ev("resolves_here_to", here.primary().map(|a| a.describe()).unwrap_or_default())
                .remedy(format!(
                    "The endpoint URL names SQL Server as `{h}`: the managed instance resolves it from its VNet, which needs custom DNS there, and milink cannot ask that DNS from here. Use SQL Server's IP address in the endpoint URL (TCP://<ip>:5022) to remove the dependency."
                ))
        }
        Some(ip) => F::new("dns-sql-host-from-mi", Side::Link, Severity::Pass)
            .found(format!("the endpoint URL names {ip}: nothing to resolve"))
            .ev("endpoint_host", ip),
        None => F::new("dns-sql-host-from-mi", Side::Link, Severity::Pass)
            .found("the endpoint URL will use SQL Server's address")
            .ev("endpoint_host", ev.sql_name.chosen.map(|a| a.to_string()).unwrap_or_default())
            .ev("note", "the endpoint URL will use SQL Server's address"),
    };
    out.push(f.done());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::collect::{SideEvidence, Sql};

    fn resolution(name: &str, os: Answer, server: Answer) -> Resolution {
        Resolution {
            name: name.into(),
            os: Some(os),
            servers: vec![("192.0.2.53:53".parse().unwrap(), server)],
            chosen: None,
            pinned: false,
        }
    }

    #[test]
    fn a_hosts_file_override_shows_as_disagreement() {
        let p: Profile = toml::from_str(
            "databases = []\n[sql_server]\nhost = \"sql.lab\"\n[managed_instance]\nfqdn = \"mi.lab\"\n[dns]\nservers = [\"192.0.2.53\"]\n",
        )
        .unwrap();
        let a = |ip: &str| Answer::Addresses { addresses: vec![ip.parse().unwrap()] };
        let side = || SideEvidence { tds_port: 1433, tls: None, sql: Sql::Skipped("test".into()) };
        let ev = Evidence {
            sql_name: resolution("sql.lab", a("198.51.100.10"), a("198.51.100.10")),
            // The hosts file pins the MI name elsewhere than DNS does.
            mi_name: resolution("mi.lab", a("192.0.2.99"), a("203.0.113.10")),
            mi_public_name: None,
            endpoint_name: None,
            probes: vec![],
            redirect: None,
            redirect_unprobed: 0,
            sql: side(),
            mi: side(),
            arm: None,
        };
        let mut out = Vec::new();
        evaluate(&ev, &p, &mut out);
        let f = out.iter().find(|f| f.id == "dns-resolvers-agree").unwrap();
        assert_eq!(f.severity, Severity::Warn);
        assert_eq!(f.evidence["mi.lab via OS"], "192.0.2.99");
        assert_eq!(f.evidence["mi.lab via 192.0.2.53:53"], "203.0.113.10");
    }

    #[test]
    fn the_public_endpoint_name_of_a_vnet_local_name() {
        use crate::checks::collect::public_endpoint_name as public;
        assert_eq!(
            public("mi-x.a1b2c3.database.windows.net").as_deref(),
            Some("mi-x.public.a1b2c3.database.windows.net")
        );
        assert_eq!(public("mi-x.public.a1b2c3.database.windows.net"), None);
        assert_eq!(public("10.0.0.4"), None);
        assert_eq!(public("localhost"), None);
    }

    #[test]
    fn documentation_and_private_ranges_are_not_public() {
        for ip in ["10.1.2.3", "172.16.0.1", "192.168.1.1", "127.0.0.1", "203.0.113.10", "100.64.0.1", "fd00::1"] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        assert!(is_public("20.50.1.2".parse().unwrap()));
    }
}
