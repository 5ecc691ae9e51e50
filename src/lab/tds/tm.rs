//! Transaction Manager requests (packet type 0x0E, MS-TDS 2.2.6.9): how ODBC
//! drivers begin, commit and roll back transactions when autocommit is off.
//! Answered as SQL Server does: ENVCHANGE 8/9/10 with the transaction's
//! descriptor, then DONE.

use std::io;

use crate::lab::sql::{Output, ResultSet, Session, SqlError, SqlType};
use crate::tds::packet::bad;

const GET_DTC_ADDRESS: u16 = 0;
const PROPAGATE_XACT: u16 = 1;
const BEGIN_XACT: u16 = 5;
const PROMOTE_XACT: u16 = 6;
const COMMIT_XACT: u16 = 7;
const ROLLBACK_XACT: u16 = 8;
const SAVE_XACT: u16 = 9;

/// COMMIT and ROLLBACK may begin the next transaction at once (fBeginXact).
const BEGIN_XACT_FLAG: u8 = 0x01;

fn u16_at(b: &[u8], at: usize) -> io::Result<u16> {
    b.get(at..at + 2).map(|x| u16::from_le_bytes([x[0], x[1]])).ok_or_else(|| bad("transaction request cut short"))
}

/// A B_VARCHAR (length in characters, then UTF-16) at `at`; returns the next offset.
fn skip_b_varchar(b: &[u8], at: usize) -> io::Result<usize> {
    let n = *b.get(at).ok_or_else(|| bad("transaction request cut short"))? as usize;
    let end = at + 1 + 2 * n;
    if end > b.len() {
        return Err(bad("transaction name runs past the request"));
    }
    Ok(end)
}

/// Answers one request; `payload` starts with ALL_HEADERS.
pub fn request(payload: &[u8], session: &mut Session, server: &str) -> io::Result<Vec<Output>> {
    let headers = payload
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| bad("transaction request cut short"))?;
    if headers < 4 || headers > payload.len() {
        return Err(bad("ALL_HEADERS is longer than the request"));
    }
    let body = &payload[headers..];
    let kind = u16_at(body, 0)?;
    let mut out = Vec::new();
    match kind {
        BEGIN_XACT => {
            // ISOLATION_LEVEL (BYTE), NAME (B_VARCHAR): no isolation to keep in the lab.
            skip_b_varchar(body, 3)?;
            out.extend(session.begin());
        }
        COMMIT_XACT | ROLLBACK_XACT => {
            let after_name = skip_b_varchar(body, 2)?;
            let flags = body.get(after_name).copied().unwrap_or(0);
            let ended = if kind == COMMIT_XACT {
                // A TM commit ends the transaction whatever its nesting, as SQL Server's does.
                session.tran.count = session.tran.count.min(1);
                session.commit()
            } else {
                session.rollback()
            };
            out.push(ended);
            if flags & BEGIN_XACT_FLAG != 0 {
                out.extend(session.begin());
            }
        }
        GET_DTC_ADDRESS => out.push(Output::Rows(ResultSet {
            columns: vec![(String::new(), SqlType::VarBinary(Some(128)))],
            rows: vec![vec![rusqlite::types::Value::Blob(Vec::new())]],
        })),
        PROMOTE_XACT | PROPAGATE_XACT => {
            out.push(Output::Error(SqlError::new(8501, 16, 3, format!("MSDTC on server '{server}' is unavailable."))))
        }
        SAVE_XACT => {}
        other => return Err(bad(format!("transaction manager request type {other}"))),
    }
    out.push(Output::Done);
    Ok(out)
}
