//! The lab passes for the TDS clients people use, none written here:
//! Microsoft's mssql-python (ODBC Driver 18 inside) and pymssql (FreeTDS) from
//! PyPI, tedious from npm and FreeTDS `tsql` from Debian. Each runs Microsoft's
//! link queries (tests/clients/link_queries.json) against both sides of a
//! healthy link, over TLS after PRELOGIN and over TDS 8 strict where the client
//! can, with autocommit on and off, and disconnects cleanly.

use serde_json::Value;

use crate::support::*;

const STRICT: &str = "[sql_server.tds]\nencryption = \"strict\"\n[managed_instance.tds]\nencryption = \"strict\"\n";

fn lab(encryption: &str) -> LabProcess {
    match encryption {
        "strict" => LabProcess::start_with("link-healthy.toml", STRICT),
        _ => LabProcess::start("link-healthy.toml"),
    }
}

fn parse(out: std::process::Output, who: &str) -> Value {
    assert!(out.status.success(), "{who} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{who} printed no JSON ({e})"))
}

fn dbapi(driver: &str, encryption: &str) -> Value {
    let lab = lab(encryption);
    let out =
        python("dbapi_link_queries.py", &[driver, encryption], driver, "mssql-python and pymssql from PyPI", &lab.line);
    let r = parse(out, driver);
    assert!(lab.stop().success(), "the lab stops cleanly after {driver}'s sessions");
    r
}

fn tedious(encryption: &str) -> Value {
    let lab = lab(encryption);
    let out = client("node", &["tedious_link_queries.js", encryption], &lab.line, "tedious from npm");
    let r = parse(out, "tedious");
    assert!(lab.stop().success());
    r
}

/// A query's rows as (column name → value) maps.
fn rows(q: &Value) -> Vec<std::collections::HashMap<&str, &Value>> {
    let cols: Vec<&str> = q["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    q["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| cols.iter().copied().zip(r.as_array().unwrap().iter()).collect())
        .collect()
}

/// A bigint: tedious hands it over as a string (a JavaScript number would lose digits).
fn int(v: &Value) -> i64 {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or_else(|| panic!("an integer: {v}"))
}

/// What every client must see, whatever it calls the types.
fn check_link_queries(r: &Value, who: &str) {
    for side in ["sql_server", "managed_instance"] {
        for mode in ["autocommit_on", "autocommit_off"] {
            let at = format!("{who} {side} {mode}");
            let run = &r[side][mode];
            let q = &run["queries"];
            let certs = rows(&q["certificates"]);
            assert!(certs.iter().any(|c| c["pvt_key_encryption_type"] == "NA"), "{at}: the other side's certificate");
            let ags = rows(&q["availability_groups"]);
            assert!(ags.iter().any(|a| a["is_distributed"] == &Value::Bool(true)), "{at}: {ags:?}");
            let states = rows(&q["replica_states"]);
            assert!(!states.is_empty(), "{at}: the linked database has replica states on both sides");
            let lsn = rows(&q["lsn"]);
            assert!(!lsn.is_empty() && lsn.iter().all(|l| l["last_hardened_lsn"] == l["end_of_log_lsn"]), "{at}");

            let typed = &rows(&q["typed"])[0];
            assert_eq!(int(typed["big"]), 1, "{at}");
            assert!(["1.50", "1.5"].contains(&typed["dec"].to_string().trim_matches('"')), "{at}: {}", typed["dec"]);
            assert_eq!(typed["small"], 7, "{at}");
            let id = typed["id"].as_str().unwrap();
            assert_eq!(id.len(), 36, "{at}: NEWID() is a GUID: {id}");
            assert!(typed["spid"].as_i64().unwrap() >= 51, "{at}");
            assert_eq!(typed["db"], "master", "{at}");
            assert_eq!(typed["who"], "milink", "{at}");

            let t = &run["transactions"];
            assert_eq!(t["began"], 1, "{at}: {t}");
            let err = run["unknown_function"].as_str().unwrap_or("");
            assert!(err.contains("'FOO' is not a recognized built-in function name."), "{at}: {err}");
            assert!(!err.contains("offset") && !err.contains("SELECT"), "{at}: no lab internals: {err}");
        }
        let q = &r[side]["autocommit_on"]["queries"];
        let t = &r[side]["autocommit_on"]["transactions"];
        assert_eq!((&t["after_commit"], &t["after_rollback"]), (&Value::from(0), &Value::from(0)), "{who} {side}");
        if side == "sql_server" {
            let verify = &q["verify_link"];
            assert_eq!(verify["columns"], serde_json::json!(VERIFY_LINK_COLUMNS));
            assert!(rows(verify).iter().any(|r| r["Connected state"] == "CONNECTED"), "{who}");
            assert_eq!(rows(&q["server_name"])[0]["SQLServerName"], "SQLPROD01");
            assert!(rows(&q["public_key"])[0]["PublicKeyEncoded"].as_str().unwrap().starts_with("0x3082"));
            let lag = rows(&q["lag"]);
            assert_eq!(lag.len(), 1, "{who}: one link, seen from its primary");
            assert_eq!(int(lag[0]["Lag seconds"]), 2, "{who}: link-healthy.toml's secondary_lag_seconds");
        } else {
            let cert = rows(&q["endpoint_certificate"]);
            assert!(cert[0]["EndpointCertificatePublicKey"].as_str().unwrap().starts_with("0x3082"), "{who}");
        }
    }
}

