//! The state a scenario starts from. Certificates are made for both sides first,
//! so that an import on one side is byte-equal to the other side's certificate.

use std::collections::BTreeMap;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use super::objects::{
    Auth, AvailabilityGroup, AvailabilityMode, Certificate, Cipher, Database, Endpoint, EndpointState, LogLine, Origin,
    PrivateKey, Replica,
};
use super::{ArmSide, BackupSet, ConnectError, Link, LinkStatus, Seeding, Server, SideId, Workload, World};
use crate::lab::certs::{self, CertError, EndpointCert};
use crate::lab::scenario::{self, Scenario, Side};

/// Both sides' state. `sql_endpoint_host` is SQL Server's endpoint host as
/// endpoint URLs name it (an address, or the scenario's `url_host`).
pub fn build(scenario: &Scenario, now: OffsetDateTime, sql_endpoint_host: &str) -> Result<World, CertError> {
    let sql_certs = make_certs(&scenario.sql_server, now, 0x1000)?;
    let mi_certs = make_certs(&scenario.managed_instance, now, 0x2000)?;
    let mut sql = server(SideId::Sql, &scenario.sql_server, &sql_certs, &mi_certs, &scenario.managed_instance, now)?;
    let mut mi = server(SideId::Mi, &scenario.managed_instance, &mi_certs, &sql_certs, &scenario.sql_server, now)?;
    let mut links = Vec::new();
    let mut arm = ArmSide::default();
    if let Some(u) = &scenario.arm.hybrid_secondary_usage {
        arm.hybrid_secondary_usage = u.clone();
    }
    for link in scenario.all_links() {
        let dag = scenario_link(scenario, link, &mut sql, &mut mi, sql_endpoint_host, now);
        if link.mi_half {
            arm.dags.push(dag);
        }
        let status = pinned_status(link, now);
        links.push(Link {
            pinned: !link.live,
            since: Some(now),
            growth: (link.log_send_queue_growth_kb_per_s > 0).then_some(super::Growth {
                kb_per_s: link.log_send_queue_growth_kb_per_s,
                send_kb: link.log_send_queue_kb,
                lag_s: link.secondary_lag_seconds,
            }),
            // The application writes where the file says the primary is.
            writer: if status.sql_role != "PRIMARY" && status.mi_role == "PRIMARY" { SideId::Mi } else { SideId::Sql },
            status,
            ..Link::new(&link.name, &link.database)
        });
    }
    let mut workload = Workload::idle(now);
    if let Some(w) = &scenario.workload {
        workload.tps = w.tps;
        workload.stop_at = w.stop_after.map(|d| now + d);
    }
    Ok(World {
        sql,
        mi,
        arm,
        links,
        record: Vec::new(),
        workload,
        pending_backups: Vec::new(),
        replication: scenario.replication.clone(),
        version: 0,
        changed: Arc::new(tokio::sync::Notify::new()),
    })
}

/// The certificates a side makes itself (not copies of the other side's).
fn make_certs(side: &Side, now: OffsetDateTime, serial_base: u64) -> Result<BTreeMap<String, EndpointCert>, CertError> {
    let mut by_name = BTreeMap::new();
    for (i, c) in side.certificates.iter().filter(|c| c.copy_of.is_none()).enumerate() {
        let subject = c.subject.clone().unwrap_or_else(|| format!("Certificate for {}", side.name));
        let cert = certs::endpoint_cert(
            &subject,
            c.issuer.as_deref(),
            c.start.at(now),
            c.expiry.at(now),
            serial_base + i as u64,
        )?;
        by_name.insert(c.name.clone(), cert);
    }
    Ok(by_name)
}

fn endpoint_cert<'a>(side: &Side, certs: &'a BTreeMap<String, EndpointCert>) -> Option<&'a EndpointCert> {
    certs.get(side.endpoint.as_ref()?.certificate.as_ref().filter(|c| !c.is_empty())?)
}

