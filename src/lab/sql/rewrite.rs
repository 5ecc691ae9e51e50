//! T-SQL → SQLite: name resolution (with SQL Server's errors), the rewrites
//! SQLite needs (TOP, N'…', `+` on strings, @@functions, variables), and the
//! T-SQL type of each result column.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, LimitClause,
    ObjectName, ObjectNamePart, Query, Select, SelectItem, SetExpr, TopQuantity, Value, VisitMut, VisitorMut,
};

use super::Session;
use super::errors::SqlError;
use crate::lab::catalog::types::SqlType;
use crate::lab::catalog::{Catalog, schema};

/// What a rewrite reads: the side's catalog and the connection's session.
pub struct Context<'a> {
    pub catalog: &'a Catalog,
    pub session: &'a Session,
}

/// Canonical table for a name as written, or SQL Server's error.
pub fn resolve_table(name: &ObjectName, ctx: &Context<'_>) -> Result<&'static schema::Table, SqlError> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.to_ascii_lowercase(),
            ObjectNamePart::Function(f) => f.name.value.to_ascii_lowercase(),
        })
        .collect();
    let written = name.to_string().replace(['[', ']'], "");
    let in_msdb = ctx.session.database.eq_ignore_ascii_case("msdb");
    let canonical = match parts.as_slice() {
        [t] if in_msdb => format!("msdb.dbo.{t}"),
        [s, t] if s == "sys" => format!("sys.{t}"),
        [s, t] if in_msdb && (s == "dbo" || s.is_empty()) => format!("msdb.dbo.{t}"),
        [db, s, t] if s == "sys" && (db == "master" || db == "msdb" || database_id(db, ctx).is_some()) => {
            let canonical = format!("sys.{t}");
            // Another user database's view is that database's, so only per-database views go there.
            let known = ctx.catalog.tables.iter().find(|x| x.name == canonical);
            if db != "master" && db != "msdb" && !known.is_some_and(|x| x.is_per_database()) {
                return Err(SqlError::invalid_object(&written));
            }
            canonical
        }
        [db, s, t] if db == "msdb" && (s == "dbo" || s.is_empty()) => format!("msdb.dbo.{t}"),
        _ => return Err(SqlError::invalid_object(&written)),
    };
    ctx.catalog.tables.iter().find(|t| t.name == canonical).copied().ok_or_else(|| SqlError::invalid_object(&written))
}

fn database_id(name: &str, ctx: &Context<'_>) -> Option<i64> {
    ctx.catalog.shown().databases.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(id, _)| *id)
}

/// The SQLite name a resolved relation reads: a per-database view written with
/// its database reads that database's rows, not the session's.
fn sqlite_name(name: &ObjectName, t: &schema::Table, ctx: &Context<'_>) -> String {
    if let [ObjectNamePart::Identifier(db), _, _] = name.0.as_slice()
        && t.is_per_database()
        && let Some(id) = database_id(&db.value, ctx)
    {
        return crate::lab::catalog::per_database_view(t, id);
    }
    t.name.to_string()
}

/// Result column: name (empty for an unnamed expression, as SQL Server sends) and,
/// where the AST tells it, the T-SQL type.
pub struct ColumnPlan {
    pub name: Option<String>,
    pub ty: Option<SqlType>,
}

pub struct Plan {
    pub sql: String,
    /// `None` when the select list has a `*` (SQLite's names and declared types are used).
    pub columns: Option<Vec<ColumnPlan>>,
    pub params: Vec<(String, rusqlite::types::Value)>,
}

