//! The DDL Microsoft's network test uses: CREATE/DROP CERTIFICATE and
//! CREATE/DROP ENDPOINT (the temporary TEST_CERT / TEST_ENDPOINT). A created
//! endpoint really listens; a dropped one stops. Sysadmin only, as on a server.

use rusqlite::params;

use super::{Output, Session, SqlError};
use crate::lab::catalog::{Catalog, datetime_text};

/// The statement's kind and object name, when it is one of ours.
fn head(text: &str) -> Option<(String, String)> {
    let mut words = text.split_whitespace();
    let verb = words.next()?.to_ascii_uppercase();
    let kind = words.next()?.to_ascii_uppercase();
    if !matches!(verb.as_str(), "CREATE" | "DROP") || !matches!(kind.as_str(), "CERTIFICATE" | "ENDPOINT") {
        return None;
    }
    let name = words.next()?.trim_end_matches(';');
    let name = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .map(|n| n.replace("]]", "]"))
        .unwrap_or(name.to_string());
    Some((format!("{verb} {kind}"), name))
}

/// `KEY = value` inside the statement (quotes and brackets dropped).
fn option(text: &str, key: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    let at = upper.find(&key.to_ascii_uppercase())? + key.len();
    let rest = text[at..].trim_start().strip_prefix('=')?.trim_start();
    let rest = rest.strip_prefix('N').filter(|r| r.starts_with('\'')).unwrap_or(rest);
    let value: String = if let Some(q) = rest.strip_prefix('\'') {
        q.split('\'').next()?.to_string()
    } else {
        rest.split([',', ')', ' ', '\n', ';']).next()?.to_string()
    };
    Some(value)
}

pub fn try_execute(c: &Catalog, session: &Session, text: &str) -> Option<Vec<Output>> {
    let (what, name) = head(text)?;
    if !c.facts.sysadmin {
        return Some(vec![Output::Error(SqlError::permission_denied(&what, &session.database))]);
    }
    Some(match run(c, &what, &name, text) {
        Ok(()) => vec![Output::Done],
        Err(e) => vec![Output::Error(e)],
    })
}

fn db(e: rusqlite::Error) -> SqlError {
    SqlError::new(50000, 16, 1, format!("catalog: {e}"))
}

