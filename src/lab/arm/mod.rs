//! A fake Azure Resource Manager for the lab's managed instance, over HTTPS:
//! the instance, its server trust certificates, endpoint certificates and
//! distributed availability groups, with ARM's authentication, api-versions,
//! long-running operations, paging and error bodies. Its changes land in the
//! lab's state, so the instance's T-SQL catalog shows them.

mod body;
mod cloud;
mod dag;
mod faults;
mod gate;
mod instance;
mod lro;
pub mod ops;
mod roles;
mod route;
pub mod server;
pub mod token;
mod trust;
mod views;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::lab::catalog::Catalog;
use crate::lab::net::SideNet;
use crate::lab::scenario::{self, Scenario};
use crate::lab::state::World;
use ops::{Change, Operation};
use route::Route;
use server::{Req, Resp, empty, json as reply};
pub use views::{NEW, OLD};

/// What a client needs to call the fake ARM (in `lab up --json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ArmInfo {
    pub base_url: String,
    pub token: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub managed_instance: String,
    pub ca_cert: String,
}

pub struct Arm {
    cfg: scenario::Arm,
    token: String,
    instance: String,
    admin: String,
    collation: String,
    tier: String,
    proxy: &'static str,
    database_format: String,
    world: Arc<Mutex<World>>,
    mi_catalog: Arc<Mutex<Catalog>>,
    /// The instance's view of names (a DAG's partner endpoint must resolve from there).
    mi_net: SideNet,
    ops: Arc<Mutex<Vec<Operation>>>,
    /// Requests each fault has hit so far.
    hits: Mutex<Vec<u32>>,
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Resp {
    reply(status, &json!({ "error": { "code": code, "message": message.into() } }))
}

impl Arm {
    /// A replayed bundle's DAG resources, as recorded.
    fn recorded_dags(&self) -> Option<Vec<serde_json::Value>> {
        serde_json::from_str(self.cfg.recorded_dags.as_deref()?).ok()
    }

    pub fn new(
        scenario: &Scenario,
        token: String,
        world: Arc<Mutex<World>>,
        mi_catalog: Arc<Mutex<Catalog>>,
        mi_net: SideNet,
    ) -> Arc<Arm> {
        let mi = &scenario.managed_instance;
        let database_format = match (&scenario.arm.database_format, mi.update_type.as_deref()) {
            (Some(f), _) => f.clone(),
            (None, Some(t)) if t.eq_ignore_ascii_case("Continuous") => "AlwaysUpToDate".into(),
            _ if mi.version_parts().0 >= 17 => "SQLServer2025".into(),
            _ => "SQLServer2022".into(),
        };
        Arc::new(Arm {
            cfg: scenario.arm.clone(),
            token,
            instance: mi.name.clone(),
            admin: mi.login.user.clone(),
            collation: mi.collation.clone(),
            tier: mi.tier().to_string(),
            proxy: if mi.tds.redirect_port.is_some() { "Redirect" } else { "Proxy" },
            database_format,
            world,
            mi_catalog,
            mi_net,
            ops: Arc::new(Mutex::new(Vec::new())),
            hits: Mutex::new(vec![0; scenario.arm.faults.len()]),
        })
    }

    /// Serves HTTPS on `addr` (port 443, or any port when that needs privileges).
    pub fn start(
        self: &Arc<Self>,
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        ca_cert: &str,
    ) -> std::io::Result<(ArmInfo, tokio::task::JoinHandle<()>)> {
        let listener = server::bind(addr)?;
        let bound = listener.local_addr()?;
        let arm = self.clone();
        let task = tokio::spawn(server::serve(listener, Some(tls), move |req| {
            let arm = arm.clone();
            async move { arm.handle(req).await }
        }));
        let host = match bound.port() {
            443 => bound.ip().to_string(),
            p => format!("{}:{p}", bound.ip()),
        };
        let info = ArmInfo {
            base_url: format!("https://{host}"),
            token: self.token.clone(),
            subscription_id: self.cfg.subscription_id.clone(),
            resource_group: self.cfg.resource_group.clone(),
            managed_instance: self.instance.clone(),
            ca_cert: ca_cert.to_string(),
        };
        Ok((info, task))
    }

