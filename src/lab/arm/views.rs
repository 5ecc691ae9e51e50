//! Resources as ARM returns them, property names and casing per api-version:
//! the old DAG schema (2021-11-01: `targetDatabase`, `sourceEndpoint`, …) and
//! the new one (2025-01-01: `partnerEndpoint`, `databases[]`, …).

use serde_json::{Value, json};

use crate::lab::state::objects::Origin;
use crate::lab::state::{ArmDag, Link, World};
use crate::tsql::{hex, thumbprint};

/// api-versions of the old DAG schema (mi-link-facts §4), oldest first.
pub const OLD: &[&str] = &[
    "2021-05-01-preview",
    "2021-08-01-preview",
    "2021-11-01-preview",
    "2021-11-01",
    "2022-02-01-preview",
    "2022-05-01-preview",
    "2022-08-01-preview",
    "2022-11-01-preview",
    "2023-02-01-preview",
    "2023-08-01",
];
/// api-versions of the new DAG schema.
pub const NEW: &[&str] = &[
    "2023-05-01-preview",
    "2023-08-01-preview",
    "2024-05-01-preview",
    "2024-11-01-preview",
    "2025-01-01",
    "2025-02-01-preview",
    // Adds linkMode (SingleDatabase | MultiDatabase); the Azure CLI 2.9x asks it.
    "2025-08-01-preview",
];

pub fn is_new_schema(api_version: &str) -> bool {
    NEW.contains(&api_version)
}

/// What the resource paths share.
pub struct Names<'a> {
    pub subscription: &'a str,
    pub resource_group: &'a str,
    pub instance: &'a str,
    pub location: &'a str,
}

impl Names<'_> {
    pub fn instance_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Sql/managedInstances/{}",
            self.subscription, self.resource_group, self.instance
        )
    }
}

fn iso(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// What the instance's resource says that the scenario fixes.
pub struct Instance<'a> {
    pub tier: &'a str,
    pub proxy: &'a str,
    /// `databaseFormat`: the update policy.
    pub format: &'a str,
    /// `hybridSecondaryUsageDetected` as a replayed bundle recorded it.
    pub detected: Option<&'a str>,
    pub admin: &'a str,
    pub collation: &'a str,
}

pub fn instance(n: &Names<'_>, w: &World, i: &Instance<'_>) -> Value {
    let (proxy, format, admin, collation) = (i.proxy, i.format, i.admin, i.collation);
    // Passive use is what the instance qualifies for while it is primary of no link.
    let detected =
        i.detected.unwrap_or(if w.links.iter().any(|l| l.status.mi_role == "PRIMARY") { "Active" } else { "Passive" });
    let (sku, tier_name, gpv2) = match i.tier {
        "BusinessCritical" => ("BC_Gen5", "BusinessCritical", false),
        "NextGenGeneralPurpose" => ("GP_Gen5", "GeneralPurpose", true),
        _ => ("GP_Gen5", "GeneralPurpose", false),
    };
    json!({
        "id": n.instance_id(),
        "name": n.instance,
        "type": "Microsoft.Sql/managedInstances",
        "location": n.location,
        "sku": { "name": sku, "tier": tier_name, "family": "Gen5", "capacity": 8 },
        "properties": {
            "provisioningState": "Succeeded",
            "administratorLogin": admin,
            "subnetId": format!("/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/virtualNetworks/vnet-mi/subnets/ManagedInstance", n.subscription, n.resource_group),
            "state": "Ready",
            "licenseType": "LicenseIncluded",
            "hybridSecondaryUsage": w.arm.hybrid_secondary_usage,
            "hybridSecondaryUsageDetected": detected,
            "vCores": 8,
            "storageSizeInGB": 256,
            "collation": collation,
            "dnsZone": w.mi.fqdn.split('.').nth(1).unwrap_or(""),
            "fullyQualifiedDomainName": w.mi.fqdn,
            "publicDataEndpointEnabled": false,
            "proxyOverride": proxy,
            "timezoneId": "UTC",
            "minimalTlsVersion": "1.2",
            "zoneRedundant": false,
            "isGeneralPurposeV2": gpv2,
            "databaseFormat": format,
        }
    })
}

