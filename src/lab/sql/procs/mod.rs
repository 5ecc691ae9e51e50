//! Procedures and DBCC commands the lab runs natively.

use rusqlite::types::Value;

use super::{Output, ResultSet, Session, SqlError, SqlType};
use crate::lab::catalog::Catalog;

mod issuers;
mod jobs;

const DBCC_DONE: &str = "DBCC execution completed. If DBCC printed error messages, contact your system administrator.";

/// System procedures that exist on a real server but that the lab's read-only
/// login may not run: they answer with a permission error, not 2812.
const KNOWN_DENIED: &[&str] = &["sp_validate_certificate_ca_chain", "sp_configure"];

const JOB_PROCS: &[&str] = &["sp_add_job", "sp_add_jobstep", "sp_add_jobserver", "sp_start_job", "sp_delete_job"];

pub(super) type Args = [(Option<String>, Value)];

pub(super) fn arg<'a>(args: &'a Args, pos: usize, name: &str) -> Option<&'a Value> {
    args.iter().find(|(n, _)| n.as_deref() == Some(name)).map(|(_, v)| v).or_else(|| args.get(pos).map(|(_, v)| v))
}

pub(super) fn as_int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Integer(i) => Some(*i),
        Value::Text(t) => t.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn as_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Text(t) => Some(t.clone()),
        Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

pub fn execute(catalog: &Catalog, session: &mut Session, proc: &str, args: &Args, out: &mut Vec<Output>) {
    let facts = &catalog.facts;
    let short = proc.rsplit('.').next().unwrap_or(proc).to_ascii_lowercase();
    match short.as_str() {
        // SQL Server 2022+ and managed instance only.
        "sp_get_endpoint_certificate" if facts.connect_pack => endpoint_certificate(catalog, args, out),
        "xp_readerrorlog" | "sp_readerrorlog" => read_error_log(catalog, &short, args, out),
        "sp_executesql" => executesql(catalog, session, args, out),
        // Turns the multi-database mode on for this replica (preview); nothing here reads it back.
        "sp_multidb_milink" if facts.multidb => {
            if !facts.sysadmin {
                out.push(Output::Error(SqlError::execute_denied(&short, "master", "sys")));
                return;
            }
            out.push(Output::ReturnStatus(0));
        }
        "sp_certificate_add_issuer" if facts.connect_pack => {
            if !facts.sysadmin {
                out.push(Output::Error(SqlError::execute_denied(&short, "master", "sys")));
                return;
            }
            match issuers::add(
                catalog,
                as_int(arg(args, 0, "@certificate_id")),
                as_text(arg(args, 1, "@issuer_domain")),
            ) {
                Ok(()) => out.push(Output::ReturnStatus(0)),
                Err(e) => out.push(Output::Error(e)),
            }
        }
        s if JOB_PROCS.contains(&s) => {
            if !facts.sysadmin {
                out.push(Output::Error(SqlError::execute_denied(s, "msdb", "dbo")));
                return;
            }
            match jobs::execute(catalog, s, args) {
                Ok(mut o) => {
                    out.append(&mut o);
                    out.push(Output::ReturnStatus(0));
                }
                Err(e) => out.push(Output::Error(e)),
            }
        }
        s if KNOWN_DENIED.contains(&s) || s.starts_with("sp_add_") => {
            out.push(Output::Error(SqlError::execute_denied(s, "msdb", "dbo")))
        }
        _ => out.push(Output::Error(SqlError::unknown_procedure(proc))),
    }
}

/// `sp_get_endpoint_certificate` (SQL Server 2022+ and the managed instance).
fn endpoint_certificate(catalog: &Catalog, args: &Args, out: &mut Vec<Output>) {
    let kind = as_int(arg(args, 0, "@endpoint_type"));
    let shown = catalog.shown();
    match (kind, &shown.endpoint_cert) {
        (Some(4), Some(der)) if shown.endpoint_cert_auth => {
            out.push(Output::Rows(ResultSet {
                columns: vec![("EndpointCertificatePublicKey".into(), SqlType::VarBinary(None))],
                rows: vec![vec![Value::Blob(der.clone())]],
            }));
            out.push(Output::ReturnStatus(0));
        }
        (Some(3 | 4), _) => {
            // The exact number SQL Server raises here is UNCONFIRMED; 15151 is its
            // "cannot find the endpoint" error.
            out.push(Output::Error(SqlError::new(
                15151,
                16,
                1,
                "Cannot find the endpoint, because it does not exist or it is not authenticated by a certificate.",
            )));
        }
        _ => out.push(Output::Rows(ResultSet {
            columns: vec![("EndpointCertificatePublicKey".into(), SqlType::VarBinary(None))],
            rows: vec![vec![Value::Null]],
        })),
    }
}