fn server(
    id: SideId,
    side: &Side,
    own: &BTreeMap<String, EndpointCert>,
    other: &BTreeMap<String, EndpointCert>,
    other_side: &Side,
    now: OffsetDateTime,
) -> Result<Server, CertError> {
    let mut s = Server {
        side: id,
        name: side.name.clone(),
        fqdn: side.fqdn.clone(),
        version: side.version_parts(),
        connect_pack: side.has_link_procedures(),
        master_keys: if side.master_key { vec!["master".into()] } else { vec![] },
        certificates: Vec::new(),
        endpoint: None,
        ags: Vec::new(),
        ag_listeners: Vec::new(),
        databases: Vec::new(),
        errorlog: side
            .errorlog
            .iter()
            .map(|l| LogLine { at: l.at.at(now), process: l.process.clone(), text: l.text.clone() })
            .collect(),
        backups: side
            .backups
            .iter()
            .map(|b| BackupSet {
                database: b.database.clone(),
                kind: b.kind.to_ascii_uppercase().chars().next().unwrap_or('D'),
                copy_only: b.copy_only,
                finished: b.finished.at(now),
                first: 0,
                last: 0,
                device: None,
            })
            .collect(),
        backup_dir: None,
        born: now,
        guid_seed: if id == SideId::Mi { 0x4d49 } else { 0x5351 },
        guid_n: 0,
    };
    // A system certificate, so checks cannot assume the endpoint's is the only one.
    let system = certs::endpoint_cert(
        "CN=##MS_AgentSigningCertificate##",
        None,
        now - Duration::days(900),
        now + Duration::days(3000),
        0x5a5a,
    )?;
    s.certificates.push(Certificate {
        id: 101,
        name: "##MS_AgentSigningCertificate##".into(),
        cert: system,
        private_key: PrivateKey::ServiceMasterKey,
        origin: Origin::Own,
        issuer_for: vec![],
    });
    certificates(&mut s, side, own, other, other_side, now)?;
    if let Some(ep) = side.endpoint.as_ref().filter(|e| e.present) {
        s.endpoint = Some(Endpoint {
            id: 65536,
            name: ep.name.clone(),
            port: ep.port,
            state: EndpointState::parse(&ep.state).unwrap_or(EndpointState::Started),
            role: ep.role.to_ascii_uppercase(),
            auth: Auth::from_desc(&ep.auth, ep.certificate.clone().filter(|c| !c.is_empty())),
            cipher: Cipher::from_desc(ep.encryption, &ep.algorithm),
            listener_ip: ep.listener_ip.clone(),
        });
    }
    for (i, d) in side.databases.iter().enumerate() {
        s.databases.push(database(i as i64 + 5, d, now));
    }
    let first = side.databases.len() as i64 + 5;
    for n in 0..i64::from(side.more_databases) {
        let filler: scenario::Database = toml::from_str(&format!("name = \"Filler{:04}\"", n + 1)).expect("defaults");
        s.databases.push(database(first + n, &filler, now));
    }
    own_ags(&mut s, side, now);
    Ok(s)
}

/// The scenario's certificates of a side: its own, and copies of the other
/// side's (an import, a trust, a stale copy from before a rotation).
fn certificates(
    s: &mut Server,
    side: &Side,
    own: &BTreeMap<String, EndpointCert>,
    other: &BTreeMap<String, EndpointCert>,
    other_side: &Side,
    now: OffsetDateTime,
) -> Result<(), CertError> {
    let id = s.side;
    for (i, c) in side.certificates.iter().enumerate() {
        let (cert, origin) = match &c.copy_of {
            // Validated when the scenario was read: the copied side has one.
            // A named copy (a TDE certificate moved to the other side) is that
            // side's own, not a trust of the endpoint.
            Some(from) if scenario::split_copy_of(from).1.is_some() => {
                let (from, name) = scenario::split_copy_of(from);
                let certs = if from == id.label() { own } else { other };
                let Some(cert) = name.and_then(|n| certs.get(n)) else { continue };
                (cert.clone(), Origin::Own)
            }
            Some(from) => {
                let (from_side, certs) = if from == id.label() { (side, own) } else { (other_side, other) };
                let Some(current) = endpoint_cert(from_side, certs) else { continue };
                let cert = if c.previous {
                    // Before the rotation: same names, another key.
                    let issuer = Some(current.issuer.as_str()).filter(|i| *i != current.subject);
                    certs::endpoint_cert(
                        &current.subject,
                        issuer,
                        c.start.at(now),
                        c.expiry.at(now),
                        0x3000 + i as u64,
                    )?
                } else {
                    current.clone()
                };
                (cert, if id == SideId::Mi { Origin::ServerTrust } else { Origin::Statement })
            }
            None => (own[&c.name].clone(), Origin::Own),
        };
        s.certificates.push(Certificate {
            id: 256 + i as i64,
            name: c.name.clone(),
            cert,
            private_key: PrivateKey::parse(&c.private_key),
            origin,
            issuer_for: vec![],
        });
    }
    Ok(())
}

