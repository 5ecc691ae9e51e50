//! The lab creates links: Microsoft's manual creation (seed 003, "Replicate a
//! database with the link via T-SQL & PowerShell scripts") run against
//! `link-create.toml` with its T-SQL unchanged but for the placeholders, and its
//! REST calls as the scripts send them (PascalCase properties, the trailing
//! comma, the old api-versions). Afterwards the link is CONNECTED, seeds, and
//! milink's diagnosis of the running lab comes out clean.

use std::time::Duration;

use milink::lab::Lab;
use milink::tsql::binary;
use serde_json::Value;

use crate::support::*;

// The seed's statements, placeholders and all. `GO` separates batches, as SSMS does.
const MASTER_KEY: &str = "USE MASTER\nCREATE MASTER KEY ENCRYPTION BY PASSWORD = '<strong_password>'";
const SQL_CERT: &str = "USE MASTER\n\nDECLARE @sqlserver_certificate_name NVARCHAR(MAX) = N'Cert_' + @@servername  + N'_endpoint'\nDECLARE @sqlserver_certificate_subject NVARCHAR(MAX) = N'Certificate for ' + @sqlserver_certificate_name\nDECLARE @create_sqlserver_certificate_command NVARCHAR(MAX) = N'CREATE CERTIFICATE [' + @sqlserver_certificate_name + '] WITH SUBJECT = ''' + @sqlserver_certificate_subject + ''', EXPIRY_DATE = ''03/30/2025'''\nEXEC sp_executesql @stmt = @create_sqlserver_certificate_command";
const PUBLIC_KEY: &str = "USE MASTER\n\nDECLARE @sqlserver_certificate_name NVARCHAR(MAX) = N'Cert_' + @@servername  + N'_endpoint'\nDECLARE @PUBLICKEYENC VARBINARY(MAX) = CERTENCODED(CERT_ID(@sqlserver_certificate_name));\nSELECT @PUBLICKEYENC AS PublicKeyEncoded;";
const MI_CERT: &str = "EXEC sp_get_endpoint_certificate @endpoint_type = 4";
const IMPORT_MI_CERT: &str =
    "USE MASTER\nCREATE CERTIFICATE [<SQLManagedInstanceFQDN>]\nFROM BINARY = <InstanceCertificate>";
const ENDPOINT: &str = "USE MASTER\nCREATE ENDPOINT database_mirroring_endpoint\n    STATE=STARTED   \n    AS TCP (LISTENER_PORT=5022, LISTENER_IP = ALL)\n    FOR DATABASE_MIRRORING (\n        ROLE=ALL,\n        AUTHENTICATION = CERTIFICATE <SQL_SERVER_CERTIFICATE>,\n        ENCRYPTION = REQUIRED ALGORITHM AES\n    )  ";
const VIEW_ENDPOINT: &str = "SELECT\n    name, type_desc, state_desc, role_desc,\n    connection_auth_desc, is_encryption_enabled, encryption_algorithm_desc\nFROM \n    sys.database_mirroring_endpoints";
const AG: &str = "USE MASTER\nCREATE AVAILABILITY GROUP [<AGName>]\nWITH (CLUSTER_TYPE = NONE)\n    FOR database [<DatabaseName>]  \n    REPLICA ON   \n        '<SQLServerName>' WITH   \n            (  \n            ENDPOINT_URL = 'TCP://<SQLServerIP>:5022',\n            AVAILABILITY_MODE = SYNCHRONOUS_COMMIT,\n            FAILOVER_MODE = MANUAL,\n            SEEDING_MODE = AUTOMATIC\n            );";
const DAG: &str = "USE MASTER\nCREATE AVAILABILITY GROUP [<DAGName>]\n  WITH (DISTRIBUTED) \n  AVAILABILITY GROUP ON  \n  '<AGName>' WITH \n  (\n    LISTENER_URL = 'TCP://<SQLServerIP>:5022',\n    AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT,\n    FAILOVER_MODE = MANUAL,\n    SEEDING_MODE = AUTOMATIC,\n    SESSION_TIMEOUT = 20\n  ),\n  '<ManagedInstanceName>' WITH\n  (\n    LISTENER_URL = 'tcp://<ManagedInstanceFQDN>:5022;Server=[<ManagedInstanceName>]',\n    AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT,\n    FAILOVER_MODE = MANUAL,\n    SEEDING_MODE = AUTOMATIC\n  );";
const VERIFY: &str = "SELECT\n    r.replica_server_name AS [Replica],\n    r.endpoint_url AS [Endpoint],\n    rs.connected_state_desc AS [Connected state],\n    rs.last_connect_error_description AS [Last connection error],\n    rs.last_connect_error_number AS [Last connection error No],\n    rs.last_connect_error_timestamp AS [Last error timestamp]\nFROM\n    sys.dm_hadr_availability_replica_states rs\n    JOIN sys.availability_replicas r\n    ON rs.replica_id = r.replica_id";
// The PowerShell scripts' bodies, as they build them (note the trailing comma).
const TRUST_BODY: &str = "{ \"properties\":{ \"PublicBlob\":\"$PublicKeyEncoded\" } }";
const DAG_BODY: &str = "{\n    \"properties\":{\n        \"TargetDatabase\":\"$DatabaseName\",\n        \"SourceEndpoint\":\"TCP://$SQLServerAddress`:5022\",\n        \"PrimaryAvailabilityGroupName\":\"$AGName\",\n        \"SecondaryAvailabilityGroupName\":\"$ManagedInstanceName\",\n    }\n}";

