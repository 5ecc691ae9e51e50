//! A fake Azure Resource Manager for the lab's managed instance, over HTTPS:
//! the instance, its server trust certificates, endpoint certificates and
//! distributed availability groups, with ARM's authentication, api-versions,
//! long-running operations, paging and error bodies. Its changes land in the
//! lab's state, so the instance's T-SQL catalog shows them.

mod body;
pub mod ops;
mod route;
pub mod server;
mod views;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::lab::catalog::Catalog;
use crate::lab::net::SideNet;
use crate::lab::scenario::{self, ArmFaultKind, Scenario};
use crate::lab::state::{ArmDag, SideId, World};
use ops::{Change, Operation, Status};
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
    database_format: &'static str,
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
    pub fn new(
        scenario: &Scenario,
        token: String,
        world: Arc<Mutex<World>>,
        mi_catalog: Arc<Mutex<Catalog>>,
        mi_net: SideNet,
    ) -> Arc<Arm> {
        let mi = &scenario.managed_instance;
        let database_format = match mi.update_type.as_deref() {
            Some(t) if t.eq_ignore_ascii_case("Continuous") => "AlwaysUpToDate",
            _ if mi.version_parts().0 >= 17 => "SQLServer2025",
            _ => "SQLServer2022",
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

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn handle(self: Arc<Self>, req: Req) -> Resp {
        // Authentication comes first, as ARM checks it before anything else.
        match req.header("authorization") {
            None => {
                let mut r = error(
                    StatusCode::UNAUTHORIZED,
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing.",
                );
                r.headers_mut().insert("www-authenticate", "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", error_description=\"The authentication failed because of missing 'Authorization' header.\"".parse().expect("static"));
                return r;
            }
            Some(h) if h.strip_prefix("Bearer ").map(str::trim) != Some(self.token.as_str()) => {
                let mut r =
                    error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", "The access token is invalid.");
                r.headers_mut().insert("www-authenticate", "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", error_description=\"The access token is invalid.\"".parse().expect("static"));
                return r;
            }
            Some(_) => {}
        }
        let Some(api) = req.query("api-version").map(str::to_string) else {
            return error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        };
        let versions = self.versions();
        if !versions.iter().any(|v| v == &api) {
            let list = versions.join("', '");
            let wellformed = api.len() >= 10 && api[..10].chars().all(|c| c.is_ascii_digit() || c == '-');
            return if wellformed {
                error(
                    StatusCode::BAD_REQUEST,
                    "NoRegisteredProviderFound",
                    format!(
                        "No registered resource provider found for location '{}' and API version '{api}' for type 'managedInstances'. The supported api-versions are '{list}'. The supported locations are '{}'.",
                        self.cfg.location, self.cfg.location
                    ),
                )
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    "InvalidApiVersionParameter",
                    format!("The api-version '{api}' is invalid. The supported versions are '{list}'."),
                )
            };
        }
        let Some(path) = route::parse(&req.path) else {
            return error(
                StatusCode::NOT_FOUND,
                "InvalidRequestUri",
                format!("The request URI '{}' is not valid.", req.path),
            );
        };
        if path.subscription != self.cfg.subscription_id {
            return error(
                StatusCode::NOT_FOUND,
                "SubscriptionNotFound",
                format!("The subscription '{}' could not be found.", path.subscription),
            );
        }
        if let Some(rg) = &path.resource_group
            && !rg.eq_ignore_ascii_case(&self.cfg.resource_group)
        {
            return error(
                StatusCode::NOT_FOUND,
                "ResourceGroupNotFound",
                format!("Resource group '{rg}' could not be found."),
            );
        }
        let route = match path.route {
            Ok(r) => r,
            Err(t) => {
                return error(
                    StatusCode::NOT_FOUND,
                    "InvalidResourceType",
                    format!(
                        "The resource type '{t}' could not be found in the namespace 'Microsoft.Sql' for api version '{api}'."
                    ),
                );
            }
        };
        if let Some(mi) = &path.instance
            && !mi.eq_ignore_ascii_case(&self.instance)
        {
            return if route == Route::Instance {
                error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    format!(
                        "The Resource 'Microsoft.Sql/managedInstances/{mi}' under resource group '{}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                        self.cfg.resource_group
                    ),
                )
            } else {
                error(
                    StatusCode::NOT_FOUND,
                    "ParentResourceNotFound",
                    format!(
                        "Can not perform requested operation on nested resource. Parent resource '{mi}' not found."
                    ),
                )
            };
        }
        if let Some(r) = self.fault(&route, &req.method).await {
            return r;
        }
        self.dispatch(&req, route, &api).await
    }

    /// The scenario's faults for this operation: an error, a throttle, a delay.
    async fn fault(&self, route: &Route, method: &Method) -> Option<Resp> {
        let resource = match route {
            Route::Instance => "instance",
            Route::TrustList | Route::Trust(_) => "trust",
            Route::EndpointCertList | Route::EndpointCert(_) => "endpoint_certs",
            Route::DagList | Route::Dag(_) | Route::DagAction(..) => "dag",
            Route::OperationStatus(_) | Route::OperationResult(_) => "operation",
        };
        let verb = match (method, route) {
            (&Method::GET, Route::TrustList | Route::EndpointCertList | Route::DagList) => "list",
            (&Method::GET, _) => "get",
            (&Method::PUT, _) => "put",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, _) => "delete",
            _ => "post",
        };
        for (i, f) in self.cfg.faults.iter().enumerate() {
            let (r, v) = f.operation.split_once('.').unwrap_or((&f.operation, "*"));
            if !(r == "*" || r == resource) || !(v == "*" || v == verb) {
                continue;
            }
            if matches!(f.kind, ArmFaultKind::OperationFails | ArmFaultKind::OperationHangs) {
                continue;
            }
            {
                let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
                if f.times.is_some_and(|t| hits[i] >= t) {
                    continue;
                }
                hits[i] += 1;
            }
            match f.kind {
                ArmFaultKind::Slow => tokio::time::sleep(f.delay.unwrap_or(Duration::from_secs(2))).await,
                ArmFaultKind::Throttle => {
                    let after = f.delay.unwrap_or(Duration::from_secs(1));
                    let mut r = error(
                        StatusCode::TOO_MANY_REQUESTS,
                        f.code.as_deref().unwrap_or("SubscriptionTooManyRequests"),
                        f.message.clone().unwrap_or_else(|| {
                            "Requests beyond max requests that can be processed by available resources.".into()
                        }),
                    );
                    retry_after(&mut r, after);
                    return Some(r);
                }
                ArmFaultKind::Error => {
                    let status =
                        StatusCode::from_u16(f.status.unwrap_or(500)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    return Some(error(
                        status,
                        f.code.as_deref().unwrap_or("InternalServerError"),
                        f.message
                            .clone()
                            .unwrap_or_else(|| "An unexpected error occured while processing the request.".into()),
                    ));
                }
                ArmFaultKind::OperationFails | ArmFaultKind::OperationHangs => {}
            }
        }
        None
    }

    async fn dispatch(self: &Arc<Self>, req: &Req, route: Route, api: &str) -> Resp {
        let n = self.names();
        let new_schema = views::is_new_schema(api);
        match (&req.method, route) {
            (&Method::GET, Route::Instance) => {
                let w = self.world();
                reply(
                    StatusCode::OK,
                    &views::instance(
                        &n,
                        &w,
                        &self.tier,
                        self.proxy,
                        self.database_format,
                        &self.admin,
                        &self.collation,
                    ),
                )
            }
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
            (&Method::GET, Route::DagList) => {
                let w = self.world();
                let items = w.arm.dags.iter().map(|d| views::dag(&n, &w, d, new_schema)).collect();
                drop(w);
                self.page(req, items)
            }
            (&Method::GET, Route::Dag(name)) => {
                let w = self.world();
                match w.arm.dags.iter().find(|d| d.name.eq_ignore_ascii_case(&name)) {
                    Some(d) => reply(StatusCode::OK, &views::dag(&n, &w, d, new_schema)),
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
            (&Method::POST, Route::DagAction(_, action)) => error(
                StatusCode::BAD_REQUEST,
                "OperationNotSupportedByLab",
                format!("'{action}' is not supported by the milink lab yet."),
            ),
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

    fn put_trust(self: &Arc<Self>, req: &Req, name: &str, api: &str) -> Resp {
        let body = match self.body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Some(blob) = body::prop(&body, "publicBlob").filter(|b| !b.trim().is_empty()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "MissingPublicBlob",
                "The public blob of the server trust certificate is missing.",
            );
        };
        let hex = blob.trim().trim_start_matches("0x").trim_start_matches("0X");
        let der: Option<Vec<u8>> = (hex.len() % 2 == 0)
            .then(|| (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect())
            .flatten();
        let cert = der.and_then(|d| crate::lab::certs::read_der(&d));
        let Some(cert) = cert else {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidPublicBlob",
                "The public blob of the server trust certificate is not a valid certificate.",
            );
        };
        let existing = views::trust_list(&self.world());
        if let Some((x, der)) = existing.iter().find(|(x, _)| x.eq_ignore_ascii_case(name)) {
            if der == &cert.der {
                return reply(StatusCode::OK, &views::trust(&self.names(), x, der));
            }
            return error(
                StatusCode::BAD_REQUEST,
                "CertificateAlreadyExists",
                format!("A server trust certificate named '{name}' already exists with another public key."),
            );
        }
        if let Some((x, _)) = existing.iter().find(|(_, der)| der == &cert.der) {
            return error(
                StatusCode::BAD_REQUEST,
                "CertificateAlreadyExists",
                format!("The certificate is already trusted as '{x}'."),
            );
        }
        self.accept(req, Change::PutTrust { name: name.to_string(), cert }, api)
    }

    async fn put_dag(self: &Arc<Self>, req: &Req, name: &str, api: &str) -> Resp {
        let body = match self.body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let new_schema = views::is_new_schema(api);
        let get = |k: &str| body::prop(&body, k).filter(|v| !v.trim().is_empty());
        let (partner_ag, instance_ag, endpoint, databases) = if new_schema {
            let dbs: Vec<String> = body::get(&body, "properties")
                .and_then(|p| body::get(p, "databases"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|d| body::get(d, "databaseName").and_then(Value::as_str).map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (get("partnerAvailabilityGroupName"), get("instanceAvailabilityGroupName"), get("partnerEndpoint"), dbs)
        } else {
            (
                get("primaryAvailabilityGroupName"),
                get("secondaryAvailabilityGroupName"),
                get("sourceEndpoint"),
                get("targetDatabase").into_iter().collect(),
            )
        };
        let names = if new_schema {
            ["partnerAvailabilityGroupName", "instanceAvailabilityGroupName", "partnerEndpoint", "databases"]
        } else {
            ["primaryAvailabilityGroupName", "secondaryAvailabilityGroupName", "sourceEndpoint", "targetDatabase"]
        };
        let missing: Vec<&str> =
            [partner_ag.is_none(), instance_ag.is_none(), endpoint.is_none(), databases.is_empty()]
                .iter()
                .zip(names)
                .filter(|(m, _)| **m)
                .map(|(_, n)| n)
                .collect();
        if !missing.is_empty() {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                format!(
                    "The request content is missing required properties for api-version '{api}': {}.",
                    missing.join(", ")
                ),
            );
        }
        let endpoint = endpoint.unwrap_or_default();
        // The partner endpoint must resolve from the instance's network.
        let host = crate::lab::link::decide::url_target(&endpoint).map(|(h, _)| h);
        if host.as_deref().and_then(|h| self.mi_net.lookup(h)).is_none() {
            return error(
                StatusCode::BAD_REQUEST,
                "UnableToResolveRemoteServer",
                "The remote partner server name could not be resolved due to an invalid server name or DNS connectivity issues.",
            );
        }
        let pick = |k: &str, default: &str| get(k).unwrap_or_else(|| default.to_string());
        let existing = self.world().arm.dags.iter().find(|d| d.name.eq_ignore_ascii_case(name)).cloned();
        let id = existing.as_ref().map(|d| d.id.clone()).unwrap_or_else(|| self.world().mi.guid());
        let dag = ArmDag {
            name: name.to_string(),
            id,
            partner_ag: partner_ag.unwrap_or_default(),
            instance_ag: instance_ag.unwrap_or_default(),
            partner_endpoint: endpoint,
            databases,
            replication_mode: pick("replicationMode", "Async"),
            failover_mode: pick("failoverMode", "None"),
            seeding_mode: pick("seedingMode", "Automatic"),
            instance_role: pick("instanceLinkRole", "Secondary"),
        };
        if let Some(e) = &existing
            && same_dag(e, &dag)
        {
            let w = self.world();
            return reply(StatusCode::OK, &views::dag(&self.names(), &w, e, new_schema));
        }
        self.accept(req, Change::PutDag(dag), api)
    }

    /// Starts a long-running operation: 202 with where to poll.
    fn accept(self: &Arc<Self>, req: &Req, change: Change, api: &str) -> Resp {
        let target = change.target();
        let kind = change.kind();
        let id = {
            let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
            if ops.iter().any(|o| o.status == Status::InProgress && o.change.target() == target) {
                return error(
                    StatusCode::CONFLICT,
                    "ConflictingServerOperation",
                    "An operation is currently in progress for the server.",
                );
            }
            let id = uuid4();
            ops.push(Operation {
                id: id.clone(),
                started: time::OffsetDateTime::now_utc(),
                status: Status::InProgress,
                change: change.clone(),
                resource_path: req.path.clone(),
                api_version: api.to_string(),
            });
            id
        };
        {
            let mut w = self.world();
            let object = target.split_once('/').map(|(_, n)| n.to_string()).unwrap_or_default();
            w.mutated(SideId::Mi, format!("{} {kind}", req.method), object);
        }
        // What the scenario makes of this operation.
        let resource = if kind == "serverTrustCertificates" { "trust" } else { "dag" };
        let verb = req.method.as_str().to_ascii_lowercase();
        let fault = self.cfg.faults.iter().enumerate().find(|(i, f)| {
            let (r, v) = f.operation.split_once('.').unwrap_or((&f.operation, "*"));
            let matches = (r == "*" || r == resource)
                && (v == "*" || v == verb)
                && matches!(f.kind, ArmFaultKind::OperationFails | ArmFaultKind::OperationHangs);
            if !matches {
                return false;
            }
            let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
            if f.times.is_some_and(|t| hits[*i] >= t) {
                return false;
            }
            hits[*i] += 1;
            true
        });
        let fault = fault.map(|(_, f)| f);
        if fault.is_none_or(|f| f.kind == ArmFaultKind::OperationFails) {
            let fail = fault.map(|f| {
                (
                    f.code.clone().unwrap_or_else(|| "OperationFailed".into()),
                    f.message.clone().unwrap_or_else(|| "The operation failed.".into()),
                )
            });
            let (ops, world, catalog, id2) =
                (self.ops.clone(), self.world.clone(), self.mi_catalog.clone(), id.clone());
            let after = self.cfg.operation_time;
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                ops::finish(&ops, &id2, fail, &world, &catalog);
            });
        }
        let mut r = empty(StatusCode::ACCEPTED);
        let loc = format!(
            "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Sql/locations/{}",
            req.base, self.cfg.subscription_id, self.cfg.resource_group, self.cfg.location
        );
        let h = r.headers_mut();
        h.insert(
            "azure-asyncoperation",
            format!("{loc}/{kind}AzureAsyncOperation/{id}?api-version={api}").parse().expect("ascii"),
        );
        h.insert("location", format!("{loc}/{kind}OperationResults/{id}?api-version={api}").parse().expect("ascii"));
        retry_after(&mut r, self.cfg.retry_after);
        r
    }

    fn op(&self, id: &str) -> Option<Operation> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|o| o.id.eq_ignore_ascii_case(id)).cloned()
    }

    fn operation_status(&self, id: &str) -> Resp {
        let Some(op) = self.op(id) else {
            return error(StatusCode::NOT_FOUND, "ResourceNotFound", format!("The operation '{id}' was not found."));
        };
        let err = match &op.status {
            Status::Failed { code, message } => Some((code.as_str(), message.as_str())),
            _ => None,
        };
        let mut r = reply(StatusCode::OK, &views::operation(&op.id, op.status.name(), op.started, err));
        if op.status == Status::InProgress {
            retry_after(&mut r, self.cfg.retry_after);
        }
        r
    }

    fn operation_result(&self, req: &Req, id: &str, api: &str) -> Resp {
        let Some(op) = self.op(id) else {
            return error(StatusCode::NOT_FOUND, "ResourceNotFound", format!("The operation '{id}' was not found."));
        };
        match &op.status {
            Status::InProgress => {
                let mut r = empty(StatusCode::ACCEPTED);
                r.headers_mut()
                    .insert("location", format!("{}{}?api-version={api}", req.base, req.path).parse().expect("ascii"));
                retry_after(&mut r, self.cfg.retry_after);
                r
            }
            Status::Failed { code, message } => error(StatusCode::BAD_REQUEST, code, message.clone()),
            Status::Succeeded if op.change.is_delete() => empty(StatusCode::NO_CONTENT),
            Status::Succeeded => {
                let n = self.names();
                let w = self.world();
                let body = match &op.change {
                    Change::PutTrust { name, cert } => Some(views::trust(&n, name, &cert.der)),
                    Change::PutDag(_) | Change::PatchDag { .. } => w
                        .arm
                        .dags
                        .iter()
                        .find(|x| x.name.eq_ignore_ascii_case(dag_name(&op.change)))
                        .map(|d| views::dag(&n, &w, d, views::is_new_schema(&op.api_version))),
                    _ => None,
                };
                match body {
                    Some(b) => reply(StatusCode::OK, &b),
                    None => empty(StatusCode::NO_CONTENT),
                }
            }
        }
    }
}

