//! `distributedAvailabilityGroups`: the instance's half of each link.

use std::sync::Arc;

use hyper::StatusCode;
use serde_json::Value;

use super::ops::Change;
use super::server::{Req, Resp, json as reply};
use super::{Arm, body, error, views};
use crate::lab::state::ArmDag;

impl Arm {
    pub(super) async fn put_dag(self: &Arc<Self>, req: &Req, name: &str, api: &str) -> Resp {
        let body = match self.body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let new_schema = views::is_new_schema(api);
        let get = |k: &str| body::prop(&body, k).filter(|v| !v.trim().is_empty());
        let (partner_ag, instance_ag, endpoint, databases) = if new_schema {
            let dbs = database_names(body::get(&body, "properties").and_then(|p| body::get(p, "databases")));
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
            link_mode: pick("linkMode", "SingleDatabase"),
        };
        if let Some(refusal) = self.refuse_mode(&dag, api) {
            return refusal;
        }
        if let Some(e) = &existing
            && same_dag(e, &dag)
        {
            let w = self.world();
            return reply(StatusCode::OK, &views::dag(&self.names(), &w, e, api));
        }
        self.accept(req, Change::PutDag(dag), api)
    }
}

impl Arm {
    /// What the preview's multi-database mode refuses (its codes are the lab's,
    /// UNCONFIRMED): linkMode outside 2025-08-01-preview, several databases in a
    /// single-database link, a name against the rules, and the two modes mixed
    /// on one instance.
    fn refuse_mode(&self, d: &ArmDag, api: &str) -> Option<Resp> {
        let bad = |code: &str, message: String| Some(error(StatusCode::BAD_REQUEST, code, message));
        let multi = d.link_mode.eq_ignore_ascii_case("MultiDatabase");
        if !d.link_mode.eq_ignore_ascii_case("SingleDatabase") && !multi {
            return bad(
                "InvalidRequestContent",
                format!("linkMode `{}` is not SingleDatabase or MultiDatabase.", d.link_mode),
            );
        }
        if multi && api != "2025-08-01-preview" {
            return bad("InvalidRequestContent", format!("linkMode is not known in api-version '{api}'."));
        }
        if !multi && d.databases.len() > 1 {
            return bad("InvalidRequestContent", "A single-database link carries one database.".into());
        }
        if multi && let Some(why) = crate::profile::link_name_problem(&d.name) {
            return bad("InvalidResourceName", format!("The link name is not valid: {why}."));
        }
        let w = self.world();
        let other = w
            .arm
            .dags
            .iter()
            .find(|x| !x.name.eq_ignore_ascii_case(&d.name) && !x.link_mode.eq_ignore_ascii_case(&d.link_mode));
        other.map(|o| {
            error(
                StatusCode::CONFLICT,
                "LinkModeMismatch",
                format!(
                    "The instance has the {} link {}: single- and multi-database links do not mix on one instance.",
                    o.link_mode, o.name
                ),
            )
        })
    }

    /// `POST …/addDatabases` and `…/removeDatabases` (2025-08-01-preview, a
    /// multi-database link): the link's databases change as an operation.
    pub(super) fn dag_databases(self: &Arc<Self>, req: &Req, name: &str, add: bool, api: &str) -> Resp {
        let body = match self.body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let dbs = database_names(
            body::get(&body, "databases")
                .or_else(|| body::get(&body, "properties").and_then(|p| body::get(p, "databases"))),
        );
        if dbs.is_empty() {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                "databases (each with databaseName) is required.",
            );
        }
        let mode =
            self.world().arm.dags.iter().find(|d| d.name.eq_ignore_ascii_case(name)).map(|d| d.link_mode.clone());
        match mode {
            None => return self.not_found("distributedAvailabilityGroups", name),
            Some(m) if !m.eq_ignore_ascii_case("MultiDatabase") => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContent",
                    "Databases are added to and removed from multi-database links only.",
                );
            }
            Some(_) => {}
        }
        self.accept(req, Change::DagDatabases { name: name.to_string(), databases: dbs, add }, api)
    }
}

/// The `databaseName` of each entry of a `databases` array, in any case.
fn database_names(databases: Option<&Value>) -> Vec<String> {
    let names = databases.and_then(Value::as_array).into_iter().flatten();
    names.filter_map(|d| body::get(d, "databaseName").and_then(Value::as_str).map(str::to_string)).collect()
}

fn same_dag(a: &ArmDag, b: &ArmDag) -> bool {
    a.partner_ag.eq_ignore_ascii_case(&b.partner_ag)
        && a.instance_ag.eq_ignore_ascii_case(&b.instance_ag)
        && a.partner_endpoint.eq_ignore_ascii_case(&b.partner_endpoint)
        && a.databases.len() == b.databases.len()
        && a.databases.iter().zip(&b.databases).all(|(x, y)| x.eq_ignore_ascii_case(y))
        && a.replication_mode.eq_ignore_ascii_case(&b.replication_mode)
}
