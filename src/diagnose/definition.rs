//! The existing link's definition, beside its state: the managed instance's
//! `LISTENER_URL` in SQL Server's distributed AG, the names against the
//! instance's DAG resource, and what ARM says of each database's health
//! (replica state, last link error, the partner certificate, lag).

use serde_json::Value;

use super::link::Link;
use crate::checks::F;
use crate::probe::sql::{Fields, Record};
use crate::report::{Finding, Severity, Side};

/// What the definition findings read besides the link's DMVs.
pub struct Context<'a> {
    /// ARM's DAG resources, or why there are none.
    pub arm: Option<&'a Result<crate::azure::instance::InstanceFacts, String>>,
    /// The managed instance's `@@SERVERNAME` (its short name).
    pub mi_name: Option<&'a str>,
    pub mi_fqdn: &'a str,
}

/// SQL Server's distributed AG: (its own replica row, the instance's row).
fn sql_dag<'a>(link: &'a Link<'_>) -> Option<(&'a Record, Option<&'a Record>)> {
    let rows = link.dag_rows(Side::SqlServer).collect::<Vec<_>>();
    let local = rows.iter().find(|r| r.flag("is_local") == Some(true))?;
    let dag = local.str("ag_name");
    let remote = rows.iter().find(|r| r.flag("is_local") == Some(false) && r.str("ag_name") == dag);
    Some((local, remote.copied()))
}

pub fn findings(link: &Link<'_>, cx: &Context<'_>, out: &mut Vec<Finding>) {
    let dag = link.dag.clone().or_else(|| sql_dag(link).and_then(|(l, _)| l.str("ag_name")).map(str::to_string));
    let arm_dag = arm_dag(cx, dag.as_deref());
    let names = names(link, &arm_dag);
    for mut f in [listener_url(link, cx), local_ag(link), names, health(arm_dag)] {
        // Each is about this link.
        f.subject = link.dag.clone();
        out.push(f);
    }
}

/// `tcp://<fqdn>:5022;Server=[<instance name>]`: without the `Server=` part the
/// instance's gateway cannot route the link to the instance (41976).
fn listener_url(link: &Link<'_>, cx: &Context<'_>) -> Finding {
    let f = F::new("link-listener-url", Side::SqlServer, Severity::Pass);
    let Some((_, Some(remote))) = sql_dag(link) else {
        return F::skip(
            "link-listener-url",
            Side::SqlServer,
            "SQL Server has no distributed AG with the instance's replica",
        )
        .done();
    };
    let url = remote.str("endpoint_url").unwrap_or("");
    let Some(name) = cx.mi_name.or_else(|| cx.mi_fqdn.split('.').next()) else {
        return F::skip("link-listener-url", Side::SqlServer, "the instance's name is unknown").done();
    };
    let want = format!(";Server=[{name}]");
    let f = f.ev("endpoint_url", url).ev("expected_suffix", want.clone());
    let lower = url.to_ascii_lowercase();
    if lower.contains(&want.to_ascii_lowercase()) && lower.contains(&cx.mi_fqdn.to_ascii_lowercase()) {
        return f.found(url.to_string()).done();
    }
    let dag = sql_dag(link).and_then(|(l, _)| l.str("ag_name")).unwrap_or("<DAG>");
    let replica = remote.str("replica_server_name").unwrap_or("<instance AG>");
    f.severity(Severity::Fail)
        .found(format!("{url}: not tcp://{}:5022{want}", cx.mi_fqdn))
        .remedy(format!(
            "ALTER AVAILABILITY GROUP {} MODIFY AVAILABILITY GROUP ON {} WITH (LISTENER_URL = {});",
            crate::tsql::ident(dag),
            crate::tsql::nstring(replica),
            crate::tsql::nstring(&format!("tcp://{}:5022{want}", cx.mi_fqdn))
        ))
        .done()
}