pub fn trust_list(w: &World) -> Vec<(String, Vec<u8>)> {
    w.mi.certificates
        .iter()
        .filter(|c| c.origin == Origin::ServerTrust)
        .map(|c| (c.name.clone(), c.cert.der.clone()))
        .collect()
}

/// `publicBlob` is a secret (`x-ms-secret`): ARM does not return it.
pub fn trust(n: &Names<'_>, name: &str, der: &[u8]) -> Value {
    json!({
        "id": format!("{}/serverTrustCertificates/{name}", n.instance_id()),
        "name": name,
        "type": "Microsoft.Sql/managedInstances/serverTrustCertificates",
        "properties": {
            "thumbprint": thumbprint(der),
            "certificateName": name,
        }
    })
}

pub fn endpoint_cert(n: &Names<'_>, kind: &str, der: &[u8]) -> Value {
    json!({
        "id": format!("{}/endpointCertificates/{kind}", n.instance_id()),
        "name": kind,
        "type": "Microsoft.Sql/managedInstances/endpointCertificates",
        "properties": { "publicBlob": hex(der) }
    })
}

/// ARM's `replicaState` for a link's status.
fn replica_state(link: Option<&Link>) -> (&'static str, Option<String>) {
    let Some(l) = link else { return ("CreatingLink", None) };
    let st = &l.status;
    if st.failing_over {
        return ("LinkFailoverInProgress", None);
    }
    if let Some(e) = &st.error {
        return ("LinkInitError", Some(e.number.to_string()));
    }
    match &st.seeding {
        Some(s) if s.failure_state != 0 => ("LinkCreationError", Some(s.error_code.to_string())),
        Some(s) if s.finished.is_none() => ("Seeding", None),
        Some(_) if st.connected => ("LinkSynchronizing", None),
        _ => ("CreatingLink", None),
    }
}

/// What both schemas of a DAG resource say of its link.
struct DagFacts<'a> {
    link: Option<&'a Link>,
    instance_replica: Option<String>,
    partner_replica: Option<String>,
    /// The instance's own copy: what it hardened (only equality means anything).
    lsn: String,
    state: &'static str,
    connected: bool,
}

pub fn dag(n: &Names<'_>, w: &World, d: &ArmDag, api: &str) -> Value {
    let link = w.link(&d.name);
    let mi_dag = w.mi.ag(&d.name);
    let (state, _) = replica_state(link);
    let f = DagFacts {
        link,
        instance_replica: mi_dag.and_then(|a| a.replicas.first()).map(|r| r.id.clone()),
        partner_replica: mi_dag.and_then(|a| a.replicas.get(1)).map(|r| r.id.clone()),
        lsn: crate::lab::state::lsn(link.map(|l| l.status.log.mi).unwrap_or(0)).to_string(),
        state,
        connected: link.is_some_and(|l| l.status.connected),
    };
    let id = format!("{}/distributedAvailabilityGroups/{}", n.instance_id(), d.name);
    if !is_new_schema(api) {
        return old_schema_dag(&id, d, &f);
    }
    let mut v = new_schema_dag(&id, w, d, &f);
    if api == "2025-08-01-preview" {
        v["properties"]["linkMode"] = json!(d.link_mode);
    }
    v
}

/// 2021-11-01 and the other old api-versions: one database, `linkState`.
fn old_schema_dag(id: &str, d: &ArmDag, f: &DagFacts<'_>) -> Value {
    let link_state = match f.state {
        "LinkSynchronizing" => "Catchup",
        "Seeding" => "Seeding",
        other => other,
    };
    json!({
        "id": id, "name": d.name, "type": "Microsoft.Sql/managedInstances/distributedAvailabilityGroups",
        "properties": {
            "targetDatabase": d.databases.first(),
            "sourceEndpoint": d.partner_endpoint,
            "primaryAvailabilityGroupName": d.partner_ag,
            "secondaryAvailabilityGroupName": d.instance_ag,
            "replicationMode": d.replication_mode,
            "distributedAvailabilityGroupId": d.id,
            "sourceReplicaId": f.partner_replica,
            "targetReplicaId": f.instance_replica,
            "linkState": link_state,
            "lastHardenedLsn": f.connected.then_some(&f.lsn),
        }
    })
}

