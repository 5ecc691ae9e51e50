//! The fake ARM as clients meet it: authentication, api-versions and schemas,
//! long-running operations, paging, ARM's error bodies, and the scenario's faults.

use std::time::{Duration, Instant};

use milink::lab::Lab;
use serde_json::{Value, json};

use super::link_create::{arm_client, arm_get, arm_url, wait_operation};
use crate::support::*;

async fn lab_with(edit: impl FnOnce(&mut toml::Table)) -> Lab {
    init();
    let s = scenario_with("link-create.toml", edit);
    Lab::start(&s).await.expect("lab starts")
}

/// `arm.faults` set to `faults`, a TOML array of inline tables.
async fn lab_with_faults(faults: &str) -> Lab {
    let faults = toml::from_str::<toml::Table>(&format!("f = {faults}")).unwrap()["f"].clone();
    lab_with(|t| set(t, "arm.faults", faults)).await
}

/// PUT of the DAG `name` with the documented body, new schema.
async fn put_dag(http: &reqwest::Client, lab: &Lab, name: &str) -> reqwest::Response {
    let url = arm_url(lab, &format!("distributedAvailabilityGroups/{name}"), "2025-01-01");
    http.put(url).bearer_auth(&lab.info.arm.token).json(&dag_body(lab)).send().await.unwrap()
}

fn dag_body(lab: &Lab) -> Value {
    json!({ "properties": {
        "partnerAvailabilityGroupName": "AG_SalesDB",
        "instanceAvailabilityGroupName": "AG_SalesDB_MI",
        "partnerEndpoint": format!("TCP://{}:5022", lab.info.sql_server.host),
        "databases": [{ "databaseName": "SalesDB" }],
    }})
}

