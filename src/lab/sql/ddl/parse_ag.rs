//! The grammar of the availability-group statements and of BACKUP.

use super::cursor::P;
use super::lex::Tok;
use super::statement::{AgAction, Backup, Ddl, Opt, Replica};
use crate::lab::sql::SqlError;

pub(super) fn create_ag(p: &mut P<'_>) -> Result<Ddl, SqlError> {
    let name = p.name()?;
    let with = if p.eat("WITH") { p.options()? } else { vec![] };
    let distributed = with.iter().any(|o| o.name == "DISTRIBUTED");
    let mut databases = Vec::new();
    if p.eat("FOR") && p.eat("DATABASE") {
        loop {
            databases.push(p.name()?);
            if !p.eat_sym(',') {
                break;
            }
        }
    }
    if distributed {
        p.expect("AVAILABILITY")?;
        p.expect("GROUP")?;
    } else {
        p.expect("REPLICA")?;
    }
    p.expect("ON")?;
    let replicas = members(p)?;
    Ok(Ddl::CreateAvailabilityGroup { name, with, databases, replicas, distributed })
}

/// `name MODIFY … | FAILOVER | FORCE_FAILOVER_ALLOW_DATA_LOSS | SET (ROLE = …)`
pub(super) fn alter_ag(p: &mut P<'_>) -> Result<Ddl, SqlError> {
    let name = p.name()?;
    let action = if p.eat("FAILOVER") {
        AgAction::Failover
    } else if p.eat("FORCE_FAILOVER_ALLOW_DATA_LOSS") {
        AgAction::ForceFailoverAllowDataLoss
    } else if p.eat("SET") {
        let opts = p.options()?;
        match opts.as_slice() {
            [Opt { name, value: Some(v) }] if name == "ROLE" => {
                AgAction::SetRole(v.text().unwrap_or_default().to_ascii_uppercase())
            }
            _ => return Err(SqlError::syntax_near("SET")),
        }
    } else if p.eat("ADD") {
        p.expect("DATABASE")?;
        AgAction::AddDatabase(p.name()?)
    } else if p.eat("REMOVE") {
        p.expect("DATABASE")?;
        AgAction::RemoveDatabase(p.name()?)
    } else if p.eat("MODIFY") {
        if p.eat("AVAILABILITY") {
            p.expect("GROUP")?;
        } else {
            p.expect("REPLICA")?;
        }
        p.expect("ON")?;
        AgAction::Modify(members(p)?)
    } else {
        return Err(p.near());
    };
    Ok(Ddl::AlterAvailabilityGroup { name, action })
}

/// `'name' WITH (…) [, 'name' WITH (…)]`
fn members(p: &mut P<'_>) -> Result<Vec<Replica>, SqlError> {
    let mut out = Vec::new();
    loop {
        let name = match p.peek().map(|t| &t.tok) {
            Some(Tok::Str(s)) => {
                p.i += 1;
                s.clone()
            }
            _ => p.name()?,
        };
        p.expect("WITH")?;
        out.push(Replica { name, opts: p.options()? });
        if !p.eat_sym(',') {
            return Ok(out);
        }
    }
}

/// After `BACKUP DATABASE|LOG`: `name TO DISK|URL = '…' [, …] [WITH opt [= v], …]`
pub(super) fn backup(p: &mut P<'_>, log: bool) -> Result<Ddl, SqlError> {
    let database = p.name()?;
    p.expect("TO")?;
    let mut to = Vec::new();
    loop {
        let kind = p.name()?.to_ascii_uppercase();
        if kind != "DISK" && kind != "URL" {
            return Err(SqlError::syntax_near(&kind));
        }
        p.expect_sym('=')?;
        to.push((kind, p.string()?));
        if !p.eat_sym(',') {
            break;
        }
    }
    let mut with = Vec::new();
    if p.eat("WITH") {
        loop {
            let name = p.name()?.to_ascii_uppercase();
            let value = if p.eat_sym('=') { Some(p.value()?) } else { None };
            with.push(Opt { name, value });
            if !p.eat_sym(',') {
                break;
            }
        }
    }
    Ok(Ddl::Backup(Backup { log, database, to, with }))
}

#[cfg(test)]
mod tests {
    use super::super::lex::tokens;
    use super::super::parse::{Value, parse};
    use super::*;

    fn one(sql: &str) -> Ddl {
        parse(&tokens(sql).unwrap()).unwrap()
    }

    #[test]
    fn the_failover_statements() {
        let Ddl::AlterAvailabilityGroup { name, action: AgAction::Modify(m) } = one(
            "ALTER AVAILABILITY GROUP [DAG_Sales]]DB] MODIFY AVAILABILITY GROUP ON 'AG_SalesDB' WITH (AVAILABILITY_MODE = SYNCHRONOUS_COMMIT), 'AG_SalesDB_MI' WITH (AVAILABILITY_MODE = SYNCHRONOUS_COMMIT)",
        ) else {
            panic!()
        };
        assert_eq!((name.as_str(), m.len()), ("DAG_Sales]DB", 2));
        assert_eq!(m[1].opts[0].value, Some(Value::Words(vec!["SYNCHRONOUS_COMMIT".into()])));
        assert_eq!(
            one("ALTER AVAILABILITY GROUP [DAG_X] FAILOVER"),
            Ddl::AlterAvailabilityGroup { name: "DAG_X".into(), action: AgAction::Failover }
        );
        assert_eq!(
            one("ALTER AVAILABILITY GROUP [DAG_X] FORCE_FAILOVER_ALLOW_DATA_LOSS"),
            Ddl::AlterAvailabilityGroup { name: "DAG_X".into(), action: AgAction::ForceFailoverAllowDataLoss }
        );
        let t = tokens("USE [master]; ALTER AVAILABILITY GROUP [DAG_X] SET (ROLE = SECONDARY); SELECT 1").unwrap();
        assert_eq!(
            super::super::parse::segments(&t).iter().map(|(d, r)| (*d, r.len())).collect::<Vec<_>>(),
            [(false, 3), (true, 10), (false, 2)],
            "SET after the name is the statement's own"
        );
        assert_eq!(
            one("ALTER AVAILABILITY GROUP [DAG_X] SET (ROLE = SECONDARY)"),
            Ddl::AlterAvailabilityGroup { name: "DAG_X".into(), action: AgAction::SetRole("SECONDARY".into()) }
        );
        let Ddl::Backup(b) =
            one("BACKUP LOG [Sales DB] TO DISK = N'/var/backup/Sales DB.trn' WITH CHECKSUM, NAME = N'tail'")
        else {
            panic!()
        };
        assert!(b.log);
        assert_eq!(b.to, [("DISK".to_string(), "/var/backup/Sales DB.trn".to_string())]);
        assert_eq!(b.with.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["CHECKSUM", "NAME"]);
        assert_eq!(parse(&tokens("BACKUP LOG x TO TAPE = 'y'").unwrap()).unwrap_err().number, 102);
    }
}
