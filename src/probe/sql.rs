//! A SQL session to one side (tiberius), with timeouts on the login and on every
//! query, and rows turned into plain records.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::Value;
use tiberius::{AuthMethod, Client, ColumnData, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use crate::deadline::Limit;
use crate::profile::Secret;

#[derive(Clone)]
pub enum Auth {
    Sql {
        user: String,
        password: Secret,
    },
    /// An Azure AD access token (managed instance).
    Token(Secret),
}

#[derive(Clone)]
pub struct Target {
    /// Name the TLS certificate must carry.
    pub name: String,
    pub addr: SocketAddr,
    pub auth: Auth,
    pub ca_cert: Option<PathBuf>,
    pub trust_server_certificate: bool,
    pub strict: bool,
}

/// A failed login or query, as the server or the network said it.
#[derive(Debug, Clone)]
pub struct SqlFailure {
    pub code: Option<u32>,
    pub message: String,
    pub timed_out: bool,
    /// Set when the login failed after the server routed it (Redirect policy):
    /// the node's name, port and the address tried.
    pub routed_to: Option<(String, u16, SocketAddr)>,
}

impl SqlFailure {
    pub(super) fn from(e: tiberius::error::Error) -> SqlFailure {
        match e {
            tiberius::error::Error::Server(t) => {
                SqlFailure { code: Some(t.code()), message: t.message().to_string(), timed_out: false, routed_to: None }
            }
            other => SqlFailure { code: None, message: other.to_string(), timed_out: false, routed_to: None },
        }
    }

    pub(super) fn timeout(what: &str, limit: &Limit) -> SqlFailure {
        SqlFailure { code: None, message: limit.why(what), timed_out: true, routed_to: None }
    }
}

pub type Record = BTreeMap<String, Value>;

/// Datetimes in records: `2026-11-22 05:27:03.123` (UTC as the server keeps it).
pub const DATETIME: &[time::format_description::BorrowedFormatItem<'_>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]");

/// `SERVERPROPERTY('ProductVersion')` as (major, minor, build); a part that
/// does not read is 0.
pub fn product_version(v: &str) -> (u32, u32, u32) {
    let mut parts = v.split('.').map(|p| p.trim().parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Parses a record's datetime (fractional seconds optional).
pub fn datetime(s: &str) -> Option<time::PrimitiveDateTime> {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(s.split('.').next()?, fmt).ok()
}

pub struct Session {
    pub(super) client: Client<Compat<TcpStream>>,
    pub(super) limit: Limit,
    /// Set when the server routed the login (managed instance Redirect policy).
    pub routed_to: Option<(String, u16)>,
}

fn config(t: &Target, port: u16) -> Config {
    let mut c = Config::new();
    c.host(&t.name);
    c.port(port);
    c.application_name("milink");
    match &t.auth {
        Auth::Sql { user, password } => c.authentication(AuthMethod::sql_server(user, password.expose())),
        Auth::Token(token) => c.authentication(AuthMethod::aad_token(token.expose())),
    }
    c.encryption(if t.strict { EncryptionLevel::Strict } else { EncryptionLevel::Required });
    if t.trust_server_certificate {
        c.trust_cert();
    } else if let Some(ca) = &t.ca_cert {
        // The given CA over Mozilla's public roots (compiled in) rather than the
        // OS store: tiberius reads the whole OS store at every login otherwise,
        // 70% of an audit's CPU.
        c.trust_webpki_roots();
        c.trust_cert_ca(ca.display().to_string());
    }
    c
}

async fn connect(
    t: &Target,
    addr: SocketAddr,
    limit: &Limit,
) -> Result<Client<Compat<TcpStream>>, tiberius::error::Error> {
    let tcp = tokio::time::timeout(limit.step(), TcpStream::connect(addr)).await.map_err(|_| {
        tiberius::error::Error::Io { kind: std::io::ErrorKind::TimedOut, message: "TCP connect".into() }
    })??;
    tcp.set_nodelay(true)?;
    match tokio::time::timeout(limit.step(), Client::connect(config(t, addr.port()), tcp.compat_write())).await {
        Ok(r) => r,
        Err(_) => Err(tiberius::error::Error::Io { kind: std::io::ErrorKind::TimedOut, message: "login".into() }),
    }
}

/// Logs in, following one routing redirect; the session keeps `limit` for its queries.
pub async fn login(t: &Target, limit: Limit) -> Result<Session, SqlFailure> {
    match connect(t, t.addr, &limit).await {
        Ok(client) => Ok(Session { client, limit, routed_to: None }),
        Err(tiberius::error::Error::Routing { host, port }) => {
            let addr = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, port),
                Err(_) => {
                    let found =
                        tokio::time::timeout(limit.step(), tokio::net::lookup_host((host.as_str(), port))).await;
                    found.ok().and_then(Result::ok).and_then(|mut a| a.next()).ok_or_else(|| SqlFailure {
                        code: None,
                        message: format!("redirect to {host}:{port} does not resolve"),
                        timed_out: false,
                        routed_to: None,
                    })?
                }
            };
            let failure = |message: String| SqlFailure { code: None, message, timed_out: false, routed_to: None };
            if addr == t.addr {
                return Err(failure(format!(
                    "redirect loop: the server at {} routes the login to itself ({host}:{port})",
                    t.addr
                )));
            }
            match connect(t, addr, &limit).await {
                Ok(client) => Ok(Session { client, limit, routed_to: Some((host, port)) }),
                // The redirect target redirects again: SQL Server routes once.
                Err(tiberius::error::Error::Routing { host: again, port: again_port }) => Err(failure(format!(
                    "redirect loop: {} routes to {host}:{port}, which routes again to {again}:{again_port}",
                    t.addr
                ))),
                Err(e) => {
                    Err(SqlFailure { routed_to: Some((host, port, addr)), ..timed(e, "login after redirect", &limit) })
                }
            }
        }
        Err(e) => Err(timed(e, "login", &limit)),
    }
}

fn timed(e: tiberius::error::Error, what: &str, limit: &Limit) -> SqlFailure {
    match &e {
        tiberius::error::Error::Io { kind: std::io::ErrorKind::TimedOut, .. } => SqlFailure::timeout(what, limit),
        _ => SqlFailure::from(e),
    }
}

impl Session {
    /// Runs a batch that changes something; every result is read, the first
    /// error is the failure.
    pub async fn exec(&mut self, sql: &str) -> Result<(), SqlFailure> {
        let run = async {
            let stream = self.client.simple_query(sql).await?;
            stream.into_results().await?;
            Ok::<_, tiberius::error::Error>(())
        };
        match tokio::time::timeout(self.limit.step(), run).await {
            Ok(r) => r.map_err(SqlFailure::from),
            Err(_) => Err(SqlFailure::timeout("statement", &self.limit)),
        }
    }

    /// Runs one batch and returns its first result set, at most `MAX_ROWS` rows
    /// or `MAX_BYTES` of values: a server that streams rows without end gets a
    /// failure, not all of milink's memory.
    pub async fn rows(&mut self, sql: &str) -> Result<Vec<Record>, SqlFailure> {
        self.table(sql).await.map(|t| t.rows)
    }

    /// `rows`, with the columns in the server's order and their types.
    pub async fn table(&mut self, sql: &str) -> Result<Table, SqlFailure> {
        let run = async {
            use futures_util::TryStreamExt;
            let mut stream = self.client.simple_query(sql).await.map_err(SqlFailure::from)?;
            let mut t = Table::default();
            let mut bytes = 0usize;
            while let Some(item) = stream.try_next().await.map_err(SqlFailure::from)? {
                let row = match item {
                    tiberius::QueryItem::Metadata(m) if m.result_index() == 0 && t.columns.is_empty() => {
                        t.columns = m.columns().iter().map(|c| Column::of(c, None)).collect();
                        continue;
                    }
                    tiberius::QueryItem::Row(row) if row.result_index() == 0 => row,
                    _ => continue,
                };
                if t.rows.is_empty() {
                    // The first row's values tell an `intn` from a `bigintn`.
                    t.columns =
                        row.columns().iter().zip(row.cells()).map(|(c, (_, d))| Column::of(c, Some(d))).collect();
                }
                let r = record(&row);
                bytes += r.iter().map(|(k, v)| k.len() + size(v)).sum::<usize>();
                t.rows.push(r);
                if t.rows.len() > MAX_ROWS || bytes > MAX_BYTES {
                    return Err(SqlFailure {
                        code: None,
                        message: format!(
                            "the answer goes on past {} rows ({bytes} bytes); milink stopped reading",
                            t.rows.len()
                        ),
                        timed_out: false,
                        routed_to: None,
                    });
                }
            }
            Ok(t)
        };
        match tokio::time::timeout(self.limit.step(), run).await {
            Ok(r) => r,
            Err(_) => Err(SqlFailure::timeout("query", &self.limit)),
        }
    }
}

/// A result set: its columns as the server described them, and its rows.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Record>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    pub name: String,
    /// The T-SQL type family (`int`, `nvarchar`, `datetime`, `numeric(38,2)`…).
    #[serde(rename = "type")]
    pub sql_type: String,
}

impl Column {
    pub(super) fn of(c: &tiberius::Column, data: Option<&ColumnData<'static>>) -> Column {
        Column { name: c.name().to_ascii_lowercase(), sql_type: type_name(c.column_type(), data).into() }
    }
}

/// The type family of a column; variable-width numbers by the value they hold.
fn type_name(t: tiberius::ColumnType, data: Option<&ColumnData<'static>>) -> std::borrow::Cow<'static, str> {
    use tiberius::ColumnType as T;
    let by_value = match data {
        Some(ColumnData::U8(_)) => Some("tinyint"),
        Some(ColumnData::I16(_)) => Some("smallint"),
        Some(ColumnData::I32(_)) => Some("int"),
        Some(ColumnData::I64(_)) => Some("bigint"),
        Some(ColumnData::F32(_)) => Some("real"),
        Some(ColumnData::F64(_)) => Some("float"),
        _ => None,
    };
    match t {
        T::Intn | T::Floatn if by_value.is_some() => by_value.unwrap_or_default().into(),
        T::Intn | T::Int4 => "int".into(),
        T::Int1 => "tinyint".into(),
        T::Int2 => "smallint".into(),
        T::Int8 => "bigint".into(),
        T::Bit | T::Bitn => "bit".into(),
        T::Float4 => "real".into(),
        T::Float8 | T::Floatn => "float".into(),
        T::Decimaln | T::Numericn => match data {
            Some(ColumnData::Numeric(Some(n))) => format!("numeric(38,{})", n.scale()).into(),
            _ => "numeric(38,0)".into(),
        },
        T::Money | T::Money4 => "money".into(),
        T::Datetime | T::Datetime4 | T::Datetimen => "datetime".into(),
        T::Datetime2 | T::Daten | T::Timen | T::DatetimeOffsetn => "datetime2".into(),
        T::Guid => "uniqueidentifier".into(),
        T::BigVarChar | T::BigChar | T::Text => "varchar".into(),
        T::NVarchar | T::NChar | T::NText | T::Xml => "nvarchar".into(),
        T::BigVarBin | T::BigBinary | T::Image | T::Udt => "varbinary".into(),
        T::SSVariant => "sql_variant".into(),
        T::Null => "int".into(),
    }
}

impl Session {
    /// For statements that undo what milink made (a probe job, a temporary
    /// endpoint): they run even after the deadline, each within one timeout.
    pub async fn cleanup(&mut self, sql: &str) -> Result<Vec<Record>, SqlFailure> {
        let kept = self.limit;
        self.limit = Limit::new(kept.timeout);
        let r = self.rows(sql).await;
        self.limit = kept;
        r
    }
}

/// The most milink keeps of one answer (catalog views of a big server stay far below).
pub const MAX_ROWS: usize = 100_000;
pub const MAX_BYTES: usize = 64 << 20;

pub(super) fn size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        _ => 8,
    }
}

