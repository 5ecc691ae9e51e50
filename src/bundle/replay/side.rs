//! One side of a replayed bundle: what its catalog needs to start, how its
//! TDS port broke (login errors, TLS failures, redirects), and its recorded
//! answers.

use serde_json::Value;
use toml::{Table, Value as T};

use super::recorded::{first_row, recorded};
use super::{Derivation, Files, network, table};

/// A side: what the catalog needs to start (name, version, edition from the
/// recorded properties), how its TDS port behaved, and its recorded answers.
pub(super) fn side(
    d: &mut Derivation,
    label: &str,
    short: &str,
    host: &str,
    user: Option<String>,
) -> anyhow::Result<Table> {
    let (f, tcp) = (d.files, d.tcp);
    let dir = format!("evidence/{label}");
    let mut side = Table::new();
    let recorded = recorded(f, &dir, &mut d.redacted)?;
    let props = first_row(&recorded, "SERVERPROPERTY('ProductVersion')");
    let mi = label == "managed_instance";
    let text = |k: &str| props.and_then(|p| p.get(k)).and_then(|v| v.as_str()).map(str::to_string);
    let fqdn = if host.parse::<std::net::IpAddr>().is_ok() { format!("{short}.replay.lab") } else { host.to_string() };
    side.insert(
        "name".into(),
        T::from(text("server_name").unwrap_or_else(|| fqdn.split('.').next().unwrap_or("server").to_string())),
    );
    side.insert("fqdn".into(), T::from(fqdn));
    let version = text("version").filter(|v| crate::lab::scenario::parse_version(v).is_some());
    side.insert(
        "version".into(),
        T::from(version.unwrap_or_else(|| if mi { "16.0.9250.10".into() } else { "16.0.4135.4".into() })),
    );
    side.insert(
        "edition".into(),
        T::from(
            text("edition")
                .unwrap_or_else(|| if mi { "SQL Azure".into() } else { "Enterprise Edition (64-bit)".into() }),
        ),
    );
    if mi {
        side.insert("engine_edition".into(), T::Integer(8));
    }
    if let Some(c) = text("collation") {
        side.insert("collation".into(), T::from(c));
    }
    if let Some(h) = first_row(&recorded, "sys.dm_os_host_info") {
        let get = |k: &str| h.get(k).cloned().unwrap_or_else(|| T::from(""));
        side.insert(
            "host".into(),
            table([
                ("platform", get("host_platform")),
                ("distribution", get("host_distribution")),
                ("release", get("host_release")),
            ]),
        );
    }
    if let Some(agent) = agent(f, &dir)? {
        side.insert("agent".into(), agent);
    }
    if let Some(fabric) = fabric(f, &dir)? {
        side.insert("fabric".into(), fabric);
    }
    let session = f.json(&format!("{dir}/session.json"))?.unwrap_or(Value::Null);
    let tls = f.json(&format!("{dir}/tls.json"))?.map(|t| t["capture"].clone()).unwrap_or(Value::Null);
    let mut login = Table::new();
    if let Some(u) = user {
        login.insert("user".into(), T::from(u));
    }
    let mut tds = Table::new();
    tls_behaviour(&tls, &mut tds);
    if tls["result"] == "failed" {
        let closed = tcp["probes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["check"] == format!("network-{short}-1433") && p["probe"]["outcome"] == "closed_by_peer");
        tds.insert("fault".into(), T::from(tls_fault(tls["message"].as_str().unwrap_or_default(), closed)));
    }
    if let Some(failed) = session.get("login_failed") {
        login_failure(failed, &mut login, &mut tds);
    }
    if let Some(port) = session["routed_to"].get(1).and_then(Value::as_u64) {
        tds.insert("redirect_port".into(), T::Integer(port as i64));
    }
    side.insert("login".into(), T::Table(login));
    side.insert("tds".into(), T::Table(tds));
    side.insert("endpoint".into(), T::Table(network::endpoint(label, short, &recorded, tcp, &mut d.net)));
    side.insert("recorded".into(), T::Array(recorded.into_iter().map(T::Table).collect()));
    Ok(side)
}

/// The managed instance's node and HADR port, read from its recorded fabric
/// parameters as the checks read them.
fn fabric(f: &Files, dir: &str) -> anyhow::Result<Option<T>> {
    let Some(q) = f.json(&format!("{dir}/queries/fabric.json"))? else { return Ok(None) };
    let rows: Vec<crate::probe::sql::Record> = serde_json::from_value(q["rows"].clone()).unwrap_or_default();
    Ok(crate::checks::collect::fabric_node(&rows)
        .map(|(node, port)| table([("node", T::from(node)), ("hadr_port", T::Integer(port.into()))])))
}

/// The TDS certificate and encryption that give the recorded capture.
fn tls_behaviour(capture: &Value, tds: &mut Table) {
    match capture["result"].as_str() {
        Some("no_tls") => {
            tds.insert("encryption".into(), T::from("not_supported"));
        }
        Some("captured") => {
            if capture["mode"] == "tds8-strict" {
                tds.insert("encryption".into(), T::from("strict"));
            }
            let kind = match capture["verdict"].as_str() {
                Some("expired") => "expired",
                Some("not_yet_valid") => "not_yet_valid",
                Some("wrong_name") => "wrong_host",
                Some("untrusted") => "self_signed",
                Some("invalid_validity") => "inverted_validity",
                _ => "valid",
            };
            tds.insert("certificate".into(), T::from(kind));
            if let Some(days) = capture["chain"][0]["days_left"].as_i64()
                && days > 0
            {
                tds.insert("valid_days".into(), T::Integer(days));
            }
        }
        _ => {}
    }
}

/// A login that failed: the server's error as it was, or the way the
/// connection broke down.
/// SQL Server Agent as the probe jobs met it: stopped, or its procedures blocked.
fn agent(f: &Files, dir: &str) -> anyhow::Result<Option<T>> {
    let Some(Value::Array(jobs)) = f.json(&format!("{dir}/agent-jobs.json"))? else { return Ok(None) };
    let said = |what: &str| jobs.iter().any(|j| j["error"].as_str().is_some_and(|e| e.starts_with(what)));
    let mut t = Table::new();
    if said("AgentStopped") {
        t.insert("running".into(), T::Boolean(false));
    }
    if said("AgentXpsOff") {
        t.insert("xps".into(), T::Boolean(false));
    }
    Ok((!t.is_empty()).then_some(T::Table(t)))
}

fn login_failure(failed: &Value, login: &mut Table, tds: &mut Table) {
    let message = failed["message"].as_str().unwrap_or_default();
    // Failed at the node it was routed to: the recorded redirect range says how.
    if let Some(port) = failed["routed_to"].get(1).and_then(Value::as_i64) {
        tds.insert("redirect_port".into(), T::Integer(port));
    }
    if let Some(code) = failed["code"].as_i64() {
        login.insert("refuse".into(), table([("number", T::Integer(code)), ("message", T::from(message))]));
    } else if let Some(port) = redirect_loop_port(message) {
        tds.insert("redirect_port".into(), T::Integer(port));
        tds.insert("redirect_loop".into(), T::Boolean(true));
    } else if message.contains("pre-login packet during the TLS handshake") {
        // The server framed TLS in TDS packets where the client expected it bare.
        tds.insert("legacy_tls_framing".into(), T::Boolean(true));
    } else if failed["timed_out"].as_bool() == Some(true) && !tds.contains_key("fault") && failed["routed_to"].is_null()
    {
        tds.insert("fault".into(), T::from("silent"));
    }
}

/// The server behaviour that breaks milink's own TLS exchange the way it broke:
/// `closed_by_peer` is what the TCP probe saw on the TDS port.
fn tls_fault(message: &str, closed_by_peer: bool) -> &'static str {
    if closed_by_peer {
        "accept_close"
    } else if message.contains("no answer within") {
        "silent"
    } else if message.contains("packet type") {
        "wrong_packet_type"
    } else {
        "tls_garbage"
    }
}

/// `redirect loop: … routes to host:11002, …` → 11002.
fn redirect_loop_port(message: &str) -> Option<i64> {
    let rest = message.strip_prefix("redirect loop")?;
    let (_, after) = rest.split_once(" (").or_else(|| rest.split_once("routes to "))?;
    let hostport = after.split([',', ')', ' ']).next()?;
    hostport.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_loop_names_its_port() {
        let m = "redirect loop: the server at 127.0.0.3:1433 routes the login to itself (127.0.0.3:11002)";
        assert_eq!(redirect_loop_port(m), Some(11002));
        let m = "redirect loop: 127.0.0.3:1433 routes to 127.0.0.3:11002, which routes again to 127.0.0.3:1433";
        assert_eq!(redirect_loop_port(m), Some(11002));
    }
}