/// 2025-01-01 and the other new api-versions: roles, databases[] with their health.
fn new_schema_dag(id: &str, w: &World, d: &ArmDag, f: &DagFacts<'_>) -> Value {
    let role = |r: Option<&str>, default: &'static str| match r {
        Some("PRIMARY") => "Primary",
        Some("SECONDARY") => "Secondary",
        _ => default,
    };
    let link = f.link;
    let lsn = f.lsn.as_str();
    let now = iso(time::OffsetDateTime::now_utc());
    // The SQL Server certificate the instance trusts: the one it presents now, if trusted.
    let sql_der = w.sql.endpoint_certificate().map(|c| c.cert.der.clone());
    let cert =
        w.mi.certificates
            .iter()
            .filter(|c| c.origin == Origin::ServerTrust)
            .find(|c| Some(&c.cert.der) == sql_der.as_ref())
            .map(|c| json!({ "certificateName": c.name, "expiryDate": iso(c.cert.expiry) }));
    let databases: Vec<Value> = d
        .databases
        .iter()
        .map(|db| {
            // Each database's own state (several in multi-database mode).
            let link = w.link_of(&d.name, db).or(link);
            let (state, error) = replica_state(link);
            let seeding = link.and_then(|l| l.status.seeding.as_ref()).map(|s| {
                let pct = if s.size_bytes > 0 { s.transferred_bytes * 100 / s.size_bytes } else { 100 };
                format!("{pct}%")
            });
            let health = link.map(|l| l.status.health.clone()).unwrap_or_else(|| "NOT_HEALTHY".into());
            let connected = link.is_some_and(|l| l.status.connected);
            json!({
                "databaseName": db,
                "instanceReplicaId": f.instance_replica,
                "partnerReplicaId": f.partner_replica,
                "replicaState": state,
                "seedingProgress": seeding,
                "synchronizationHealth": health,
                "connectedState": if connected { "CONNECTED" } else { "DISCONNECTED" },
                "lastReceivedLsn": connected.then_some(lsn),
                "lastReceivedTime": connected.then(|| now.clone()),
                "lastSentLsn": connected.then_some(lsn),
                "lastSentTime": connected.then(|| now.clone()),
                "lastCommitLsn": connected.then_some(lsn),
                "lastCommitTime": connected.then(|| now.clone()),
                "lastHardenedLsn": link.map(|_| lsn),
                "lastHardenedTime": connected.then(|| now.clone()),
                "lastBackupLsn": lsn,
                "lastBackupTime": now,
                "mostRecentLinkError": error,
                "partnerAuthCertValidity": cert,
                "instanceSendReplicationLagSeconds": 0,
                "instanceRedoReplicationLagSeconds": link.map(|l| l.status.lag_seconds).unwrap_or(0),
            })
        })
        .collect();
    json!({
        "id": id, "name": d.name, "type": "Microsoft.Sql/managedInstances/distributedAvailabilityGroups",
        "properties": {
            "distributedAvailabilityGroupName": d.name,
            "distributedAvailabilityGroupId": d.id,
            "replicationMode": d.replication_mode,
            "partnerLinkRole": role(link.map(|l| l.status.sql_role.as_str()), "Primary"),
            "partnerAvailabilityGroupName": d.partner_ag,
            "partnerEndpoint": d.partner_endpoint,
            "instanceLinkRole": role(link.map(|l| l.status.mi_role.as_str()), "Secondary"),
            "instanceAvailabilityGroupName": d.instance_ag,
            "failoverMode": d.failover_mode,
            "seedingMode": d.seeding_mode,
            "databases": databases,
        }
    })
}

/// An operation's status resource.
pub fn operation(id: &str, status: &str, started: time::OffsetDateTime, error: Option<(&str, &str)>) -> Value {
    let mut v = json!({ "name": id, "status": status, "startTime": iso(started) });
    if let Some((code, message)) = error {
        v["error"] = json!({ "code": code, "message": message });
    }
    v
}
