//! A bundle as a lab scenario: each side answers the recorded statements with
//! the recorded rows and errors, the network gives the recorded probe outcomes,
//! names resolve (or fail) as they did, and the plan and thresholds are the
//! profile's. `milink lab scenario-from --bundle` prints it; `lab up --bundle`
//! and `diagnose --bundle` run it.
//!
//! The lab is on loopback, so what cannot be had there is approximated and
//! said in the scenario's comments: recorded addresses become the lab's own, a
//! certificate keeps its verdict and days left but not its key, and a fault seen
//! only from one side applies to every source unless the lab runs `--topology`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;
use toml::{Table, Value as T};

use crate::profile::Profile;

/// The scenario TOML for a bundle (verified against its manifest first).
pub fn scenario_text(path: &Path) -> anyhow::Result<String> {
    let entries = super::verify::read_entries(path)?;
    let verdict = super::verify::check(&entries)?;
    if !verdict.mismatches.is_empty() {
        bail!(
            "{} does not match its manifest, so it cannot be replayed: {}",
            path.display(),
            verdict.mismatches.join("; ")
        );
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let table = derive(&Files(entries), &name)?;
    let head = format!(
        "# Derived from the support bundle {name} by `milink lab scenario-from`.\n\
         # Each side answers the recorded statements ([[…recorded]]) as they were answered;\n\
         # edit rows, faults or records to try a fix, then `milink diagnose --lab` this file.\n"
    );
    Ok(format!("{head}{}", toml::to_string(&table).context("writing the scenario")?))
}

/// The bundle's scenario, parsed and checked as a scenario file is.
pub fn scenario(path: &Path) -> anyhow::Result<crate::lab::scenario::Scenario> {
    let text = scenario_text(path)?;
    Ok(crate::lab::scenario::Scenario::parse(&text, &path.display().to_string())?)
}

struct Files(BTreeMap<String, Vec<u8>>);

impl Files {
    fn json(&self, name: &str) -> anyhow::Result<Option<Value>> {
        self.0.get(name).map(|b| serde_json::from_slice(b).with_context(|| format!("{name} is not JSON"))).transpose()
    }

    fn need(&self, name: &str) -> anyhow::Result<Value> {
        self.json(name)?
            .with_context(|| format!("the bundle has no {name}: not a milink bundle, or one from before replay"))
    }
}

fn derive(f: &Files, name: &str) -> anyhow::Result<Table> {
    let env = f.need("environment.json")?;
    let profile: Profile =
        serde_json::from_value(f.need("evidence/profile.json")?).context("evidence/profile.json is not a profile")?;
    let report = f.need("report.json")?;
    let tcp = f.need("evidence/tcp.json")?;
    let dns = f.need("evidence/dns.json")?;
    let taken = env["time_utc"].as_str().unwrap_or_default().to_string();

    let mut s = Table::new();
    let n = |k: &str| report["summary"][k].as_u64().unwrap_or(0);
    let summary = format!(": {} fail, {} error, {} warn", n("fail"), n("error"), n("warn"));
    s.insert("description".into(), T::from(format!("Replay of {name}, made {taken}{summary}")));
    s.insert("replay".into(), table([("bundle", T::from(name)), ("taken_at", T::from(taken))]));
    let mut d = Derivation { files: f, tcp: &tcp, net: Network::default(), redacted: 0 };
    let sides = [
        ("sql_server", &profile.sql_server.host, profile.sql_server.user.clone(), "sql"),
        ("managed_instance", &profile.managed_instance.fqdn, profile.managed_instance.user.clone(), "mi"),
    ];
    for (label, host, user, short) in sides {
        let mut side = side(&mut d, label, short, host, user)?;
        // The host the endpoint URL names: a name there is for the managed instance to resolve.
        if let (Some(h), "sql_server", Some(T::Table(ep))) =
            (&profile.sql_server.endpoint_host, label, side.get_mut("endpoint"))
        {
            ep.insert("url_host".into(), T::from(h.as_str()));
        }
        s.insert(label.into(), T::Table(side));
    }
    jobs(f, &mut d.net)?;
    let redacted = d.redacted;
    s.insert("network".into(), table([("faults", T::Array(d.net.faults))]));
    s.insert("dns".into(), table([("records", T::Array(dns_records(&dns, &profile)))]));
    s.insert("plan".into(), T::Table(plan(&profile)?));
    s.insert("expect".into(), T::Table(expect(&report)));
    if redacted > 0 {
        let d = format!(
            "{} ({redacted} binary values the redaction shortened read NULL)",
            s["description"].as_str().unwrap_or_default()
        );
        s.insert("description".into(), T::from(d));
    }
    Ok(s)
}

/// What a derivation carries from side to side.
struct Derivation<'a> {
    files: &'a Files,
    tcp: &'a Value,
    net: Network,
    /// Binary values the bundle's redaction shortened (they read NULL).
    redacted: usize,
}