async fn code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    (status, v["error"]["code"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn authentication_api_versions_and_paths() {
    let lab = lab_with(|_| {}).await;
    let http = arm_client(&lab);
    let token = &lab.info.arm.token;
    let url = arm_url(&lab, "distributedAvailabilityGroups", "2025-01-01");
    assert_eq!(code(http.get(&url).send().await.unwrap()).await, (401, "AuthenticationFailed".into()));
    assert_eq!(
        code(http.get(&url).bearer_auth("nope").send().await.unwrap()).await,
        (401, "InvalidAuthenticationToken".into())
    );
    let no_version = url.split('?').next().unwrap().to_string();
    assert_eq!(
        code(http.get(&no_version).bearer_auth(token).send().await.unwrap()).await,
        (400, "MissingApiVersionParameter".into())
    );
    let resp =
        http.get(arm_url(&lab, "distributedAvailabilityGroups", "2099-01-01")).bearer_auth(token).send().await.unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "NoRegisteredProviderFound");
    assert!(v["error"]["message"].as_str().unwrap().contains("2025-01-01"), "lists the supported versions");
    assert_eq!(
        code(
            http.get(arm_url(&lab, "distributedAvailabilityGroups", "latest")).bearer_auth(token).send().await.unwrap()
        )
        .await
        .1,
        "InvalidApiVersionParameter"
    );
    let other_mi = url.replace(&lab.info.arm.managed_instance, "someone-else");
    assert_eq!(
        code(http.get(&other_mi).bearer_auth(token).send().await.unwrap()).await,
        (404, "ParentResourceNotFound".into())
    );
    let other_rg = url.replace(&lab.info.arm.resource_group, "rg-other");
    assert_eq!(
        code(http.get(&other_rg).bearer_auth(token).send().await.unwrap()).await,
        (404, "ResourceGroupNotFound".into())
    );
    assert_eq!(
        code(http.get(arm_url(&lab, "databases", "2025-01-01")).bearer_auth(token).send().await.unwrap()).await,
        (404, "InvalidResourceType".into())
    );
    assert_eq!(
        code(
            http.get(arm_url(&lab, "distributedAvailabilityGroups/none", "2025-01-01"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        )
        .await,
        (404, "ResourceNotFound".into())
    );
    // The instance itself, and the endpoint certificate the T-SQL procedure also gives.
    let mi = arm_get(&http, arm_url(&lab, "", "2025-01-01").replace("/?", "?"), token).await;
    assert_eq!(mi["type"], "Microsoft.Sql/managedInstances");
    assert_eq!(mi["sku"]["tier"], "GeneralPurpose");
    assert_eq!(mi["properties"]["fullyQualifiedDomainName"], lab.info.managed_instance.fqdn);
    let ep = arm_get(&http, arm_url(&lab, "endpointCertificates/DATABASE_MIRRORING", "2025-01-01"), token).await;
    let mut mi_sql = connect(&lab.info.managed_instance).await;
    let rows = query(&mut mi_sql, "EXEC sp_get_endpoint_certificate 4").await.unwrap();
    let der = rows[0].get::<&[u8], _>(0).unwrap();
    let hex: String = der.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(ep["properties"]["publicBlob"], hex);
}

#[tokio::test]
async fn bad_requests_get_arm_error_bodies_and_others_are_still_served() {
    let lab = lab_with(|_| {}).await;
    let http = arm_client(&lab);
    let token = &lab.info.arm.token;
    let url = arm_url(&lab, "distributedAvailabilityGroups/DAG_X", "2025-01-01");
    let put = |body: Vec<u8>, ct: &'static str| {
        http.put(&url).bearer_auth(token).header("content-type", ct).body(body).send()
    };
    assert_eq!(
        code(put(b"{\"properties\": ".to_vec(), "application/json").await.unwrap()).await,
        (400, "InvalidRequestContent".into())
    );
    assert_eq!(code(put(b"{}".to_vec(), "text/plain").await.unwrap()).await, (415, "UnsupportedMediaType".into()));
    assert_eq!(
        code(put(vec![b' '; 2 << 20], "application/json").await.unwrap()).await,
        (413, "RequestEntityTooLarge".into())
    );
    let (status, c) = code(put(b"{\"properties\": {}}".to_vec(), "application/json").await.unwrap()).await;
    assert_eq!((status, c.as_str()), (400, "InvalidRequestContent"));
    // A partner endpoint the instance cannot resolve.
    let mut b = dag_body(&lab);
    b["properties"]["partnerEndpoint"] = json!("TCP://nowhere.contoso.lab:5022");
    assert_eq!(
        code(put(serde_json::to_vec(&b).unwrap(), "application/json").await.unwrap()).await,
        (400, "UnableToResolveRemoteServer".into())
    );
    // Garbage on the socket ends that connection only.
    let addr = lab.info.arm.base_url.trim_start_matches("https://").to_string();
    let addr = if addr.contains(':') { addr } else { format!("{addr}:443") };
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, b"\x16\x03\x01\xff\xffnot tls at all").await.unwrap();
    drop(raw);
    let ok =
        http.get(arm_url(&lab, "distributedAvailabilityGroups", "2025-01-01")).bearer_auth(token).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let v: Value = ok.json().await.unwrap();
    assert_eq!(v["value"], json!([]));
}

#[tokio::test]
async fn a_dag_put_runs_as_a_long_running_operation_in_either_schema() {
    let lab = lab_with(|t| set(t, "arm.page_size", 1)).await;
    let http = arm_client(&lab);
    let token = &lab.info.arm.token;
    let started = Instant::now();
    let put = put_dag(&http, &lab, "DAG_SalesDB").await;
    assert_eq!(put.status(), 202);
    for h in ["azure-asyncoperation", "location", "retry-after"] {
        assert!(put.headers().contains_key(h), "{h}");
    }
    let location = put.headers()["location"].to_str().unwrap().to_string();
    let status_url = put.headers()["azure-asyncoperation"].to_str().unwrap().to_string();
    // Not there until the operation ends.
    let early = http
        .get(arm_url(&lab, "distributedAvailabilityGroups/DAG_SalesDB", "2025-01-01"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 404);
    assert_eq!(http.get(&location).bearer_auth(token).send().await.unwrap().status(), 202);
    let done = wait_operation(&http, token, &status_url).await;
    assert_eq!(done["status"], "Succeeded");
    assert!(started.elapsed() >= Duration::from_millis(100), "the scenario's operation time");
    let result = arm_get(&http, &location, token).await;
    assert_eq!(result["properties"]["instanceAvailabilityGroupName"], "AG_SalesDB_MI");
    // The same resource in the old schema.
    let old = arm_get(&http, arm_url(&lab, "distributedAvailabilityGroups/DAG_SalesDB", "2021-11-01"), token).await;
    assert_eq!(old["properties"]["primaryAvailabilityGroupName"], "AG_SalesDB");
    assert_eq!(old["properties"]["targetDatabase"], "SalesDB");
    assert!(old["properties"].get("partnerEndpoint").is_none());
    // The instance's catalog shows it: one state behind ARM and T-SQL.
    let mut mi = connect(&lab.info.managed_instance).await;
    let rows = query(&mut mi, "SELECT name FROM sys.availability_groups WHERE is_distributed = 1").await.unwrap();
    assert_eq!(rows[0].get::<&str, _>("name"), Some("DAG_SalesDB"));
    // The same PUT again changes nothing: 200 at once.
    let again = put_dag(&http, &lab, "DAG_SalesDB").await;
    assert_eq!(again.status(), 200);
    // Paging: a second DAG, one per page.
    let mut b = dag_body(&lab);
    b["properties"]["partnerAvailabilityGroupName"] = json!("AG_Other");
    let put = http
        .put(arm_url(&lab, "distributedAvailabilityGroups/DAG_Other", "2025-01-01"))
        .bearer_auth(token)
        .json(&b)
        .send()
        .await
        .unwrap();
    wait_operation(&http, token, put.headers()["azure-asyncoperation"].to_str().unwrap()).await;
    let first = arm_get(&http, arm_url(&lab, "distributedAvailabilityGroups", "2025-01-01"), token).await;
    assert_eq!(first["value"].as_array().unwrap().len(), 1);
    let next = first["nextLink"].as_str().expect("a next page");
    let second = arm_get(&http, next, token).await;
    assert_eq!(second["value"].as_array().unwrap().len(), 1);
    assert!(second.get("nextLink").is_none());
    // DELETE: the instance's half goes; the database stays.
    let del = http
        .delete(arm_url(&lab, "distributedAvailabilityGroups/DAG_Other", "2025-01-01"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 202);
    wait_operation(&http, token, del.headers()["azure-asyncoperation"].to_str().unwrap()).await;
    let gone = http
        .delete(arm_url(&lab, "distributedAvailabilityGroups/DAG_Other", "2025-01-01"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
}

#[tokio::test]
async fn faults_error_throttle_fail_once_and_slow() {
    let lab = lab_with_faults(
        r#"[
            { operation = "dag.put", kind = "error", status = 409, code = "ConflictingServerOperation", message = "busy", times = 1 },
            { operation = "dag.put", kind = "throttle", delay = "2s", times = 1 },
            { operation = "trust.list", kind = "error", times = 1 },
            { operation = "instance.get", kind = "slow", delay = "400ms" },
        ]"#,
    )
    .await;
    let http = arm_client(&lab);
    let token = &lab.info.arm.token;
    let url = arm_url(&lab, "distributedAvailabilityGroups/DAG_SalesDB", "2025-01-01");
    let body = dag_body(&lab);
    assert_eq!(
        code(http.put(&url).bearer_auth(token).json(&body).send().await.unwrap()).await,
        (409, "ConflictingServerOperation".into())
    );
    let throttled = http.put(&url).bearer_auth(token).json(&body).send().await.unwrap();
    assert_eq!(throttled.status(), 429);
    assert_eq!(throttled.headers()["retry-after"], "2");
    assert_eq!(http.put(&url).bearer_auth(token).json(&body).send().await.unwrap().status(), 202);
    // 500 once, then fine.
    let list = arm_url(&lab, "serverTrustCertificates", "2025-01-01");
    assert_eq!(
        code(http.get(&list).bearer_auth(token).send().await.unwrap()).await,
        (500, "InternalServerError".into())
    );
    assert_eq!(http.get(&list).bearer_auth(token).send().await.unwrap().status(), 200);
    let t = Instant::now();
    http.get(arm_url(&lab, "", "2025-01-01").replace("/?", "?")).bearer_auth(token).send().await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn operations_that_fail_or_never_end() {
    let lab = lab_with_faults(
        r#"[
            { operation = "trust.put", kind = "operation_fails", code = "InvalidPublicBlob", message = "no" },
            { operation = "dag.put", kind = "operation_hangs" },
        ]"#,
    )
    .await;
    let http = arm_client(&lab);
    let token = &lab.info.arm.token;
    let mut mi = connect(&lab.info.managed_instance).await;
    let der =
        query(&mut mi, "EXEC sp_get_endpoint_certificate 4").await.unwrap()[0].get::<&[u8], _>(0).unwrap().to_vec();
    let blob: String = der.iter().map(|b| format!("{b:02X}")).collect();
    let put = http
        .put(arm_url(&lab, "serverTrustCertificates/c1", "2025-01-01"))
        .bearer_auth(token)
        .json(&json!({"properties": {"publicBlob": blob}}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 202);
    let done = wait_operation(&http, token, put.headers()["azure-asyncoperation"].to_str().unwrap()).await;
    assert_eq!(done["status"], "Failed");
    assert_eq!(done["error"]["code"], "InvalidPublicBlob");
    let put = put_dag(&http, &lab, "D").await;
    let status_url = put.headers()["azure-asyncoperation"].to_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let v = arm_get(&http, &status_url, token).await;
    assert_eq!(v["status"], "InProgress");
    // A second PUT of the same resource meanwhile is a conflict.
    assert_eq!(code(put_dag(&http, &lab, "D").await).await.0, 409);
}

/// The tier a scenario gives the instance is the one ARM shows.
#[tokio::test]
async fn the_instance_shows_the_scenarios_tier() {
    for (tier, sku, v2) in [("BusinessCritical", "BC_Gen5", false), ("NextGenGeneralPurpose", "GP_Gen5", true)] {
        let lab = lab_with(|t| set(t, "managed_instance.tier", tier)).await;
        let mi =
            arm_get(&arm_client(&lab), arm_url(&lab, "", "2025-01-01").replace("/?", "?"), &lab.info.arm.token).await;
        assert_eq!(mi["sku"]["name"], sku, "{tier}");
        assert_eq!(mi["properties"]["isGeneralPurposeV2"].as_bool().unwrap_or(false), v2, "{tier}");
    }
}

/// The preview's multi-database mode as the fake ARM keeps it: linkMode only in
/// 2025-08-01-preview, one database in a single-database link, a lowercase
/// name, the modes never mixed on one instance, and add/remove databases as
/// operations of a multi-database link alone.
#[tokio::test]
async fn multi_database_links_have_rules_of_their_own() {
    let lab = lab_with(|_| {}).await;
    let http = arm_client(&lab);
    let token = &lab.info.arm.token;
    let put = |name: &'static str, api: &'static str, body: Value| {
        let req = http
            .put(arm_url(&lab, &format!("distributedAvailabilityGroups/{name}"), api))
            .bearer_auth(token)
            .json(&body);
        async move { req.send().await.unwrap() }
    };
    let mut multi = dag_body(&lab);
    multi["properties"]["linkMode"] = json!("MultiDatabase");
    multi["properties"]["databases"] = json!([{ "databaseName": "SalesDB" }, { "databaseName": "HRDB" }]);
    // linkMode is unknown before the preview.
    assert_eq!(code(put("link-sql", "2025-01-01", multi.clone()).await).await, (400, "InvalidRequestContent".into()));
    // A single-database link carries one database.
    let mut two = multi.clone();
    two["properties"]["linkMode"] = json!("SingleDatabase");
    assert_eq!(code(put("DAG_Two", "2025-08-01-preview", two).await).await, (400, "InvalidRequestContent".into()));
    // Capitals in a multi-database link's name.
    assert_eq!(
        code(put("Link-SQL", "2025-08-01-preview", multi.clone()).await).await,
        (400, "InvalidResourceName".into())
    );
    let ok = put("link-sql", "2025-08-01-preview", multi.clone()).await;
    assert_eq!(ok.status(), 202);
    wait_operation(&http, token, ok.headers()["azure-asyncoperation"].to_str().unwrap()).await;
    let got =
        arm_get(&http, arm_url(&lab, "distributedAvailabilityGroups/link-sql", "2025-08-01-preview"), token).await;
    assert_eq!(got["properties"]["linkMode"], "MultiDatabase", "{got}");
    // A single-database link beside it: the modes do not mix.
    let single = dag_body(&lab);
    assert_eq!(code(put("DAG_SalesDB", "2025-08-01-preview", single).await).await, (409, "LinkModeMismatch".into()));
    // addDatabases: an operation in the preview, unknown before it.
    let action = |verb: &str, api: &str| {
        let url = arm_url(&lab, &format!("distributedAvailabilityGroups/link-sql/{verb}"), api);
        http.post(url).bearer_auth(token).json(&json!({ "databases": [{ "databaseName": "StockDB" }] })).send()
    };
    let (status, _) = code(action("addDatabases", "2025-01-01").await.unwrap()).await;
    assert_eq!(status, 404);
    let add = action("addDatabases", "2025-08-01-preview").await.unwrap();
    assert_eq!(add.status(), 202);
    wait_operation(&http, token, add.headers()["azure-asyncoperation"].to_str().unwrap()).await;
    let got =
        arm_get(&http, arm_url(&lab, "distributedAvailabilityGroups/link-sql", "2025-08-01-preview"), token).await;
    let names: Vec<&str> =
        got["properties"]["databases"].as_array().unwrap().iter().filter_map(|d| d["databaseName"].as_str()).collect();
    assert_eq!(names, ["SalesDB", "HRDB", "StockDB"], "{got}");
    let remove = action("removeDatabases", "2025-08-01-preview").await.unwrap();
    assert_eq!(remove.status(), 202);
    wait_operation(&http, token, remove.headers()["azure-asyncoperation"].to_str().unwrap()).await;
    let got =
        arm_get(&http, arm_url(&lab, "distributedAvailabilityGroups/link-sql", "2025-08-01-preview"), token).await;
    assert_eq!(got["properties"]["databases"].as_array().unwrap().len(), 2, "{got}");
}
