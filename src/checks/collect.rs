//! Evidence, gathered concurrently under per-step timeouts: names first, then
//! ports, TLS and SQL on both sides at once.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::Semaphore;

use crate::deadline::Limit;
use crate::probe::agent;
use crate::probe::dns::{self, Answer};
use crate::probe::sql::{self, Auth, Fields, Record, SqlFailure, Target};
use crate::probe::tcp::{self, Probe};
use crate::probe::tls;
use crate::profile::Profile;

/// How one name resolved, through each path.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub name: String,
    pub os: Option<Answer>,
    pub servers: Vec<(SocketAddr, Answer)>,
    /// The address milink connects to, and where it came from.
    pub chosen: Option<IpAddr>,
    pub pinned: bool,
}

impl Resolution {
    /// The answer milink relies on: the OS resolver, or the first server when
    /// the profile turns the OS resolver off.
    pub fn primary(&self) -> Option<&Answer> {
        self.os.as_ref().or(self.servers.first().map(|(_, a)| a))
    }
}

/// One side's SQL evidence.
#[derive(Debug)]
pub enum Sql {
    /// Not attempted, with the reason (a check ID that explains it).
    Skipped(String),
    Failed(SqlFailure),
    Facts(Facts),
}

#[derive(Debug, Default)]
pub struct Facts {
    pub queries: BTreeMap<String, Result<Vec<Record>, SqlFailure>>,
    /// Each answered query's columns, in the server's order, with their types.
    pub columns: BTreeMap<String, Vec<sql::Column>>,
    pub routed_to: Option<(String, u16)>,
    /// The temporary endpoint made for the probes, when asked and needed.
    pub temp_endpoint: Option<Result<(), String>>,
    /// Agent-job probes run from this server: (check id, result).
    pub jobs: Vec<(&'static str, Result<agent::JobProbe, agent::ProbeError>)>,
    /// Set when the run's deadline came before every query was asked: how far it got.
    pub cut_short: Option<String>,
    /// SQL Server's user databases, when the profile asks for all of them.
    pub all_databases: Option<Vec<String>>,
}

impl Facts {
    pub fn rows(&self, q: &str) -> Option<&Result<Vec<Record>, SqlFailure>> {
        self.queries.get(q)
    }

