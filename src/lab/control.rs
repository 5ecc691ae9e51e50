//! The lab's control channel: changes to a running lab, so tests (and people)
//! can break and mend it. Served as a small HTTP API on loopback (its URL is in
//! `lab up --json`); in-process tests call the same methods.
//!
//! | request | what it does |
//! |---|---|
//! | `GET /state` | links, network faults, and every change made so far |
//! | `POST /faults` `{from,to,port,port_to,action}` | adds a network fault |
//! | `DELETE /faults` | removes the faults added here (the scenario's stay unless `?all=1`) |
//! | `POST /rotate-mi-certificate` | the managed instance presents a new endpoint certificate |
//! | `POST /expire-certificate` `{side,name}` | that certificate (and its copies) expires |
//! | `POST /advance-seeding` | every seeding in progress completes |
//! | `POST /force-failover` | the managed instance becomes PRIMARY too (split brain) |
//! | `POST /fill-log` `{database,percent}` | SQL Server's log of that database fills |
//! | `POST /workload` `{tps}` | the application writes that many transactions a second (0 stops it) |
//! | `GET /msi/token` | a managed identity's token endpoint (App Service style) giving the ARM token |

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::lab::arm::server::{self, Req, Resp};
use crate::lab::catalog::Catalog;
use crate::lab::certs;
use crate::lab::link::roles;
use crate::lab::netns::{Place, Topology};
use crate::lab::ports::Ports;
use crate::lab::scenario::Fault;
use crate::lab::state::{SideId, World};

pub struct Control {
    pub world: Arc<Mutex<World>>,
    pub sql_catalog: Arc<Mutex<Catalog>>,
    pub mi_catalog: Arc<Mutex<Catalog>>,
    pub ports: Arc<Ports>,
    pub topology: Option<Arc<Topology>>,
    pub sql_ip: IpAddr,
    pub mi_ip: IpAddr,
    /// The scenario's faults, then those added at run time.
    pub faults: Mutex<Vec<Fault>>,
    pub scenario_faults: usize,
    /// What the fake ARM accepts, handed out as a managed identity would.
    pub arm_token: String,
}

fn bad(message: impl Into<String>) -> Resp {
    server::json(StatusCode::BAD_REQUEST, &json!({ "error": message.into() }))
}

impl Control {
    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Shows the world again in both catalogs and wakes the state machine.
    fn changed(&self) {
        for c in [&self.sql_catalog, &self.mi_catalog] {
            let c = c.lock().unwrap_or_else(|p| p.into_inner());
            let w = self.world();
            let _ = c.show(&w);
            w.changed.notify_one();
        }
    }

    pub fn add_fault(&self, f: Fault) -> Result<(), String> {
        if !matches!(f.to.as_str(), "sql_server" | "managed_instance") {
            return Err(format!("to `{}` is not sql_server or managed_instance", f.to));
        }
        if !matches!(f.from.as_str(), "sql_server" | "managed_instance" | "host" | "any") {
            return Err(format!("from `{}` is not sql_server, managed_instance, host or any", f.from));
        }
        if self.topology.is_none() && f.needs_topology() {
            return Err("this fault needs topology mode (an ICMP error)".into());
        }
        self.faults.lock().unwrap_or_else(|p| p.into_inner()).push(f);
        self.apply_faults().map_err(|e| e.to_string())
    }

    pub fn clear_faults(&self, all: bool) -> Result<(), String> {
        {
            let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
            let keep = if all { 0 } else { self.scenario_faults };
            faults.truncate(keep);
        }
        self.apply_faults().map_err(|e| e.to_string())
    }

    /// Removes the run-time faults `which` picks (a restart coming back).
    pub fn remove_fault(&self, which: impl Fn(&Fault) -> bool) -> Result<(), String> {
        {
            let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
            let mut i = self.scenario_faults;
            while i < faults.len() {
                if which(&faults[i]) {
                    faults.remove(i);
                } else {
                    i += 1;
                }
            }
        }
        self.apply_faults().map_err(|e| e.to_string())
    }

    /// A forced failover to the managed instance while SQL Server stays PRIMARY:
    /// both sides PRIMARY, the link disconnected, and nothing mends it by itself.
    pub fn force_failover(&self) -> Result<(), String> {
        {
            let mut w = self.world();
            let Some(dag) = w.links.first().map(|l| l.dag.clone()) else {
                return Err("there is no link to fail over".into());
            };
            roles::forced(&mut w, &dag, SideId::Mi, time::OffsetDateTime::now_utc())
                .map_err(|e| format!("{dag}: {e:?}"))?;
        }
        self.changed();
        Ok(())
    }

    /// The application writes `tps` transactions a second from now on (0 stops it).
    pub fn set_workload(&self, tps: f64) -> Result<(), String> {
        if !(0.0..=100_000.0).contains(&tps) {
            return Err(format!("tps {tps} is outside 0..100000"));
        }
        {
            let mut w = self.world();
            let now = time::OffsetDateTime::now_utc();
            crate::lab::link::log::advance(&mut w, now);
            w.workload.tps = tps;
            w.workload.stop_at = None;
            w.changed.notify_one();
        }
        self.changed();
        Ok(())
    }

