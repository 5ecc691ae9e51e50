//! One cheap look at both sides: the link's replica and database states,
//! `last_connect_error_*`, queues and lag, seeding, certificate expiry and (on
//! SQL Server) log space. Sessions stay open between polls; a side that drops
//! is logged in to again, with backoff, and reported unreachable meanwhile.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;

use crate::checks::collect;
use crate::probe::sql::{self, Fields, Record, Session};
use crate::profile::Profile;

const DATABASES: &str = "SELECT ag.name AS ag_name, drs.is_local, drs.synchronization_state_desc, \
     drs.log_send_queue_size, drs.redo_queue_size, drs.secondary_lag_seconds, drs.last_hardened_time \
     FROM sys.dm_hadr_database_replica_states AS drs JOIN sys.availability_groups AS ag ON ag.group_id = drs.group_id \
     WHERE ag.is_distributed = 1";
const CERTIFICATES: &str = "SELECT name, expiry_date FROM sys.certificates WHERE name NOT LIKE N'##%'";
const LOG_SPACE: &str = "DBCC SQLPERF(LOGSPACE)";

/// One link as one side showed it at one poll.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkState {
    /// The local replica's role in the distributed AG.
    pub role: Option<String>,
    /// DISCONNECTED when any replica of the distributed AG is, else CONNECTED.
    pub connected: Option<String>,
    pub health: Option<String>,
    pub last_error: Option<LastError>,
    pub send_queue_kb: i64,
    pub redo_queue_kb: i64,
    pub lag_s: i64,
    pub since_hardened_s: Option<i64>,
}

/// What one side showed at one poll: each link (by distributed AG), and the
/// worst of them in the side's own fields.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SideState {
    pub reachable: bool,
    /// Why the side could not be asked (login or query failure).
    pub problem: Option<String>,
    pub links: BTreeMap<String, LinkState>,
    /// The worst of the links (a role of `None`: no link here), in the side's own fields.
    #[serde(flatten)]
    pub worst: LinkState,
    /// A seeding failure, as the DMV words it.
    pub seeding_failure: Option<String>,
    /// Certificate name → its expiry (Unix seconds).
    pub certificates: BTreeMap<String, i64>,
    /// Link database → log space used (SQL Server only).
    pub log_used: BTreeMap<String, f64>,
    pub poll_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastError {
    pub number: i64,
    pub description: String,
    pub timestamp: String,
}

/// Both sides at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub sql_server: SideState,
    pub managed_instance: SideState,
}

impl SideState {
    /// The side's own fields: the worst of its links (DISCONNECTED if one is,
    /// the least healthy, the largest queues and lag, the latest error).
    fn worst_of_links(&mut self) {
        let links: Vec<&LinkState> = self.links.values().collect();
        let rank = |h: &str| ["NOT_HEALTHY", "PARTIALLY_HEALTHY", "HEALTHY"].iter().position(|x| *x == h).unwrap_or(0);
        self.worst = LinkState {
            role: links.iter().find_map(|l| l.role.clone()),
            connected: links.iter().filter_map(|l| l.connected.clone()).min_by_key(|c| c == "CONNECTED"),
            health: links.iter().filter_map(|l| l.health.clone()).min_by_key(|h| rank(h)),
            last_error: links.iter().filter_map(|l| l.last_error.clone()).max_by(|a, b| a.timestamp.cmp(&b.timestamp)),
            send_queue_kb: links.iter().map(|l| l.send_queue_kb).max().unwrap_or(0),
            redo_queue_kb: links.iter().map(|l| l.redo_queue_kb).max().unwrap_or(0),
            lag_s: links.iter().map(|l| l.lag_s).max().unwrap_or(0),
            since_hardened_s: links.iter().filter_map(|l| l.since_hardened_s).max(),
        };
    }
}

impl Snapshot {
    pub fn sides(&self) -> [(&'static str, &SideState); 2] {
        [("sql_server", &self.sql_server), ("managed_instance", &self.managed_instance)]
    }
}

/// A side's session and when to try again after a failed login.
#[derive(Default)]
struct Link {
    session: Option<Session>,
    failures: u32,
    next_try: Option<Instant>,
    last_problem: Option<String>,
}

pub struct Poller {
    profile: Profile,
    sides: [Link; 2],
}

impl Poller {
    pub fn new(profile: Profile) -> Poller {
        Poller { profile, sides: Default::default() }
    }