/// The availability groups a server has of its own (not the link's).
fn own_ags(s: &mut Server, side: &Side, now: OffsetDateTime) {
    let port = side.endpoint.as_ref().map(|e| e.port).unwrap_or(5022);
    for a in &side.availability_groups {
        let replica = Replica {
            id: s.guid(),
            name: s.name.clone(),
            endpoint_url: format!("TCP://{}:{port}", side.fqdn),
            mode: AvailabilityMode::Synchronous,
            failover_manual: true,
            seeding_automatic: false,
            session_timeout: 10,
        };
        let id = s.guid();
        for db in &a.databases {
            let g = s.guid();
            if let Some(d) = s.databases.iter_mut().find(|d| &d.name == db) {
                d.group_database_id = Some(g);
            }
        }
        let cluster_type = if s.version.0 == 13 { (0, "WSFC") } else { (2, "NONE") };
        s.ags.push(AvailabilityGroup {
            id,
            name: a.name.clone(),
            distributed: false,
            cluster_type,
            replicas: vec![replica],
            databases: a.databases.clone(),
            created: now - Duration::days(200),
        });
    }
}

fn database(id: i64, d: &scenario::Database, now: OffsetDateTime) -> Database {
    Database {
        id,
        name: d.name.clone(),
        state: d.state.to_ascii_uppercase(),
        recovery: d.recovery.to_ascii_uppercase(),
        log_files: d.log_files,
        filestream: d.filestream,
        in_memory: d.in_memory,
        tde: d.tde || d.tde_certificate.is_some(),
        tde_certificate: d.tde_certificate.clone(),
        log_size_mb: d.log_size_mb,
        log_used_percent: d.log_used_percent,
        log_reuse_wait: d.log_reuse_wait.to_ascii_uppercase(),
        size_mb: d.size_mb,
        created: now - Duration::days(400),
        group_database_id: None,
    }
}