pub(super) fn record(row: &tiberius::Row) -> Record {
    let names: Vec<String> = row.columns().iter().map(|c| c.name().to_ascii_lowercase()).collect();
    row.cells().zip(names).map(|((_, data), name)| (name, cell(data))).collect()
}

fn cell(data: &ColumnData<'static>) -> Value {
    use tiberius::FromSql;
    match data {
        ColumnData::U8(v) => v.map(Value::from).unwrap_or(Value::Null),
        ColumnData::I16(v) => v.map(Value::from).unwrap_or(Value::Null),
        ColumnData::I32(v) => v.map(Value::from).unwrap_or(Value::Null),
        ColumnData::I64(v) => v.map(Value::from).unwrap_or(Value::Null),
        ColumnData::F32(v) => v.map(|f| Value::from(f as f64)).unwrap_or(Value::Null),
        ColumnData::F64(v) => v.map(Value::from).unwrap_or(Value::Null),
        ColumnData::Bit(v) => v.map(Value::from).unwrap_or(Value::Null),
        ColumnData::String(v) => v.as_ref().map(|s| Value::from(s.to_string())).unwrap_or(Value::Null),
        ColumnData::Guid(v) => v.map(|g| Value::from(g.to_string().to_uppercase())).unwrap_or(Value::Null),
        ColumnData::Binary(v) => v.as_ref().map(|b| Value::from(crate::tsql::binary(b))).unwrap_or(Value::Null),
        // numeric(25,0) LSNs as SQL Server prints them, without a `.0`.
        ColumnData::Numeric(v) => v
            .map(|n| Value::from(if n.scale() == 0 { n.value().to_string() } else { n.to_string() }))
            .unwrap_or(Value::Null),
        ColumnData::DateTime(_) | ColumnData::SmallDateTime(_) | ColumnData::DateTime2(_) => {
            match time::PrimitiveDateTime::from_sql(data) {
                Ok(Some(t)) => Value::from(t.format(DATETIME).unwrap_or_default()),
                _ => Value::Null,
            }
        }
        other => Value::from(format!("{other:?}")),
    }
}

/// Readers for a record's fields.
pub trait Fields {
    fn str(&self, k: &str) -> Option<&str>;
    fn int(&self, k: &str) -> Option<i64>;
    fn flag(&self, k: &str) -> Option<bool>;
}

impl Fields for Record {
    fn str(&self, k: &str) -> Option<&str> {
        self.get(k)?.as_str()
    }
    fn int(&self, k: &str) -> Option<i64> {
        match self.get(k)? {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Value::Bool(b) => Some(*b as i64),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
    fn flag(&self, k: &str) -> Option<bool> {
        match self.get(k)? {
            Value::Bool(b) => Some(*b),
            _ => self.int(k).map(|i| i != 0),
        }
    }
}

/// `0x3082…` back to bytes.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().trim_start_matches("0x").trim_start_matches("0X");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}