    pub async fn poll(&mut self) -> Snapshot {
        let p = &self.profile;
        let [sql, mi] = &mut self.sides;
        let (s, m) = tokio::join!(side(p, true, sql), side(p, false, mi));
        Snapshot { at: OffsetDateTime::now_utc(), sql_server: s, managed_instance: m }
    }
}

/// Backoff after failed logins: 250 ms, 500 ms, 1 s … at most 15 s (and never
/// sooner than the next poll).
fn backoff(failures: u32) -> Duration {
    (Duration::from_millis(250) * (1u32 << failures.saturating_sub(1).min(6))).min(Duration::from_secs(15))
}

async fn side(p: &Profile, is_sql: bool, link: &mut Link) -> SideState {
    let started = Instant::now();
    let mut state = SideState::default();
    if link.session.is_none() {
        if link.next_try.is_some_and(|t| Instant::now() < t) {
            state.problem = link.last_problem.clone();
            return state;
        }
        match login(p, is_sql).await {
            Ok(s) => {
                link.session = Some(s);
                link.failures = 0;
                link.next_try = None;
            }
            Err(why) => {
                link.failures += 1;
                link.next_try = Some(Instant::now() + backoff(link.failures));
                link.last_problem = Some(why.clone());
                state.problem = Some(why);
                return state;
            }
        }
    }
    let session = link.session.as_mut().expect("logged in above");
    match read(session, p, is_sql, &mut state).await {
        Ok(()) => state.reachable = true,
        // The server answered with an error: it is there, one view is not readable.
        Err(e) if e.code.is_some() => {
            state.reachable = true;
            state.problem = Some(format!("error {}: {}", e.code.unwrap_or(0), e.message));
        }
        Err(e) => {
            // The session is gone or stuck: log in again next time.
            link.session = None;
            state = SideState { problem: Some(e.message), ..SideState::default() };
        }
    }
    state.poll_ms = started.elapsed().as_secs_f64() * 1e3;
    state
}

async fn login(p: &Profile, is_sql: bool) -> Result<Session, String> {
    match collect::log_in(p, is_sql).await {
        Ok(s) => Ok(s),
        Err(collect::Sql::Failed(f)) => Err(format!("login failed: {}", f.message)),
        Err(collect::Sql::Skipped(why)) => Err(why),
        Err(collect::Sql::Facts(_)) => Err("unexpected".into()),
    }
}

/// One poll of a side: every query in one round trip.
async fn read(s: &mut Session, p: &Profile, is_sql: bool, st: &mut SideState) -> Result<(), sql::SqlFailure> {
    let queries = [collect::LINK_REPLICAS, DATABASES, collect::SEEDING, CERTIFICATES, LOG_SPACE];
    let mut a = s.answers(&queries[..if is_sql { 5 } else { 4 }]).await;
    let replicas = a.rows()?;
    let dag: Vec<&Record> = replicas.iter().filter(|r| r.flag("is_distributed") == Some(true)).collect();
    for r in &dag {
        let l = st.links.entry(r.str("ag_name").unwrap_or("").to_string()).or_default();
        if r.flag("is_local") == Some(true) {
            l.role = r.str("role_desc").map(str::to_string);
            l.health = r.str("synchronization_health_desc").map(str::to_string);
        }
        let down = r.str("connected_state_desc") == Some("DISCONNECTED");
        if down || l.connected.is_none() {
            l.connected = Some(if down { "DISCONNECTED" } else { "CONNECTED" }.into());
        }
        if let Some(n) = r.int("last_connect_error_number").filter(|n| *n != 0) {
            let e = LastError {
                number: n,
                description: r.str("last_connect_error_description").unwrap_or("").to_string(),
                timestamp: r.str("last_connect_error_timestamp").unwrap_or("").to_string(),
            };
            if l.last_error.as_ref().is_none_or(|old| old.timestamp < e.timestamp) {
                l.last_error = Some(e);
            }
        }
    }
    let now = OffsetDateTime::now_utc();
    for r in a.rows()?.iter().filter(|r| r.flag("is_local") == Some(true)) {
        let l = st.links.entry(r.str("ag_name").unwrap_or("").to_string()).or_default();
        l.send_queue_kb = l.send_queue_kb.max(r.int("log_send_queue_size").unwrap_or(0));
        l.redo_queue_kb = l.redo_queue_kb.max(r.int("redo_queue_size").unwrap_or(0));
        l.lag_s = l.lag_s.max(r.int("secondary_lag_seconds").unwrap_or(0));
        if let Some(t) = r.str("last_hardened_time").and_then(sql::datetime) {
            let age = (now - t.assume_utc()).whole_seconds().max(0);
            l.since_hardened_s = Some(l.since_hardened_s.map_or(age, |a: i64| a.max(age)));
        }
    }
    st.worst_of_links();
    for r in a.rows()? {
        let failed = r.int("failure_state").is_some_and(|f| f != 0) || r.int("error_code").is_some_and(|c| c != 0);
        if failed {
            let what = r.str("failure_message").or(r.str("failure_state_desc")).unwrap_or("seeding failed");
            st.seeding_failure = Some(format!("{} (error {})", what, r.int("error_code").unwrap_or(0)));
        }
    }
    for r in a.rows()? {
        if let (Some(name), Some(t)) = (r.str("name"), r.str("expiry_date").and_then(sql::datetime)) {
            st.certificates.insert(name.to_string(), t.assume_utc().unix_timestamp());
        }
    }
    if is_sql {
        for r in a.rows()? {
            let Some(db) = r.str("database name") else { continue };
            let system = ["master", "tempdb", "model", "msdb"].iter().any(|x| x.eq_ignore_ascii_case(db));
            if (p.databases.iter().any(|d| d.eq_ignore_ascii_case(db)) || (p.all_databases && !system))
                && let Some(u) = r.get("log space used (%)").and_then(|v| v.as_f64())
            {
                st.log_used.insert(db.to_string(), u);
            }
        }
    }
    Ok(())
}