/// SQL Server's AG behind the link, when it has more replicas than SQL Server
/// itself: the link must name its listener (a node's name breaks the link at
/// the next local failover), and what the wizard put on the current primary
/// only (the instance's certificate, the Azure roots) must be on every replica.
fn local_ag(link: &Link<'_>) -> Finding {
    let id = "link-local-ag";
    let Some((dag_local, _)) = sql_dag(link) else {
        return F::skip(id, Side::SqlServer, "SQL Server has no distributed AG").done();
    };
    let ag = dag_local.str("replica_server_name").unwrap_or("");
    let replicas: Vec<&str> = link
        .rows(Side::SqlServer, "link_replicas")
        .iter()
        .filter(|r| {
            r.flag("is_distributed") == Some(false) && r.str("ag_name").is_some_and(|n| n.eq_ignore_ascii_case(ag))
        })
        .filter_map(|r| r.str("replica_server_name"))
        .collect();
    let f =
        F::new(id, Side::SqlServer, Severity::Pass).ev("availability_group", ag).ev("replicas", replicas.join(", "));
    if replicas.len() <= 1 {
        return f.found(format!("{ag}: one replica")).done();
    }
    let url = dag_local.str("endpoint_url").unwrap_or("");
    let host = crate::audit::read::url_host(url);
    let listeners: Vec<String> = link
        .rows(Side::SqlServer, "ag_listeners")
        .iter()
        .filter(|r| r.str("ag_name").is_some_and(|n| n.eq_ignore_ascii_case(ag)))
        .filter_map(|r| r.str("dns_name").map(str::to_ascii_lowercase))
        .collect();
    // A listener's DNS name, or its FQDN.
    let names_listener = listeners.iter().any(|l| host == *l || host.split('.').next() == Some(l.as_str()));
    let f = f.ev("link_names", host.clone()).ev("listeners", listeners.join(", "));
    if !names_listener {
        let remedy = match listeners.first() {
            Some(l) => format!(
                "Name the AG listener in the link on both halves: on SQL Server, ALTER AVAILABILITY GROUP [<DAG>] MODIFY AVAILABILITY GROUP ON {} WITH (LISTENER_URL = {}); on the instance, the DAG resource's partnerEndpoint (re-create that half). Then put the instance's certificate and the Azure roots on every replica.",
                crate::tsql::nstring(ag),
                crate::tsql::nstring(&format!("TCP://{l}:5022"))
            ),
            None => format!(
                "{ag} has {} replicas and no listener: create one (ALTER AVAILABILITY GROUP … ADD LISTENER) and name it in the link, not a node.",
                replicas.len()
            ),
        };
        return f
            .severity(Severity::Fail)
            .found(format!("{ag} has {} replicas, and the link names {host}, not the AG listener", replicas.len()))
            .remedy(remedy)
            .done();
    }
    f.severity(Severity::Warn)
        .found(format!("{ag} has {} replicas: {}", replicas.len(), replicas.join(", ")))
        .ev("note", "milink read only the replica it logged in to")
        .remedy("The instance's certificate (named after its FQDN) and the Azure root certificates (with sp_certificate_add_issuer) must be on every replica, not only the current primary (the SSMS wizard does that one only): check each, or the link breaks at the next local failover.")
        .done()
}

/// The instance's DAG resource of this link (by name, else the only one).
/// The instance's DAG resource of a link, as ARM lists them.
enum ArmDag {
    Found(Value),
    /// ARM was read and has no such resource: the instance's half is gone.
    Missing(String),
    /// ARM could not tell (not configured, not readable, not listed).
    Unknown(String),
}

/// The instance's DAG resource of this link (by name, else the only one).
fn arm_dag(cx: &Context<'_>, dag: Option<&str>) -> ArmDag {
    let facts = match cx.arm {
        None => return ArmDag::Unknown("the profile names no ARM resource of the instance ([arm])".into()),
        Some(Err(why)) => return ArmDag::Unknown(format!("ARM could not be read: {why}")),
        Some(Ok(f)) => f,
    };
    let Some(dags) = &facts.dags else {
        return ArmDag::Unknown("ARM did not list the instance's distributed availability groups".into());
    };
    let by_name = |v: &&Value| {
        let n = v["properties"]["distributedAvailabilityGroupName"].as_str().or(v["name"].as_str());
        dag.is_some_and(|d| n.is_some_and(|n| n.eq_ignore_ascii_case(d)))
    };
    match (dags.iter().find(by_name), dags.as_slice()) {
        (Some(v), _) => ArmDag::Found(v.clone()),
        // One link each side, named differently: compare them.
        (None, [only]) => ArmDag::Found(only.clone()),
        (None, _) => ArmDag::Missing(format!(
            "the instance has no DAG resource {} ({} others): its half of the link is gone",
            dag.unwrap_or("?"),
            dags.len()
        )),
    }
}

