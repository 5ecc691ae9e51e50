//! The link state machine: for each link created in the lab, the sides dial each
//! other for real (through the network faults), the halves are compared, and
//! the link connects, seeds and becomes healthy, or stays DISCONNECTED with the
//! error SQL Server would record. It runs whenever the state changes and on a
//! timer while anything is in progress.

pub mod decide;
pub mod log;
pub mod roles;
mod texts;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::io::AsyncReadExt;

use crate::lab::catalog::Catalog;
use crate::lab::net::{Dialed, SideNet};
use crate::lab::scenario::Replication;
use crate::lab::state::objects::Database;
use crate::lab::state::{ConnectError, Link, LinkStatus, Seeding, SideId, World};
use decide::{Dial, Verdict};

pub struct Machine {
    pub world: Arc<Mutex<World>>,
    pub sql_catalog: Arc<Mutex<Catalog>>,
    pub mi_catalog: Arc<Mutex<Catalog>>,
    pub sql_net: SideNet,
    pub mi_net: SideNet,
    pub params: Replication,
    /// The managed instance's current node and HADR port, which SQL Server's side
    /// reaches after the endpoint redirects it.
    pub node: Option<(String, u16)>,
}

impl Machine {
    fn lock(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs until the lab stops. A change while the sides are still dialing
    /// makes that round's verdict stale: it is dropped and a new round starts.
    /// `first` hears when every live link has had its first verdict, so a lab
    /// starting on a broken link shows it broken from the first query.
    pub async fn run(self, first: tokio::sync::oneshot::Sender<()>) {
        let changed = self.lock().changed.clone();
        let mut first = Some(first);
        loop {
            let wait = tokio::select! {
                w = self.step() => w,
                _ = changed.notified() => continue,
            };
            if let Some(tx) = first.take() {
                let _ = tx.send(());
            }
            tokio::select! {
                _ = changed.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Decides every link once; returns how soon to look again.
    pub async fn step(&self) -> Duration {
        // One state per link and database (several per DAG in multi-database mode).
        #[allow(clippy::type_complexity)]
        let (todo, growing, moving): (Vec<((String, String), decide::Dials)>, bool, bool) = {
            let mut w = self.lock();
            let now = OffsetDateTime::now_utc();
            adopt_arm_halves(&mut w);
            let growing = grow(&mut w, now) | log::advance(&mut w, now);
            (
                w.links
                    .iter()
                    .filter(|l| !l.pinned)
                    .map(|l| ((l.dag.clone(), l.database.clone()), decide::dials(&w, &l.dag)))
                    .collect(),
                growing,
                log::moving(&w, now),
            )
        };
        if growing {
            self.show();
        }
        // Writes and a secondary catching up are shown as they happen.
        let idle = if moving {
            Duration::from_millis(50)
        } else if growing {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        if todo.is_empty() {
            return idle;
        }
        let mut verdicts = Vec::new();
        for ((dag, db), d) in todo {
            let (mi_dial, sql_dial) = tokio::join!(
                async {
                    match &d.mi_to_sql {
                        Some((h, p)) => Some(self.dial(&self.mi_net, h, *p).await),
                        None => None,
                    }
                },
                async {
                    match &d.sql_to_mi {
                        Some((h, p)) => {
                            let first = self.dial(&self.sql_net, h, *p).await;
                            // Past the endpoint, SQL Server is redirected to the node's HADR port.
                            match (&first, &self.node) {
                                (Dial::Open, Some((node, port))) => Some(self.dial(&self.sql_net, node, *port).await),
                                _ => Some(first),
                            }
                        }
                        None => None,
                    }
                }
            );
            let w = self.lock();
            verdicts
                .push(((dag.clone(), db.clone()), decide::decide(&w, &dag, &db, mi_dial.as_ref(), sql_dial.as_ref())));
        }
        let (changed, wait) = {
            let mut w = self.lock();
            let mut changed = false;
            let mut wait = idle;
            let now = OffsetDateTime::now_utc();
            for ((dag, db), v) in verdicts {
                let (c, next) = apply(&mut w, &dag, &db, v, &self.params, now);
                changed |= c;
                wait = wait.min(next);
            }
            (changed, wait)
        };
        if changed {
            self.show();
        }
        wait
    }

    /// Shows the world in both catalogs (catalog first, then the world: the lock order).
    pub fn show(&self) {
        for catalog in [&self.sql_catalog, &self.mi_catalog] {
            let c = catalog.lock().unwrap_or_else(|p| p.into_inner());
            let w = self.lock();
            if let Err(e) = c.show(&w) {
                tracing::warn!(error = %e, "lab catalog could not show the state");
            }
        }
    }

    async fn dial(&self, net: &SideNet, host: &str, port: u16) -> Dial {
        match net.dial(host, port, self.params.dial_timeout).await {
            Dialed::Connected(mut s) => {
                // A mirroring endpoint waits for the caller's handshake; one that
                // closes at once is a reset.
                let mut b = [0u8; 1];
                match tokio::time::timeout(Duration::from_millis(20), s.read(&mut b)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => Dial::Reset,
                    _ => Dial::Open,
                }
            }
            Dialed::Refused => Dial::Refused,
            Dialed::TimedOut => Dial::TimedOut,
            Dialed::NoName => Dial::NoName,
            Dialed::Unreachable(_) => Dial::Unreachable,
        }
    }
}

/// A DAG the managed instance got over ARM before SQL Server made its half
/// still is a link to decide.
/// Each of its databases is a link state of its own (one, but for a
/// multi-database link).
fn adopt_arm_halves(w: &mut World) {
    let missing: Vec<(String, String)> = w
        .arm
        .dags
        .iter()
        .flat_map(|d| d.databases.iter().map(move |db| (d.name.clone(), db.clone())))
        .filter(|(dag, db)| w.link_of(dag, db).is_none())
        .collect();
    for (dag, database) in missing {
        w.links.push(Link::new(&dag, &database));
    }
}

/// Applies a verdict; returns whether anything shown changed, and how soon the
/// link wants another look.
fn apply(w: &mut World, dag: &str, db: &str, v: Verdict, p: &Replication, now: OffsetDateTime) -> (bool, Duration) {
    let Some(i) = w.links.iter().position(|l| l.dag.eq_ignore_ascii_case(dag) && l.database.eq_ignore_ascii_case(db))
    else {
        return (false, p.retry_every);
    };
    let before = w.links[i].status.clone();
    let mut log: Option<(SideId, String)> = None;
    let mut wait = p.retry_every;
    match v {
        Verdict::Gone => {
            w.links.remove(i);
            return (true, Duration::from_secs(5));
        }
        Verdict::Waiting => {
            let l = &mut w.links[i];
            // The roles stay as the last role change left them (a partner removed after a failover).
            let (sql_role, mi_role) = (l.status.sql_role.clone(), l.status.mi_role.clone());
            l.status = LinkStatus { log: l.status.log, sql_role, mi_role, ..LinkStatus::waiting() };
            l.since = None;
        }
        Verdict::SplitBrain => {
            // Two primaries do not talk: each keeps its own transactions.
            let st = &mut w.links[i].status;
            st.connected = false;
            st.health = "NOT_HEALTHY".into();
            st.sync_state = "NOT SYNCHRONIZING".into();
            w.links[i].since = None;
        }
        Verdict::Fail { side, number, description, log: line } => {
            let l = &mut w.links[i];
            let same = l.status.error.as_ref().is_some_and(|e| e.number == number && e.description == description);
            let at = l.status.error.as_ref().filter(|_| same).map(|e| e.at).unwrap_or(now);
            let mut seeding = l.status.seeding.take();
            // Initial seeding does not survive a lost connection: it starts over.
            if let Some(s) = seeding.as_mut().filter(|s| s.finished.is_none()) {
                s.current_state = "FAILED".into();
            }
            l.status = LinkStatus {
                connected: false,
                error: Some(ConnectError { side: Some(side), number, description: description.clone(), at }),
                health: "NOT_HEALTHY".into(),
                sync_state: "NOT SYNCHRONIZING".into(),
                seeding,
                sql_role: l.status.sql_role.clone(),
                mi_role: l.status.mi_role.clone(),
                log: l.status.log,
                ..LinkStatus::waiting()
            };
            l.since = None;
            if !same {
                log = Some(
                    line.unwrap_or_else(|| (side, format!("Error: {number}, Severity: 16, State: 1. {description}"))),
                );
            }
        }
        Verdict::Connect => {
            let l = &mut w.links[i];
            let since = *l.since.get_or_insert(now);
            let ready = now - since >= time::Duration::try_from(p.connect_after).unwrap_or(time::Duration::ZERO);
            if !ready {
                let left = time::Duration::try_from(p.connect_after).unwrap_or_default() - (now - since);
                wait = Duration::try_from(left).unwrap_or(p.retry_every).max(Duration::from_millis(1));
            } else {
                let first = !l.status.connected;
                l.status.connected = true;
                l.status.error = None;
                wait = seed(w, i, p, now);
                if first {
                    let (ag, mi_ag) = sql_names(w, dag);
                    log = Some((SideId::Sql, texts::connected(dag, &ag, &mi_ag)));
                }
            }
        }
    }
    if let Some((side, text)) = log {
        w.server_mut(side).log("spid42s", text);
    }
    (w.links[i].status != before, wait)
}

fn sql_names(w: &World, dag: &str) -> (String, String) {
    let r = w.sql.ag(dag).map(|a| a.replicas.clone()).unwrap_or_default();
    (r.first().map(|r| r.name.clone()).unwrap_or_default(), r.get(1).map(|r| r.name.clone()).unwrap_or_default())
}

/// Automatic seeding of a connected link: starts (or fails, when the managed
/// instance already has a database of that name), progresses at the scenario's
/// rate, and ends with the database online on the managed instance.
fn seed(w: &mut World, i: usize, p: &Replication, now: OffsetDateTime) -> Duration {
    let database = w.links[i].database.clone();
    let dag = w.links[i].dag.clone();
    let size_bytes = w.sql.database(&database).map(|d| d.size_mb).unwrap_or(0) * 1_048_576;
    let rate = (p.seeding_mb_per_s * 1_048_576.0).max(1.0) as i64;
    let restarting =
        w.links[i].status.seeding.as_ref().is_some_and(|s| s.current_state == "FAILED" && s.failure_state == 0);
    if w.links[i].status.seeding.is_none() || restarting {
        let attempts = w.links[i].status.seeding.as_ref().map(|s| s.attempts + 1).unwrap_or(1);
        let exists = w.mi.database(&database).is_some_and(|d| d.group_database_id.is_none());
        let mut s = Seeding {
            current_state: "SEEDING".into(),
            failure_state: 0,
            failure_state_desc: None,
            error_code: 0,
            failure_message: None,
            attempts,
            transferred_bytes: 0,
            size_bytes,
            rate_bytes_per_second: rate,
            started: now,
            finished: None,
        };
        if exists && !restarting {
            // failure_state 23 (hundreds digit 2: the target) per mi-link-facts §5; the
            // desc text is UNCONFIRMED, 1801 is SQL Server's "already exists".
            s.current_state = "FAILED".into();
            s.failure_state = 223;
            s.failure_state_desc = Some("Database already exists on the target".into());
            s.error_code = 1801;
            s.failure_message =
                Some(format!("Database '{database}' already exists. Choose a different database name."));
            w.links[i].status.seeding = Some(s);
            w.links[i].status.health = "NOT_HEALTHY".into();
            return p.retry_every.max(Duration::from_secs(1));
        }
        w.links[i].status.seeding = Some(s);
        add_mi_database(w, &dag, &database, now);
    }
    let sync = log::synchronous(w, &w.links[i]);
    let status = &mut w.links[i].status;
    let Some(s) = status.seeding.as_mut() else { return p.retry_every };
    if s.failure_state != 0 {
        return p.retry_every.max(Duration::from_secs(1));
    }
    if s.finished.is_none() {
        let elapsed = (now - s.started).as_seconds_f64().max(0.0);
        s.transferred_bytes = ((elapsed * s.rate_bytes_per_second as f64) as i64).min(s.size_bytes);
        if s.transferred_bytes >= s.size_bytes {
            s.finished = Some(now);
            s.current_state = "COMPLETED".into();
        }
    }
    if s.finished.is_some() {
        let behind = status.primary().map_or(0, |p| status.log.of(p).saturating_sub(status.log.of(p.other())));
        status.health = "HEALTHY".into();
        status.sync_state = log::sync_state(sync, behind).into();
        if let Some(db) = w.mi.databases.iter_mut().find(|d| d.name.eq_ignore_ascii_case(&database)) {
            db.state = "ONLINE".into();
        }
        Duration::from_secs(5)
    } else {
        status.health = "NOT_HEALTHY".into();
        status.sync_state = "NOT SYNCHRONIZING".into();
        Duration::from_millis(50)
    }
}

/// Seeding creates the database on the managed instance (RESTORING until done)
/// and puts it in the instance's AG.
fn add_mi_database(w: &mut World, dag: &str, name: &str, now: OffsetDateTime) {
    let group = w.mi.guid();
    let src = w.sql.database(name).cloned();
    let id = w.mi.databases.iter().map(|d| d.id).max().unwrap_or(4) + 1;
    if w.mi.database(name).is_none() {
        let base = src.unwrap_or(Database {
            id,
            name: name.to_string(),
            state: String::new(),
            recovery: "FULL".into(),
            log_files: 1,
            filestream: false,
            in_memory: false,
            tde: false,
            tde_certificate: None,
            log_size_mb: 1024.0,
            log_used_percent: 1.0,
            log_reuse_wait: "NOTHING".into(),
            size_mb: 0,
            created: now,
            group_database_id: None,
        });
        w.mi.databases.push(Database {
            id,
            state: "RESTORING".into(),
            created: now,
            group_database_id: Some(group),
            ..base
        });
    }
    let instance_ag = w.arm.dags.iter().find(|d| d.name.eq_ignore_ascii_case(dag)).map(|d| d.instance_ag.clone());
    if let Some(ag) = instance_ag.and_then(|n| w.mi.ags.iter_mut().find(|a| a.name.eq_ignore_ascii_case(&n)))
        && !ag.databases.iter().any(|d| d.eq_ignore_ascii_case(name))
    {
        ag.databases.push(name.to_string());
    }
}

/// Pinned links that fall behind: their queue and lag as of `now`. True when any grows.
fn grow(w: &mut World, now: OffsetDateTime) -> bool {
    let mut any = false;
    for l in w.links.iter_mut() {
        if let (Some(g), Some(since)) = (l.growth, l.since) {
            let secs = (now - since).whole_seconds().max(0);
            l.status.log_send_queue_kb = g.send_kb + g.kb_per_s * secs;
            l.status.lag_seconds = g.lag_s + secs;
            any = true;
        }
    }
    any
}