pub fn plan_query(mut query: Query, ctx: &Context<'_>) -> Result<Plan, Vec<SqlError>> {
    // Name resolution first, so a bad name gets 208 before anything else.
    let mut ctes = HashSet::new();
    collect_ctes(&query, &mut ctes);
    let mut tables: Vec<(Option<String>, &'static schema::Table)> = Vec::new();
    let mut errors = Vec::new();
    let _ = sqlparser::ast::visit_relations(&query, |name| {
        if name.0.len() == 1 && ctes.contains(&name.to_string().to_ascii_lowercase()) {
            return ControlFlow::<()>::Continue(());
        }
        match resolve_table(name, ctx) {
            Ok(t) => tables.push((None, t)),
            Err(e) => errors.push(e),
        }
        ControlFlow::Continue(())
    });
    if let Some(e) = errors.into_iter().next() {
        return Err(vec![e]);
    }
    if !ctx.catalog.facts.view_server_state && tables.iter().any(|(_, t)| t.needs_view_server_state()) {
        return Err(SqlError::view_server_state_denied().to_vec());
    }
    collect_aliases(&query, ctx, &mut tables);
    let resolver = Resolver { tables: &tables, vars: &ctx.session.vars };
    let columns = match first_select(&query.body) {
        Some(select) if !has_wildcard(select) => Some(
            select
                .projection
                .iter()
                .map(|item| match item {
                    SelectItem::ExprWithAlias { expr, alias } => {
                        ColumnPlan { name: Some(alias.value.clone()), ty: resolver.infer(expr) }
                    }
                    SelectItem::UnnamedExpr(expr) => ColumnPlan {
                        name: Some(match expr {
                            Expr::Identifier(i) if !i.value.starts_with('@') => i.value.clone(),
                            Expr::CompoundIdentifier(p) => p.last().map(|i| i.value.clone()).unwrap_or_default(),
                            _ => String::new(),
                        }),
                        ty: resolver.infer(expr),
                    },
                    _ => ColumnPlan { name: None, ty: None },
                })
                .collect(),
        ),
        _ => None,
    };
    let mut rw = Rewriter { ctx, resolver, params: Vec::new(), error: None, ctes };
    let _ = query.visit(&mut rw);
    if let Some(e) = rw.error {
        return Err(vec![e]);
    }
    Ok(Plan { sql: query.to_string(), columns, params: rw.params })
}

/// Rewrites a single expression (a DECLARE or SET value) and plans `SELECT <expr>`.
pub fn plan_expr(expr: Expr, ctx: &Context<'_>) -> Result<(Plan, Option<SqlType>), Vec<SqlError>> {
    let sql = format!("SELECT {expr}");
    let query = match sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::MsSqlDialect {}, &sql) {
        Ok(mut s) if s.len() == 1 => match s.remove(0) {
            sqlparser::ast::Statement::Query(q) => *q,
            _ => return Err(vec![SqlError::syntax_near(&expr.to_string())]),
        },
        _ => return Err(vec![SqlError::syntax_near(&expr.to_string())]),
    };
    let plan = plan_query(query, ctx)?;
    let ty = plan.columns.as_ref().and_then(|c| c.first()).and_then(|c| c.ty);
    Ok((plan, ty))
}

fn collect_ctes(query: &Query, out: &mut HashSet<String>) {
    if let Some(with) = &query.with {
        for cte in &with.cte_tables {
            out.insert(cte.alias.name.value.to_ascii_lowercase());
        }
    }
}

fn first_select(body: &SetExpr) -> Option<&Select> {
    match body {
        SetExpr::Select(s) => Some(s),
        SetExpr::SetOperation { left, .. } => first_select(left),
        SetExpr::Query(q) => first_select(&q.body),
        _ => None,
    }
}

fn has_wildcard(select: &Select) -> bool {
    select.projection.iter().any(|i| matches!(i, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)))
}

/// Table aliases in FROM clauses, so `rs.role_desc` finds its column type.
fn collect_aliases(query: &Query, ctx: &Context<'_>, tables: &mut Vec<(Option<String>, &'static schema::Table)>) {
    struct V<'a, 'b> {
        ctx: &'a Context<'b>,
        out: Vec<(Option<String>, &'static schema::Table)>,
    }
    impl sqlparser::ast::Visitor for V<'_, '_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, tf: &sqlparser::ast::TableFactor) -> ControlFlow<()> {
            if let sqlparser::ast::TableFactor::Table { name, alias, .. } = tf
                && let Ok(t) = resolve_table(name, self.ctx)
            {
                self.out.push((alias.as_ref().map(|a| a.name.value.to_ascii_lowercase()), t));
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V { ctx, out: Vec::new() };
    let _ = sqlparser::ast::Visit::visit(query, &mut v);
    tables.extend(v.out);
}

struct Resolver<'a> {
    tables: &'a [(Option<String>, &'static schema::Table)],
    vars: &'a HashMap<String, (SqlType, rusqlite::types::Value)>,
}

