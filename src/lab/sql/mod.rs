//! T-SQL executed for real against a side's catalog: parsed with sqlparser's
//! MsSqlDialect, rewritten for SQLite, run there, and typed for TDS.

pub mod blocks;
mod ddl;
pub mod errors;
pub mod functions;
mod procs;
pub mod replay;
pub mod rewrite;
mod variables;

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use rusqlite::types::Value;
use sqlparser::ast::{Expr, Statement};
use sqlparser::dialect::MsSqlDialect;
use sqlparser::parser::{Parser, ParserError, ParserOptions};

use crate::lab::catalog::Catalog;
pub use crate::lab::catalog::types::SqlType;
pub use errors::SqlError;
use rewrite::Context;

/// One result set, typed.
#[derive(Debug, Clone)]
pub struct ResultSet {
    pub columns: Vec<(String, SqlType)>,
    pub rows: Vec<Vec<Value>>,
}

/// What one statement produced, in the order a client sees it.
#[derive(Debug, Clone)]
pub enum Output {
    Rows(ResultSet),
    /// A statement that returned no rows (`USE`, `SET`, `DECLARE`…).
    Done,
    Error(SqlError),
    Info(SqlError),
    DatabaseChanged {
        old: String,
        new: String,
    },
    /// Return value of a procedure called by EXEC.
    ReturnStatus(i32),
    /// A transaction began, committed or rolled back (ENVCHANGE 8, 9, 10).
    Transaction(TranChange),
    /// The session was reset for a pooled connection's next user (ENVCHANGE 18).
    ResetAck,
    /// A replayed statement that broke the connection as recorded: what came
    /// before is sent, then the transport does what the fault says.
    Fault(crate::lab::sql::replay::AnswerFault),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranChange {
    Began(u64),
    Committed(u64),
    RolledBack(u64),
}

/// A session's transaction: the lab runs no DML, so a transaction only has to
/// be begun, counted and ended the way SQL Server reports it.
#[derive(Debug, Clone, Default)]
pub struct Tran {
    /// The 8-byte descriptor clients send back in ALL_HEADERS.
    pub descriptor: Option<u64>,
    pub count: u32,
    /// SET IMPLICIT_TRANSACTIONS ON: the next statement begins one.
    pub implicit: bool,
    issued: u64,
}

/// Per-connection state.
#[derive(Debug, Clone)]
pub struct Session {
    pub database: String,
    /// The database the login started in, where a reset returns.
    home: String,
    /// SUSER_SNAME()
    pub login: String,
    /// @@SPID: user sessions start at 51, as on SQL Server.
    pub spid: u16,
    pub vars: HashMap<String, (SqlType, Value)>,
    pub tran: Tran,
    /// A replayed bundle's recorded answers, for dynamic batches.
    pub replay: Option<std::sync::Arc<crate::lab::sql::replay::Answers>>,
}

static NEXT_SPID: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(51);

impl Session {
    pub fn new(database: &str, login: &str) -> Session {
        let spid = NEXT_SPID.fetch_add(1, Ordering::Relaxed).max(51);
        Session {
            database: database.to_string(),
            home: database.to_string(),
            login: login.to_string(),
            spid,
            vars: HashMap::new(),
            tran: Tran::default(),
            replay: None,
        }
    }

    /// What sp_reset_connection does: the login's database again, no variables,
    /// and (unless the client keeps it) no transaction.
    pub fn reset(&mut self, end_transaction: bool) {
        self.database = self.home.clone();
        self.vars.clear();
        self.tran.implicit = false;
        if end_transaction {
            self.tran.count = 0;
            self.tran.descriptor = None;
        }
    }

    /// BEGIN TRAN (or TM_BEGIN_XACT): a new descriptor for the outermost one.
    pub fn begin(&mut self) -> Option<Output> {
        self.tran.count += 1;
        if self.tran.count > 1 {
            return None;
        }
        self.tran.issued += 1;
        // Unique per connection, as SQL Server's are per instance.
        let d = 0x0000_0001_0000_0000u64 | (std::process::id() as u64) << 16 | self.tran.issued;
        self.tran.descriptor = Some(d);
        Some(Output::Transaction(TranChange::Began(d)))
    }

