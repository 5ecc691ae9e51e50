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
    execute_batch(c, &mut Session::new("master"), sql)
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
    let mut s = Session::new("SalesDB");
    let out = execute_batch(&sql, &mut s, "SELECT used_log_space_in_percent FROM sys.dm_db_log_space_usage");
    let Output::Rows(rs) = &out[0] else { panic!("{out:?}") };
    assert_eq!(rs.rows, vec![vec![Value::Real(12.5)]]);
    assert_eq!(rs.columns[0].1, SqlType::Real);
}