    /// SQL Server's log of `database` fills, held by the availability replica.
    pub fn fill_log(&self, database: &str, percent: f64) -> Result<(), String> {
        {
            let mut w = self.world();
            let Some(d) = w.sql.databases.iter_mut().find(|d| d.name.eq_ignore_ascii_case(database)) else {
                return Err(format!("SQL Server has no database {database}"));
            };
            d.log_used_percent = percent;
            d.log_reuse_wait = "AVAILABILITY_REPLICA".into();
            w.mutated(SideId::Sql, "fill log", database.to_string());
        }
        self.changed();
        Ok(())
    }

    /// Makes the network match the list: nftables rules between namespaces, or
    /// in loopback mode the target ports' sockets.
    pub(crate) fn apply_faults(&self) -> std::io::Result<()> {
        let faults = self.faults.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(t) = &self.topology {
            return t.apply_faults(&faults);
        }
        for (label, ip, place) in
            [("sql_server", self.sql_ip, Place::SqlServer), ("managed_instance", self.mi_ip, Place::ManagedInstance)]
        {
            let mut ports: Vec<u16> = self.ports.of(ip).iter().map(SocketAddr::port).collect();
            ports.extend(faults.iter().filter(|f| f.to == label).flat_map(Fault::ports));
            ports.sort_unstable();
            ports.dedup();
            for port in ports {
                let fault = Fault::listener_at(&faults, label, port);
                self.ports.fault(place, SocketAddr::new(ip, port), fault)?;
            }
        }
        self.world().changed.notify_one();
        Ok(())
    }

    /// The instance's half of one link is deleted (its DAG resource, as an ARM
    /// DELETE would); SQL Server's half stays, DISCONNECTED.
    pub fn remove_mi_link(&self, dag: &str) -> Result<(), String> {
        {
            let mut w = self.world();
            if !w.arm.dags.iter().any(|d| d.name.eq_ignore_ascii_case(dag)) {
                return Err(format!("the instance has no link {dag}"));
            }
            crate::lab::arm::ops::delete_dag(&mut w, dag);
            w.mutated(SideId::Mi, "DELETE distributedAvailabilityGroups", dag.to_string());
        }
        self.changed();
        Ok(())
    }

    /// The managed instance's endpoint certificate is replaced, as Azure rotates it.
    pub fn rotate_mi_certificate(&self) -> Result<(), String> {
        {
            let mut w = self.world();
            let Some(name) = w.mi.endpoint.as_ref().and_then(|e| e.auth.certificate.clone()) else {
                return Err("the managed instance has no endpoint certificate".into());
            };
            let now = time::OffsetDateTime::now_utc();
            let Some(c) = w.mi.certificates.iter_mut().find(|c| c.name == name) else {
                return Err(format!("no certificate {name}"));
            };
            let fresh = certs::endpoint_cert(
                &c.cert.subject,
                Some(&c.cert.issuer),
                now - time::Duration::hours(1),
                now + time::Duration::days(365),
                0x7000 + now.unix_timestamp() as u64 % 0xfff,
            )
            .map_err(|e| e.to_string())?;
            c.cert = fresh;
            w.mutated(SideId::Mi, "rotate endpoint certificate", name);
        }
        self.changed();
        Ok(())
    }

    /// A certificate expires: it is made again with its validity in the past, and
    /// every copy of it (an import on the other side) with it.
    pub fn expire_certificate(&self, side: SideId, name: &str) -> Result<(), String> {
        {
            let mut w = self.world();
            let Some(c) = w.server(side).certificate(name).cloned() else {
                return Err(format!("{} has no certificate {name}", side.label()));
            };
            let now = time::OffsetDateTime::now_utc();
            let expired = certs::endpoint_cert(
                &c.cert.subject,
                Some(&c.cert.issuer),
                now - time::Duration::days(400),
                now - time::Duration::days(1),
                0x7800 + c.id as u64,
            )
            .map_err(|e| e.to_string())?;
            for s in [SideId::Sql, SideId::Mi] {
                for x in w.server_mut(s).certificates.iter_mut().filter(|x| x.cert.der == c.cert.der) {
                    x.cert = expired.clone();
                }
            }
            w.mutated(side, "expire certificate", name);
        }
        self.changed();
        Ok(())
    }

    pub fn advance_seeding(&self) {
        {
            let mut w = self.world();
            for l in &mut w.links {
                if let Some(s) = l.status.seeding.as_mut().filter(|s| s.finished.is_none()) {
                    s.started = time::OffsetDateTime::now_utc() - time::Duration::days(30);
                }
            }
        }
        self.changed();
    }

