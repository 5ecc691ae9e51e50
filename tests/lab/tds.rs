//! tiberius against both lab sides: TLS modes, logins, typed rows, errors.

use tiberius::{AuthMethod, EncryptionLevel};

use crate::support::*;

#[tokio::test]
async fn tiberius_logs_in_over_tls_and_reads_typed_rows() {
    let lab = lab("healthy.toml").await;
    for side in [&lab.info.sql_server, &lab.info.managed_instance] {
        let mut c = connect(side).await;
        let rows = query(
            &mut c,
            "SELECT name, type_desc, state_desc, role_desc, connection_auth_desc, is_encryption_enabled, encryption_algorithm_desc FROM sys.database_mirroring_endpoints",
        )
        .await
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<&str, _>("type_desc"), Some("DATABASE_MIRRORING"));
        assert_eq!(rows[0].get::<bool, _>("is_encryption_enabled"), Some(true));
        let rows = query(&mut c, "SELECT @@SERVERNAME AS SQLServerName").await.unwrap();
        assert_eq!(rows[0].get::<&str, _>(0), Some(side.name.as_str()));
    }
}

#[tokio::test]
async fn every_encryption_mode_and_strict_tds8() {
    for (mode, client) in [
        ("off", EncryptionLevel::Off),
        ("on", EncryptionLevel::On),
        ("required", EncryptionLevel::Required),
        ("not_supported", EncryptionLevel::NotSupported),
        ("strict", EncryptionLevel::Strict),
    ] {
        init();
        let s = scenario_with("healthy.toml", |t| set(t, "sql_server.tds.encryption", mode));
        let lab = milink::lab::Lab::start(&s).await.unwrap();
        let side = &lab.info.sql_server;
        let mut c = connect_with(side, config(side, client)).await.unwrap_or_else(|e| panic!("{mode}: {e}"));
        let rows = query(&mut c, "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS v").await.unwrap();
        assert_eq!(rows[0].get::<&str, _>("v"), Some("16.0.4135.4"), "{mode}");
    }
}

