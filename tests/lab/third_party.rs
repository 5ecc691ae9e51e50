//! A TDS client nobody here wrote (python-tds from PyPI) runs Microsoft's link
//! queries unchanged against `milink lab up --json`, over TLS.

use serde_json::Value;
use sha1::{Digest, Sha1};

use crate::support::*;

fn pytds(input: &str) -> std::process::Output {
    python("pytds_seed_queries.py", &[], "pytds, OpenSSL", "python-tds and pyOpenSSL", input)
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap_or("")).collect()
}

#[test]
fn azure_mgmt_sql_creates_a_dag_and_polls_its_operation() {
    let lab = LabProcess::start_with("link-create.toml", "[arm]\npage_size = 1\n");
    let out = python("azure_mgmt_link.py", &[], "azure.mgmt.sql", "azure-mgmt-sql and azure-core", &lab.line);
    assert!(out.status.success(), "azure-mgmt-sql failed: {}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["trust"]["status"], "Succeeded");
    assert_eq!(r["created"]["status"], "Succeeded");
    assert_eq!(r["created"]["type"], "Microsoft.Sql/managedInstances/distributedAvailabilityGroups");
    assert_eq!(r["created"]["databases"], serde_json::json!(["SalesDB"]));
    // SQL Server has no DAG yet: the instance's half reports why it cannot start.
    assert_eq!(r["get"]["replica_state"], "LinkInitError");
    // One item per page: the client followed nextLink.
    assert_eq!(r["listed"], serde_json::json!(["DAG_SalesDB", "DAG_Second"]));
    assert_eq!(r["deleted"], "Succeeded");
    assert_eq!(r["after_delete"], serde_json::json!(["DAG_SalesDB"]));
    // The lab's record shows each request once.
    let control = serde_json::from_str::<Value>(&lab.line).unwrap()["control"].as_str().unwrap().to_string();
    let state = http_json("GET", &format!("{control}/state"), None);
    let kinds: Vec<&str> = state["record"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "PUT serverTrustCertificates",
            "PUT distributedAvailabilityGroups",
            "PUT distributedAvailabilityGroups",
            "DELETE distributedAvailabilityGroups"
        ]
    );
    assert!(lab.stop().success());
}

#[test]
fn azure_mgmt_sql_drives_failover_and_set_role() {
    let lab = LabProcess::start("failover-planned.toml");
    let out = python("azure_mgmt_failover.py", &[], "azure.mgmt.sql", "azure-mgmt-sql and azure-core", &lab.line);
    assert!(out.status.success(), "azure-mgmt-sql failed: {}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["update"], serde_json::json!({"status": "Succeeded", "mode": "Sync"}));
    assert_eq!(r["planned"], serde_json::json!({"status": "Succeeded", "instance": "Primary", "partner": "Secondary"}));
    assert_eq!(r["primary_planned"], "DistributedAvailabilityGroupSetRolePrimaryPlannedNotSupported");
    assert_eq!(r["back"], serde_json::json!({"status": "Succeeded", "instance": "Secondary", "partner": "Primary"}));
    // A forced failover leaves both primary; setRole Secondary Forced mends it.
    assert_eq!(r["forced"], serde_json::json!({"status": "Succeeded", "instance": "Primary", "partner": "Primary"}));
    assert_eq!(r["secondary_again"]["instance"], "Secondary");
    let control = serde_json::from_str::<Value>(&lab.line).unwrap()["control"].as_str().unwrap().to_string();
    let state = http_json("GET", &format!("{control}/state"), None);
    let kinds: Vec<&str> = state["record"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "PATCH distributedAvailabilityGroups",
            "POST distributedAvailabilityGroups",
            "FAILOVER (planned)",
            "POST distributedAvailabilityGroups",
            "FAILOVER (planned)",
            "POST distributedAvailabilityGroups",
            "FAILOVER (forced, data loss allowed)",
            "POST distributedAvailabilityGroups",
            "SET (ROLE = SECONDARY)",
        ],
        "each request once; the refused one changed nothing"
    );
    assert!(lab.stop().success());
}

/// `az` against the lab, as a DBA's shell would run it: its own config folder,
/// the lab's CA, the lab's managed identity (App Service style).
fn az(lab: &Value, config: &std::path::Path, args: &[&str]) -> std::process::Output {
    // .ci/run installs the CLI in a virtualenv of its own (it pins an older azure-mgmt-sql).
    let mut cmd = std::process::Command::new(clients_dir().join(".az/bin/az"));
    cmd.args(args)
        .env("AZURE_CONFIG_DIR", config)
        .env("AZURE_CORE_COLLECT_TELEMETRY", "false")
        .env("AZURE_CORE_ONLY_SHOW_ERRORS", "true")
        .env("REQUESTS_CA_BUNDLE", lab["arm"]["ca_cert"].as_str().unwrap())
        .env("IDENTITY_ENDPOINT", format!("{}/msi/token", lab["control"].as_str().unwrap()))
        .env("IDENTITY_HEADER", "lab");
    client_cmd(cmd, "", "the Azure CLI, azure-cli in tests/clients/.az")
}

