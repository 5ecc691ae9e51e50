//! `DECLARE @v type = …`, `SET @v = …` (and `SET` options), and `EXEC proc
//! @p = …`: the statements that hold values or call a procedure.

use rusqlite::types::Value;
use sqlparser::ast::{BinaryOperator, Declare, DeclareAssignment, Expr, SelectItem, SetExpr, Statement};

use super::{Output, Session, SqlError, SqlType, eval, parse, procs};
use crate::lab::catalog::Catalog;

pub(super) fn declare(catalog: &Catalog, session: &mut Session, stmts: &[Declare], out: &mut Vec<Output>) {
    for d in stmts {
        let ty =
            d.data_type.as_ref().and_then(|t| SqlType::parse(&t.to_string())).unwrap_or(SqlType::NVarChar(Some(4000)));
        let value = match d.assignment.as_ref().map(assigned) {
            Some(expr) => match eval(catalog, session, expr.clone()) {
                Ok(v) => v,
                Err(errs) => return out.extend(errs.into_iter().map(Output::Error)),
            },
            None => Value::Null,
        };
        for name in &d.names {
            session.vars.insert(name.value.to_ascii_lowercase(), (ty, value.clone()));
        }
    }
    out.push(Output::Done);
}

fn assigned(a: &DeclareAssignment) -> &Expr {
    use DeclareAssignment::*;
    match a {
        Expr(e) | Default(e) | DuckAssignment(e) | For(e) | MsSqlAssignment(e) => e,
    }
}

/// `SET @v = expr` assigns; `SET IMPLICIT_TRANSACTIONS` is kept; `SET NOCOUNT ON`
/// and the other options are accepted.
pub(super) fn set(catalog: &Catalog, session: &mut Session, text: &str, out: &mut Vec<Output>) {
    let upper = text.to_ascii_uppercase();
    if let Some(rest) = upper.strip_prefix("SET IMPLICIT_TRANSACTIONS") {
        session.tran.implicit = rest.trim().trim_end_matches(';') == "ON";
        return out.push(Output::Done);
    }
    if let Some(rest) = text.strip_prefix("SET ")
        && rest.starts_with('@')
        && let Some((name, expr)) = rest.split_once('=')
    {
        let key = name.trim().to_ascii_lowercase();
        let Some((ty, _)) = session.vars.get(&key).cloned() else {
            return out.push(Output::Error(SqlError::undeclared_variable(name.trim())));
        };
        let expr = match scalar(expr.trim()) {
            Ok(e) => e,
            Err(e) => return out.push(Output::Error(e)),
        };
        match eval(catalog, session, expr) {
            Ok(v) => {
                session.vars.insert(key, (ty, v));
            }
            Err(errs) => return out.extend(errs.into_iter().map(Output::Error)),
        }
    }
    out.push(Output::Done);
}

/// The one expression of `SELECT <text>`.
fn scalar(text: &str) -> Result<Expr, SqlError> {
    let mut statements = parse(&format!("SELECT {text}"))?;
    if let Some(Statement::Query(q)) = statements.pop()
        && let SetExpr::Select(sel) = *q.body
        && let Some(SelectItem::UnnamedExpr(e)) = sel.projection.into_iter().next()
    {
        return Ok(e);
    }
    Err(SqlError::syntax_near(text))
}

/// `EXEC proc arg, @name = arg`: each argument evaluated, then the procedure.
pub(super) fn execute(
    catalog: &Catalog,
    session: &mut Session,
    name: &str,
    parameters: Vec<Expr>,
    out: &mut Vec<Output>,
) {
    let proc = name.replace(['[', ']'], "");
    let mut args = Vec::new();
    for p in parameters {
        let (pname, expr) = match p {
            Expr::BinaryOp { left, op: BinaryOperator::Eq, right } if matches!(left.as_ref(), Expr::Identifier(i) if i.value.starts_with('@')) =>
            {
                let Expr::Identifier(i) = *left else { unreachable!() };
                (Some(i.value.to_ascii_lowercase()), *right)
            }
            other => (None, other),
        };
        match eval(catalog, session, expr) {
            Ok(v) => args.push((pname, v)),
            Err(errs) => return out.extend(errs.into_iter().map(Output::Error)),
        }
    }
    procs::execute(catalog, session, &proc, &args, out);
}
