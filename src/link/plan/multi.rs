//! The steps of a multi-database link (preview; mi-link-facts §7): one AG for
//! every database, one distributed AG, one DAG resource with `linkMode =
//! MultiDatabase` (api-version 2025-08-01-preview), then the seeding of each
//! database. A database joined later is added to the AG and to the resource
//! (`addDatabases`), which is what `milink link add-database` plans. Which
//! names the instance's half takes, and `sp_multidb_milink`'s effect, are
//! UNCONFIRMED; the plan says so.

use serde_json::json;

use super::steps::{distributed_ag, endpoint_port, sql, wait_seeding};
use super::{Action, Inputs, Names, State, Step, Where};
use crate::azure::arm::segment;
use crate::tsql::{ident, nstring};

pub use crate::azure::arm::MULTI_API as PREVIEW_API;

/// The names of the multi-database link: the link (its DAG), SQL Server's AG
/// (the one the databases are in, else `ag_<link>`) and the instance's.
pub fn names(i: &Inputs<'_>) -> Names {
    let link = i.profile.link.multi_name(&i.profile.sql_server.host);
    let existing = i.databases.iter().find_map(|db| i.observed.sql.ag_of(db)).map(|a| a.name.clone());
    Names {
        db: link.clone(),
        sql_ag: existing.unwrap_or_else(|| format!("ag_{link}")),
        mi_ag: format!("ag_{link}_mi"),
        dag: link,
    }
}

pub fn steps(i: &Inputs<'_>) -> Vec<Step> {
    let n = names(i);
    let sql_url = format!("TCP://{}:{}", i.endpoint_host, endpoint_port(i));
    let mut out = availability_group(i, &n, &sql_url);
    let mut dag = distributed_ag(i, &n, &n.sql_ag, &sql_url);
    // The mode is turned on where the distributed AG is made (every replica of
    // SQL Server's AG needs it: the others are the DBA's, the plan's note says).
    if let Action::Sql { shown, run } = &mut dag.action {
        *shown = format!("EXEC sys.sp_multidb_milink 1; {shown}");
        *run = format!("EXEC sys.sp_multidb_milink 1; {run}");
    }
    out.push(dag);
    out.extend(mi_link(i, &n, &sql_url));
    for db in i.databases {
        let per = Names { db: db.clone(), dag: n.dag.clone(), sql_ag: n.sql_ag.clone(), mi_ag: n.mi_ag.clone() };
        out.push(wait_seeding(i, &per));
    }
    out
}

/// One AG with every database: made with them, or the missing ones added.
fn availability_group(i: &Inputs<'_>, n: &Names, sql_url: &str) -> Vec<Step> {
    let s = &i.observed.sql;
    let Some(ag) = s.ag(&n.sql_ag) else {
        let cluster = if s.version.0 == 13 { String::new() } else { "WITH (CLUSTER_TYPE = NONE) ".into() };
        let dbs: Vec<String> = i.databases.iter().map(|d| ident(d)).collect();
        let create = format!(
            "USE [master]; CREATE AVAILABILITY GROUP {} {cluster}FOR DATABASE {} REPLICA ON {} WITH (ENDPOINT_URL = {}, AVAILABILITY_MODE = SYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL, SEEDING_MODE = AUTOMATIC);",
            ident(&n.sql_ag),
            dbs.join(", "),
            nstring(&s.server_name),
            nstring(sql_url)
        );
        let title = format!("Create the availability group {} for {}", n.sql_ag, i.databases.join(", "));
        return vec![sql(
            Where::SqlServer,
            format!("sql-ag:{}", n.dag),
            title,
            create.clone(),
            create,
            false,
            vec!["link-present"],
        )];
    };
    let missing: Vec<&String> =
        i.databases.iter().filter(|db| !ag.databases.iter().any(|d| d.eq_ignore_ascii_case(db))).collect();
    if missing.is_empty() {
        let title = format!("Create the availability group {} for {}", n.sql_ag, i.databases.join(", "));
        return vec![sql(
            Where::SqlServer,
            format!("sql-ag:{}", n.dag),
            title,
            String::new(),
            String::new(),
            true,
            vec!["link-present"],
        )];
    }
    missing
        .into_iter()
        .map(|db| {
            let add =
                format!("USE [master]; ALTER AVAILABILITY GROUP {} ADD DATABASE {};", ident(&n.sql_ag), ident(db));
            let title = format!("Add {db} to the availability group {}", n.sql_ag);
            sql(Where::SqlServer, format!("sql-ag-add:{db}"), title, add.clone(), add, false, vec!["link-present"])
        })
        .collect()
}

/// The instance's half: the resource with every database, or the missing ones added.
fn mi_link(i: &Inputs<'_>, n: &Names, sql_url: &str) -> Vec<Step> {
    let url = |tail: &str| format!("distributedAvailabilityGroups/{}{tail}?api-version={PREVIEW_API}", segment(&n.dag));
    let dbs = |list: &[&String]| json!(list.iter().map(|d| json!({ "databaseName": d })).collect::<Vec<_>>());
    let Some(existing) = i.observed.arm.dag(&n.dag) else {
        let all: Vec<&String> = i.databases.iter().collect();
        let body = json!({ "properties": {
            "linkMode": "MultiDatabase",
            "partnerAvailabilityGroupName": n.sql_ag,
            "instanceAvailabilityGroupName": n.mi_ag,
            "partnerEndpoint": sql_url,
            "databases": dbs(&all),
            "instanceLinkRole": "Secondary",
            "failoverMode": if i.profile.managed_instance.failback { "Manual" } else { "None" },
            "seedingMode": "Automatic",
            "replicationMode": "Async",
        }});
        return vec![Step {
            id: format!("mi-link:{}", n.dag),
            place: Where::Arm,
            title: format!("Join the managed instance to the multi-database link {} (preview)", n.dag),
            state: State::Todo,
            action: Action::Arm { method: "PUT".into(), url: url(""), body: Some(body) },
            resolves: vec!["link-present", "link-connected"],
        }];
    };
    let has = |db: &str| {
        existing["properties"]["databases"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d["databaseName"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(db))))
    };
    let missing: Vec<&String> = i.databases.iter().filter(|d| !has(d)).collect();
    if missing.is_empty() {
        return vec![Step {
            id: format!("mi-link:{}", n.dag),
            place: Where::Arm,
            title: format!("Join the managed instance to the multi-database link {} (preview)", n.dag),
            state: State::Done,
            action: Action::Arm { method: "PUT".into(), url: url(""), body: None },
            resolves: vec!["link-present", "link-connected"],
        }];
    }
    vec![Step {
        id: format!("mi-add-databases:{}", n.dag),
        place: Where::Arm,
        title: format!(
            "Add {} to the multi-database link {} (preview)",
            missing.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", "),
            n.dag
        ),
        state: State::Todo,
        action: Action::Arm {
            method: "POST".into(),
            url: url("/addDatabases"),
            body: Some(json!({ "databases": dbs(&missing) })),
        },
        resolves: vec!["link-present"],
    }]
}
