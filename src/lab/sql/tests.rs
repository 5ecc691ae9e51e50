//! The engine against the healthy scenario: Microsoft's queries, unchanged.

use rusqlite::types::Value;

use super::*;
use crate::lab::{build_catalogs, scenario::Scenario};

fn catalogs() -> (Catalog, Catalog) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/healthy.toml");
    let s = Scenario::load(&path).unwrap();
    build_catalogs(&s, time::OffsetDateTime::now_utc(), "192.0.2.10").unwrap()
}

fn run(c: &Catalog, sql: &str) -> Vec<Output> {
    execute_batch(c, &mut Session::new("master", "milink"), sql)
}

fn rows(c: &Catalog, sql: &str) -> ResultSet {
    match run(c, sql).into_iter().find(|o| matches!(o, Output::Rows(_) | Output::Error(_))) {
        Some(Output::Rows(rs)) => rs,
        other => panic!("{sql}: {other:?}"),
    }
}

fn error(c: &Catalog, sql: &str) -> SqlError {
    match run(c, sql).into_iter().find(|o| matches!(o, Output::Error(_))) {
        Some(Output::Error(e)) => e,
        other => panic!("{sql}: expected an error, got {other:?}"),
    }
}

#[test]
fn endpoint_query_from_the_docs() {
    let (sql, _) = catalogs();
    let rs = rows(
        &sql,
        "SELECT\n    name, type_desc, state_desc, role_desc,\n    connection_auth_desc, is_encryption_enabled, encryption_algorithm_desc\nFROM \n    sys.database_mirroring_endpoints",
    );
    assert_eq!(rs.columns[0], ("name".into(), SqlType::NVarChar(Some(128))));
    assert_eq!(rs.columns[5].1, SqlType::Bit);
    assert_eq!(rs.rows.len(), 1);
    assert_eq!(rs.rows[0][4], Value::Text("CERTIFICATE".into()));
    // _CI_ collation: lower case matches.
    let rs = rows(&sql, "SELECT * FROM sys.database_mirroring_endpoints WHERE type_desc = 'database_mirroring'");
    assert_eq!(rs.rows.len(), 1);
    assert_eq!(rs.columns.len(), 18);
}

#[test]
fn certencoded_in_a_declared_variable() {
    let (sql, _) = catalogs();
    let rs = rows(
        &sql,
        "USE MASTER\nDECLARE @sqlserver_certificate_name NVARCHAR(MAX) = N'Cert_' + @@servername  + N'_endpoint'\nDECLARE @PUBLICKEYENC VARBINARY(MAX) = CERTENCODED(CERT_ID(@sqlserver_certificate_name));\nSELECT @PUBLICKEYENC AS PublicKeyEncoded;",
    );
    assert_eq!(rs.columns[0], ("PublicKeyEncoded".into(), SqlType::VarBinary(None)));
    let Value::Blob(der) = &rs.rows[0][0] else { panic!("{:?}", rs.rows) };
    assert_eq!(der[0], 0x30, "DER starts with a SEQUENCE");
}

#[test]
fn imported_certificate_is_byte_equal_to_the_other_side() {
    let (sql, mi) = catalogs();
    let mine = rows(&sql, "SELECT CERTENCODED(CERT_ID(N'mi-contoso.a1b2c3d4e5f6.database.windows.net'))");
    let theirs = match run(&mi, "EXEC sp_get_endpoint_certificate @endpoint_type = 4").remove(0) {
        Output::Rows(rs) => rs,
        o => panic!("{o:?}"),
    };
    assert_eq!(mine.rows[0][0], theirs.rows[0][0]);
    assert_eq!(theirs.columns[0].0, "EndpointCertificatePublicKey");
}

#[test]
fn serverproperty_is_sql_variant_unless_cast() {
    let (sql, _) = catalogs();
    let rs = rows(
        &sql,
        "SELECT SERVERPROPERTY('Collation') AS c, CAST(SERVERPROPERTY('IsHadrEnabled') AS int) AS h, @@SERVERNAME",
    );
    assert_eq!(rs.columns[0].1, SqlType::Variant);
    assert_eq!(rs.columns[1].1, SqlType::Int);
    assert_eq!(rs.rows[0][1], Value::Integer(1));
    assert_eq!(rs.rows[0][2], Value::Text("SQLPROD01".into()));
    assert_eq!(rs.columns[2].0, "");
}