impl Resolver<'_> {
    fn column(&self, qualifier: Option<&str>, name: &str) -> Option<SqlType> {
        self.tables
            .iter()
            .filter(|(alias, t)| match qualifier {
                None => true,
                Some(q) => {
                    let q = q.to_ascii_lowercase();
                    alias.as_deref() == Some(q.as_str()) || t.name.ends_with(&format!(".{q}"))
                }
            })
            .find_map(|(_, t)| t.columns.iter().find(|(c, _)| c.eq_ignore_ascii_case(name)))
            .and_then(|(_, ty)| SqlType::parse(ty))
    }

    /// The T-SQL type of an expression, where it can be told from the AST.
    fn infer(&self, expr: &Expr) -> Option<SqlType> {
        match expr {
            Expr::Identifier(i) if i.value.starts_with("@@") => Some(match i.value.to_ascii_lowercase().as_str() {
                "@@version" => SqlType::NVarChar(Some(300)),
                "@@spid" => SqlType::SmallInt,
                "@@trancount" => SqlType::Int,
                _ => SqlType::NVarChar(Some(128)),
            }),
            Expr::Identifier(i) if i.value.starts_with('@') => {
                self.vars.get(&i.value.to_ascii_lowercase()).map(|(t, _)| *t)
            }
            Expr::Identifier(i) => self.column(None, &i.value),
            Expr::CompoundIdentifier(p) if p.len() >= 2 => {
                self.column(Some(&p[p.len() - 2].value), &p[p.len() - 1].value)
            }
            Expr::Nested(e) => self.infer(e),
            Expr::Cast { data_type, .. } => SqlType::parse(&data_type.to_string()),
            Expr::Convert { data_type: Some(dt), .. } => SqlType::parse(&dt.to_string()),
            Expr::Value(v) => match &v.value {
                Value::NationalStringLiteral(s) => Some(SqlType::NVarChar(Some(s.chars().count().max(1) as u16))),
                Value::SingleQuotedString(s) => Some(SqlType::VarChar(Some(s.len().max(1) as u16))),
                Value::Number(n, _) if n.contains('.') => {
                    // 1.50 is numeric(3,2): every digit counts, those after the point are the scale.
                    let digits = n.chars().filter(char::is_ascii_digit).count().max(1) as u8;
                    let scale = n.split('.').nth(1).map(str::len).unwrap_or(0) as u8;
                    Some(SqlType::Numeric(digits.max(scale + 1), scale))
                }
                Value::Number(n, _) => Some(match n.parse::<i64>() {
                    Ok(i) if i32::try_from(i).is_ok() => SqlType::Int,
                    _ => SqlType::BigInt,
                }),
                _ => None,
            },
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::Plus | BinaryOperator::StringConcat => {
                    let (l, r) = (self.infer(left), self.infer(right));
                    if l.is_some_and(SqlType::is_text) || r.is_some_and(SqlType::is_text) {
                        Some(SqlType::NVarChar(Some(4000)))
                    } else {
                        l.or(r)
                    }
                }
                BinaryOperator::Minus | BinaryOperator::Multiply | BinaryOperator::Divide | BinaryOperator::Modulo => {
                    self.infer(left).or(self.infer(right))
                }
                _ => None,
            },
            Expr::Function(f) => {
                let name = f.name.to_string().to_ascii_lowercase();
                Some(match name.as_str() {
                    "serverproperty" | "certproperty" => SqlType::Variant,
                    "certencoded" => SqlType::VarBinary(None),
                    "cert_id" | "db_id" | "object_id" | "error_number" | "datediff" | "len" | "charindex" | "count"
                    | "is_srvrolemember" | "has_perms_by_name" => SqlType::Int,
                    "count_big" => SqlType::BigInt,
                    "db_name" | "suser_name" | "suser_sname" | "original_login" => SqlType::NVarChar(Some(128)),
                    "error_message" => SqlType::NVarChar(Some(4000)),
                    "newid" => SqlType::Guid,
                    "getdate" | "getutcdate" | "sysutcdatetime" | "sysdatetime" | "dateadd" => SqlType::DateTime,
                    "isnull" | "coalesce" | "max" | "min" | "upper" | "lower" | "ltrim" | "rtrim" | "trim" | "left"
                    | "right" | "substring" | "sum" => {
                        return self.first_arg_type(f);
                    }
                    _ => return None,
                })
            }
            Expr::Case { conditions, else_result, .. } => {
                conditions.iter().map(|r| &r.result).chain(else_result.as_deref()).find_map(|e| self.infer(e))
            }
            Expr::IsNull(_) | Expr::IsNotNull(_) => Some(SqlType::Bit),
            _ => None,
        }
    }

    fn first_arg_type(&self, f: &sqlparser::ast::Function) -> Option<SqlType> {
        let FunctionArguments::List(list) = &f.args else {
            return None;
        };
        list.args.iter().find_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => self.infer(e),
            _ => None,
        })
    }
}

struct Rewriter<'a, 'b> {
    ctx: &'a Context<'b>,
    resolver: Resolver<'a>,
    params: Vec<(String, rusqlite::types::Value)>,
    error: Option<SqlError>,
    ctes: HashSet<String>,
}

fn string(s: impl Into<String>) -> Expr {
    Expr::value(Value::SingleQuotedString(s.into()))
}