fn table<const N: usize>(kv: [(&str, T); N]) -> T {
    T::Table(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// A side: what the catalog needs to start (name, version, edition from the
/// recorded properties), how its TDS port behaved, and its recorded answers.
fn side(d: &mut Derivation, label: &str, short: &str, host: &str, user: Option<String>) -> anyhow::Result<Table> {
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
    if let Some(fabric) = fabric(&recorded) {
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
    side.insert("endpoint".into(), T::Table(endpoint(label, short, &recorded, tcp, &mut d.net)));
    side.insert("recorded".into(), T::Array(recorded.into_iter().map(T::Table).collect()));
    Ok(side)
}

/// Every `queries/*.json` of a side as a `recorded` entry.
/// `redacted` counts binary values the bundle's redaction shortened.
fn recorded(f: &Files, dir: &str, redacted: &mut usize) -> anyhow::Result<Vec<Table>> {
    let mut out = Vec::new();
    let prefix = format!("{dir}/queries/");
    for name in f.0.keys().filter(|k| k.starts_with(&prefix)) {
        let q = f.need(name)?;
        let Some(query) = q["query"].as_str() else { continue };
        let mut r = Table::new();
        r.insert("query".into(), T::from(query));
        if let Some(e) = q.get("error") {
            match (e["code"].as_i64(), e["timed_out"].as_bool().unwrap_or(false)) {
                (_, true) => {
                    r.insert("fault".into(), T::from("silence"));
                }
                (Some(code), _) => {
                    let message = e["message"].as_str().unwrap_or_default();
                    r.insert("error".into(), table([("number", T::Integer(code)), ("message", T::from(message))]));
                }
                (None, _) => {
                    let endless = e["message"].as_str().unwrap_or_default().contains("goes on past");
                    r.insert("fault".into(), T::from(if endless { "endless" } else { "hang_up" }));
                }
            }
            out.push(r);
            continue;
        }
        let rows = q["rows"].as_array().cloned().unwrap_or_default();
        let mut columns: Vec<[String; 2]> = q["columns"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|c| Some([c["name"].as_str()?.to_string(), c["type"].as_str()?.to_string()]))
                    .collect()
            })
            .unwrap_or_default();
        if columns.is_empty()
            && let Some(Value::Object(first)) = rows.first()
        {
            // Column names only: the types follow from the values.
            columns = first.iter().map(|(k, v)| [k.clone(), guess_type(v).into()]).collect();
        }
        r.insert(
            "columns".into(),
            T::Array(columns.iter().map(|c| T::Array(c.iter().map(|s| T::from(s.as_str())).collect())).collect()),
        );
        let binary: Vec<&str> =
            columns.iter().filter(|[_, t]| t.starts_with("varbinary")).map(|[n, _]| n.as_str()).collect();
        let rows: Vec<T> = rows
            .iter()
            .filter_map(Value::as_object)
            .map(|row| {
                let kept = row.iter().filter(|(k, v)| {
                    // What redaction shortened (`0x…(20 bytes left out…`) is not the value: NULL.
                    let cut = binary.contains(&k.as_str())
                        && v.as_str().is_some_and(|s| crate::probe::sql::unhex(s).is_none());
                    *redacted += cut as usize;
                    !cut
                });
                T::Table(kept.filter_map(|(k, v)| Some((k.clone(), toml_value(v)?))).collect())
            })
            .collect();
        r.insert("rows".into(), T::Array(rows));
        out.push(r);
    }
    Ok(out)
}

fn guess_type(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "bit",
        Value::Number(n) if n.is_i64() => "bigint",
        Value::Number(_) => "float",
        _ => "nvarchar",
    }
}

