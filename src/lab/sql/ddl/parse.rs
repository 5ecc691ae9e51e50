//! The link DDL as statements: where each one starts and ends in a batch, and
//! what it says. Syntax errors are SQL Server's (102 near the token).

use super::cursor::P;
use super::lex::{Tok, Token};
pub use super::statement::*;
use crate::lab::sql::SqlError;

/// Statements that may start a statement in T-SQL: a link DDL statement ends
/// before one of these (or at `;`), unless it is a word the DDL itself uses.
const STARTERS: &[&str] = &[
    "SELECT",
    "USE",
    "CREATE",
    "ALTER",
    "DROP",
    "DECLARE",
    "SET",
    "EXEC",
    "EXECUTE",
    "INSERT",
    "UPDATE",
    "DELETE",
    "PRINT",
    "IF",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "BACKUP",
    "RESTORE",
    "GRANT",
    "REVOKE",
    "DENY",
    "WAITFOR",
    "RAISERROR",
    "THROW",
    "TRUNCATE",
    "MERGE",
    "DBCC",
    "WHILE",
    "RETURN",
    "SAVE",
];

/// Whether tokens `at..` begin a statement the lab runs as link DDL.
pub fn is_head(t: &[Token], at: usize) -> bool {
    let w = |i: usize| t.get(at + i).and_then(Token::word).unwrap_or_default();
    matches!(
        (w(0).as_str(), w(1).as_str(), w(2).as_str()),
        ("CREATE", "MASTER", "KEY")
            | ("CREATE" | "DROP", "CERTIFICATE" | "ENDPOINT", _)
            | ("ALTER", "ENDPOINT", _)
            | ("CREATE" | "DROP" | "ALTER", "AVAILABILITY", "GROUP")
            | ("BACKUP", "DATABASE" | "LOG", _)
    )
}