#[test]
fn top_join_three_part_names_and_dates() {
    let (sql, _) = catalogs();
    let rs = rows(
        &sql,
        "SELECT TOP 1 b.[database_name], b.type, DATEDIFF(hour, b.backup_finish_date, GETDATE()) AS age FROM msdb.dbo.backupset AS b JOIN sys.databases d ON d.name = b.database_name WHERE b.type = 'D' AND b.is_copy_only = 0 ORDER BY b.backup_finish_date DESC",
    );
    assert_eq!(rs.rows.len(), 1);
    assert_eq!(rs.rows[0][0], Value::Text("SalesDB".into()));
    assert_eq!(rs.columns[1].1, SqlType::Char(1));
    let Value::Integer(age) = rs.rows[0][2] else { panic!() };
    assert!((23..=25).contains(&age), "{age}");
}

#[test]
fn errors_are_sql_servers() {
    let (sql, mi) = catalogs();
    assert_eq!(error(&sql, "SELECT * FROM sys.nope").number, 208);
    assert_eq!(error(&sql, "SELECT * FROM sys.dm_hadr_fabric_config_parameters").number, 208);
    assert!(matches!(run(&mi, "SELECT * FROM sys.dm_hadr_fabric_config_parameters")[0], Output::Rows(_)));
    assert_eq!(error(&sql, "SELECT nope FROM sys.endpoints").number, 207);
    let e = error(&sql, "SELECT FROM sys.endpoints");
    assert_eq!((e.number, e.message.as_str()), (156, "Incorrect syntax near the keyword 'FROM'."));
    assert_eq!(error(&sql, "SELECT name FROM sys.endpoints WHERE").number, 156);
    assert_eq!(error(&sql, "SELECT 1 +").message, "Incorrect syntax near '+'.");
    assert_eq!(error(&sql, "EXEC sp_nothing_here").number, 2812);
    assert_eq!(error(&sql, "CREATE TABLE t (a int)").number, 262);
    assert_eq!(error(&sql, "SELECT @nope").number, 137);
}

#[test]
fn dbcc_commands() {
    let (sql, _) = catalogs();
    let rs = rows(&sql, "DBCC TRACESTATUS(-1)");
    assert_eq!(rs.rows.len(), 2);
    let rs = rows(&sql, "DBCC SQLPERF(LOGSPACE)");
    assert!(rs.rows.iter().any(|r| r[0] == Value::Text("SalesDB".into())));
    assert_eq!(error(&sql, "DBCC CHECKDB").number, 2526);
}

#[test]
fn log_space_is_for_the_current_database() {
    let (sql, _) = catalogs();
    let mut s = Session::new("SalesDB", "milink");
    let out = execute_batch(&sql, &mut s, "SELECT used_log_space_in_percent FROM sys.dm_db_log_space_usage");
    let Output::Rows(rs) = &out[0] else { panic!("{out:?}") };
    assert_eq!(rs.rows, vec![vec![Value::Real(12.5)]]);
    assert_eq!(rs.columns[0].1, SqlType::Real);
}