#[tokio::test]
async fn wrong_password_gets_18456() {
    let lab = lab("healthy.toml").await;
    let side = &lab.info.sql_server;
    let mut cfg = config(side, EncryptionLevel::Required);
    cfg.authentication(AuthMethod::sql_server(&side.user, "wrong"));
    let err = connect_with(side, cfg).await.expect_err("login fails");
    match err {
        tiberius::error::Error::Server(e) => {
            assert_eq!(e.code(), 18456);
            assert_eq!(e.class(), 14);
            assert_eq!(e.message(), format!("Login failed for user '{}'.", side.user));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn managed_instance_accepts_an_access_token() {
    let lab = lab("healthy.toml").await;
    let side = &lab.info.managed_instance;
    let mut cfg = config(side, EncryptionLevel::Required);
    cfg.authentication(AuthMethod::aad_token("eyJ0eXAiOiJKV1QiLCJhbGciOi.lab.token"));
    let mut c = connect_with(side, cfg).await.unwrap();
    let rows = query(&mut c, "SELECT CAST(SERVERPROPERTY('EngineEdition') AS int) AS e").await.unwrap();
    assert_eq!(rows[0].get::<i32, _>("e"), Some(8));
}

#[tokio::test]
async fn sql_variant_reaches_the_client_typed() {
    let lab = lab("healthy.toml").await;
    let mut c = connect(&lab.info.sql_server).await;
    let rows =
        query(&mut c, "SELECT SERVERPROPERTY('Collation') AS c, SERVERPROPERTY('IsHadrEnabled') AS h").await.unwrap();
    assert_eq!(rows[0].get::<&str, _>("c"), Some("SQL_Latin1_General_CP1_CI_AS"));
    assert_eq!(rows[0].get::<i32, _>("h"), Some(1));
}

#[tokio::test]
async fn certificates_and_the_endpoint_certificate_procedure() {
    let lab = lab("healthy.toml").await;
    let mut sql = connect(&lab.info.sql_server).await;
    let mut mi = connect(&lab.info.managed_instance).await;
    let rows = query(&mut sql, "SELECT * FROM sys.certificates").await.unwrap();
    let mk: Vec<_> = rows.iter().filter(|r| r.get::<&str, _>("pvt_key_encryption_type") == Some("MK")).collect();
    assert_eq!(mk.len(), 1);
    let expiry: time::PrimitiveDateTime = mk[0].get("expiry_date").unwrap();
    assert!(expiry > time::OffsetDateTime::now_utc().date().midnight());
    let theirs = mi
        .simple_query("EXEC sp_get_endpoint_certificate @endpoint_type = 4")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let der: &[u8] = theirs[0].get("EndpointCertificatePublicKey").unwrap();
    let imported = query(&mut sql, &format!("SELECT CERTENCODED(CERT_ID(N'{}')) AS c", lab.info.managed_instance.fqdn))
        .await
        .unwrap();
    assert_eq!(imported[0].get::<&[u8], _>("c"), Some(der));
}

#[tokio::test]
async fn rpc_sp_executesql_with_parameters() {
    let lab = lab("healthy.toml").await;
    let mut c = connect(&lab.info.sql_server).await;
    let rows = c
        .query(
            "SELECT name, recovery_model_desc FROM sys.databases WHERE name = @P1 AND database_id > @P2",
            &[&"SalesDB", &4i32],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<&str, _>("recovery_model_desc"), Some("FULL"));
}

#[tokio::test]
async fn server_errors_are_sql_servers() {
    let lab = lab("healthy.toml").await;
    let mut c = connect(&lab.info.sql_server).await;
    for (sql, code) in [
        ("SELECT * FROM sys.dm_hadr_fabric_config_parameters", 208),
        ("SELECT FROM sys.endpoints", 156),
        ("EXEC sp_nope", 2812),
    ] {
        match query(&mut c, sql).await {
            Err(tiberius::error::Error::Server(e)) => assert_eq!(e.code(), code, "{sql}"),
            other => panic!("{sql}: {other:?}"),
        }
    }
    // The connection still works after errors.
    assert_eq!(query(&mut c, "SELECT 1 AS one").await.unwrap()[0].get::<i32, _>("one"), Some(1));
}

#[tokio::test]
async fn guid_numeric_lsn_and_datetime_columns_are_typed() {
    let lab = lab("link-healthy.toml").await;
    let mut c = connect(&lab.info.sql_server).await;
    let rows = query(
        &mut c,
        "SELECT TOP 1 ag.group_id, ag.name, drs.last_hardened_lsn, drs.last_hardened_time, drs.secondary_lag_seconds \
         FROM sys.dm_hadr_database_replica_states drs JOIN sys.availability_groups ag ON drs.group_id = ag.group_id \
         WHERE ag.is_distributed = 1 AND drs.is_local = 1",
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    let id: uuid::Uuid = r.get("group_id").unwrap();
    assert_eq!(id.to_string().len(), 36);
    assert_eq!(r.get::<&str, _>("name"), Some("DAG_SalesDB"));
    let lsn: tiberius::numeric::Numeric = r.get("last_hardened_lsn").unwrap();
    assert_eq!((lsn.value(), lsn.scale()), (39_000_000_030_400_001, 0));
    let at: time::PrimitiveDateTime = r.get("last_hardened_time").unwrap();
    assert!(at.year() >= 2026);
    assert_eq!(r.get::<i64, _>("secondary_lag_seconds"), Some(2));
    // The same group_id from the catalog view and the DMV.
    let again =
        query(&mut c, &format!("SELECT name FROM sys.availability_groups WHERE group_id = '{id}'")).await.unwrap();
    assert_eq!(again[0].get::<&str, _>(0), Some("DAG_SalesDB"));
}

#[tokio::test]
async fn native_commands_through_tiberius() {
    let lab = lab("healthy.toml").await;
    let mut c = connect(&lab.info.sql_server).await;
    let flags = query(&mut c, "DBCC TRACESTATUS(-1) WITH NO_INFOMSGS").await.unwrap();
    let mut got: Vec<i16> = flags.iter().map(|r| r.get::<i16, _>("TraceFlag").unwrap()).collect();
    got.sort();
    assert_eq!(got, [1800, 9567]);
    let log = query(&mut c, "EXEC xp_readerrorlog 0, 1, N'Mirroring', N'listening'").await.unwrap();
    assert_eq!(log.len(), 1);
    assert!(log[0].get::<&str, _>("Text").unwrap().contains("Database Mirroring endpoint"));
    let space = query(&mut c, "DBCC SQLPERF(LOGSPACE)").await.unwrap();
    let sales = space.iter().find(|r| r.get::<&str, _>("Database Name") == Some("SalesDB")).unwrap();
    assert_eq!(sales.get::<f32, _>("Log Space Used (%)"), Some(12.5));
}

#[tokio::test]
async fn raw_rows_and_aaaa_records_from_the_scenario() {
    init();
    let s = scenario_with("healthy.toml", |t| {
        let row: toml::Table =
            toml::from_str("name = \"NetHelper\"\njob_id = \"0E7D4C1A-0000-4000-8000-000000000001\"\nenabled = 1")
                .unwrap();
        let mut rows = toml::Table::new();
        rows.insert("msdb.dbo.sysjobs".into(), toml::Value::Array(vec![toml::Value::Table(row)]));
        set(t, "managed_instance.rows", rows);
        let rec: toml::Table = toml::from_str("name = \"v6.contoso.lab\"\ntype = \"AAAA\"\nvalue = \"::1\"").unwrap();
        set(t, "dns.records", toml::Value::Array(vec![toml::Value::Table(rec)]));
    });
    let lab = milink::lab::Lab::start(&s).await.unwrap();
    let mut mi = connect(&lab.info.managed_instance).await;
    let jobs = query(&mut mi, "SELECT name, enabled FROM msdb.dbo.sysjobs").await.unwrap();
    assert_eq!(jobs[0].get::<&str, _>("name"), Some("NetHelper"));
    assert_eq!(jobs[0].get::<u8, _>("enabled"), Some(1));
    let ips = resolver(&lab, &lab.info.sql_server.host).ipv6_lookup("v6.contoso.lab.").await.unwrap();
    assert_eq!(ips.answers().len(), 1);
}
