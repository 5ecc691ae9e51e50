//! The link's DDL, run for real against the lab's state: master key,
//! certificates (a created one is a real X.509 certificate; an imported one is
//! parsed), the mirroring endpoint (it really listens), availability groups and
//! distributed availability groups. Errors are SQL Server's numbers and texts
//! (UNCONFIRMED ones say so). Sysadmin only, as on a server.

mod ag;
mod backup;
mod cursor;
mod endpoint;
mod keys;
mod lex;
mod members;
mod parse;
mod parse_ag;
mod statement;

use super::{Output, Session, SqlError};
use crate::lab::catalog::Catalog;
use crate::lab::state::SideId;
pub use lex::{Tok, Token, tokens};
use parse::Ddl;
pub use parse::{is_head, segments};

/// Runs one run of tokens that `segments` marked as link DDL.
pub fn execute(c: &Catalog, session: &Session, t: &[Token]) -> Vec<Output> {
    let verb: Vec<String> = t.iter().take(2).filter_map(Token::word).collect();
    if !c.facts.sysadmin {
        return vec![Output::Error(SqlError::permission_denied(&verb.join(" "), &session.database))];
    }
    let result = parse::parse(t).and_then(|ddl| run(c, session, ddl));
    match result {
        Ok(mut out) => {
            out.push(Output::Done);
            out
        }
        Err(e) => vec![Output::Error(e)],
    }
}

/// What every statement runs with.
pub(super) struct Ctx<'a> {
    pub c: &'a Catalog,
    pub session: &'a Session,
    pub side: SideId,
}

/// What a statement changed: its kind and object, for the record.
pub(super) type Done = Result<(&'static str, String), SqlError>;

fn run(c: &Catalog, session: &Session, ddl: Ddl) -> Result<Vec<Output>, SqlError> {
    let cx = Ctx { c, session, side: c.side };
    let mut world = c.world();
    let w = &mut *world;
    let mut warnings = Vec::new();
    let (kind, object) = match ddl {
        Ddl::CreateMasterKey { password } => keys::create_master_key(&cx, w, password)?,
        Ddl::CreateCertificate { name, source, password } => {
            keys::create_certificate(&cx, w, name, source, password, &mut warnings)?
        }
        Ddl::DropCertificate { name } => keys::drop_certificate(&cx, w, name)?,
        Ddl::CreateEndpoint { name, state, port, mirroring } => {
            endpoint::create_endpoint(&cx, w, name, state, port, mirroring)?
        }
        Ddl::AlterEndpoint { name, state, port, mirroring } => {
            endpoint::alter_endpoint(&cx, w, name, state, port, mirroring)?
        }
        Ddl::DropEndpoint { name } => endpoint::drop_endpoint(&cx, w, name)?,
        Ddl::CreateAvailabilityGroup { name, with, databases, replicas, distributed } => {
            ag::create_availability_group(&cx, w, name, with, databases, replicas, distributed)?
        }
        Ddl::DropAvailabilityGroup { name } => ag::drop_availability_group(&cx, w, name)?,
        Ddl::AlterAvailabilityGroup { name, action } => ag::alter_availability_group(&cx, w, name, action)?,
        Ddl::Backup(b) => backup::backup(&cx, w, b)?,
    };
    w.mutated(cx.side, kind, object);
    c.show(w).map_err(|e| SqlError::new(50000, 16, 1, format!("lab catalog: {e}")))?;
    Ok(warnings.into_iter().map(Output::Error).collect())
}