/// SQL Server's names against the resource's: a mismatch is what 41976 means.
fn names(link: &Link<'_>, arm: &ArmDag) -> Finding {
    let id = "link-names-match-arm";
    let Some((local, remote)) = sql_dag(link) else {
        return F::skip(id, Side::Link, "SQL Server has no distributed AG").done();
    };
    let v = match arm {
        ArmDag::Unknown(why) => return F::skip(id, Side::Link, why.clone()).done(),
        ArmDag::Missing(why) => {
            return F::new(id, Side::Link, Severity::Fail)
                .found(why.clone())
                .ev("missing_on_instance", local.str("ag_name").unwrap_or(""))
                .remedy("Create the instance's half again (milink link apply makes the DAG resource from SQL Server's names), or, if the link is meant to be gone, remove SQL Server's half too (milink link remove).")
                .done();
        }
        ArmDag::Found(v) => v,
    };
    let p = &v["properties"];
    // New schema, then the old one's names.
    let arm_name = p["distributedAvailabilityGroupName"].as_str().or(v["name"].as_str()).unwrap_or("");
    let partner = p["partnerAvailabilityGroupName"].as_str().or(p["primaryAvailabilityGroupName"].as_str());
    let instance = p["instanceAvailabilityGroupName"].as_str().or(p["secondaryAvailabilityGroupName"].as_str());
    let pairs = [
        ("distributed AG", local.str("ag_name"), Some(arm_name)),
        ("SQL Server's AG", local.str("replica_server_name"), partner),
        ("the instance's AG", remote.and_then(|r| r.str("replica_server_name")), instance),
    ];
    let mut f = F::new(id, Side::Link, Severity::Pass);
    let mut wrong = Vec::new();
    for (what, sql, arm) in pairs {
        let (sql, arm) = (sql.unwrap_or(""), arm.unwrap_or(""));
        f = f.ev(&format!("{what} (SQL Server / ARM)"), format!("{sql} / {arm}"));
        if !arm.is_empty() && !sql.eq_ignore_ascii_case(arm) {
            wrong.push(format!("{what}: SQL Server says {sql}, ARM says {arm}"));
        }
    }
    if wrong.is_empty() {
        return f.found("SQL Server's names match the instance's DAG resource").done();
    }
    f.severity(Severity::Fail)
        .found(wrong.join("; "))
        .remedy("The two halves of the link must name the same groups (41976 otherwise): drop the half whose names are wrong and create it again with the other's names (milink link remove, then plan and apply).")
        .done()
}

/// ARM's own view of each database of the link.
fn health(arm: ArmDag) -> Finding {
    let id = "link-arm-health";
    let v = match arm {
        ArmDag::Unknown(why) | ArmDag::Missing(why) => return F::skip(id, Side::ManagedInstance, why).done(),
        ArmDag::Found(v) => v,
    };
    let dbs = v["properties"]["databases"].as_array().cloned().unwrap_or_default();
    if dbs.is_empty() {
        // The old schema has one state and no per-database health.
        let state = v["properties"]["linkState"].as_str().unwrap_or("");
        return F::new(id, Side::ManagedInstance, Severity::Pass)
            .found(format!("linkState {state} (no per-database health in this api-version)"))
            .ev("linkState", state)
            .done();
    }
    let mut f = F::new(id, Side::ManagedInstance, Severity::Pass);
    let mut bad = Vec::new();
    let mut summary = Vec::new();
    for d in &dbs {
        let name = d["databaseName"].as_str().unwrap_or("?");
        let state = d["replicaState"].as_str().unwrap_or("");
        let error = d["mostRecentLinkError"].as_str().filter(|e| !e.is_empty());
        let send = d["instanceSendReplicationLagSeconds"].as_i64();
        let redo = d["instanceRedoReplicationLagSeconds"].as_i64();
        let cert = &d["partnerAuthCertValidity"];
        f = f
            .ev(&format!("{name}.replicaState"), state)
            .ev(&format!("{name}.mostRecentLinkError"), error.unwrap_or(""))
            .ev(&format!("{name}.sendLagSeconds"), send.unwrap_or(0))
            .ev(&format!("{name}.redoLagSeconds"), redo.unwrap_or(0));
        if let Some(exp) = cert["expiryDate"].as_str() {
            f = f.ev(
                &format!("{name}.partnerCertificate"),
                format!("{} until {exp}", cert["certificateName"].as_str().unwrap_or("")),
            );
        } else {
            bad.push(format!(
                "{name}: the instance holds no valid certificate of SQL Server (partnerAuthCertValidity empty)"
            ));
        }
        if state.ends_with("Error") {
            bad.push(format!("{name}: {state}{}", error.map(|e| format!(" ({e})")).unwrap_or_default()));
        }
        summary.push(format!("{name} {state}"));
    }
    if bad.is_empty() {
        return f.found(summary.join("; ")).done();
    }
    f.severity(Severity::Fail)
        .found(bad.join("; "))
        .remedy("ARM's view of the link agrees with the failure: fix the cause the other findings name; a LinkCreationError link is dropped and created again once it is fixed.")
        .done()
}