/// `xp_readerrorlog 0, 1, N'filter', N'filter'`: sysadmin only.
fn read_error_log(catalog: &Catalog, short: &str, args: &Args, out: &mut Vec<Output>) {
    if !catalog.facts.sysadmin {
        out.push(Output::Error(SqlError::execute_denied(short, "mssqlsystemresource", "sys")));
        return;
    }
    let filters: Vec<String> =
        [arg(args, 2, "@p3"), arg(args, 3, "@p4")].into_iter().filter_map(as_text).map(|s| s.to_lowercase()).collect();
    let rows = catalog
        .shown()
        .errorlog
        .iter()
        .filter(|(_, _, text)| filters.iter().all(|f| text.to_lowercase().contains(f)))
        .map(|(at, process, text)| {
            vec![Value::Text(at.clone()), Value::Text(process.clone()), Value::Text(text.clone())]
        })
        .collect();
    out.push(Output::Rows(ResultSet {
        columns: vec![
            ("LogDate".into(), SqlType::DateTime),
            ("ProcessInfo".into(), SqlType::NVarChar(Some(100))),
            ("Text".into(), SqlType::NVarChar(Some(4000))),
        ],
        rows,
    }));
    out.push(Output::ReturnStatus(0));
}

/// `sp_executesql @stmt, @params, @p = …`: the batch with its parameters as variables.
fn executesql(catalog: &Catalog, session: &mut Session, args: &Args, out: &mut Vec<Output>) {
    let Some(sql) = as_text(arg(args, 0, "@stmt")) else {
        out.push(Output::Error(SqlError::new(
            214,
            16,
            2,
            "Procedure expects parameter '@statement' of type 'ntext/nchar/nvarchar'.",
        )));
        return;
    };
    let mut inner = session.clone();
    for (name, value) in args.iter().skip(2) {
        if let Some(n) = name {
            let ty = match value {
                Value::Integer(_) => SqlType::BigInt,
                Value::Blob(_) => SqlType::VarBinary(None),
                _ => SqlType::NVarChar(Some(4000)),
            };
            inner.vars.insert(n.clone(), (ty, value.clone()));
        }
    }
    out.extend(super::execute_batch(catalog, &mut inner, &sql));
    session.database = inner.database;
    out.push(Output::ReturnStatus(0));
}

pub fn dbcc(catalog: &Catalog, text: &str) -> Vec<Output> {
    let upper = text.to_ascii_uppercase();
    let no_info = upper.contains("NO_INFOMSGS");
    let words: String = upper.split_whitespace().collect::<Vec<_>>().join("");
    let facts = &catalog.facts;
    let mut out = Vec::new();
    if words.starts_with("DBCCTRACESTATUS") {
        let rows = facts
            .trace_flags
            .iter()
            .map(|f| vec![Value::Integer(*f as i64), Value::Integer(1), Value::Integer(1), Value::Integer(0)])
            .collect();
        out.push(Output::Rows(ResultSet {
            columns: ["TraceFlag", "Status", "Global", "Session"]
                .iter()
                .map(|c| (c.to_string(), SqlType::SmallInt))
                .collect(),
            rows,
        }));
    } else if words.starts_with("DBCCSQLPERF(LOGSPACE)") {
        if !facts.view_server_state {
            return SqlError::view_server_state_denied().into_iter().map(Output::Error).collect();
        }
        let mut rows: Vec<Vec<Value>> = ["master", "tempdb", "model", "msdb"]
            .iter()
            .map(|n| vec![Value::Text(n.to_string()), Value::Real(8.0), Value::Real(20.0), Value::Integer(0)])
            .collect();
        rows.extend(catalog.shown().log_space.iter().map(|(n, size, used)| {
            vec![Value::Text(n.clone()), Value::Real(*size), Value::Real(*used), Value::Integer(0)]
        }));
        out.push(Output::Rows(ResultSet {
            columns: vec![
                ("Database Name".into(), SqlType::NVarChar(Some(128))),
                ("Log Size (MB)".into(), SqlType::Real),
                ("Log Space Used (%)".into(), SqlType::Real),
                ("Status".into(), SqlType::Int),
            ],
            rows,
        }));
    } else {
        return vec![Output::Error(SqlError::new(
            2526,
            16,
            3,
            "Incorrect DBCC statement. Check the documentation for the correct DBCC syntax and options.",
        ))];
    }
    if !no_info {
        out.push(Output::Info(SqlError::new(2528, 0, 1, DBCC_DONE)));
    }
    out
}