/// The distributed AG the scenario says exists, with each side's local AG.
fn scenario_link(
    sc: &Scenario,
    link: &scenario::Link,
    sql: &mut Server,
    mi: &mut Server,
    sql_endpoint_host: &str,
    now: OffsetDateTime,
) -> super::ArmDag {
    let sql_ag = link.sql_ag.clone().unwrap_or_else(|| format!("AG_{}", link.database));
    let mi_ag = link.mi_ag.clone().unwrap_or_else(|| format!("AG_{}_MI", link.database));
    let sql_port = sc.sql_server.endpoint.as_ref().map(|e| e.port).unwrap_or(5022);
    let sql_url = format!("TCP://{sql_endpoint_host}:{sql_port}");
    // With a listener, the link names it rather than the node.
    let dag_sql_url = link.sql_listener.as_ref().map_or_else(|| sql_url.clone(), |l| format!("TCP://{l}:{sql_port}"));
    let mi_url = format!("tcp://{}:5022;Server=[{}]", sc.managed_instance.fqdn, sc.managed_instance.name);
    // SQL Server's half may name the instance otherwise (the instance's own keeps the documented URL).
    let sql_view_of_mi = link.mi_listener_url.clone().unwrap_or_else(|| mi_url.clone());
    let created = now - Duration::days(2);
    // Seeding made the database on the instance, unless it failed.
    let seeding_failed = link.seeding.as_ref().is_some_and(|s| s.current_state.eq_ignore_ascii_case("FAILED"));
    if !seeding_failed
        && mi.database(&link.database).is_none()
        && let Some(src) = sql.database(&link.database).cloned()
    {
        let id = mi.databases.iter().map(|d| d.id).max().unwrap_or(4) + 1;
        mi.databases.push(Database { id, created, ..src });
    }
    let halves = [(sql, &sql_ag, &mi_ag, &dag_sql_url, &sql_view_of_mi), (mi, &mi_ag, &sql_ag, &mi_url, &dag_sql_url)];
    // Without the instance's half, SQL Server's stands alone.
    for (server, local_ag, remote_ag, local_url, remote_url) in
        halves.into_iter().take(if link.mi_half { 2 } else { 1 })
    {
        let cluster_type = if server.side == SideId::Sql && server.version.0 == 13 { (0, "WSFC") } else { (2, "NONE") };
        let replica = |server: &mut Server, name: &str, url: &str| Replica {
            id: server.guid(),
            name: name.to_string(),
            endpoint_url: url.to_string(),
            mode: AvailabilityMode::Asynchronous,
            failover_manual: true,
            seeding_automatic: true,
            session_timeout: 10,
        };
        let ag_id = server.guid();
        let dag_id = server.guid();
        let is_sql = server.side == SideId::Sql;
        let own = replica(server, &server.name.clone(), if is_sql { &sql_url } else { local_url });
        let dag_local = replica(server, local_ag, local_url);
        let dag_remote = replica(server, remote_ag, remote_url);
        let mut replicas = vec![own];
        if is_sql {
            let domain = server.fqdn.split_once('.').map(|(_, d)| d.to_string()).unwrap_or_default();
            for name in &link.sql_replicas {
                let url = format!("TCP://{}.{domain}:{sql_port}", name.to_ascii_lowercase());
                replicas.push(replica(server, name, &url));
            }
            if let Some(l) = &link.sql_listener {
                server.ag_listeners.push((local_ag.clone(), l.clone(), 1433));
            }
        }
        server.ags.push(AvailabilityGroup {
            id: ag_id,
            name: local_ag.clone(),
            distributed: false,
            cluster_type,
            replicas,
            databases: vec![link.database.clone()],
            created,
        });
        server.ags.push(AvailabilityGroup {
            id: dag_id,
            name: link.name.clone(),
            distributed: true,
            cluster_type,
            replicas: vec![dag_local, dag_remote],
            databases: vec![],
            created,
        });
        let group_db = server.guid();
        // A database that was on the instance before a failed seeding is not the link's.
        let joins = server.side == SideId::Sql || !seeding_failed;
        if let Some(db) = server.databases.iter_mut().find(|d| d.name.eq_ignore_ascii_case(&link.database))
            && joins
        {
            db.group_database_id = Some(group_db);
        }
    }
    // The link exists in ARM too, as the instance's DAG resource.
    super::ArmDag {
        name: link.name.clone(),
        id: mi.ag(&link.name).map(|a| a.id.clone()).unwrap_or_default(),
        partner_ag: link.arm_partner_ag.clone().unwrap_or(sql_ag),
        instance_ag: mi_ag,
        partner_endpoint: dag_sql_url,
        databases: vec![link.database.clone()],
        replication_mode: "Async".into(),
        failover_mode: "None".into(),
        seeding_mode: "Automatic".into(),
        instance_role: if link.mi_role.eq_ignore_ascii_case("PRIMARY") { "Primary" } else { "Secondary" }.into(),
        link_mode: "SingleDatabase".into(),
    }
}

fn pinned_status(link: &scenario::Link, now: OffsetDateTime) -> LinkStatus {
    let side = |s: &str| match s {
        "sql_server" => Some(SideId::Sql),
        "managed_instance" => Some(SideId::Mi),
        _ => None,
    };
    LinkStatus {
        sql_role: link.sql_role.to_ascii_uppercase(),
        mi_role: link.mi_role.to_ascii_uppercase(),
        connected: link.connected,
        error: link.last_connect_error.as_ref().map(|e| ConnectError {
            side: side(&e.side),
            number: e.number,
            description: e.description.clone(),
            at: e.at.at(now),
        }),
        health: link.synchronization_health.to_ascii_uppercase(),
        sync_state: link.synchronization_state.to_ascii_uppercase().replace('_', " "),
        log_send_queue_kb: link.log_send_queue_kb,
        redo_queue_kb: link.redo_queue_kb,
        lag_seconds: link.secondary_lag_seconds,
        seeding: link.seeding.as_ref().map(|s| Seeding {
            current_state: s.current_state.clone(),
            failure_state: s.failure_state,
            failure_state_desc: s.failure_state_desc.clone(),
            error_code: s.error_code,
            failure_message: s.failure_message.clone(),
            attempts: s.number_of_attempts,
            transferred_bytes: s.transferred_mb * 1_048_576,
            size_bytes: s.database_mb * 1_048_576,
            rate_bytes_per_second: (s.rate_mb_per_s * 1_048_576.0) as i64,
            started: s.started.as_ref().map(|t| t.at(now)).unwrap_or(now - Duration::hours(1)),
            // Only a seeding that ended has a completion time.
            finished: matches!(s.current_state.to_ascii_uppercase().as_str(), "COMPLETED" | "FAILED")
                .then(|| now - Duration::minutes(5)),
        }),
        log: super::LogPositions::default(),
        failing_over: false,
    }
}