    /// COMMIT: the outermost one ends the transaction (3902 without one).
    pub fn commit(&mut self) -> Output {
        match self.tran.count {
            0 => Output::Error(SqlError::new(
                3902,
                16,
                1,
                "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.",
            )),
            1 => {
                self.tran.count = 0;
                Output::Transaction(TranChange::Committed(self.tran.descriptor.take().unwrap_or(0)))
            }
            _ => {
                self.tran.count -= 1;
                Output::Done
            }
        }
    }

    /// ROLLBACK: ends the transaction at any depth (3903 without one).
    pub fn rollback(&mut self) -> Output {
        if self.tran.count == 0 {
            return Output::Error(SqlError::new(
                3903,
                16,
                1,
                "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.",
            ));
        }
        self.tran.count = 0;
        Output::Transaction(TranChange::RolledBack(self.tran.descriptor.take().unwrap_or(0)))
    }
}

pub fn parse(sql: &str) -> Result<Vec<Statement>, SqlError> {
    let mut opts = ParserOptions::new();
    opts.require_semicolon_stmt_delimiter = false;
    Parser::new(&MsSqlDialect {})
        .with_options(opts)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| syntax_error(&e, sql))
}

/// SQL Server names the token it stopped at; keywords get Msg 156.
fn syntax_error(e: &ParserError, sql: &str) -> SqlError {
    let text = e.to_string();
    let found =
        text.split("found: ").nth(1).map(|rest| rest.split(" at Line").next().unwrap_or(rest).trim().to_string());
    let tok = match found {
        Some(tok) if tok != "EOF" => tok,
        _ => sql.split_whitespace().last().unwrap_or("").to_string(),
    };
    let upper = tok.to_ascii_uppercase();
    // Only reserved words count as keywords in SQL Server's message.
    let reserved = [
        "SELECT", "FROM", "WHERE", "ORDER", "GROUP", "BY", "JOIN", "ON", "AS", "AND", "OR", "EXEC", "EXECUTE",
        "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "SET", "DECLARE", "USE", "TOP", "UNION", "HAVING",
        "INTO", "VALUES", "IS", "NOT", "NULL", "IN", "LIKE", "BETWEEN", "CASE", "WHEN", "THEN", "ELSE", "END", "BEGIN",
        "IF", "WITH", "INNER", "LEFT", "RIGHT", "OUTER", "CROSS", "DISTINCT",
    ];
    if reserved.contains(&upper.as_str()) {
        SqlError::syntax_near_keyword(&upper)
    } else {
        SqlError::syntax_near(tok.trim_matches('\''))
    }
}

/// Runs one batch. An error ends the batch, as a compile error does in SQL Server.
pub fn execute_batch(catalog: &Catalog, session: &mut Session, sql: &str) -> Vec<Output> {
    let trimmed = sql.trim().trim_end_matches(';');
    if trimmed.len() >= 4 && trimmed[..4].eq_ignore_ascii_case("dbcc") {
        return procs::dbcc(catalog, trimmed);
    }
    // TRY/CATCH and dynamic SQL, around the statements (see `blocks`).
    if let Ok(tokens) = ddl::tokens(sql)
        && blocks::has_blocks(&tokens)
    {
        return blocks::run(catalog, session, sql, &tokens);
    }
    // The link's DDL (CREATE CERTIFICATE, ENDPOINT, AVAILABILITY GROUP…) is not
    // sqlparser's: such runs go to `ddl`, the rest of the batch as before.
    if let Ok(tokens) = ddl::tokens(sql)
        && (0..tokens.len()).any(|i| ddl::is_head(&tokens, i))
    {
        let mut out = Vec::new();
        for (is_ddl, range) in ddl::segments(&tokens) {
            let run = &tokens[range];
            let part = if is_ddl {
                ddl::execute(catalog, session, run)
            } else {
                let (from, to) = (run[0].start, run[run.len() - 1].end);
                execute_plain(catalog, session, &sql[from..to])
            };
            let failed = part.iter().any(|o| matches!(o, Output::Error(e) if e.class > 10 && !is_warning(e)));
            out.extend(part);
            if failed {
                break;
            }
        }
        return out;
    }
    execute_plain(catalog, session, sql)
}

/// CREATE CERTIFICATE's validity warnings are severity 16 but do not end the batch.
fn is_warning(e: &SqlError) -> bool {
    matches!(e.number, 15213..=15215)
}