    fn versions(&self) -> Vec<String> {
        self.cfg.api_versions.clone().unwrap_or_else(|| OLD.iter().chain(NEW.iter()).map(|s| s.to_string()).collect())
    }

    fn names(&self) -> views::Names<'_> {
        views::Names {
            subscription: &self.cfg.subscription_id,
            resource_group: &self.cfg.resource_group,
            instance: &self.instance,
            location: &self.cfg.location,
        }
    }

    /// The instance as ARM returns it.
    fn instance_view(&self, w: &World) -> Value {
        let v = views::Instance {
            tier: &self.tier,
            proxy: self.proxy,
            format: &self.database_format,
            detected: self.cfg.hybrid_secondary_usage_detected.as_deref(),
            admin: &self.admin,
            collation: &self.collation,
        };
        views::instance(&self.names(), w, &v)
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn handle(self: Arc<Self>, req: Req) -> Resp {
        if let Some(r) = self.cloud(&req) {
            return r;
        }
        let (route, api) = match self.admit(&req) {
            Ok(admitted) => admitted,
            Err(refused) => return refused,
        };
        if let Some(r) = self.fault(&route, &req.method).await {
            return r;
        }
        self.dispatch(&req, route, &api).await
    }

    async fn dispatch(self: &Arc<Self>, req: &Req, route: Route, api: &str) -> Resp {
        let n = self.names();
        match (&req.method, route) {
            (&Method::GET, Route::Instance) => reply(StatusCode::OK, &self.instance_view(&self.world())),
            (&Method::PATCH, Route::Instance) => self.patch_instance(req, api),
            (&Method::GET, Route::TrustList) => {
                let items: Vec<Value> =
                    views::trust_list(&self.world()).iter().map(|(name, der)| views::trust(&n, name, der)).collect();
                self.page(req, items)
            }
            (&Method::GET, Route::Trust(name)) => {
                match views::trust_list(&self.world()).into_iter().find(|(x, _)| x.eq_ignore_ascii_case(&name)) {
                    Some((x, der)) => reply(StatusCode::OK, &views::trust(&n, &x, &der)),
                    None => self.not_found("serverTrustCertificates", &name),
                }
            }
            (&Method::PUT, Route::Trust(name)) => self.put_trust(req, &name, api),
            (&Method::DELETE, Route::Trust(name)) => {
                let exists = views::trust_list(&self.world()).iter().any(|(x, _)| x.eq_ignore_ascii_case(&name));
                if !exists {
                    return empty(StatusCode::NO_CONTENT);
                }
                self.accept(req, Change::DeleteTrust { name }, api)
            }
            (&Method::GET, Route::EndpointCertList) => {
                let der = self.world().mi.endpoint_certificate().map(|c| c.cert.der.clone()).unwrap_or_default();
                let items = ["DATABASE_MIRRORING", "SERVICE_BROKER"]
                    .iter()
                    .map(|k| views::endpoint_cert(&n, k, &der))
                    .collect();
                self.page(req, items)
            }
            (&Method::GET, Route::EndpointCert(kind)) => {
                let kind = kind.to_ascii_uppercase();
                if kind != "DATABASE_MIRRORING" && kind != "SERVICE_BROKER" {
                    return self.not_found("endpointCertificates", &kind);
                }
                let der = self.world().mi.endpoint_certificate().map(|c| c.cert.der.clone()).unwrap_or_default();
                reply(StatusCode::OK, &views::endpoint_cert(&n, &kind, &der))
            }
            (&Method::GET, Route::DagList) if self.recorded_dags().is_some() => {
                let items = self.recorded_dags().unwrap_or_default();
                self.page(req, items)
            }
            (&Method::GET, Route::Dag(name)) if self.recorded_dags().is_some() => {
                let found = self
                    .recorded_dags()
                    .unwrap_or_default()
                    .into_iter()
                    .find(|d| d["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&name)));
                match found {
                    Some(d) => reply(StatusCode::OK, &d),
                    None => self.not_found("distributedAvailabilityGroups", &name),
                }
            }
            (&Method::GET, Route::DagList) => {
                let w = self.world();
                let items = w.arm.dags.iter().map(|d| views::dag(&n, &w, d, api)).collect();
                drop(w);
                self.page(req, items)
            }
            (&Method::GET, Route::Dag(name)) => {
                let w = self.world();
                match w.arm.dags.iter().find(|d| d.name.eq_ignore_ascii_case(&name)) {
                    Some(d) => reply(StatusCode::OK, &views::dag(&n, &w, d, api)),
                    None => {
                        drop(w);
                        self.not_found("distributedAvailabilityGroups", &name)
                    }
                }
            }
            (&Method::PUT, Route::Dag(name)) => self.put_dag(req, &name, api).await,
            (&Method::PATCH, Route::Dag(name)) => {
                let body = match self.body(req) {
                    Ok(b) => b,
                    Err(r) => return r,
                };
                if !self.world().arm.dags.iter().any(|d| d.name.eq_ignore_ascii_case(&name)) {
                    return self.not_found("distributedAvailabilityGroups", &name);
                }
                let Some(mode) = body::prop(&body, "replicationMode") else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "InvalidRequestContent",
                        "The request content must set properties.replicationMode (Async or Sync).",
                    );
                };
                self.accept(req, Change::PatchDag { name, replication_mode: mode }, api)
            }
            (&Method::DELETE, Route::Dag(name)) => {
                if !self.world().arm.dags.iter().any(|d| d.name.eq_ignore_ascii_case(&name)) {
                    return empty(StatusCode::NO_CONTENT);
                }
                self.accept(req, Change::DeleteDag { name }, api)
            }
            (&Method::POST, Route::DagAction(name, action)) => self.dag_action(req, &name, &action, api),
            (&Method::GET, Route::OperationStatus(id)) => self.operation_status(&id),
            (&Method::GET, Route::OperationResult(id)) => self.operation_result(req, &id, api),
            (m, _) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("The requested method '{m}' is not allowed for this resource."),
            ),
        }
    }