fn run(c: &Catalog, what: &str, name: &str, text: &str) -> Result<(), SqlError> {
    let now = time::OffsetDateTime::now_utc();
    match what {
        "CREATE CERTIFICATE" => {
            let exists: i64 =
                c.db.query_row("SELECT COUNT(*) FROM [sys.certificates] WHERE name = ?", params![name], |r| r.get(0))
                    .map_err(db)?;
            if exists > 0 {
                return Err(SqlError::new(
                    15232,
                    16,
                    1,
                    format!(
                        "A certificate with name '{name}' already exists or this certificate already has been added to the database."
                    ),
                ));
            }
            let subject = option(text, "SUBJECT").unwrap_or_else(|| name.to_string());
            c.db.execute(
                "INSERT INTO [sys.certificates] (name, certificate_id, principal_id, pvt_key_encryption_type, pvt_key_encryption_type_desc, \
                 is_active_for_begin_dialog, issuer_name, cert_serial_number, subject, expiry_date, start_date) \
                 VALUES (?, (SELECT COALESCE(MAX(certificate_id), 255) + 1 FROM [sys.certificates]), 1, 'MK', 'ENCRYPTED_BY_MASTER_KEY', 1, ?, '01', ?, ?, ?)",
                params![name, subject, subject, datetime_text(now + time::Duration::days(365)), datetime_text(now)],
            )
            .map_err(db)?;
        }
        "DROP CERTIFICATE" => {
            let n = c.db.execute("DELETE FROM [sys.certificates] WHERE name = ?", params![name]).map_err(db)?;
            if n == 0 {
                return Err(SqlError::new(
                    15151,
                    16,
                    1,
                    format!(
                        "Cannot drop the certificate '{name}', because it does not exist or you do not have permission."
                    ),
                ));
            }
        }
        "CREATE ENDPOINT" => {
            let existing: i64 =
                c.db.query_row("SELECT COUNT(*) FROM [sys.database_mirroring_endpoints]", [], |r| r.get(0))
                    .map_err(db)?;
            if existing > 0 {
                return Err(SqlError::new(
                    7862,
                    16,
                    1,
                    "An endpoint of the requested type already exists.  Only one endpoint of this type is supported.  Use ALTER ENDPOINT or DROP the existing endpoint and execute the CREATE ENDPOINT statement.",
                ));
            }
            let port: u16 = option(text, "LISTENER_PORT")
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| SqlError::syntax_near("LISTENER_PORT"))?;
            let listening = c.agent.as_ref().is_some_and(|a| a.listen(port));
            if !listening {
                return Err(SqlError::new(
                    26023,
                    16,
                    1,
                    format!(
                        "Server TCP provider failed to listen on [ 'any' <ipv4> {port}]. Tcp port is already in use."
                    ),
                ));
            }
            let cert = text.to_ascii_uppercase().find("CERTIFICATE").map(|i| {
                text[i + "CERTIFICATE".len()..]
                    .split([',', ')', ' '])
                    .find(|w| !w.is_empty())
                    .unwrap_or("")
                    .trim_matches(['[', ']'])
                    .to_string()
            });
            let cert_id: i64 = match &cert {
                Some(n) => c
                    .db
                    .query_row("SELECT certificate_id FROM [sys.certificates] WHERE name = ?", params![n], |r| r.get(0))
                    .unwrap_or(0),
                None => 0,
            };
            let base = "name, endpoint_id, principal_id, protocol, protocol_desc, type, type_desc, state, state_desc, is_admin_endpoint";
            let vals = "?, (SELECT COALESCE(MAX(endpoint_id), 65535) + 1 FROM [sys.endpoints]), 1, 2, 'TCP', 4, 'DATABASE_MIRRORING', 0, 'STARTED', 0";
            c.db.execute(&format!("INSERT INTO [sys.endpoints] ({base}) VALUES ({vals})"), params![name])
                .map_err(db)?;
            let id: i64 =
                c.db.query_row("SELECT endpoint_id FROM [sys.endpoints] WHERE name = ?", params![name], |r| r.get(0))
                    .map_err(db)?;
            c.db.execute(
                &format!("INSERT INTO [sys.tcp_endpoints] ({base}, port, is_dynamic_port, ip_address) SELECT {base}, ?, 0, NULL FROM [sys.endpoints] WHERE endpoint_id = ?"),
                params![port, id],
            )
            .map_err(db)?;
            c.db.execute(
                &format!(
                    "INSERT INTO [sys.database_mirroring_endpoints] ({base}, role, role_desc, is_encryption_enabled, connection_auth, connection_auth_desc, certificate_id, encryption_algorithm, encryption_algorithm_desc) \
                     SELECT {base}, 3, 'ALL', 1, 4, 'CERTIFICATE', ?, 2, 'AES' FROM [sys.endpoints] WHERE endpoint_id = ?"
                ),
                params![cert_id, id],
            )
            .map_err(db)?;
        }
        "DROP ENDPOINT" => {
            let port: Option<u16> =
                c.db.query_row("SELECT port FROM [sys.tcp_endpoints] WHERE name = ?", params![name], |r| r.get(0)).ok();
            let Some(port) = port else {
                return Err(SqlError::new(
                    15151,
                    16,
                    1,
                    format!(
                        "Cannot drop the endpoint '{name}', because it does not exist or you do not have permission."
                    ),
                ));
            };
            for t in ["sys.database_mirroring_endpoints", "sys.tcp_endpoints", "sys.endpoints"] {
                c.db.execute(&format!("DELETE FROM [{t}] WHERE name = ?"), params![name]).map_err(db)?;
            }
            if let Some(a) = &c.agent {
                a.unlisten(port);
            }
        }
        _ => unreachable!("head() admits only these"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_microsofts_test_statements() {
        let create = "CREATE ENDPOINT TEST_ENDPOINT STATE=STARTED AS TCP (LISTENER_PORT=5022, LISTENER_IP = ALL) FOR DATABASE_MIRRORING (ROLE=ALL, AUTHENTICATION = CERTIFICATE TEST_CERT, ENCRYPTION = REQUIRED ALGORITHM AES)";
        assert_eq!(head(create), Some(("CREATE ENDPOINT".into(), "TEST_ENDPOINT".into())));
        assert_eq!(option(create, "LISTENER_PORT").as_deref(), Some("5022"));
        let cert =
            "CREATE CERTIFICATE [TEST]]CERT] WITH SUBJECT = N'Certificate for SQL Server', EXPIRY_DATE = N'3/30/2051'";
        assert_eq!(head(cert).unwrap().1, "TEST]CERT");
        assert_eq!(option(cert, "SUBJECT").as_deref(), Some("Certificate for SQL Server"));
        assert!(head("CREATE TABLE t (a int)").is_none());
    }
}