#[test]
fn the_azure_cli_registers_the_lab_signs_in_and_fails_the_link_over() {
    let lab = LabProcess::start("failover-planned.toml");
    let info: Value = serde_json::from_str(&lab.line).unwrap();
    let config = tempfile::tempdir().unwrap();
    let base = format!("{}/", info["arm"]["base_url"].as_str().unwrap());
    let run = |args: &[&str]| {
        let o = az(&info, config.path(), args);
        assert!(
            o.status.success(),
            "az {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    // The metadata document without a token, then a managed identity's JWT.
    run(&["cloud", "register", "--name", "MilinkLab", "--endpoint-resource-manager", &base]);
    run(&["cloud", "set", "--name", "MilinkLab"]);
    let login: Value = serde_json::from_str(&run(&["login", "--identity"])).unwrap();
    assert_eq!(login[0]["id"], info["arm"]["subscription_id"]);
    let (rg, mi) = (info["arm"]["resource_group"].as_str().unwrap(), info["arm"]["managed_instance"].as_str().unwrap());
    let show: Value =
        serde_json::from_str(&run(&["sql", "mi", "link", "show", "-g", rg, "--mi", mi, "-n", "DAG_SalesDB"])).unwrap();
    assert_eq!(show["databases"][0]["connectedState"], "CONNECTED");
    assert_eq!(show["instanceLinkRole"], "Secondary");
    let failed: Value = serde_json::from_str(&run(&[
        "sql",
        "mi",
        "link",
        "failover",
        "-g",
        rg,
        "--mi",
        mi,
        "-n",
        "DAG_SalesDB",
        "--failover-type",
        "Planned",
        "--yes",
    ]))
    .unwrap();
    assert_eq!(failed["instanceLinkRole"], "Primary", "{failed}");
    let state = http_json("GET", &format!("{}/state", info["control"].as_str().unwrap()), None);
    assert_eq!(state["links"][0]["roles"]["managed_instance"], "PRIMARY");
    assert!(lab.stop().success());
}

#[test]
fn python_tds_runs_the_documented_queries_over_tls() {
    let lab = LabProcess::start("link-healthy.toml");
    let info: Value = serde_json::from_str(&lab.line).unwrap();
    let out = pytds(&lab.line);
    assert!(out.status.success(), "python-tds failed: {}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sql = &r["sql_server"];

    let ep = &sql["endpoints"];
    assert_eq!(
        strings(&ep["columns"]),
        [
            "name",
            "type_desc",
            "state_desc",
            "role_desc",
            "connection_auth_desc",
            "is_encryption_enabled",
            "encryption_algorithm_desc"
        ]
    );
    assert_eq!(ep["rows"][0][4], "CERTIFICATE");
    assert_eq!(ep["rows"][0][5], true, "bit arrives as a boolean");
    assert_eq!(sql["endpoints_filtered"]["rows"].as_array().unwrap().len(), 1);

    // DB-API type codes are TDS types: nvarchar 231, int (INTN) 38/56, datetime 61/111.
    let certs = &sql["certificates"];
    let cols = strings(&certs["columns"]);
    let col = |n: &str| cols.iter().position(|c| *c == n).unwrap();
    assert_eq!(certs["types"][col("name")], 231);
    assert!(matches!(certs["types"][col("expiry_date")].as_i64(), Some(61 | 111)));
    let rows = certs["rows"].as_array().unwrap();
    let mk = rows.iter().filter(|r| r[col("pvt_key_encryption_type")] == "MK").count();
    assert_eq!(mk, 1);

    let key = sql["public_key"]["rows"][0][0].as_str().unwrap();
    assert!(key.starts_with("0x3082"), "DER certificate: {key}");
    assert_eq!(sql["server_name"]["rows"][0][0], "SQLPROD01");
    let ags = &sql["availability_groups"];
    let dist = strings(&ags["columns"]).iter().position(|c| *c == "is_distributed").unwrap();
    assert!(ags["rows"].as_array().unwrap().iter().any(|r| r[dist] == true));

    let verify = &sql["verify_link"];
    assert_eq!(strings(&verify["columns"]), VERIFY_LINK_COLUMNS);
    assert!(verify["rows"].as_array().unwrap().iter().any(|r| r[2] == "CONNECTED"));

    // What the managed instance presents is what SQL Server imported under its FQDN.
    let mi_cert = r["managed_instance"]["endpoint_certificate"]["rows"][0][0].as_str().unwrap();
    let der: Vec<u8> =
        (2..mi_cert.len()).step_by(2).map(|i| u8::from_str_radix(&mi_cert[i..i + 2], 16).unwrap()).collect();
    let thumb = format!("0x{}", Sha1::digest(&der).iter().map(|b| format!("{b:02X}")).collect::<String>());
    let fqdn = info["managed_instance"]["fqdn"].as_str().unwrap();
    let imported = rows.iter().find(|r| r[col("name")] == fqdn).expect("MI certificate imported");
    assert_eq!(imported[col("thumbprint")], thumb);

    let ca = info["sql_server"]["ca_cert"].as_str().unwrap().to_string();
    assert!(lab.stop().success(), "SIGTERM stops the lab cleanly");
    assert!(!std::path::Path::new(&ca).exists(), "the lab removes its files on exit");
}

#[test]
fn python_tds_refuses_a_lab_it_does_not_trust() {
    init();
    let lab = LabProcess::start("healthy.toml");
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, milink::lab::certs::LabCa::new().unwrap().pem).unwrap();
    let mut info: Value = serde_json::from_str(&lab.line).unwrap();
    info["sql_server"]["ca_cert"] = Value::String(other_ca.display().to_string());
    let out = pytds(&format!("{info}\n"));
    assert!(!out.status.success(), "python-tds must not trust a certificate from another CA");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("certificate") || err.contains("ssl"), "{err}");
    lab.stop();
}