#[test]
fn link_ddl_changes_the_state_and_the_views_show_it() {
    let (sql, _) = catalogs();
    assert_eq!(error(&sql, "CREATE MASTER KEY ENCRYPTION BY PASSWORD = 'Str0ng!Passw0rd'").number, 15578);
    // A created certificate is a real one: CERTENCODED returns DER that parses back.
    let out = run(
        &sql,
        "USE master; CREATE CERTIFICATE [Cert_O'Brien]]x] WITH SUBJECT = N'It''s mine', EXPIRY_DATE = '20301231'\nSELECT name, subject, pvt_key_encryption_type, CERTENCODED(certificate_id) AS der, expiry_date FROM sys.certificates WHERE name = N'Cert_O''Brien]x'",
    );
    let rs = out.iter().find_map(|o| if let Output::Rows(rs) = o { Some(rs) } else { None }).expect("rows");
    assert_eq!(rs.rows[0][0], Value::Text("Cert_O'Brien]x".into()));
    assert_eq!(rs.rows[0][1], Value::Text("It's mine".into()));
    assert_eq!(rs.rows[0][2], Value::Text("MK".into()));
    let Value::Blob(der) = &rs.rows[0][3] else { panic!() };
    let (_, x) = x509_parser::parse_x509_certificate(der).unwrap();
    assert_eq!(x.validity().not_after.to_datetime().year(), 2030);
    assert_eq!(rs.rows[0][4], Value::Text("2030-12-31 00:00:00.000".into()));
    assert_eq!(error(&sql, "CREATE CERTIFICATE [Cert_O'Brien]]x] WITH SUBJECT = 'again'").number, 15232);
    // An import keeps the bytes, and its name and dates come from the DER.
    let hex = crate::tsql::binary(der);
    run(&sql, &format!("CREATE CERTIFICATE [imported] FROM BINARY = {hex}"));
    let rs = rows(&sql, "SELECT pvt_key_encryption_type, subject FROM sys.certificates WHERE name = 'imported'");
    assert_eq!(rs.rows[0][0], Value::Text("NA".into()));
    assert_eq!(error(&sql, "CREATE CERTIFICATE [bad] FROM BINARY = 0x3082").number, 15297);
    assert_eq!(error(&sql, "CREATE CERTIFICATE [f] FROM FILE = 'C:\\roots\\DigiCertGlobalRootG2.crt'").number, 15208);
    // The endpoint of healthy.toml uses its certificate: it cannot be dropped.
    assert_eq!(error(&sql, "DROP CERTIFICATE [Cert_SQLPROD01_endpoint]").number, 15187);
    assert_eq!(error(&sql, "DROP CERTIFICATE [nope]").number, 15151);
    // Only one mirroring endpoint; ALTER adds Windows authentication beside the certificate.
    let create = "CREATE ENDPOINT e2 STATE = STARTED AS TCP (LISTENER_PORT = 5023) FOR DATABASE_MIRRORING (ROLE = ALL, AUTHENTICATION = CERTIFICATE [imported])";
    assert_eq!(error(&sql, create).number, 7862);
    run(
        &sql,
        "ALTER ENDPOINT database_mirroring_endpoint FOR DATABASE_MIRRORING (AUTHENTICATION = WINDOWS NEGOTIATE CERTIFICATE [Cert_SQLPROD01_endpoint], ENCRYPTION = REQUIRED ALGORITHM AES RC4)",
    );
    let rs = rows(
        &sql,
        "SELECT connection_auth_desc, encryption_algorithm_desc, certificate_id FROM sys.database_mirroring_endpoints",
    );
    assert_eq!(rs.rows[0][0], Value::Text("NEGOTIATE, CERTIFICATE".into()));
    assert_eq!(rs.rows[0][1], Value::Text("AES, RC4".into()));
    assert_ne!(rs.rows[0][2], Value::Integer(0));
    // An AG needs the master database, FULL recovery and a full backup.
    let ag = "CREATE AVAILABILITY GROUP [AG_SalesDB] WITH (CLUSTER_TYPE = NONE) FOR DATABASE [SalesDB] REPLICA ON N'SQLPROD01' WITH (ENDPOINT_URL = 'TCP://127.0.0.2:5022', AVAILABILITY_MODE = SYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL, SEEDING_MODE = AUTOMATIC)";
    assert_eq!(
        execute_batch(&sql, &mut Session::new("SalesDB", "milink"), ag)
            .iter()
            .find_map(|o| if let Output::Error(e) = o { Some(e.number) } else { None }),
        Some(35208)
    );
    assert!(run(&sql, ag).iter().all(|o| !matches!(o, Output::Error(_))), "{:?}", run(&sql, "SELECT 1"));
    let rs = rows(
        &sql,
        "SELECT ag.name, r.replica_server_name, r.availability_mode_desc FROM sys.availability_groups ag JOIN sys.availability_replicas r ON r.group_id = ag.group_id",
    );
    assert_eq!(
        rs.rows,
        vec![vec![
            Value::Text("AG_SalesDB".into()),
            Value::Text("SQLPROD01".into()),
            Value::Text("SYNCHRONOUS_COMMIT".into())
        ]]
    );
    assert_eq!(error(&sql, &ag.replace("[AG_SalesDB]", "[AG2]")).number, 35244);
    assert_eq!(error(&sql, &ag.replace("N'SQLPROD01'", "N'ELSEWHERE'").replace("[AG_SalesDB]", "[AG3]")).number, 35237);
    run(&sql, "DROP AVAILABILITY GROUP [AG_SalesDB]");
    assert!(rows(&sql, "SELECT name FROM sys.availability_groups").rows.is_empty());
    // Every change is recorded, in order.
    let kinds: Vec<String> = sql.world().record.iter().map(|m| m.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            "CREATE CERTIFICATE",
            "CREATE CERTIFICATE",
            "ALTER ENDPOINT",
            "CREATE AVAILABILITY GROUP",
            "DROP AVAILABILITY GROUP"
        ]
    );
}