    pub fn state(&self) -> Value {
        let w = self.world();
        let links: Vec<Value> = w
            .links
            .iter()
            .map(|l| {
                let s = &l.status;
                json!({
                    "dag": l.dag,
                    "database": l.database,
                    "pinned": l.pinned,
                    "connected": s.connected,
                    "health": s.health,
                    "synchronization_state": s.sync_state,
                    "error": s.error.as_ref().map(|e| json!({"side": e.side.map(SideId::label), "number": e.number, "description": e.description})),
                    "seeding": s.seeding.as_ref().map(|x| json!({"state": x.current_state, "transferred_bytes": x.transferred_bytes, "size_bytes": x.size_bytes, "attempts": x.attempts})),
                    "roles": { "sql_server": s.sql_role, "managed_instance": s.mi_role },
                    // Transactions in each side's copy of the database.
                    "log": { "sql_server": s.log.sql, "managed_instance": s.log.mi },
                    "writer": l.writer.label(),
                })
            })
            .collect();
        let faults = self.faults.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let backups = |side: SideId| -> Vec<Value> {
            w.server(side)
                .backups
                .iter()
                .map(|b| json!({"database": b.database, "type": b.kind.to_string(), "copy_only": b.copy_only, "first": b.first, "last": b.last, "device": b.device}))
                .collect()
        };
        json!({
            "links": links,
            "faults": faults,
            "record": w.record,
            "workload": { "tps": w.workload.tps, "writing": w.workload.writing(time::OffsetDateTime::now_utc()) },
            "backups": { "sql_server": backups(SideId::Sql), "managed_instance": backups(SideId::Mi) },
        })
    }

    /// Serves the API on loopback; returns its URL and the serving task.
    pub fn start(self: &Arc<Self>) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let url = format!("http://{}", listener.local_addr()?);
        let me = self.clone();
        let task = tokio::spawn(server::serve(listener, None, move |req| {
            let me = me.clone();
            async move { me.handle(req) }
        }));
        Ok((url, task))
    }

    fn handle(&self, req: Req) -> Resp {
        let ok = || server::json(StatusCode::OK, &self.state());
        match (&req.method, req.path.trim_end_matches('/')) {
            (&Method::GET, "/state" | "") => ok(),
            (&Method::POST, "/faults") => match serde_json::from_slice::<Fault>(&req.body) {
                Ok(f) => match self.add_fault(f) {
                    Ok(()) => ok(),
                    Err(e) => bad(e),
                },
                Err(e) => bad(format!("a fault is {{from, to, port, port_to, action}}: {e}")),
            },
            (&Method::DELETE, "/faults") => match self.clear_faults(req.query("all").is_some()) {
                Ok(()) => ok(),
                Err(e) => bad(e),
            },
            (&Method::POST, "/rotate-mi-certificate") => match self.rotate_mi_certificate() {
                Ok(()) => ok(),
                Err(e) => bad(e),
            },
            (&Method::POST, "/expire-certificate") => {
                let v: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let side = match v["side"].as_str() {
                    Some("sql_server") => SideId::Sql,
                    Some("managed_instance") => SideId::Mi,
                    _ => return bad("side must be sql_server or managed_instance"),
                };
                match self.expire_certificate(side, v["name"].as_str().unwrap_or("")) {
                    Ok(()) => ok(),
                    Err(e) => bad(e),
                }
            }
            (&Method::GET, "/msi/token") => {
                // As App Service's identity endpoint: the secret header must be there.
                if req.header("x-identity-header").is_none_or(str::is_empty) {
                    return server::json(StatusCode::UNAUTHORIZED, &json!({ "error": "missing X-IDENTITY-HEADER" }));
                }
                let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
                server::json(
                    StatusCode::OK,
                    &json!({
                        "access_token": self.arm_token,
                        "expires_on": expires.to_string(),
                        "resource": req.query("resource").unwrap_or("https://management.azure.com"),
                        "token_type": "Bearer",
                    }),
                )
            }
            (&Method::POST, "/force-failover") => match self.force_failover() {
                Ok(()) => ok(),
                Err(e) => bad(e),
            },
            (&Method::POST, "/fill-log") => {
                let v: Value = serde_json::from_slice(&req.body).unwrap_or_default();
                match (v["database"].as_str(), v["percent"].as_f64()) {
                    (Some(d), Some(p)) => match self.fill_log(d, p) {
                        Ok(()) => ok(),
                        Err(e) => bad(e),
                    },
                    _ => bad("give {database, percent}"),
                }
            }
            (&Method::POST, "/workload") => {
                let v: Value = serde_json::from_slice(&req.body).unwrap_or_default();
                match v["tps"].as_f64() {
                    Some(tps) => match self.set_workload(tps) {
                        Ok(()) => ok(),
                        Err(e) => bad(e),
                    },
                    None => bad("give {tps}"),
                }
            }
            (&Method::POST, "/advance-seeding") => {
                self.advance_seeding();
                ok()
            }
            _ => server::json(StatusCode::NOT_FOUND, &json!({ "error": format!("no {} {}", req.method, req.path) })),
        }
    }
}