    pub fn first(&self, q: &str) -> Option<&Record> {
        self.queries.get(q)?.as_ref().ok()?.first()
    }
}

#[derive(Debug)]
pub struct SideEvidence {
    pub tds_port: u16,
    pub tls: Option<tls::Outcome>,
    pub sql: Sql,
}

#[derive(Debug)]
pub struct Evidence {
    pub sql_name: Resolution,
    pub mi_name: Resolution,
    /// The managed instance's public endpoint name (`<name>.public.<zone>`), to
    /// tell when the VNet-local name leads there instead.
    pub mi_public_name: Option<Resolution>,
    /// The endpoint URL's host when it is a name other than the TDS host.
    pub endpoint_name: Option<Resolution>,
    /// (check id, probe) — `None` when the name did not resolve.
    pub probes: Vec<(&'static str, Option<Probe>)>,
    pub redirect: Option<Vec<Probe>>,
    /// Redirect ports left unprobed when the run's deadline came.
    pub redirect_unprobed: usize,
    pub sql: SideEvidence,
    pub mi: SideEvidence,
    /// The managed instance's ARM resource, when the profile names one.
    pub arm: Option<Result<crate::azure::instance::InstanceFacts, String>>,
}

impl Evidence {
    /// The databases the run is about: the profile's, or with `all_databases`
    /// every user database SQL Server listed.
    pub fn databases(&self, p: &Profile) -> Vec<String> {
        match &self.sql.sql {
            Sql::Facts(f) if p.all_databases => f.all_databases.clone().unwrap_or_default(),
            _ => p.databases.clone(),
        }
    }
}

/// SQL Server's user databases a link could carry: not system, not snapshots, ONLINE.
pub const USER_DATABASES: &str = "SELECT name FROM sys.databases \
     WHERE database_id > 4 AND source_database_id IS NULL AND state_desc = N'ONLINE' ORDER BY name";

/// Reads `USER_DATABASES` on a session.
pub async fn user_databases(s: &mut sql::Session) -> Result<Vec<String>, SqlFailure> {
    Ok(s.rows(USER_DATABASES).await?.iter().filter_map(|r| r.str("name").map(str::to_string)).collect())
}

/// Queries shared by both sides.
const PROPS: &str = "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS version, \
         CAST(SERVERPROPERTY('ProductUpdateLevel') AS nvarchar(128)) AS update_level, \
         CAST(SERVERPROPERTY('Edition') AS nvarchar(128)) AS edition, \
         CAST(SERVERPROPERTY('EngineEdition') AS int) AS engine_edition, \
         CAST(SERVERPROPERTY('IsHadrEnabled') AS int) AS hadr, \
         CAST(SERVERPROPERTY('HadrManagerStatus') AS int) AS hadr_manager, \
         CAST(SERVERPROPERTY('Collation') AS nvarchar(128)) AS collation, \
         CAST(SERVERPROPERTY('ProductUpdateType') AS nvarchar(128)) AS update_type, \
         @@SERVERNAME AS server_name, @@VERSION AS version_text";
const CERTIFICATES: &str = "SELECT name, certificate_id, pvt_key_encryption_type, subject, issuer_name, expiry_date, start_date, \
         thumbprint, CERTENCODED(certificate_id) AS der FROM sys.certificates";
pub const LINK_REPLICAS: &str = "SELECT ag.name AS ag_name, ag.is_distributed, r.replica_server_name, r.endpoint_url, rs.is_local, rs.role_desc, \
         rs.connected_state_desc, rs.synchronization_health_desc, rs.last_connect_error_number, \
         rs.last_connect_error_description, rs.last_connect_error_timestamp \
         FROM sys.availability_groups AS ag JOIN sys.availability_replicas AS r ON r.group_id = ag.group_id \
         JOIN sys.dm_hadr_availability_replica_states AS rs ON rs.replica_id = r.replica_id";
const LINK_DATABASES: &str = "SELECT ag.name AS ag_name, DB_NAME(drs.database_id) AS database_name, drs.is_local, drs.synchronization_state_desc, drs.synchronization_health_desc, \
         drs.log_send_queue_size, drs.redo_queue_size, drs.secondary_lag_seconds \
         FROM sys.dm_hadr_database_replica_states AS drs JOIN sys.availability_groups AS ag ON ag.group_id = drs.group_id \
         WHERE ag.is_distributed = 1";
pub const SEEDING: &str = "SELECT s.current_state, s.failure_state, s.failure_state_desc, s.error_code, s.number_of_attempts, \
         s.start_time, s.completion_time, p.local_database_name, p.transferred_size_bytes, p.database_size_bytes, \
         p.transfer_rate_bytes_per_second, p.estimate_time_complete_utc, \
         p.failure_code, p.failure_message FROM sys.dm_hadr_automatic_seeding AS s \
         LEFT JOIN sys.dm_hadr_physical_seeding_stats AS p ON p.local_physical_seeding_id = s.operation_id";
const ERRORLOG: &str = "EXEC xp_readerrorlog 0, 1, N'Mirroring'";

/// SQL Server's evidence, one query per key.
pub const SQL_QUERIES: &[(&str, &str)] = &[
    ("props", PROPS),
    (
        "perms",
        "SELECT HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER STATE') AS view_server_state, \
         IS_SRVROLEMEMBER('sysadmin') AS sysadmin",
    ),
    ("host", "SELECT host_platform, host_distribution, host_release FROM sys.dm_os_host_info"),
    ("master_key", "SELECT name FROM master.sys.symmetric_keys WHERE name = N'##MS_DatabaseMasterKey##'"),
    ("trace_flags", "DBCC TRACESTATUS(-1) WITH NO_INFOMSGS"),
    // The Azure Connect pack (2016/2017) is known by its procedures, not by the build alone.
    (
        "link_procs",
        "SELECT OBJECT_ID(N'sys.sp_certificate_add_issuer') AS add_issuer, \
         OBJECT_ID(N'sys.sp_get_endpoint_certificate') AS get_endpoint_certificate, \
         OBJECT_ID(N'sys.sp_multidb_milink') AS multidb",
    ),
    (
        "endpoint",
        "SELECT e.name, e.state_desc, e.role_desc, e.connection_auth_desc, e.is_encryption_enabled, \
         e.encryption_algorithm_desc, e.certificate_id, t.port, t.ip_address \
         FROM sys.database_mirroring_endpoints AS e JOIN sys.tcp_endpoints AS t ON t.endpoint_id = e.endpoint_id",
    ),
    ("certificates", CERTIFICATES),
    (
        "databases",
        "SELECT name, database_id, state_desc, recovery_model_desc, is_encrypted, log_reuse_wait_desc \
         FROM sys.databases",
    ),
    ("files", "SELECT database_id, type_desc, name FROM sys.master_files"),
    (
        "encryption_keys",
        "SELECT k.database_id, k.encryption_state_desc, k.encryptor_type, k.encryptor_thumbprint, c.name AS certificate_name \
         FROM sys.dm_database_encryption_keys AS k LEFT JOIN master.sys.certificates AS c ON c.thumbprint = k.encryptor_thumbprint",
    ),
    (
        "backups",
        "SELECT database_name, type, is_copy_only, MAX(backup_finish_date) AS last_finish \
         FROM msdb.dbo.backupset GROUP BY database_name, type, is_copy_only",
    ),
    ("log_space", "DBCC SQLPERF(LOGSPACE)"),
    ("link_replicas", LINK_REPLICAS),
    (
        "ag_listeners",
        "SELECT ag.name AS ag_name, l.dns_name, l.port \
         FROM sys.availability_group_listeners AS l JOIN sys.availability_groups AS ag ON ag.group_id = l.group_id",
    ),
    ("link_databases", LINK_DATABASES),
    ("seeding", SEEDING),
    ("errorlog", ERRORLOG),
];

/// The managed instance's evidence.
pub const MI_QUERIES: &[(&str, &str)] = &[
    ("props", PROPS),
    ("perms", "SELECT HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER STATE') AS view_server_state"),
    ("endpoint_cert", "EXEC sp_get_endpoint_certificate @endpoint_type = 4"),
    ("certificates", CERTIFICATES),
    ("link_replicas", LINK_REPLICAS),
    ("link_databases", LINK_DATABASES),
    ("seeding", SEEDING),
    ("errorlog", ERRORLOG),
    ("fabric", "SELECT parameter_name, value FROM sys.dm_hadr_fabric_config_parameters"),
    ("databases", "SELECT name, database_id, state_desc, group_database_id FROM sys.databases"),
    (
        "tier",
        "SELECT TOP (1) sku, hardware_generation, virtual_core_count FROM sys.server_resource_stats ORDER BY end_time DESC",
    ),
];

/// Per-database evidence on SQL Server, under `<key>:<database>`: filegroups
/// tell FILESTREAM from memory-optimized containers, which sys.master_files does not.
pub fn database_queries(db: &str) -> Vec<(String, String)> {
    let q = crate::tsql::ident(db);
    vec![(format!("filegroups:{db}"), format!("SELECT name, type, type_desc FROM {q}.sys.filegroups"))]
}

fn is_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

async fn resolve(name: &str, pinned: Option<IpAddr>, p: &Profile, servers: &[SocketAddr]) -> Resolution {
    let t = p.limit().step();
    if let Some(ip) = pinned.or(is_ip(name)) {
        return Resolution { name: name.into(), os: None, servers: vec![], chosen: Some(ip), pinned: true };
    }
    let os = async { if p.dns.os_resolver { Some(dns::os(name, t).await) } else { None } };
    let each = join_all(servers.iter().map(|s| async move { (*s, dns::server(name, *s, t).await) }));
    let (os, servers) = tokio::join!(os, each);
    let mut r = Resolution { name: name.into(), os, servers, chosen: None, pinned: false };
    r.chosen = r.primary().and_then(|a| a.addresses().first().copied());
    r
}

pub async fn collect(p: &Profile) -> Evidence {
    let servers = p.dns_servers().unwrap_or_default();
    let sql_host = p.sql_server.host.clone();
    let mi_host = p.managed_instance.fqdn.clone();
    // The endpoint URL's host needs its own lookup only when it is another name.
    let endpoint_host = p.sql_server.endpoint_host.clone().filter(|h| h != &sql_host && is_ip(h).is_none());
    let public_host = public_endpoint_name(&mi_host).filter(|_| p.managed_instance.address.is_none());
    let (sql_name, mi_name, endpoint_name, mi_public_name) = tokio::join!(
        resolve(&sql_host, p.sql_server.address, p, &servers),
        resolve(&mi_host, p.managed_instance.address, p, &servers),
        async {
            match &endpoint_host {
                Some(h) => Some(resolve(h, None, p, &servers).await),
                None => None,
            }
        },
        async {
            match &public_host {
                Some(h) => Some(resolve(h, None, p, &servers).await),
                None => None,
            }
        }
    );
    let t = p.limit().step();
    let sql_port = p.sql_server.port.unwrap_or(1433);
    let mi_port = p.managed_instance.port.unwrap_or(1433);
    let ep_port = p.sql_server.endpoint_port.unwrap_or(5022);
    let sql_ep_ip = p.sql_server.endpoint_host.as_deref().and_then(is_ip).or(sql_name.chosen);
    let targets: Vec<(&'static str, Option<SocketAddr>)> = vec![
        ("network-sql-1433", sql_name.chosen.map(|ip| SocketAddr::new(ip, sql_port))),
        ("network-sql-5022", sql_ep_ip.map(|ip| SocketAddr::new(ip, ep_port))),
        ("network-mi-1433", mi_name.chosen.map(|ip| SocketAddr::new(ip, mi_port))),
        ("network-mi-5022", mi_name.chosen.map(|ip| SocketAddr::new(ip, 5022))),
    ];
    let probes = join_all(targets.into_iter().map(|(id, addr)| async move {
        match addr {
            Some(a) => (id, Some(tcp::probe(a, t).await)),
            None => (id, None),
        }
    }));
    let sql_side = side(p, true, sql_name.chosen.map(|ip| SocketAddr::new(ip, sql_port)));
    let mi_side = side(p, false, mi_name.chosen.map(|ip| SocketAddr::new(ip, mi_port)));
    let (probes, (mut sql, sql_session), (mut mi, mi_session), arm) =
        tokio::join!(probes, sql_side, mi_side, crate::azure::instance::read(p));
    if p.probes.agent_jobs {
        // Each server's own view of the other side: the managed instance towards SQL
        // Server's endpoint; SQL Server towards the MI's 5022 and its current node's
        // HADR port (read from the MI: it changes after every failover).
        let sql_endpoint = p.sql_server.endpoint_host.clone().or(sql_ep_ip.map(|ip| ip.to_string()));
        let mut from_sql = vec![("network-sql-to-mi-5022", mi_host.clone(), 5022)];
        if let Sql::Facts(f) = &mi.sql
            && let Some((node, port)) = fabric(f)
        {
            from_sql.push(("network-sql-to-mi-hadr", node, port));
        }
        let from_mi: Vec<_> = sql_endpoint.map(|h| ("network-mi-to-sql-5022", h, ep_port)).into_iter().collect();
        // A job still running at the deadline is given up (and deleted).
        let wait = Limit { timeout: p.probes.job_wait, ..p.limit() };
        let (mut sql_session, mut mi_session) = (sql_session, mi_session);
        let no_endpoint = matches!(&sql.sql, Sql::Facts(f) if f.first("endpoint").is_none() && matches!(f.rows("endpoint"), Some(Ok(_))));
        let temp = match sql_session.as_mut() {
            Some(s) if p.probes.temp_endpoint && no_endpoint => {
                Some(agent::create_temp_endpoint(s, ep_port).await.map_err(|e| e.message))
            }
            _ => None,
        };
        let (a, b) = tokio::join!(jobs(&mut sql_session, from_sql, wait), jobs(&mut mi_session, from_mi, wait));
        if let (Some(_), Some(s)) = (&temp, sql_session.as_mut()) {
            agent::drop_temp_endpoint(s).await;
        }
        if let Sql::Facts(f) = &mut sql.sql {
            f.temp_endpoint = temp;
        }
        for (side, results) in [(&mut sql, a), (&mut mi, b)] {
            if let Sql::Facts(f) = &mut side.sql {
                f.jobs = results;
            }
        }
    }
    // The redirect range only matters when the managed instance routed our login.
    // A login that failed at the node it was routed to: the range of that node's address.
    let routed_ip = match (&mi.sql, mi_name.chosen) {
        (Sql::Facts(f), Some(ip)) if f.routed_to.is_some() => Some(ip),
        (Sql::Failed(e), _) => e.routed_to.as_ref().map(|(_, _, addr)| addr.ip()),
        _ => None,
    };
    let (redirect, redirect_unprobed) = match routed_ip {
        Some(ip) => {
            let swept = sweep_redirect(ip, p.limit()).await;
            let unprobed = 1000 - swept.len();
            (Some(swept), unprobed)
        }
        None => (None, 0),
    };
    Evidence { sql_name, mi_name, mi_public_name, endpoint_name, probes, redirect, redirect_unprobed, sql, mi, arm }
}

/// `mi.zone.database.windows.net` → `mi.public.zone.database.windows.net`;
/// none for an address or a name that is already the public one.
pub fn public_endpoint_name(fqdn: &str) -> Option<String> {
    let (host, rest) = fqdn.split_once('.')?;
    if is_ip(fqdn).is_some() || rest.starts_with("public.") || !rest.contains('.') {
        return None;
    }
    Some(format!("{host}.public.{rest}"))
}

/// 11000-11999 with bounded concurrency and a short timeout per port; ports
/// whose turn comes after the deadline are left out, not called filtered.
async fn sweep_redirect(ip: IpAddr, limit: Limit) -> Vec<Probe> {
    let gate = Arc::new(Semaphore::new(64));
    let tasks: Vec<_> = (11000..=11999u16)
        .map(|port| {
            let gate = gate.clone();
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("semaphore open");
                if limit.passed() {
                    return None;
                }
                let per_port = limit.timeout.min(Duration::from_millis(500));
                Some(tcp::probe(SocketAddr::new(ip, port), Limit { timeout: per_port, ..limit }.step()).await)
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(Some(p)) = task.await {
            out.push(p);
        }
    }
    out
}

/// The MI's current node and HADR port, from sys.dm_hadr_fabric_config_parameters.
fn fabric(f: &Facts) -> Option<(String, u16)> {
    fabric_node(f.rows("fabric")?.as_ref().ok()?)
}

/// (ClusterName, HadrPort) out of the fabric parameters' rows.
pub fn fabric_node(rows: &[Record]) -> Option<(String, u16)> {
    let get = |name: &str| rows.iter().find(|r| r.str("parameter_name") == Some(name)).and_then(|r| r.str("value"));
    Some((get("ClusterName")?.to_string(), get("HadrPort")?.parse().ok()?))
}

async fn jobs(
    session: &mut Option<sql::Session>,
    targets: Vec<(&'static str, String, u16)>,
    wait: Limit,
) -> Vec<(&'static str, Result<agent::JobProbe, agent::ProbeError>)> {
    let Some(s) = session.as_mut() else { return vec![] };
    let mut out = Vec::new();
    for (id, host, port) in targets {
        out.push((id, agent::tnc(s, &host, port, wait.step()).await));
    }
    out
}

/// How a side is logged in to: its TLS certificate judged, then the login (or
/// why there is none).
pub struct Opened {
    pub tds_port: u16,
    pub tls: tls::Outcome,
    pub session: Result<sql::Session, Sql>,
}

/// Captures a side's TLS certificate and logs in, as the checks and `milink link` do.
pub async fn open_side(p: &Profile, is_sql: bool, addr: SocketAddr) -> Opened {
    let t = p.limit();
    let (name, ca, trust, auth, tds_port) = if is_sql {
        let s = &p.sql_server;
        let auth =
            p.sql_password.clone().map(|pw| Auth::Sql { user: s.user.clone().unwrap_or_default(), password: pw });
        (s.host.clone(), s.ca_cert.clone(), s.trust_server_certificate, auth, s.port.unwrap_or(1433))
    } else {
        let m = &p.managed_instance;
        let auth = match (&p.mi_token, &p.mi_password) {
            (Some(tok), _) => Some(Auth::Token(tok.clone())),
            (None, Some(pw)) => Some(Auth::Sql { user: m.user.clone().unwrap_or_default(), password: pw.clone() }),
            _ => None,
        };
        (m.fqdn.clone(), m.ca_cert.clone(), m.trust_server_certificate, auth, m.port.unwrap_or(1433))
    };
    let target = |strict: bool| {
        auth.clone().map(|auth| Target {
            name: name.clone(),
            addr,
            auth,
            ca_cert: ca.clone(),
            trust_server_certificate: trust,
            strict,
        })
    };
    // The TLS capture and the login do not wait for each other: a server that
    // stalls costs one timeout, not two. The login verifies the certificate
    // itself, so no credential goes to a server the capture would not trust.
    // Boxed: both futures side by side would make every caller's future (and
    // the stack of a thread that blocks on it) as big as the two together.
    let (mut tls_outcome, first) = tokio::join!(
        Box::pin(tls::capture(addr, &name, t)),
        Box::pin(async {
            match target(false) {
                Some(tg) => Some(sql::login(&tg, t).await),
                None => None,
            }
        })
    );
    let strict = matches!(&tls_outcome, tls::Outcome::Captured(c) if c.mode == "tds8-strict");
    if let tls::Outcome::Captured(c) = &mut tls_outcome {
        tls::judge(c, &name, &roots(ca.as_deref()));
    }
    let tls_id = if is_sql { "tls-sql-certificate" } else { "tls-mi-certificate" };
    let trusted = matches!(&tls_outcome, tls::Outcome::Captured(c) if c.verdict == tls::Verdict::Trusted);
    let session = match (first, target(strict)) {
        (_, None) => Err(Sql::Skipped("no password or token was given (environment, file or prompt)".into())),
        _ if !trusted && !trust => Err(Sql::Skipped(match &tls_outcome {
            tls::Outcome::Captured(_) => format!(
                "the TLS certificate did not verify ({tls_id}); set trust_server_certificate = true in the profile to log in anyway"
            ),
            _ => format!("no TLS session could be set up ({tls_id})"),
        })),
        // A server that wants TLS first (TDS 8.0 strict) is logged in to again, that way.
        (Some(r), Some(_)) if !strict => r.map_err(Sql::Failed),
        (_, Some(tg)) => sql::login(&tg, t).await.map_err(Sql::Failed),
    };
    Opened { tds_port, tls: tls_outcome, session }
}

/// Resolves a side and logs in (TLS judged first, as `open_side`): for
/// commands that need a session, not the evidence around it.
pub async fn log_in(p: &Profile, is_sql: bool) -> Result<sql::Session, Sql> {
    match address(p, is_sql).await {
        Some(addr) => open_side(p, is_sql, addr).await.session,
        None => Err(Sql::Skipped("the name does not resolve".into())),
    }
}

/// A side's address as the checks resolve it (the profile's DNS servers, a pin).
pub async fn address(p: &Profile, is_sql: bool) -> Option<SocketAddr> {
    let servers = p.dns_servers().unwrap_or_default();
    let (name, pin, port) = if is_sql {
        (&p.sql_server.host, p.sql_server.address, p.sql_server.port.unwrap_or(1433))
    } else {
        (&p.managed_instance.fqdn, p.managed_instance.address, p.managed_instance.port.unwrap_or(1433))
    };
    resolve(name, pin, p, &servers).await.chosen.map(|ip| SocketAddr::new(ip, port))
}

async fn side(p: &Profile, is_sql: bool, addr: Option<SocketAddr>) -> (SideEvidence, Option<sql::Session>) {
    let tds_port = if is_sql { p.sql_server.port } else { p.managed_instance.port }.unwrap_or(1433);
    let dns_id = if is_sql { "dns-sql-host" } else { "dns-mi-fqdn" };
    let Some(addr) = addr else {
        let sql = Sql::Skipped(format!("the name did not resolve ({dns_id})"));
        return (SideEvidence { tds_port, tls: None, sql }, None);
    };
    let opened = open_side(p, is_sql, addr).await;
    let mut kept = None;
    let sql = match opened.session {
        Err(why) => why,
        Ok(mut session) => {
            let mut facts = Facts { routed_to: session.routed_to.clone(), ..Default::default() };
            let fixed =
                if is_sql { SQL_QUERIES } else { MI_QUERIES }.iter().map(|(k, q)| (k.to_string(), q.to_string()));
            let databases = if is_sql && p.all_databases {
                let all = user_databases(&mut session).await.unwrap_or_default();
                facts.all_databases = Some(all.clone());
                all
            } else {
                p.databases.clone()
            };
            let per_db = databases.iter().filter(|_| is_sql).flat_map(|db| database_queries(db));
            let all: Vec<(String, String)> = fixed.chain(per_db).collect();
            // One round trip for the side's evidence (see `probe::batch`).
            let texts: Vec<&str> = all.iter().map(|(_, q)| q.as_str()).collect();
            let answers = if p.limit().passed() { Vec::new() } else { session.batch(&texts).await };
            for ((key, _), r) in all.iter().zip(answers) {
                let stalled = matches!(&r, Err(e) if e.ended_batch());
                let r = r.map(|t| {
                    facts.columns.insert(key.clone(), t.columns);
                    t.rows
                });
                facts.queries.insert(key.clone(), r);
                // The first query the batch broke at says so; the ones after were not answered.
                if stalled {
                    break;
                }
            }
            let answered = facts.queries.values().filter(|r| !matches!(r, Err(e) if e.timed_out)).count();
            if answered < all.len() && p.limit().passed() {
                facts.cut_short = Some(cut_short(answered, all.len()));
            }
            kept = Some(session);
            Sql::Facts(facts)
        }
    };
    (SideEvidence { tds_port, tls: Some(opened.tls), sql }, kept)
}

fn cut_short(done: usize, total: usize) -> String {
    format!("the run's deadline came after {done} of {total} queries on this side")
}

/// The CA the profile names, else the OS trust store.
fn roots(ca: Option<&std::path::Path>) -> rustls::RootCertStore {
    let mut store = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            if let Ok(pem) = std::fs::read(path) {
                for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem).flatten() {
                    let _ = store.add(cert);
                }
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = store.add(cert);
            }
        }
    }
    store
}