fn execute_plain(catalog: &Catalog, session: &mut Session, sql: &str) -> Vec<Output> {
    let trimmed = sql.trim().trim_end_matches(';');
    let statements = match parse(sql) {
        Ok(s) => s,
        Err(e) => {
            // DDL the parser does not know (CREATE CERTIFICATE, BACKUP…) is still valid
            // T-SQL: the lab's login may not run it.
            let words: Vec<String> = trimmed.split_whitespace().take(2).map(|w| w.to_ascii_uppercase()).collect();
            let ddl = ["CREATE", "ALTER", "DROP", "BACKUP", "RESTORE", "GRANT", "REVOKE", "DENY"];
            if words.len() == 2 && ddl.contains(&words[0].as_str()) {
                return vec![Output::Error(SqlError::permission_denied(&words.join(" "), &session.database))];
            }
            return vec![Output::Error(e)];
        }
    };
    let mut out = Vec::new();
    for stmt in statements {
        let before = out.len();
        execute_statement(catalog, session, stmt, &mut out);
        if out[before..].iter().any(|o| matches!(o, Output::Error(_))) {
            break;
        }
    }
    out
}

fn execute_statement(catalog: &Catalog, session: &mut Session, stmt: Statement, out: &mut Vec<Output>) {
    match stmt {
        Statement::StartTransaction { .. } => {
            out.extend(session.begin());
            out.push(Output::Done);
        }
        Statement::Commit { .. } => out.push(session.commit()),
        Statement::Rollback { .. } => out.push(session.rollback()),
        Statement::Query(q) => match run_query(catalog, session, *q) {
            // Under IMPLICIT_TRANSACTIONS a SELECT that reads a table begins one.
            Ok(rs) if session.tran.implicit && session.tran.count == 0 && !rs.columns.is_empty() => {
                out.extend(session.begin());
                out.push(Output::Rows(rs));
            }
            Ok(rs) => out.push(Output::Rows(rs)),
            Err(errs) => out.extend(errs.into_iter().map(Output::Error)),
        },
        Statement::Use(u) => {
            let name = u.to_string();
            let name = name.rsplit(' ').next().unwrap_or("").replace(['[', ']'], "");
            match catalog.shown().databases.iter().find(|(_, n)| n.eq_ignore_ascii_case(&name)) {
                Some((_, n)) => {
                    let old = std::mem::replace(&mut session.database, n.clone());
                    out.push(Output::DatabaseChanged { old, new: n.clone() });
                }
                None => out.push(Output::Error(SqlError::unknown_database(&name))),
            }
        }
        Statement::Declare { stmts } => variables::declare(catalog, session, &stmts, out),
        Statement::Set(set) => variables::set(catalog, session, &set.to_string(), out),
        Statement::Execute { name: Some(name), parameters, .. } => {
            variables::execute(catalog, session, &name.to_string(), parameters, out)
        }
        other => {
            let text = other.to_string();
            let verb = text.split_whitespace().take(2).collect::<Vec<_>>().join(" ").to_ascii_uppercase();
            out.push(Output::Error(SqlError::permission_denied(&verb, &session.database)));
        }
    }
}

/// An RPC call: a procedure by name with its parameters.
pub fn execute_rpc(
    catalog: &Catalog,
    session: &mut Session,
    proc: &str,
    args: &[(Option<String>, Value)],
) -> Vec<Output> {
    let mut out = Vec::new();
    procs::execute(catalog, session, proc, args, &mut out);
    out
}

fn ctx<'a>(catalog: &'a Catalog, session: &'a Session) -> Context<'a> {
    Context { catalog, session }
}

/// Evaluates a scalar expression (a DECLARE or EXEC argument).
pub(super) fn eval(catalog: &Catalog, session: &Session, expr: Expr) -> Result<Value, Vec<SqlError>> {
    let (plan, _) = rewrite::plan_expr(expr, &ctx(catalog, session))?;
    let rs = run_plan(catalog, session, plan)?;
    Ok(rs.rows.into_iter().next().and_then(|r| r.into_iter().next()).unwrap_or(Value::Null))
}