#[test]
fn casts_and_built_ins_have_sql_servers_types() {
    let (sql, _) = catalogs();
    let rs = rows(
        &sql,
        "SELECT CAST(1 AS bigint) AS b, CONVERT(smallint, 2) AS s, CAST(1.5 AS decimal(10,2)) AS d, 1.50 AS lit, \
         @@TRANCOUNT AS t, @@SPID AS spid, NEWID() AS g, SUSER_SNAME() AS who",
    );
    let types: Vec<SqlType> = rs.columns.iter().map(|c| c.1).collect();
    assert_eq!(
        types,
        [
            SqlType::BigInt,
            SqlType::SmallInt,
            SqlType::Numeric(10, 2),
            SqlType::Numeric(3, 2),
            SqlType::Int,
            SqlType::SmallInt,
            SqlType::Guid,
            SqlType::NVarChar(Some(128))
        ]
    );
    assert_eq!(rs.rows[0][2], Value::Real(1.5), "a scaled numeric keeps its fraction");
    assert_eq!(rs.rows[0][7], Value::Text("milink".into()));
}

#[test]
fn errors_never_show_the_labs_own_sql() {
    let (sql, _) = catalogs();
    let e = error(&sql, "SELECT NOSUCHFN(1) AS x");
    assert_eq!((e.number, e.message.as_str()), (195, "'NOSUCHFN' is not a recognized built-in function name."));
    let e = error(&sql, "SELECT LEFT('abc') AS x");
    assert_eq!((e.number, e.message.as_str()), (174, "The left function requires 2 argument(s)."));
    let e = error(&sql, "SELECT DATEADD(fortnight, 1, GETDATE()) AS x");
    assert_eq!((e.number, e.message.as_str()), (155, "'fortnight' is not a recognized dateadd option."));
    let e = error(&sql, "SELECT DATEDIFF(day, 'not a date', GETDATE()) AS x");
    assert_eq!(e.number, 241, "{}", e.message);
    assert!(!e.message.contains("not a date"), "{}", e.message);
    assert!(!e.message.contains("offset") && !e.message.contains("SELECT"), "{}", e.message);
}

#[test]
fn transactions_nest_and_a_reset_ends_them() {
    let (sql, _) = catalogs();
    let mut s = Session::new("master", "milink");
    let out = execute_batch(&sql, &mut s, "BEGIN TRAN; BEGIN TRANSACTION; SELECT @@TRANCOUNT AS n");
    assert!(matches!(out[0], Output::Transaction(TranChange::Began(_))), "{out:?}");
    assert_eq!(out.iter().filter(|o| matches!(o, Output::Transaction(_))).count(), 1, "only the outer one begins");
    let out = execute_batch(&sql, &mut s, "COMMIT");
    assert!(matches!(out[0], Output::Done), "an inner COMMIT only counts down");
    let out = execute_batch(&sql, &mut s, "USE msdb");
    assert!(matches!(out[0], Output::DatabaseChanged { .. }));
    s.reset(true);
    assert_eq!((s.database.as_str(), s.tran.count), ("master", 0));
    let e = error(&sql, "ROLLBACK");
    assert_eq!(e.number, 3903);
}