    fn not_found(&self, kind: &str, name: &str) -> Resp {
        error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!(
                "The Resource 'Microsoft.Sql/managedInstances/{}/{kind}/{name}' under resource group '{}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                self.instance, self.cfg.resource_group
            ),
        )
    }

    /// A JSON body of a PUT or PATCH, as ARM reads it.
    #[allow(clippy::result_large_err)] // the error is the response itself
    fn body(&self, req: &Req) -> Result<Value, Resp> {
        let ct = req.header("content-type").unwrap_or("");
        if !ct.to_ascii_lowercase().starts_with("application/json") {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!("The content media type '{ct}' is not supported. Only 'application/json' is supported."),
            ));
        }
        body::parse(&req.body).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                format!(
                    "The request content was invalid and could not be deserialized: '{}'.",
                    e.chars().take(200).collect::<String>()
                ),
            )
        })
    }

    /// One page of a list, with `nextLink` when more follow.
    fn page(&self, req: &Req, items: Vec<Value>) -> Resp {
        let skip: usize = req.query("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0);
        let size = self.cfg.page_size.max(1);
        let page: Vec<Value> = items.iter().skip(skip).take(size).cloned().collect();
        let mut body = json!({ "value": page });
        if skip + size < items.len() {
            let api = req.query("api-version").unwrap_or("");
            body["nextLink"] = json!(format!("{}{}?api-version={api}&$skiptoken={}", req.base, req.path, skip + size));
        }
        reply(StatusCode::OK, &body)
    }
}
