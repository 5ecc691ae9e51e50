//! The network of a replayed bundle: recorded probe outcomes as faults and
//! listeners, Agent-job directions, DNS answers as records.

use serde_json::Value;
use toml::{Table, Value as T};

use super::recorded::first_row;
use super::{Files, table};
use crate::profile::Profile;

#[derive(Default)]
pub(super) struct Network {
    pub(super) faults: Vec<T>,
}

impl Network {
    fn fault(&mut self, from: &str, to: &str, ports: (u16, u16), action: &str) {
        let mut t = Table::new();
        t.insert("from".into(), T::from(from));
        t.insert("to".into(), T::from(to));
        t.insert("port".into(), T::Integer(ports.0.into()));
        if ports.1 != ports.0 {
            t.insert("port_to".into(), T::Integer(ports.1.into()));
        }
        t.insert("action".into(), T::from(action));
        self.faults.push(T::Table(t));
    }
}

/// The side's mirroring endpoint where milink probed it, listening as it did;
/// 1433 and the redirect range get the recorded outcomes as faults.
pub(super) fn endpoint(label: &str, short: &str, recorded: &[Table], tcp: &Value, net: &mut Network) -> Table {
    let mut ep = Table::new();
    if let Some(row) = first_row(recorded, "sys.database_mirroring_endpoints") {
        for (key, col) in
            [("name", "name"), ("auth", "connection_auth_desc"), ("algorithm", "encryption_algorithm_desc")]
        {
            if let Some(v) = row.get(col).and_then(T::as_str).filter(|v| !v.is_empty()) {
                ep.insert(key.into(), T::from(v));
            }
        }
    }
    let probes = tcp["probes"].as_array().cloned().unwrap_or_default();
    for p in probes.iter().filter(|p| p["check"].as_str().is_some_and(|c| c.starts_with(&format!("network-{short}-"))))
    {
        let probe = &p["probe"];
        let Some(port) =
            probe["addr"].as_str().and_then(|a| a.rsplit_once(':')).and_then(|(_, p)| p.parse::<u16>().ok())
        else {
            continue;
        };
        let is_endpoint = p["check"].as_str().is_some_and(|c| !c.ends_with("-1433"));
        if is_endpoint {
            ep.insert("port".into(), T::Integer(port.into()));
        }
        match probe["outcome"].as_str().unwrap_or_default() {
            "open" if is_endpoint && probe["rtt_ms"].as_f64().unwrap_or(0.0) > 500.0 => {
                // Slow is the SYN's retransmission (a second), not the listener's pause:
                // the lab's slow listener frees its queue within that second.
                ep.insert("listener".into(), T::from("slow"));
                ep.insert("slow_ms".into(), T::Integer(800));
            }
            "closed_by_peer" if is_endpoint => {
                ep.insert("listener".into(), T::from("accept_close"));
            }
            "refused" => net.fault("host", label, (port, port), "refused"),
            "filtered" => net.fault("host", label, (port, port), "filtered"),
            "host_unreachable" | "network_unreachable" => net.fault("host", label, (port, port), "unreachable"),
            _ => {}
        }
    }
    if label == "managed_instance"
        && let Some(range) = tcp.get("redirect_range").filter(|r| !r.is_null())
    {
        let open: Vec<u16> = range["first"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["outcome"] == "open")
            .filter_map(|p| p["addr"].as_str()?.rsplit_once(':')?.1.parse().ok())
            .collect();
        for action in ["filtered", "refused"] {
            if range["outcomes"][action].as_u64().unwrap_or(0) > 0 {
                // The ports that answered stay open; the rest of the range gets the outcome.
                let mut from = 11000u16;
                for p in open.iter().copied().filter(|p| (11000..=11999).contains(p)) {
                    if p > from {
                        net.fault("host", label, (from, p - 1), action);
                    }
                    from = p + 1;
                }
                if from <= 11999 {
                    net.fault("host", label, (from, 11999), action);
                }
                break;
            }
        }
    }
    ep
}

/// Directions the servers' own Agent jobs could not reach.
pub(super) fn jobs(f: &Files, net: &mut Network) -> anyhow::Result<()> {
    for dir in ["sql_server", "managed_instance"] {
        let Some(Value::Array(jobs)) = f.json(&format!("evidence/{dir}/agent-jobs.json"))? else { continue };
        for j in jobs {
            let check = j["check"].as_str().unwrap_or_default();
            let (from, to) = if check.contains("mi-to-sql") {
                ("managed_instance", "sql_server")
            } else {
                ("sql_server", "managed_instance")
            };
            let Some(port) = j["job"]["port"].as_u64() else { continue };
            if j["job"]["succeeded"] == false && !net.covers(to, port as u16) {
                net.fault(from, to, (port as u16, port as u16), "filtered");
            }
        }
    }
    Ok(())
}

impl Network {
    fn covers(&self, to: &str, port: u16) -> bool {
        self.faults.iter().filter_map(T::as_table).any(|f| {
            f.get("to").and_then(T::as_str) == Some(to) && {
                let p = f.get("port").and_then(T::as_integer).unwrap_or(0) as u16;
                let q = f.get("port_to").and_then(T::as_integer).map(|q| q as u16).unwrap_or(p);
                (p..=q).contains(&port)
            }
        })
    }
}

/// Names that did not resolve as they should, as DNS records.
pub(super) fn dns_records(dns: &Value, p: &Profile) -> Vec<T> {
    let mut out = Vec::new();
    let entries = dns.as_array().cloned().unwrap_or_default();
    let chosen =
        |role: &str| entries.iter().find(|e| e["role"] == role).and_then(|e| e["chosen"].as_str().map(str::to_string));
    for e in &entries {
        let Some(name) = e["name"].as_str() else { continue };
        let answer = if e["os_resolver"].is_null() { &e["servers"][0]["answer"] } else { &e["os_resolver"] };
        let kind = match answer["result"].as_str() {
            Some("nx_domain") => "NXDOMAIN",
            Some("serv_fail" | "error") => "SERVFAIL",
            Some("timeout") => "SILENT",
            Some("no_answer") => "NODATA",
            _ => {
                // An address: the lab's own. Another name that led to a side's address leads there again.
                let role = e["role"].as_str().unwrap_or_default();
                if matches!(role, "endpoint" | "mi_public") {
                    let same_as = if e["chosen"].as_str().is_some()
                        && e["chosen"].as_str().map(str::to_string) == chosen("managed_instance")
                    {
                        Some(p.managed_instance.fqdn.as_str())
                    } else if role == "endpoint" {
                        Some(p.sql_server.host.as_str())
                    } else {
                        None
                    };
                    if let Some(target) = same_as.filter(|t| *t != name) {
                        out.push(table([
                            ("name", T::from(name)),
                            ("type", T::from("CNAME")),
                            ("value", T::from(target)),
                        ]));
                    }
                }
                continue;
            }
        };
        out.push(table([("name", T::from(name)), ("type", T::from(kind))]));
    }
    out
}