impl VisitorMut for Rewriter<'_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        // TOP n → LIMIT n
        if let SetExpr::Select(select) = query.body.as_mut()
            && let Some(top) = select.top.take()
        {
            let limit = match top.quantity {
                Some(TopQuantity::Constant(n)) => Expr::value(Value::Number(n.to_string(), false)),
                Some(TopQuantity::Expr(e)) => e,
                None => return ControlFlow::Continue(()),
            };
            query.limit_clause = Some(LimitClause::LimitOffset { limit: Some(limit), offset: None, limit_by: vec![] });
        }
        ControlFlow::Continue(())
    }

    fn post_visit_relation(&mut self, name: &mut ObjectName) -> ControlFlow<()> {
        if name.0.len() == 1 && self.ctes.contains(&name.to_string().to_ascii_lowercase()) {
            return ControlFlow::Continue(());
        }
        if let Ok(t) = resolve_table(name, self.ctx) {
            let to = sqlite_name(name, t, self.ctx);
            *name = ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote('[', to))]);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let facts = &self.ctx.catalog.facts;
        let replacement = match expr {
            Expr::Value(v) => match &v.value {
                Value::NationalStringLiteral(s) => Some(string(s.clone())),
                _ => None,
            },
            Expr::Identifier(i) if i.value.starts_with("@@") => {
                let name = i.value.to_ascii_lowercase();
                Some(match name.as_str() {
                    "@@servername" => string(facts.server_name.clone()),
                    "@@version" => match facts.properties.get("@@version") {
                        Some(rusqlite::types::Value::Text(t)) => string(t.clone()),
                        _ => string(""),
                    },
                    "@@spid" => Expr::value(Value::Number(self.ctx.session.spid.to_string(), false)),
                    "@@trancount" => Expr::value(Value::Number(self.ctx.session.tran.count.to_string(), false)),
                    "@@language" => string("us_english"),
                    "@@servicename" => string("MSSQLSERVER"),
                    _ => {
                        self.error = Some(SqlError::undeclared_variable(&i.value));
                        return ControlFlow::Break(());
                    }
                })
            }
            Expr::Identifier(i) if i.value.starts_with('@') => {
                let key = i.value.to_ascii_lowercase();
                let Some((_, value)) = self.ctx.session.vars.get(&key) else {
                    self.error = Some(SqlError::undeclared_variable(&i.value));
                    return ControlFlow::Break(());
                };
                let pname = format!(":v{}", self.params.len());
                self.params.push((pname.clone(), value.clone()));
                Some(Expr::value(Value::Placeholder(pname)))
            }
            Expr::Convert { expr: inner, data_type: Some(dt), .. } => {
                Some(Expr::Cast { kind: CastKind::Cast, expr: inner.clone(), data_type: sqlite_type(dt), format: None })
            }
            Expr::Cast { data_type, .. } => {
                *data_type = sqlite_type(data_type);
                None
            }
            Expr::BinaryOp { left, op, right } if *op == BinaryOperator::Plus => {
                let texty = |e: &Expr| {
                    matches!(e, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)))
                        || self.resolver.infer(e).is_some_and(SqlType::is_text)
                };
                if texty(left) || texty(right) {
                    *op = BinaryOperator::StringConcat;
                }
                None
            }
            Expr::Function(f) => {
                let name = f.name.to_string().to_ascii_lowercase();
                let no_args = match &f.args {
                    FunctionArguments::List(l) => l.args.is_empty(),
                    _ => true,
                };
                match name.as_str() {
                    "isnull" => {
                        f.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new("COALESCE"))]);
                        None
                    }
                    "db_name" if no_args => Some(string(&self.ctx.session.database)),
                    "suser_sname" | "suser_name" | "original_login" if no_args => Some(string(&self.ctx.session.login)),
                    "db_id" if no_args => {
                        let id = self
                            .ctx
                            .catalog
                            .shown()
                            .databases
                            .iter()
                            .find(|(_, n)| n.eq_ignore_ascii_case(&self.ctx.session.database))
                            .map(|(i, _)| *i)
                            .unwrap_or(1);
                        Some(Expr::value(Value::Number(id.to_string(), false)))
                    }
                    "datediff" | "dateadd" => {
                        if let FunctionArguments::List(l) = &mut f.args
                            && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) = l.args.first_mut()
                            && let Expr::Identifier(part) = e
                        {
                            *e = string(part.value.clone());
                        }
                        None
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(r) = replacement {
            *expr = r;
        }
        ControlFlow::Continue(())
    }
}

/// A CAST target SQLite understands, with the affinity of the T-SQL type.
fn sqlite_type(dt: &DataType) -> DataType {
    match SqlType::parse(&dt.to_string()).map(SqlType::sqlite_affinity) {
        Some("INTEGER") => DataType::Integer(None),
        Some("REAL") => DataType::Real,
        Some("BLOB") => DataType::Blob(None),
        Some("") => DataType::Custom(ObjectName(vec![ObjectNamePart::Identifier(Ident::new("ANY"))]), vec![]),
        _ => DataType::Text,
    }
}