#[test]
fn per_database_views_show_the_database_named_or_the_sessions() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/database-in-memory-general-purpose.toml");
    let s = Scenario::load(&path).unwrap();
    let (sql, mi) = build_catalogs(&s, time::OffsetDateTime::now_utc(), "192.0.2.10").unwrap();
    // Three-part: SalesDB's own filegroups, whatever the session's database.
    let rs = rows(&sql, "SELECT name, type, type_desc FROM [SalesDB].sys.filegroups ORDER BY data_space_id");
    assert_eq!(rs.columns[1], ("type".into(), SqlType::Char(2)));
    let types: Vec<_> = rs.rows.iter().map(|r| r[1].clone()).collect();
    assert_eq!(types, [Value::Text("FG".into()), Value::Text("FX".into())]);
    // The session's database (master) has PRIMARY only.
    assert_eq!(rows(&sql, "SELECT type FROM sys.filegroups").rows.len(), 1);
    // A memory-optimized container is a FILESTREAM file in sys.master_files.
    let rs = rows(
        &sql,
        "SELECT f.type_desc FROM sys.master_files AS f JOIN sys.databases AS d ON d.database_id = f.database_id WHERE d.name = 'SalesDB' AND f.type = 2",
    );
    assert_eq!(rs.rows, [[Value::Text("FILESTREAM".into())]]);
    // Another database's server-scoped view is not the lab's to make up.
    assert_eq!(error(&sql, "SELECT name FROM SalesDB.sys.certificates").number, 208);
    assert_eq!(error(&sql, "SELECT name FROM NoSuchDb.sys.filegroups").number, 208);
    // The tier: only the managed instance has sys.server_resource_stats.
    let rs = rows(&mi, "SELECT TOP (1) sku FROM sys.server_resource_stats ORDER BY end_time DESC");
    assert_eq!(rs.rows, [[Value::Text("General Purpose".into())]]);
    assert_eq!(error(&sql, "SELECT sku FROM sys.server_resource_stats").number, 208);
}

#[test]
fn a_tde_database_shows_its_key_under_its_certificate() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/database-tde-certificate-missing.toml");
    let s = Scenario::load(&path).unwrap();
    let (sql, _) = build_catalogs(&s, time::OffsetDateTime::now_utc(), "192.0.2.10").unwrap();
    let rs = rows(
        &sql,
        "SELECT d.name, k.encryptor_type, c.name FROM sys.dm_database_encryption_keys AS k \
         JOIN sys.databases AS d ON d.database_id = k.database_id \
         LEFT JOIN sys.certificates AS c ON c.thumbprint = k.encryptor_thumbprint ORDER BY k.database_id",
    );
    // tempdb is encrypted once any database is, under an asymmetric key.
    assert_eq!(rs.rows[0][0], Value::Text("tempdb".into()));
    assert_eq!(
        rs.rows[1],
        [Value::Text("SalesDB".into()), Value::Text("CERTIFICATE".into()), Value::Text("TDE_SalesDB".into())]
    );
}

/// The link's procedures exist with its update (the Azure Connect pack on
/// 2016/2017), whatever the build: OBJECT_ID tells, and EXEC fails with 2812.
#[test]
fn object_id_tells_whether_the_link_procedures_exist() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/healthy.toml");
    let mut s = Scenario::load(&path).unwrap();
    let q = "SELECT OBJECT_ID(N'sys.sp_certificate_add_issuer') AS add_issuer, OBJECT_ID(N'master.sys.sp_get_endpoint_certificate') AS get_cert";
    let (sql, _) = build_catalogs(&s, time::OffsetDateTime::now_utc(), "192.0.2.10").unwrap();
    let rs = rows(&sql, q);
    assert_eq!(rs.columns[0].1, SqlType::Int);
    assert!(matches!(rs.rows[0][0], Value::Integer(i) if i < 0), "{:?}", rs.rows);
    s.sql_server.version = "14.0.3490.10".into();
    s.sql_server.connect_pack = Some(false);
    let (sql, _) = build_catalogs(&s, time::OffsetDateTime::now_utc(), "192.0.2.10").unwrap();
    let rs = rows(&sql, q);
    assert_eq!(rs.rows[0], vec![Value::Null, Value::Null]);
    assert_eq!(error(&sql, "EXEC sp_get_endpoint_certificate @endpoint_type = 4").number, 2812);
}