/// An HTTP client that trusts only the lab's CA, as a script pointed at the lab would.
pub fn arm_client(lab: &Lab) -> reqwest::Client {
    let pem = std::fs::read(&lab.info.arm.ca_cert).unwrap();
    let ca = reqwest::Certificate::from_pem(&pem).unwrap();
    reqwest::Client::builder().tls_certs_only([ca]).timeout(Duration::from_secs(10)).build().unwrap()
}

/// GET an ARM resource and read its JSON body.
pub async fn arm_get(http: &reqwest::Client, url: impl reqwest::IntoUrl, token: &str) -> Value {
    http.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

pub fn arm_url(lab: &Lab, tail: &str, api: &str) -> String {
    let a = &lab.info.arm;
    format!(
        "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Sql/managedInstances/{}/{tail}?api-version={api}",
        a.base_url, a.subscription_id, a.resource_group, a.managed_instance
    )
}

/// Polls an Azure-AsyncOperation URL to its end, as Invoke-WebRequest users do by hand.
pub async fn wait_operation(http: &reqwest::Client, token: &str, url: &str) -> Value {
    for _ in 0..100 {
        let v = arm_get(http, url, token).await;
        if v["status"] != "InProgress" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("operation {url} never ended");
}

async fn exec(c: &mut Tds, sql: &str) {
    c.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}\n{e}")).into_results().await.unwrap();
}

async fn first_bytes(c: &mut Tds, sql: &str) -> Vec<u8> {
    let rows = c.simple_query(sql).await.unwrap().into_results().await.unwrap();
    let row = rows.into_iter().flatten().next().expect("a row");
    row.get::<&[u8], _>(0).expect("varbinary").to_vec()
}

/// The link's state on SQL Server: the "Verify the link" query, MI replica row.
async fn connected_state(sql: &mut Tds, mi_name: &str) -> (String, Option<i32>) {
    let rows = query(sql, VERIFY).await.unwrap();
    let row = rows.iter().find(|r| r.get::<&str, _>("Replica") == Some(mi_name)).expect("the MI's replica row");
    (row.get::<&str, _>("Connected state").unwrap().to_string(), row.get::<i32, _>("Last connection error No"))
}

/// Runs the seed's steps, from the master key to the instance's DAG resource.
/// A lab from scenario `name`, the link created in it by hand.
struct ByHand {
    scenario: milink::lab::scenario::Scenario,
    lab: Lab,
    sql: Tds,
    mi: Tds,
}

async fn created_by_hand(name: &str) -> ByHand {
    let scenario = scenario(name);
    init();
    let lab = Lab::start(&scenario).await.expect("lab starts");
    let mut sql = connect(&lab.info.sql_server).await;
    let mut mi = connect(&lab.info.managed_instance).await;
    create_by_hand(&lab, &mut sql, &mut mi).await;
    ByHand { scenario, lab, sql, mi }
}

async fn create_by_hand(lab: &Lab, sql: &mut Tds, mi: &mut Tds) {
    let (s, m) = (&lab.info.sql_server, &lab.info.managed_instance);
    let http = arm_client(lab);
    let token = lab.info.arm.token.clone();

    // Trust: SQL Server's certificate to the instance. The seed's example expiry date
    // (03/30/2025) has passed, and SQL Server warns that such a certificate is expired:
    // a real run uses a future date, so does this one.
    exec(sql, &MASTER_KEY.replace("<strong_password>", "Lab-Master-Key-Passw0rd")).await;
    exec(sql, &SQL_CERT.replace("03/30/2025", "03/30/2035")).await;
    let public_key = first_bytes(sql, PUBLIC_KEY).await;
    let cert_name = "Cert_SQLPROD01_endpoint";
    let put = http
        .put(arm_url(lab, &format!("serverTrustCertificates/{cert_name}"), "2021-08-01-preview"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(TRUST_BODY.replace("$PublicKeyEncoded", &binary(&public_key)))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 202, "{:?}", put.text().await);
    let op = put.headers()["azure-asyncoperation"].to_str().unwrap().to_string();
    assert_eq!(wait_operation(&http, &token, &op).await["status"], "Succeeded");

    // Trust: the instance's certificate to SQL Server, under its FQDN.
    let mi_cert = first_bytes(mi, MI_CERT).await;
    exec(
        sql,
        &IMPORT_MI_CERT
            .replace("<SQLManagedInstanceFQDN>", &m.fqdn)
            .replace("<InstanceCertificate>", &binary(&mi_cert)),
    )
    .await;

    // The mirroring endpoint, then the AG and the DAG.
    exec(sql, &ENDPOINT.replace("<SQL_SERVER_CERTIFICATE>", cert_name)).await;
    let ep = query(sql, VIEW_ENDPOINT).await.unwrap();
    assert_eq!(ep[0].get::<&str, _>("connection_auth_desc"), Some("CERTIFICATE"));
    assert_eq!(ep[0].get::<&str, _>("state_desc"), Some("STARTED"));
    let server_name = query(sql, "SELECT @@SERVERNAME AS SQLServerName").await.unwrap()[0]
        .get::<&str, _>("SQLServerName")
        .unwrap()
        .to_string();
    let fill = |t: &str| {
        t.replace("<AGName>", "AG_SalesDB")
            .replace("<DAGName>", "DAG_SalesDB")
            .replace("<DatabaseName>", "SalesDB")
            .replace("<SQLServerName>", &server_name)
            .replace("<SQLServerIP>", &s.host)
            .replace("<ManagedInstanceName>", &m.name)
            .replace("<ManagedInstanceFQDN>", &m.fqdn)
    };
    exec(sql, &fill(AG)).await;
    exec(sql, &fill(DAG)).await;
    // Before the instance joins, the DAG is DISCONNECTED, with no error.
    assert_eq!(connected_state(sql, &m.name).await, ("DISCONNECTED".to_string(), None));

    // The link: the instance joins SQL Server's DAG (the seed's api-version and body).
    let body = DAG_BODY
        .replace("$DatabaseName", "SalesDB")
        .replace("$SQLServerAddress`", &s.host)
        .replace("$AGName", "AG_SalesDB")
        .replace("$ManagedInstanceName", &m.name);
    let put = http
        .put(arm_url(lab, "distributedAvailabilityGroups/DAG_SalesDB", "2021-05-01-preview"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 202, "{:?}", put.text().await);
    let op = put.headers()["azure-asyncoperation"].to_str().unwrap().to_string();
    assert_eq!(wait_operation(&http, &token, &op).await["status"], "Succeeded");
}

/// Polls until `f` holds (about five seconds at most).
async fn until<T>(mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the lab never got there");
}

#[tokio::test]
async fn microsofts_manual_creation_makes_a_healthy_link() {
    let ByHand { scenario, lab, mut sql, mut mi } = created_by_hand("link-create.toml").await;
    let m = &lab.info.managed_instance;
    let http = arm_client(&lab);
    let token = lab.info.arm.token.clone();

    // Verify the link: CONNECTED, then seeded and healthy on both sides.
    let mut state = (String::new(), None);
    for _ in 0..100 {
        state = connected_state(&mut sql, &m.name).await;
        if state.0 == "CONNECTED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, ("CONNECTED".to_string(), None));
    let health = "SELECT drs.synchronization_state_desc, drs.synchronization_health_desc FROM sys.dm_hadr_database_replica_states drs JOIN sys.availability_groups ag ON ag.group_id = drs.group_id WHERE ag.is_distributed = 1 AND drs.is_local = 1";
    let mut seen = (String::new(), String::new());
    for _ in 0..100 {
        let r = query(&mut mi, health).await.unwrap();
        if let Some(r) = r.first() {
            seen = (r.get::<&str, _>(0).unwrap().into(), r.get::<&str, _>(1).unwrap().into());
            if seen.1 == "HEALTHY" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, ("SYNCHRONIZING".to_string(), "HEALTHY".to_string()));
    let seeding =
        query(&mut sql, "SELECT current_state, number_of_attempts FROM sys.dm_hadr_automatic_seeding").await.unwrap();
    assert_eq!(seeding[0].get::<&str, _>("current_state"), Some("COMPLETED"));
    let on_mi = query(&mut mi, "SELECT state_desc FROM sys.databases WHERE name = 'SalesDB'").await.unwrap();
    assert_eq!(on_mi[0].get::<&str, _>("state_desc"), Some("ONLINE"));
    // ARM shows the same link.
    let dag = arm_get(&http, arm_url(&lab, "distributedAvailabilityGroups/DAG_SalesDB", "2025-01-01"), &token).await;
    assert_eq!(dag["properties"]["databases"][0]["connectedState"], "CONNECTED");
    assert_eq!(dag["properties"]["databases"][0]["synchronizationHealth"], "HEALTHY");
    assert_eq!(dag["properties"]["partnerAvailabilityGroupName"], "AG_SalesDB");

    // milink's own diagnosis of the running lab: a healthy link.
    let profile = lab.profile(&scenario);
    let d = milink::diagnose::run(&profile).await;
    assert!(d.root_cause.is_none(), "{:?}", d.root_cause);
    let bad: Vec<_> = d
        .report
        .findings
        .iter()
        .filter(|f| f.severity >= milink::report::Severity::Warn)
        .map(|f| (f.id, f.severity, f.evidence.clone()))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(d.report.summary.exit_code, 0);
}

/// The MI's own view of the link: its local replica row carries the error.
async fn mi_error(mi: &mut Tds) -> Option<(String, i32, String)> {
    let q = "SELECT rs.connected_state_desc, rs.last_connect_error_number, rs.last_connect_error_description FROM sys.dm_hadr_availability_replica_states rs JOIN sys.availability_groups ag ON ag.group_id = rs.group_id WHERE ag.is_distributed = 1 AND rs.is_local = 1";
    let rows = query(mi, q).await.unwrap();
    let r = rows.first()?;
    Some((r.get::<&str, _>(0)?.to_string(), r.get::<i32, _>(1)?, r.get::<&str, _>(2)?.to_string()))
}

#[tokio::test]
async fn a_blocked_direction_keeps_the_link_disconnected_until_the_fault_goes() {
    let ByHand { lab, mut sql, mut mi, .. } = created_by_hand("link-create-mi-to-sql-blocked.toml").await;
    let m = &lab.info.managed_instance;

    // The instance cannot reach SQL Server's endpoint: a 35201 timeout on its side.
    let (state, number, text) = until(async || mi_error(&mut mi).await).await;
    assert_eq!((state.as_str(), number), ("DISCONNECTED", 35201), "{text}");
    assert!(text.contains("AG_SalesDB") && text.contains("firewall"), "{text}");
    assert_eq!(connected_state(&mut sql, &m.name).await.0, "DISCONNECTED");
    // SQL Server's error log has no handshake line: nothing ever arrived.
    let log = query(&mut sql, "EXEC xp_readerrorlog 0, 1, N'Mirroring'").await.unwrap();
    assert!(log.iter().all(|r| !r.get::<&str, _>("Text").unwrap_or("").contains("handshake")));

    // Remove the fault at run time: the link connects and seeds.
    lab.control.clear_faults(true).unwrap();
    let state = until(async || {
        let s = connected_state(&mut sql, &m.name).await;
        (s.0 == "CONNECTED").then_some(s)
    })
    .await;
    assert_eq!(state.1, None, "a connected link shows no error");
    let health = "SELECT synchronization_health_desc FROM sys.dm_hadr_database_replica_states drs JOIN sys.availability_groups ag ON ag.group_id = drs.group_id WHERE ag.is_distributed = 1 AND drs.is_local = 1";
    until(async || {
        let r = query(&mut mi, health).await.unwrap();
        r.first().and_then(|r| r.get::<&str, _>(0)).filter(|h| *h == "HEALTHY").map(|_| ())
    })
    .await;
}

/// SQL Server's side of the link, from the "Verify the link" query: (state, error number).
async fn sql_view(sql: &mut Tds, mi_name: &str) -> (String, Option<i32>) {
    connected_state(sql, mi_name).await
}

#[tokio::test]
async fn a_rotated_instance_certificate_disconnects_until_imported_again_and_an_expired_one_too() {
    let ByHand { scenario, lab, mut sql, mut mi } = created_by_hand("link-create.toml").await;
    let m = lab.info.managed_instance.clone();
    until(async || (sql_view(&mut sql, &m.name).await.0 == "CONNECTED").then_some(())).await;

    // Azure rotates the instance's certificate: SQL Server no longer trusts what it presents.
    lab.control.rotate_mi_certificate().unwrap();
    let (state, number) = until(async || {
        let v = sql_view(&mut sql, &m.name).await;
        (v.0 == "DISCONNECTED").then_some(v)
    })
    .await;
    assert_eq!((state.as_str(), number), ("DISCONNECTED", Some(41974)));
    // The documented fix: import the new certificate under the FQDN.
    let fresh = first_bytes(&mut mi, MI_CERT).await;
    exec(
        &mut sql,
        &format!(
            "USE MASTER\nDROP CERTIFICATE [{}]\nCREATE CERTIFICATE [{}] FROM BINARY = {}",
            m.fqdn,
            m.fqdn,
            binary(&fresh)
        ),
    )
    .await;
    until(async || (sql_view(&mut sql, &m.name).await.0 == "CONNECTED").then_some(())).await;

    // SQL Server's endpoint certificate expires: the instance refuses it.
    lab.control.expire_certificate(milink::lab::state::SideId::Sql, "Cert_SQLPROD01_endpoint").unwrap();
    let (_, number, text) = until(async || mi_error(&mut mi).await).await;
    assert_eq!(number, 35207);
    assert!(text.contains("expired"), "{text}");
    let log = query(&mut sql, "EXEC xp_readerrorlog 0, 1, N'Mirroring'").await.unwrap();
    assert!(log.iter().any(|r| r.get::<&str, _>("Text").unwrap_or("").contains("has expired")));
    // milink's diagnosis of the running lab names it.
    let d = milink::diagnose::run(&lab.profile(&scenario)).await;
    assert_eq!(d.root_cause.map(|r| r.id), Some("sql-endpoint-cert-expired"));
}
