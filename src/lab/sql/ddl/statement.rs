//! What a link DDL statement says, once parsed.

/// A value of an option: one word, a string, a number, or a list in parentheses.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Words(Vec<String>),
    Str(String),
    Num(String),
    List(Vec<Opt>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Opt {
    pub name: String,
    pub value: Option<Value>,
}

impl Value {
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Words(w) => Some(w.join(" ")),
            Value::Str(s) | Value::Num(s) => Some(s.clone()),
            Value::List(_) => None,
        }
    }
}

pub fn opt<'a>(opts: &'a [Opt], name: &str) -> Option<&'a Value> {
    opts.iter().find(|o| o.name.eq_ignore_ascii_case(name)).and_then(|o| o.value.as_ref())
}

#[derive(Debug, Clone, PartialEq)]
pub enum CertSource {
    Subject { subject: String, start: Option<String>, expiry: Option<String> },
    Binary(Vec<u8>),
    File(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mirroring {
    /// The words after `AUTHENTICATION =`, names unquoted.
    pub auth: Option<Vec<String>>,
    /// `DISABLED`, `SUPPORTED` or `REQUIRED`, and the algorithms in order.
    pub encryption: Option<(String, Vec<String>)>,
    pub role: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    pub name: String,
    pub opts: Vec<Opt>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Ddl {
    CreateMasterKey {
        password: String,
    },
    CreateCertificate {
        name: String,
        source: CertSource,
        password: Option<String>,
    },
    DropCertificate {
        name: String,
    },
    CreateEndpoint {
        name: String,
        state: Option<String>,
        port: Option<u16>,
        mirroring: Option<Mirroring>,
    },
    AlterEndpoint {
        name: String,
        state: Option<String>,
        port: Option<u16>,
        mirroring: Option<Mirroring>,
    },
    DropEndpoint {
        name: String,
    },
    CreateAvailabilityGroup {
        name: String,
        with: Vec<Opt>,
        databases: Vec<String>,
        replicas: Vec<Replica>,
        distributed: bool,
    },
    DropAvailabilityGroup {
        name: String,
    },
    AlterAvailabilityGroup {
        name: String,
        action: AgAction,
    },
    Backup(Backup),
}

/// What `ALTER AVAILABILITY GROUP` does.
#[derive(Debug, Clone, PartialEq)]
pub enum AgAction {
    /// `MODIFY AVAILABILITY GROUP ON 'ag' WITH (…), …` (a distributed AG's members)
    /// or `MODIFY REPLICA ON 'server' WITH (…)`.
    Modify(Vec<Replica>),
    Failover,
    ForceFailoverAllowDataLoss,
    /// `SET (ROLE = SECONDARY)`
    SetRole(String),
    /// `ADD DATABASE [db]` / `REMOVE DATABASE [db]`
    AddDatabase(String),
    RemoveDatabase(String),
}

/// `BACKUP DATABASE|LOG name TO DISK|URL = '…' [, …] [WITH …]`
#[derive(Debug, Clone, PartialEq)]
pub struct Backup {
    pub log: bool,
    pub database: String,
    /// (DISK or URL, where)
    pub to: Vec<(String, String)>,
    pub with: Vec<Opt>,
}