/// Splits a batch into runs: `(true, range)` for link DDL, `(false, range)` for
/// everything else, in order. Parentheses nest; strings are tokens already.
pub fn segments(t: &[Token]) -> Vec<(bool, std::ops::Range<usize>)> {
    let mut out: Vec<(bool, std::ops::Range<usize>)> = Vec::new();
    let mut i = 0;
    let mut other_from = 0;
    while i < t.len() {
        if !is_head(t, i) {
            i += 1;
            continue;
        }
        if other_from < i {
            out.push((false, other_from..i));
        }
        let start = i;
        // `ALTER AVAILABILITY GROUP name SET (ROLE = …)`: that SET is the statement's own.
        let own_set = |i: usize| {
            let w = |k: usize| t.get(k).and_then(Token::word).unwrap_or_default();
            w(start) == "ALTER" && w(start + 1) == "AVAILABILITY" && i == start + 4
        };
        i += 1;
        let mut depth = 0i32;
        while i < t.len() {
            match &t[i].tok {
                Tok::Sym('(') => depth += 1,
                Tok::Sym(')') => depth -= 1,
                Tok::Sym(';') if depth <= 0 => break,
                Tok::Word(w) if depth <= 0 && STARTERS.iter().any(|s| s.eq_ignore_ascii_case(w)) && !own_set(i) => {
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        out.push((true, start..i));
        if i < t.len() && t[i].is_sym(';') {
            i += 1;
        }
        other_from = i;
    }
    if other_from < t.len() {
        out.push((false, other_from..t.len()));
    }
    out
}

/// Parses one run that `segments` marked as link DDL.
pub fn parse(t: &[Token]) -> Result<Ddl, SqlError> {
    let mut p = P { t, i: 0 };
    let verb = p.peek().and_then(Token::word).unwrap_or_default();
    p.i += 1;
    let what = p.peek().and_then(Token::word).unwrap_or_default();
    p.i += 1;
    let ddl = match (verb.as_str(), what.as_str()) {
        ("CREATE", "MASTER") => {
            p.expect("KEY")?;
            p.expect("ENCRYPTION")?;
            p.expect("BY")?;
            p.expect("PASSWORD")?;
            p.expect_sym('=')?;
            Ddl::CreateMasterKey { password: p.string()? }
        }
        ("CREATE", "CERTIFICATE") => create_certificate(&mut p)?,
        ("DROP", "CERTIFICATE") => Ddl::DropCertificate { name: p.name()? },
        ("CREATE" | "ALTER", "ENDPOINT") => {
            let name = p.name()?;
            if p.eat("AUTHORIZATION") {
                p.name()?;
            }
            let mut state = None;
            let mut port = None;
            let mut mirroring = None;
            while p.peek().is_some() {
                if p.eat("STATE") {
                    p.expect_sym('=')?;
                    state = Some(p.name()?.to_ascii_uppercase());
                } else if p.eat("AS") {
                    p.expect("TCP")?;
                    let tcp = p.options()?;
                    port = match opt(&tcp, "LISTENER_PORT").and_then(Value::text) {
                        Some(n) => Some(n.parse().map_err(|_| SqlError::syntax_near(&n))?),
                        None => None,
                    };
                } else if p.eat("FOR") {
                    p.expect("DATABASE_MIRRORING")?;
                    mirroring = Some(mirroring_options(&mut p)?);
                } else {
                    return Err(p.near());
                }
            }
            if verb == "CREATE" {
                if port.is_none() {
                    return Err(SqlError::syntax_near(&name));
                }
                Ddl::CreateEndpoint { name, state, port, mirroring }
            } else {
                Ddl::AlterEndpoint { name, state, port, mirroring }
            }
        }
        ("DROP", "ENDPOINT") => Ddl::DropEndpoint { name: p.name()? },
        ("CREATE", "AVAILABILITY") => {
            p.expect("GROUP")?;
            super::parse_ag::create_ag(&mut p)?
        }
        ("DROP", "AVAILABILITY") => {
            p.expect("GROUP")?;
            Ddl::DropAvailabilityGroup { name: p.name()? }
        }
        ("ALTER", "AVAILABILITY") => {
            p.expect("GROUP")?;
            super::parse_ag::alter_ag(&mut p)?
        }
        ("BACKUP", "DATABASE" | "LOG") => super::parse_ag::backup(&mut p, what == "LOG")?,
        _ => return Err(p.near()),
    };
    p.done()?;
    Ok(ddl)
}

fn create_certificate(p: &mut P<'_>) -> Result<Ddl, SqlError> {
    let name = p.name()?;
    if p.eat("AUTHORIZATION") {
        p.name()?;
    }
    let mut password = None;
    let mut source = None;
    while p.peek().is_some() {
        if p.eat("FROM") {
            if p.eat("BINARY") {
                p.expect_sym('=')?;
                match p.peek().map(|t| &t.tok) {
                    Some(Tok::Binary(b)) => {
                        source = Some(CertSource::Binary(b.clone()));
                        p.i += 1;
                    }
                    _ => return Err(p.near()),
                }
            } else if p.eat("FILE") {
                p.expect_sym('=')?;
                source = Some(CertSource::File(p.string()?));
            } else {
                return Err(p.near());
            }
        } else if p.eat("ENCRYPTION") {
            p.expect("BY")?;
            p.expect("PASSWORD")?;
            p.expect_sym('=')?;
            password = Some(p.string()?);
        } else if p.eat("WITH") {
            if p.eat("PRIVATE") {
                // FROM BINARY … WITH PRIVATE KEY (…): accepted, the lab keeps no keys.
                p.expect("KEY")?;
                p.options()?;
                continue;
            }
            let (mut subject, mut start, mut expiry) = (None, None, None);
            loop {
                let key = p.name()?.to_ascii_uppercase();
                p.expect_sym('=')?;
                let v = p.string()?;
                match key.as_str() {
                    "SUBJECT" => subject = Some(v),
                    "START_DATE" => start = Some(v),
                    "EXPIRY_DATE" => expiry = Some(v),
                    _ => return Err(SqlError::syntax_near(&key)),
                }
                if !p.eat_sym(',') {
                    break;
                }
            }
            let subject = subject.ok_or_else(|| SqlError::syntax_near("WITH"))?;
            source = Some(CertSource::Subject { subject, start, expiry });
        } else {
            return Err(p.near());
        }
    }
    let source = source.ok_or_else(|| SqlError::syntax_near(&name))?;
    Ok(Ddl::CreateCertificate { name, source, password })
}

/// `( AUTHENTICATION = …, ENCRYPTION = …, ROLE = … )` in any order.
fn mirroring_options(p: &mut P<'_>) -> Result<Mirroring, SqlError> {
    p.expect_sym('(')?;
    let mut m = Mirroring { auth: None, encryption: None, role: None };
    loop {
        let key = p.name()?.to_ascii_uppercase();
        p.expect_sym('=')?;
        let mut words = Vec::new();
        while let Some(n) = p.peek().and_then(|t| t.name()) {
            words.push(n.to_string());
            p.i += 1;
        }
        if words.is_empty() {
            return Err(p.near());
        }
        match key.as_str() {
            "AUTHENTICATION" => m.auth = Some(words),
            "ENCRYPTION" => {
                let level = words[0].to_ascii_uppercase();
                if !matches!(level.as_str(), "DISABLED" | "SUPPORTED" | "REQUIRED") {
                    return Err(SqlError::syntax_near(&words[0]));
                }
                let algorithms: Vec<String> = match words.get(1) {
                    Some(w) if w.eq_ignore_ascii_case("ALGORITHM") => {
                        words[2..].iter().map(|w| w.to_ascii_uppercase()).collect()
                    }
                    Some(w) => return Err(SqlError::syntax_near(w)),
                    None => vec!["AES".into()],
                };
                if algorithms.is_empty() || algorithms.iter().any(|a| a != "AES" && a != "RC4") {
                    return Err(SqlError::syntax_near(algorithms.first().map(String::as_str).unwrap_or("ALGORITHM")));
                }
                m.encryption = Some((level, algorithms));
            }
            "ROLE" => m.role = Some(words.join(" ").to_ascii_uppercase()),
            _ => return Err(SqlError::syntax_near(&key)),
        }
        if p.eat_sym(')') {
            return Ok(m);
        }
        p.expect_sym(',')?;
    }
}

#[cfg(test)]
mod tests {
    use super::super::lex::tokens;
    use super::*;

    fn one(sql: &str) -> Ddl {
        let t = tokens(sql).unwrap();
        let seg = segments(&t);
        assert_eq!(seg.iter().filter(|(ddl, _)| *ddl).count(), 1, "{seg:?}");
        let r = seg.into_iter().find(|(ddl, _)| *ddl).unwrap().1;
        parse(&t[r]).unwrap()
    }

    #[test]
    fn the_seed_statements() {
        assert_eq!(
            one("USE MASTER\nCREATE MASTER KEY ENCRYPTION BY PASSWORD = 'Str0ng!Passw0rd'"),
            Ddl::CreateMasterKey { password: "Str0ng!Passw0rd".into() }
        );
        let Ddl::CreateEndpoint { name, state, port, mirroring } = one(
            "USE MASTER\nCREATE ENDPOINT database_mirroring_endpoint\n    STATE=STARTED\n    AS TCP (LISTENER_PORT=5022, LISTENER_IP = ALL)\n    FOR DATABASE_MIRRORING (\n        ROLE=ALL,\n        AUTHENTICATION = CERTIFICATE [Cert_SQL]]01_endpoint],\n        ENCRYPTION = REQUIRED ALGORITHM AES\n    )",
        ) else {
            panic!()
        };
        assert_eq!(
            (name.as_str(), state.as_deref(), port),
            ("database_mirroring_endpoint", Some("STARTED"), Some(5022))
        );
        let m = mirroring.unwrap();
        assert_eq!(m.auth.unwrap(), ["CERTIFICATE", "Cert_SQL]01_endpoint"]);
        assert_eq!(m.encryption.unwrap(), ("REQUIRED".to_string(), vec!["AES".to_string()]));
        let Ddl::CreateAvailabilityGroup { name, databases, replicas, distributed, with } = one(
            "CREATE AVAILABILITY GROUP [AG_Sales]]DB]\nWITH (CLUSTER_TYPE = NONE)\n    FOR database [Sales]]DB]\n    REPLICA ON\n        'SQLPROD01' WITH\n            (\n            ENDPOINT_URL = 'TCP://127.0.0.2:5022',\n            AVAILABILITY_MODE = SYNCHRONOUS_COMMIT,\n            FAILOVER_MODE = MANUAL,\n            SEEDING_MODE = AUTOMATIC\n            );",
        ) else {
            panic!()
        };
        assert_eq!((name.as_str(), distributed), ("AG_Sales]DB", false));
        assert_eq!(databases, ["Sales]DB"]);
        assert_eq!(opt(&with, "CLUSTER_TYPE").and_then(Value::text).as_deref(), Some("NONE"));
        assert_eq!(opt(&replicas[0].opts, "ENDPOINT_URL"), Some(&Value::Str("TCP://127.0.0.2:5022".into())));
        let Ddl::CreateAvailabilityGroup { replicas, distributed, .. } = one(
            "CREATE AVAILABILITY GROUP [DAG_SalesDB]\n  WITH (DISTRIBUTED)\n  AVAILABILITY GROUP ON\n  'AG_SalesDB' WITH\n  (\n    LISTENER_URL = 'TCP://10.0.0.4:5022',\n    AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT,\n    FAILOVER_MODE = MANUAL,\n    SEEDING_MODE = AUTOMATIC,\n    SESSION_TIMEOUT = 20\n  ),\n  'AG_SalesDB_MI' WITH\n  (\n    LISTENER_URL = 'tcp://mi.x.database.windows.net:5022;Server=[mi]',\n    AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT,\n    FAILOVER_MODE = MANUAL,\n    SEEDING_MODE = AUTOMATIC\n  );",
        ) else {
            panic!()
        };
        assert!(distributed);
        assert_eq!(replicas.len(), 2);
        assert_eq!(opt(&replicas[0].opts, "SESSION_TIMEOUT"), Some(&Value::Num("20".into())));
    }

    #[test]
    fn ddl_between_other_statements() {
        let sql = "SELECT 1; CREATE CERTIFICATE [O'Brien] WITH SUBJECT = N'It''s', EXPIRY_DATE = '20301231' SELECT * FROM sys.certificates";
        let t = tokens(sql).unwrap();
        let seg = segments(&t);
        assert_eq!(seg.iter().map(|(d, _)| *d).collect::<Vec<_>>(), [false, true, false]);
        let Ddl::CreateCertificate { name, source, .. } = parse(&t[seg[1].1.clone()]).unwrap() else { panic!() };
        assert_eq!(name, "O'Brien");
        assert_eq!(
            source,
            CertSource::Subject { subject: "It's".into(), start: None, expiry: Some("20301231".into()) }
        );
    }

    #[test]
    fn syntax_errors_name_the_token() {
        let t = tokens("CREATE ENDPOINT e STATE = STARTED AS TCP (LISTENER_PORT = 5022) FOR DATABASE_MIRRORING (ENCRYPTION = REQUIRED ALGORITHM DES)").unwrap();
        assert_eq!(parse(&t).unwrap_err().message, "Incorrect syntax near 'DES'.");
        let t = tokens("CREATE MASTER KEY ENCRYPTION BY 'x'").unwrap();
        assert_eq!(parse(&t).unwrap_err().number, 102);
    }
}