pub fn run_query(
    catalog: &Catalog,
    session: &Session,
    query: sqlparser::ast::Query,
) -> Result<ResultSet, Vec<SqlError>> {
    let plan = rewrite::plan_query(query, &ctx(catalog, session))?;
    run_plan(catalog, session, plan)
}

fn run_plan(catalog: &Catalog, session: &Session, plan: rewrite::Plan) -> Result<ResultSet, Vec<SqlError>> {
    let db_id = catalog
        .shown()
        .databases
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(&session.database))
        .map(|(i, _)| *i)
        .unwrap_or(1);
    catalog.current_db.store(db_id, Ordering::Relaxed);
    let mut stmt = catalog.db.prepare(&plan.sql).map_err(|e| vec![sqlite_error(&e)])?;
    for (name, value) in &plan.params {
        let idx = stmt
            .parameter_index(name)
            .map_err(|e| vec![sqlite_error(&e)])?
            .ok_or_else(|| vec![SqlError::undeclared_variable(name)])?;
        stmt.raw_bind_parameter(idx, value).map_err(|e| vec![sqlite_error(&e)])?;
    }
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let decl: Vec<Option<SqlType>> = stmt.columns().map(|c| c.decl_type().and_then(SqlType::parse)).collect();
    let n = names.len();
    let mut rows = Vec::new();
    let mut raw = stmt.raw_query();
    loop {
        match raw.next() {
            Ok(Some(row)) => {
                let mut values = Vec::with_capacity(n);
                for i in 0..n {
                    values.push(row.get::<_, Value>(i).map_err(|e| vec![sqlite_error(&e)])?);
                }
                rows.push(values);
            }
            Ok(None) => break,
            Err(e) => return Err(vec![sqlite_error(&e)]),
        }
    }
    let columns = (0..n)
        .map(|i| {
            let planned = plan.columns.as_ref().and_then(|c| c.get(i));
            let name = planned.and_then(|p| p.name.clone()).unwrap_or_else(|| names[i].clone());
            let ty =
                planned.and_then(|p| p.ty).or(decl[i]).unwrap_or_else(|| type_from_values(rows.iter().map(|r| &r[i])));
            (name, ty)
        })
        .collect();
    Ok(ResultSet { columns, rows })
}

fn type_from_values<'a>(mut values: impl Iterator<Item = &'a Value>) -> SqlType {
    match values.find(|v| !matches!(v, Value::Null)) {
        Some(Value::Integer(i)) if i32::try_from(*i).is_ok() => SqlType::Int,
        Some(Value::Integer(_)) => SqlType::BigInt,
        Some(Value::Real(_)) => SqlType::Float,
        Some(Value::Blob(_)) => SqlType::VarBinary(None),
        _ => SqlType::NVarChar(Some(4000)),
    }
}

/// SQLite's complaint as the SQL Server error a client would get; never SQLite's
/// own text or the rewritten statement.
fn sqlite_error(e: &rusqlite::Error) -> SqlError {
    let msg = match e {
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    };
    let after = |p: &str| msg.split(p).nth(1).map(|s| s.trim().to_string());
    if let Some(col) = after("no such column:") {
        return SqlError::invalid_column(col.rsplit('.').next().unwrap_or(&col));
    }
    if let Some(col) = after("ambiguous column name:") {
        return SqlError::ambiguous_column(col.rsplit('.').next().unwrap_or(&col));
    }
    if let Some(f) = after("no such function:") {
        return SqlError::unknown_function(&f.to_ascii_uppercase());
    }
    if let Some(f) = after("wrong number of arguments to function") {
        let name = f.trim_end_matches("()").to_ascii_lowercase();
        let n = functions::arity(&name).unwrap_or("a different number of");
        return SqlError::new(174, 15, 1, format!("The {name} function requires {n} argument(s)."));
    }
    if let Some(t) = after("no such table:") {
        return SqlError::invalid_object(&t);
    }
    if after("conversion of").is_some() {
        return SqlError::new(241, 16, 1, "Conversion failed when converting date and/or time from character string.");
    }
    if let Some((func, part)) = msg.strip_prefix("datepart ").and_then(|r| r.split_once(' ')) {
        return SqlError::new(155, 15, 1, format!("'{part}' is not a recognized {func} option."));
    }
    let near = msg.split("near \"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("");
    SqlError::syntax_near(near)
}

#[cfg(test)]
mod tests;