fn dag_name(c: &Change) -> &str {
    match c {
        Change::PutDag(d) => &d.name,
        Change::PatchDag { name, .. } | Change::DeleteDag { name } => name,
        Change::PutTrust { name, .. } | Change::DeleteTrust { name } => name,
    }
}

fn same_dag(a: &ArmDag, b: &ArmDag) -> bool {
    a.partner_ag.eq_ignore_ascii_case(&b.partner_ag)
        && a.instance_ag.eq_ignore_ascii_case(&b.instance_ag)
        && a.partner_endpoint.eq_ignore_ascii_case(&b.partner_endpoint)
        && a.databases.len() == b.databases.len()
        && a.databases.iter().zip(&b.databases).all(|(x, y)| x.eq_ignore_ascii_case(y))
        && a.replication_mode.eq_ignore_ascii_case(&b.replication_mode)
}

/// `Retry-After` in whole seconds, and `retry-after-ms` for sub-second waits
/// (Azure clients read the latter first).
fn retry_after(r: &mut Resp, d: Duration) {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let h = r.headers_mut();
    h.insert("retry-after", secs.to_string().parse().expect("digits"));
    h.insert("retry-after-ms", d.as_millis().to_string().parse().expect("digits"));
}

fn uuid4() -> String {
    let a = crate::lab::net::random();
    let b = crate::lab::net::random().rotate_left(17) ^ a;
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}
