//! A bundle as a lab scenario: each side answers the recorded statements with
//! the recorded rows and errors, the network gives the recorded probe outcomes,
//! names resolve (or fail) as they did, and the plan and thresholds are the
//! profile's. `milink lab scenario-from --bundle` prints it; `lab up --bundle`
//! and `diagnose --bundle` run it.
//!
//! The lab is on loopback, so what cannot be had there is approximated and
//! said in the scenario's head: recorded addresses become the lab's own, a
//! certificate keeps its verdict and days left but not its key, and a fault seen
//! only from one side applies to every source unless the lab runs `--topology`.

mod network;
mod recorded;
mod side;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;
use toml::{Table, Value as T};

use crate::profile::Profile;
use network::Network;

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
         # edit rows, faults or records to try a fix, then `milink diagnose --lab` this file.\n\
         # Approximated on loopback: addresses are the lab's own; a TLS certificate keeps its\n\
         # verdict and days left, not its key; a fault seen from one side only applies to every\n\
         # source unless the lab runs --topology; recorded datetimes move by the bundle's age.\n"
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
        let mut side = side::side(&mut d, label, short, host, user)?;
        // The host the endpoint URL names: a name there is for the managed instance to resolve.
        if let (Some(h), "sql_server", Some(T::Table(ep))) =
            (&profile.sql_server.endpoint_host, label, side.get_mut("endpoint"))
        {
            ep.insert("url_host".into(), T::from(h.as_str()));
        }
        s.insert(label.into(), T::Table(side));
    }
    network::jobs(f, &mut d.net)?;
    let redacted = d.redacted;
    s.insert("network".into(), table([("faults", T::Array(d.net.faults))]));
    s.insert("dns".into(), table([("records", T::Array(network::dns_records(&dns, &profile)))]));
    s.insert("plan".into(), T::Table(plan(&profile)?));
    if let Some(arm) = arm(f)? {
        s.insert("arm".into(), T::Table(arm));
    }
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

/// The instance's ARM resource as recorded: its policy and DR setting, or the
/// refusal the checks met (a bundle from before milink read ARM has none).
fn arm(f: &Files) -> anyhow::Result<Option<Table>> {
    let Some(v) = f.json("evidence/arm.json")? else { return Ok(None) };
    let mut t = Table::new();
    if let Some(i) = v.get("instance") {
        for (k, field) in [
            ("database_format", "database_format"),
            ("hybrid_secondary_usage", "hybrid_secondary_usage"),
            ("hybrid_secondary_usage_detected", "hybrid_secondary_usage_detected"),
        ] {
            if let Some(x) = i[field].as_str() {
                t.insert(k.into(), T::from(x));
            }
        }
        if let Some(dags) = i.get("dags").filter(|d| d.is_array()) {
            t.insert("recorded_dags".into(), T::from(dags.to_string()));
        }
    }
    if let Some(why) = v["error"].as_str() {
        let fault = table([
            ("operation", T::from("instance.get")),
            ("kind", T::from("error")),
            ("status", T::from(403)),
            ("code", T::from("AuthorizationFailed")),
            ("message", T::from(why)),
        ]);
        t.insert("faults".into(), T::Array(vec![fault]));
    }
    Ok(Some(t))
}

fn table<const N: usize>(kv: [(&str, T); N]) -> T {
    T::Table(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
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
    if p.link.mode == crate::profile::LinkMode::Multi {
        plan.insert("link_mode".into(), T::from("multi"));
    }
    if let Some(name) = &p.link.name {
        plan.insert("link_name".into(), T::from(name.as_str()));
    }
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