/// SERVERPROPERTY's sql_variants, decoded to their base types.
fn check_properties(r: &Value, who: &str, collation: &Value, sql_edition: &Value, mi_edition: &Value) {
    for (side, edition) in [("sql_server", sql_edition), ("managed_instance", mi_edition)] {
        let p = &rows(&r[side]["autocommit_on"]["queries"]["properties"])[0];
        assert_eq!(p["Collation"], collation, "{who} {side}");
        assert_eq!(p["EngineEdition"], edition, "{who} {side}");
    }
}

/// Python type names per column of the typed probe, as the DB-API drivers report them.
fn check_python_types(r: &Value, who: &str) {
    let typed = &r["sql_server"]["autocommit_on"]["queries"]["typed"]["types"];
    assert_eq!(
        typed,
        &serde_json::json!([["int"], ["Decimal"], ["int"], ["UUID"], ["datetime"], ["int"], ["str"], ["str"]]),
        "{who}"
    );
    let states = &r["managed_instance"]["autocommit_on"]["queries"]["replica_states"];
    let cols: Vec<&str> = states["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    let ty = |c: &str| &states["types"][cols.iter().position(|x| *x == c).unwrap()];
    assert_eq!(ty("group_id"), &serde_json::json!(["UUID"]), "{who}");
    assert_eq!(ty("is_local"), &serde_json::json!(["bool"]), "{who}");
    assert_eq!(ty("last_hardened_lsn"), &serde_json::json!(["Decimal"]), "{who}");
    assert_eq!(ty("last_commit_time"), &serde_json::json!(["datetime"]), "{who}");
}

/// With autocommit off a DB-API connection is always in a transaction: commit
/// and rollback end one and the next begins.
fn check_driver_transactions(r: &Value, who: &str) {
    for side in ["sql_server", "managed_instance"] {
        let t = &r[side]["autocommit_off"]["transactions"];
        assert_eq!(t, &serde_json::json!({"began": 1, "after_commit": 1, "after_rollback": 1}), "{who} {side}");
        // mssql-python pools connections: the next user's session was reset.
        let reused = &r[side]["reused"];
        assert_eq!(reused, &serde_json::json!({"database": "master", "trancount": 0}), "{who} {side}");
    }
}

#[test]
fn mssql_python_over_tls() {
    let r = dbapi("mssql_python", "default");
    check_link_queries(&r, "mssql-python");
    check_python_types(&r, "mssql-python");
    check_driver_transactions(&r, "mssql-python");
    // ODBC decodes sql_variant to its base type.
    check_properties(&r, "mssql-python", &"SQL_Latin1_General_CP1_CI_AS".into(), &3.into(), &8.into());
}

#[test]
fn mssql_python_strict() {
    let r = dbapi("mssql_python", "strict");
    check_link_queries(&r, "mssql-python strict");
    check_driver_transactions(&r, "mssql-python strict");
}

#[test]
fn pymssql_over_tls() {
    let r = dbapi("pymssql", "default");
    check_link_queries(&r, "pymssql");
    check_python_types(&r, "pymssql");
    check_driver_transactions(&r, "pymssql");
    // FreeTDS's db-lib hands sql_variant over as the base type's bytes, against
    // SQL Server too: the int arrives as 4 little-endian bytes and the nvarchar
    // already converted to the client's charset.
    let collation =
        format!("0x{}", "SQL_Latin1_General_CP1_CI_AS".bytes().map(|b| format!("{b:02X}")).collect::<String>());
    check_properties(&r, "pymssql", &collation.into(), &"0x03000000".into(), &"0x08000000".into());
}

#[test]
fn pymssql_strict() {
    let r = dbapi("pymssql", "strict");
    check_link_queries(&r, "pymssql strict");
    check_driver_transactions(&r, "pymssql strict");
}

#[test]
fn tedious_over_tls() {
    let r = tedious("default");
    check_link_queries(&r, "tedious");
    check_properties(&r, "tedious", &"SQL_Latin1_General_CP1_CI_AS".into(), &3.into(), &8.into());
    // tedious's transactions are Transaction Manager requests: each ends one.
    for side in ["sql_server", "managed_instance"] {
        let t = &r[side]["autocommit_off"]["transactions"];
        assert_eq!(t, &serde_json::json!({"began": 1, "after_commit": 0, "after_rollback": 0}), "{side}");
    }
    // The wire types SQL Server sends: CAST(1 AS bigint) is an 8-byte integer.
    let types: Vec<(String, i64)> = r["sql_server"]["autocommit_on"]["queries"]["typed"]["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["type"].as_str().unwrap().to_string(), t["length"].as_i64().unwrap_or(0)))
        .collect();
    let names: Vec<(&str, i64)> = types.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    assert_eq!(
        names,
        [
            ("IntN", 8),
            ("NumericN", 9),
            ("IntN", 2),
            ("UniqueIdentifier", 16),
            ("DateTimeN", 8),
            ("IntN", 2),
            ("NVarChar", 256),
            ("NVarChar", 256)
        ]
    );
}

#[test]
fn tedious_strict() {
    let r = tedious("strict");
    check_link_queries(&r, "tedious strict");
}

/// FreeTDS's tsql (Debian's 1.3 has no TDS 8 strict): every query after a marker
/// row, so one session's output splits back into result sets.
#[test]
fn freetds_tsql_over_tls() {
    let lab = lab("default");
    let info: Value = serde_json::from_str(&lab.line).unwrap();
    let queries: Value =
        serde_json::from_str(&std::fs::read_to_string(clients_dir().join("link_queries.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for side in ["sql_server", "managed_instance"] {
        let s = &info[side];
        let conf = dir.path().join(format!("{side}.conf"));
        std::fs::write(
            &conf,
            format!(
                "[lab]\nhost = {}\nport = {}\ntds version = 7.4\nencryption = require\nca file = {}\ncheck certificate hostname = no\n",
                s["host"].as_str().unwrap(),
                s["port"],
                s["ca_cert"].as_str().unwrap()
            ),
        )
        .unwrap();
        let mut script = String::new();
        let mut keys = Vec::new();
        for section in [side, "both"] {
            for (key, sql) in queries[section].as_object().unwrap() {
                script += &format!("SELECT N'{key}' AS marker\ngo\n{}\ngo\n", sql.as_str().unwrap());
                keys.push(key.clone());
            }
        }
        script += "BEGIN TRAN\ngo\nSELECT N'began' AS marker\ngo\nSELECT @@TRANCOUNT AS n\ngo\nCOMMIT\ngo\n";
        script += "SELECT N'committed' AS marker\ngo\nSELECT @@TRANCOUNT AS n\ngo\n";
        script += "BEGIN TRAN\ngo\nROLLBACK\ngo\nSELECT N'rolled_back' AS marker\ngo\nSELECT @@TRANCOUNT AS n\ngo\n";
        script += "SELECT FOO(1)\ngo\nquit\n";
        let user = s["user"].as_str().unwrap();
        let password = s["password"].as_str().unwrap();
        let mut cmd = std::process::Command::new("tsql");
        cmd.args(["-S", "lab", "-U", user, "-P", password, "-D", "master", "-o", "q"]).env("FREETDSCONF", &conf);
        let out = client_cmd(cmd, &script, "freetds-bin from Debian");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Result sets by marker: the lines after "marker\n<key>".
        let mut sets: std::collections::HashMap<String, Vec<Vec<String>>> = Default::default();
        let mut current: Option<String> = None;
        let mut lines = stdout.lines().peekable();
        while let Some(line) = lines.next() {
            if line == "marker" {
                current = lines.next().map(str::to_string);
                continue;
            }
            if let Some(k) = &current {
                sets.entry(k.clone()).or_default().push(line.split('\t').map(str::to_string).collect());
            }
        }
        for key in &keys {
            assert!(sets.get(key).is_some_and(|s| !s.is_empty()), "{side} {key}: no result set in {stdout}\n{stderr}");
        }
        let value = |key: &str, col: &str| {
            let set = &sets[key];
            let i = set[0].iter().position(|c| c == col).unwrap_or_else(|| panic!("{key}.{col} in {:?}", set[0]));
            set[1][i].clone()
        };
        assert_eq!(value("typed", "big"), "1", "{side}");
        assert_eq!(value("typed", "dec"), "1.50", "{side}");
        assert_eq!(value("typed", "who"), "milink", "{side}");
        assert_eq!(value("properties", "EngineEdition"), if side == "sql_server" { "3" } else { "8" });
        assert_eq!(value("properties", "Collation"), "SQL_Latin1_General_CP1_CI_AS");
        assert_eq!(
            (value("began", "n"), value("committed", "n"), value("rolled_back", "n")),
            ("1".into(), "0".into(), "0".into())
        );
        assert!(!value("replica_states", "replica_id").is_empty(), "{side}");
        assert!(stderr.contains("'FOO' is not a recognized built-in function name."), "{side}: {stderr}");
        if side == "sql_server" {
            assert_eq!(value("server_name", "SQLServerName"), "SQLPROD01");
            assert_eq!(value("verify_link", "Connected state"), "CONNECTED");
        }
    }
    assert!(lab.stop().success());
}

/// A refused login over TLS: FreeTDS's db-lib hands the application SQL
/// Server's 18456 and its text, as against SQL Server, after TLS and after TDS 8
/// (the lab closes as SQL Server does: close_notify, FIN, the rest read). One
/// refused login per process: pymssql keeps the server's text of the first only.
#[test]
fn pymssql_sees_a_wrong_password_as_18456_with_its_text() {
    for encryption in ["default", "strict"] {
        let lab = lab(encryption);
        for side in ["sql_server", "managed_instance"] {
            let args = ["pymssql", encryption, "wrong-password", side];
            let out = python("dbapi_link_queries.py", &args, "pymssql", "pymssql from PyPI", &lab.line);
            let r = parse(out, "pymssql");
            assert_eq!(r["number"], 18456, "{encryption} {side}: {r}");
            let text = r["message"].as_str().unwrap_or_default();
            assert!(text.contains("Login failed for user 'milink'."), "{encryption} {side}: {text}");
        }
        assert!(lab.stop().success());
    }
}