/// JSON to TOML; `null` has no TOML form and stays out (the column reads NULL).
fn toml_value(v: &Value) -> Option<T> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => T::Boolean(*b),
        Value::Number(n) => n.as_i64().map(T::Integer).unwrap_or_else(|| T::Float(n.as_f64().unwrap_or_default())),
        Value::String(s) => T::from(s.as_str()),
        other => T::from(other.to_string()),
    })
}

/// The first row of the recorded statement whose text contains `marker`.
fn first_row<'a>(recorded: &'a [Table], marker: &str) -> Option<&'a Table> {
    let r = recorded.iter().find(|r| r.get("query").and_then(T::as_str).is_some_and(|q| q.contains(marker)))?;
    r.get("rows")?.as_array()?.first()?.as_table()
}

/// The managed instance's node and HADR port, from its fabric parameters.
fn fabric(recorded: &[Table]) -> Option<T> {
    let r =
        recorded.iter().find(|r| r.get("query").and_then(T::as_str).is_some_and(|q| q.contains("fabric_config")))?;
    let rows = r.get("rows")?.as_array()?;
    let param = |name: &str| {
        rows.iter()
            .filter_map(T::as_table)
            .find(|t| t.get("parameter_name").and_then(T::as_str) == Some(name))?
            .get("value")?
            .as_str()
            .map(str::to_string)
    };
    let port: i64 = param("HadrPort")?.trim().parse().ok()?;
    Some(table([("node", T::from(param("ClusterName")?)), ("hadr_port", T::Integer(port))]))
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
fn login_failure(failed: &Value, login: &mut Table, tds: &mut Table) {
    let message = failed["message"].as_str().unwrap_or_default();
    if let Some(code) = failed["code"].as_i64() {
        login.insert("refuse".into(), table([("number", T::Integer(code)), ("message", T::from(message))]));
    } else if let Some(port) = redirect_loop_port(message) {
        tds.insert("redirect_port".into(), T::Integer(port));
        tds.insert("redirect_loop".into(), T::Boolean(true));
    } else if message.contains("pre-login packet during the TLS handshake") {
        // The server framed TLS in TDS packets where the client expected it bare.
        tds.insert("legacy_tls_framing".into(), T::Boolean(true));
    } else if failed["timed_out"].as_bool() == Some(true) && !tds.contains_key("fault") {
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

#[derive(Default)]
struct Network {
    faults: Vec<T>,
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
fn endpoint(label: &str, short: &str, recorded: &[Table], tcp: &Value, net: &mut Network) -> Table {
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
fn jobs(f: &Files, net: &mut Network) -> anyhow::Result<()> {
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
fn dns_records(dns: &Value, p: &Profile) -> Vec<T> {
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

fn plan(p: &Profile) -> anyhow::Result<Table> {
    let mut plan = Table::new();
    plan.insert("databases".into(), T::Array(p.databases.iter().map(|d| T::from(d.as_str())).collect()));
    plan.insert("job_probes".into(), T::Boolean(p.probes.agent_jobs));
    plan.insert("temp_endpoint".into(), T::Boolean(p.probes.temp_endpoint));
    plan.insert("failback".into(), T::Boolean(p.managed_instance.failback));
    plan.insert(
        "trust_server_certificate".into(),
        T::Boolean(p.sql_server.trust_server_certificate || p.managed_instance.trust_server_certificate),
    );
    if let Some(port) = p.sql_server.endpoint_port {
        plan.insert("endpoint_port".into(), T::Integer(port.into()));
    }
    let thresholds = T::try_from(&p.thresholds).context("the profile's thresholds")?;
    plan.insert("thresholds".into(), thresholds);
    Ok(plan)
}

/// What the bundle's own report found, for the test of a fix.
fn expect(report: &Value) -> Table {
    let mut e = Table::new();
    if let Some(code) = report["summary"]["exit_code"].as_i64() {
        e.insert("exit_code".into(), T::Integer(code));
    }
    if let Some(rc) = report["root_cause"]["id"].as_str() {
        e.insert("root_cause".into(), T::from(rc));
    }
    let findings: Vec<T> = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| matches!(f["severity"].as_str(), Some("warn" | "fail" | "error")))
        .map(|f| {
            table([
                ("id", T::from(f["id"].as_str().unwrap_or_default())),
                ("severity", T::from(f["severity"].as_str().unwrap_or_default())),
            ])
        })
        .collect();
    e.insert("findings".into(), T::Array(findings));
    e
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
