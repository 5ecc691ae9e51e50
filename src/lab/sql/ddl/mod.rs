//! The link's DDL, run for real against the lab's state: master key,
//! certificates (a created one is a real X.509 certificate; an imported one is
//! parsed), the mirroring endpoint (it really listens), availability groups and
//! distributed availability groups. Errors are SQL Server's numbers and texts
//! (UNCONFIRMED ones say so). Sysadmin only, as on a server.

mod lex;
mod parse;

use time::{Duration, OffsetDateTime};

use super::{Output, Session, SqlError};
use crate::lab::catalog::Catalog;
use crate::lab::certs::{self, EndpointCert};
use crate::lab::state::objects::{
    Algorithm, Auth, AvailabilityGroup, AvailabilityMode, Certificate, Cipher, Encryption, Endpoint, EndpointState,
    Origin, PrivateKey, Replica, Windows,
};
use crate::lab::state::{Link, LinkStatus, SideId, World};
pub use lex::{Token, tokens};
use parse::{CertSource, Ddl, Mirroring, Value, opt};
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

fn run(c: &Catalog, session: &Session, ddl: Ddl) -> Result<Vec<Output>, SqlError> {
    let side = c.side;
    let mut world = c.world();
    let mut warnings = Vec::new();
    let (kind, object) = match ddl {
        Ddl::CreateMasterKey { password } => {
            let db = session.database.clone();
            let s = world.server_mut(side);
            if s.master_keys.iter().any(|d| d.eq_ignore_ascii_case(&db)) {
                return Err(SqlError::new(
                    15578,
                    16,
                    1,
                    "There is already a master key in the database. Please drop it before performing this statement.",
                ));
            }
            check_password(&password)?;
            s.master_keys.push(db.clone());
            ("CREATE MASTER KEY", db)
        }
        Ddl::CreateCertificate { name, source, password } => {
            let s = world.server_mut(side);
            if s.certificate(&name).is_some() {
                return Err(SqlError::new(
                    15232,
                    16,
                    1,
                    format!(
                        "A certificate with name '{name}' already exists or this certificate already has been added to the database."
                    ),
                ));
            }
            let id = s.next_certificate_id();
            let (cert, private_key) = match source {
                CertSource::Subject { subject, start, expiry } => {
                    let has_key = s.master_keys.iter().any(|d| d.eq_ignore_ascii_case(&session.database));
                    if password.is_none() && !has_key {
                        return Err(SqlError::new(
                            15581,
                            16,
                            1,
                            "Please create a master key in the database or open the master key in the session before performing this operation.",
                        ));
                    }
                    if let Some(p) = &password {
                        check_password(p)?;
                    }
                    let now = OffsetDateTime::now_utc();
                    let start = match start {
                        Some(d) => date(&d)?,
                        None => now,
                    };
                    let expiry = match expiry {
                        Some(d) => date(&d)?,
                        None => start + Duration::days(365),
                    };
                    let cert =
                        certs::endpoint_cert(&subject, None, start, expiry, 0x3000 + id as u64).map_err(|_| {
                            SqlError::new(15468, 16, 1, "An error occurred during the generation of the certificate.")
                        })?;
                    // The certificate is made either way; these are warnings at severity 16.
                    if expiry < start {
                        warnings.push(SqlError::new(15213, 16, 1, "Warning: The certificate you created has an invalid validity period; its expiration date precedes its start date."));
                    } else if expiry < now {
                        warnings.push(SqlError::new(15214, 16, 1, "Warning: The certificate you created is expired."));
                    } else if start > now {
                        warnings.push(SqlError::new(
                            15215,
                            16,
                            1,
                            "Warning: The certificate you created is not yet valid; its start date is in the future.",
                        ));
                    }
                    let key = if password.is_some() { PrivateKey::Password } else { PrivateKey::MasterKey };
                    (cert, key)
                }
                CertSource::Binary(der) => (parse_der(&der)?, PrivateKey::None),
                // The lab's servers have no files.
                CertSource::File(_) => {
                    return Err(SqlError::new(
                        15208,
                        16,
                        1,
                        "The certificate, asymmetric key, or private key file is not valid or does not exist; or you do not have permissions for it.",
                    ));
                }
            };
            s.certificates.push(Certificate {
                id,
                name: name.clone(),
                cert,
                private_key,
                origin: Origin::Statement,
                issuer_for: vec![],
            });
            ("CREATE CERTIFICATE", name)
        }
        Ddl::DropCertificate { name } => {
            let s = world.server_mut(side);
            let Some(i) = s.certificates.iter().position(|c| c.name.eq_ignore_ascii_case(&name)) else {
                return Err(SqlError::new(
                    15151,
                    16,
                    1,
                    format!(
                        "Cannot drop the certificate '{name}', because it does not exist or you do not have permission."
                    ),
                ));
            };
            if s.endpoint
                .as_ref()
                .and_then(|e| e.auth.certificate.as_deref())
                .is_some_and(|n| n.eq_ignore_ascii_case(&name))
            {
                return Err(SqlError::new(
                    15187,
                    16,
                    1,
                    "The certificate cannot be dropped because it is used by one or more endpoint(s).",
                ));
            }
            s.certificates.remove(i);
            ("DROP CERTIFICATE", name)
        }
        Ddl::CreateEndpoint { name, state, port, mirroring } => {
            let s = world.server_mut(side);
            if s.endpoint.is_some() {
                return Err(SqlError::new(
                    7862,
                    16,
                    1,
                    "An endpoint of the requested type already exists.  Only one endpoint of this type is supported.  Use ALTER ENDPOINT or DROP the existing endpoint and execute the CREATE ENDPOINT statement.",
                ));
            }
            let port = port.expect("parse demands it");
            let m = mirroring.ok_or_else(|| SqlError::syntax_near(&name))?;
            let state = endpoint_state(state.as_deref(), EndpointState::Stopped)?;
            let auth = auth(m.auth.as_deref().unwrap_or(&["WINDOWS".into()]), s)?;
            let cipher = cipher(&m)?;
            let endpoint = Endpoint {
                id: 65536,
                name: name.clone(),
                port,
                state,
                role: m.role.clone().unwrap_or_else(|| "ALL".into()),
                auth,
                cipher,
            };
            listen(c, &endpoint)?;
            world.server_mut(side).endpoint = Some(endpoint);
            ("CREATE ENDPOINT", name)
        }
        Ddl::AlterEndpoint { name, state, port, mirroring } => {
            let s = world.server_mut(side);
            let Some(current) = s.endpoint.clone().filter(|e| e.name.eq_ignore_ascii_case(&name)) else {
                return Err(SqlError::new(
                    15151,
                    16,
                    1,
                    format!(
                        "Cannot alter the endpoint '{name}', because it does not exist or you do not have permission."
                    ),
                ));
            };
            let mut e = current;
            if let Some(st) = state {
                e.state = endpoint_state(Some(&st), e.state)?;
            }
            if let Some(p) = port {
                e.port = p;
            }
            if let Some(m) = mirroring {
                if let Some(words) = &m.auth {
                    e.auth = auth(words, s)?;
                }
                if m.encryption.is_some() {
                    e.cipher = cipher(&m)?;
                }
                if let Some(r) = m.role {
                    e.role = r;
                }
            }
            listen(c, &e)?;
            world.server_mut(side).endpoint = Some(e);
            ("ALTER ENDPOINT", name)
        }
        Ddl::DropEndpoint { name } => {
            let s = world.server_mut(side);
            if !s.endpoint.as_ref().is_some_and(|e| e.name.eq_ignore_ascii_case(&name)) {
                return Err(SqlError::new(
                    15151,
                    16,
                    1,
                    format!(
                        "Cannot drop the endpoint '{name}', because it does not exist or you do not have permission."
                    ),
                ));
            }
            s.endpoint = None;
            if let Some(h) = &c.host {
                h.endpoint_port(None);
            }
            ("DROP ENDPOINT", name)
        }
        Ddl::CreateAvailabilityGroup { name, with, databases, replicas, distributed } => {
            create_ag(c, session, &mut world, &name, &with, &databases, &replicas, distributed)?;
            (if distributed { "CREATE AVAILABILITY GROUP (DISTRIBUTED)" } else { "CREATE AVAILABILITY GROUP" }, name)
        }
        Ddl::DropAvailabilityGroup { name } => {
            let s = world.server_mut(side);
            let Some(i) = s.ags.iter().position(|a| a.name.eq_ignore_ascii_case(&name)) else {
                return Err(SqlError::new(
                    15151,
                    16,
                    1,
                    format!(
                        "Cannot drop the availability group '{name}', because it does not exist or you do not have permission."
                    ),
                ));
            };
            let ag = s.ags.remove(i);
            // The databases stay; they leave the group.
            for d in s.databases.iter_mut().filter(|d| ag.databases.iter().any(|n| n.eq_ignore_ascii_case(&d.name))) {
                d.group_database_id = None;
            }
            ("DROP AVAILABILITY GROUP", name)
        }
    };
    world.mutated(side, kind, object);
    c.show(&world).map_err(|e| SqlError::new(50000, 16, 1, format!("lab catalog: {e}")))?;
    Ok(warnings.into_iter().map(Output::Error).collect())
}

/// SQL Server's password policy (Windows' complexity rules): at least 8
/// characters from three of upper case, lower case, digits and symbols.
fn check_password(p: &str) -> Result<(), SqlError> {
    let classes = [
        p.chars().any(|c| c.is_uppercase()),
        p.chars().any(|c| c.is_lowercase()),
        p.chars().any(|c| c.is_ascii_digit()),
        p.chars().any(|c| !c.is_alphanumeric()),
    ];
    if p.chars().count() < 8 || classes.iter().filter(|x| **x).count() < 3 {
        return Err(SqlError::new(
            15118,
            16,
            1,
            "Password validation failed. The password does not meet the operating system policy requirements because it is not complex enough.",
        ));
    }
    Ok(())
}

/// `'03/30/2025'`, `'20250330'` or `'2025-03-30'`, as SQL Server reads a date.
fn date(s: &str) -> Result<OffsetDateTime, SqlError> {
    let bad = || SqlError::new(241, 16, 1, "Conversion failed when converting date and/or time from character string.");
    let t = s.trim();
    let (y, m, d, rest) = if let Some((md, rest)) = t.split_once('/') {
        let (d, y) = rest.split_once('/').ok_or_else(bad)?;
        let (y, tail) = y.split_at(y.find(' ').unwrap_or(y.len()));
        (
            y.parse::<i32>().map_err(|_| bad())?,
            md.parse::<u8>().map_err(|_| bad())?,
            d.parse::<u8>().map_err(|_| bad())?,
            tail,
        )
    } else if t.len() >= 8 && t[..8].chars().all(|c| c.is_ascii_digit()) {
        (
            t[..4].parse().map_err(|_| bad())?,
            t[4..6].parse().map_err(|_| bad())?,
            t[6..8].parse().map_err(|_| bad())?,
            &t[8..],
        )
    } else {
        let dt = crate::lab::sqltime::parse_datetime(t).ok_or_else(bad)?;
        return Ok(dt.assume_utc());
    };
    let month = time::Month::try_from(m).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(y, month, d).map_err(|_| bad())?;
    let time = match rest.trim() {
        "" => time::Time::MIDNIGHT,
        hms => crate::lab::sqltime::parse_datetime(&format!("2000-01-01 {hms}")).ok_or_else(bad)?.time(),
    };
    Ok(time::PrimitiveDateTime::new(date, time).assume_utc())
}

/// What `CREATE CERTIFICATE … FROM BINARY` reads out of the DER.
fn parse_der(der: &[u8]) -> Result<EndpointCert, SqlError> {
    certs::read_der(der)
        .ok_or_else(|| SqlError::new(15297, 16, 1, "The certificate, asymmetric key, or private key data is invalid."))
}

fn endpoint_state(s: Option<&str>, default: EndpointState) -> Result<EndpointState, SqlError> {
    match s {
        None => Ok(default),
        Some(s) => EndpointState::parse(s).ok_or_else(|| SqlError::syntax_near(s)),
    }
}

/// `WINDOWS [NTLM|KERBEROS|NEGOTIATE] [CERTIFICATE c]` or `CERTIFICATE c [WINDOWS …]`.
fn auth(words: &[String], s: &crate::lab::state::Server) -> Result<Auth, SqlError> {
    let mut a = Auth { windows: None, certificate: None, certificate_first: false };
    let mut i = 0;
    while i < words.len() {
        match words[i].to_ascii_uppercase().as_str() {
            "WINDOWS" => {
                let kind = match words.get(i + 1).map(|w| w.to_ascii_uppercase()).as_deref() {
                    Some("NTLM") => Some(Windows::Ntlm),
                    Some("KERBEROS") => Some(Windows::Kerberos),
                    Some("NEGOTIATE") => Some(Windows::Negotiate),
                    _ => None,
                };
                a.windows = Some(kind.unwrap_or(Windows::Negotiate));
                i += if kind.is_some() { 2 } else { 1 };
            }
            "CERTIFICATE" => {
                let name = words.get(i + 1).ok_or_else(|| SqlError::syntax_near("CERTIFICATE"))?;
                if s.certificate(name).is_none() {
                    return Err(SqlError::new(
                        15151,
                        16,
                        1,
                        format!(
                            "Cannot find the certificate '{name}', because it does not exist or you do not have permission."
                        ),
                    ));
                }
                a.certificate_first = a.windows.is_none();
                a.certificate = Some(name.clone());
                i += 2;
            }
            other => return Err(SqlError::syntax_near(other)),
        }
    }
    if a.windows.is_none() {
        a.certificate_first = false;
    }
    Ok(a)
}

fn cipher(m: &Mirroring) -> Result<Cipher, SqlError> {
    let (level, algorithms) = m.encryption.clone().unwrap_or_else(|| ("REQUIRED".into(), vec!["AES".into()]));
    let encryption = match level.as_str() {
        "DISABLED" => Encryption::Disabled,
        "SUPPORTED" => Encryption::Supported,
        _ => Encryption::Required,
    };
    let algorithms =
        algorithms.iter().map(|a| if a == "RC4" { Algorithm::Rc4 } else { Algorithm::Aes }).collect::<Vec<_>>();
    Ok(Cipher { encryption, algorithms })
}

/// The endpoint's port listens while it is STARTED (26023 when it cannot).
fn listen(c: &Catalog, e: &Endpoint) -> Result<(), SqlError> {
    let port = (e.state == EndpointState::Started).then_some(e.port);
    if let Some(h) = &c.host
        && !h.endpoint_port(port)
    {
        return Err(SqlError::new(
            26023,
            16,
            1,
            format!("Server TCP provider failed to listen on [ 'any' <ipv4> {}]. Tcp port is already in use.", e.port),
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn create_ag(
    c: &Catalog,
    session: &Session,
    world: &mut World,
    name: &str,
    with: &[parse::Opt],
    databases: &[String],
    replicas: &[parse::Replica],
    distributed: bool,
) -> Result<(), SqlError> {
    let side = c.side;
    if !c.facts.properties.get("ishadrenabled").is_some_and(|v| v == &rusqlite::types::Value::Integer(1)) {
        return Err(SqlError::new(
            35221,
            16,
            1,
            "Could not process the operation. Always On Availability Groups replica manager is disabled on this instance of SQL Server. Enable Always On Availability Groups, by using the SQL Server Configuration Manager. Then, restart the SQL Server service, and retry the currently operation. For information about how to enable and disable Always On Availability Groups, see SQL Server Books Online.",
        ));
    }
    if !session.database.eq_ignore_ascii_case("master") {
        return Err(SqlError::new(
            35208,
            16,
            1,
            "Availability group DDL operations are permitted only when you are using the master database. Run the 'USE master' statement, and retry your availability group DDL statement.",
        ));
    }
    let s = world.server(side);
    if s.ag(name).is_some() {
        // UNCONFIRMED: the number SQL Server raises for a duplicate AG name.
        return Err(SqlError::new(2714, 16, 6, format!("There is already an object named '{name}' in the database.")));
    }
    let cluster_type = match opt(with, "CLUSTER_TYPE").and_then(Value::text).map(|t| t.to_ascii_uppercase()) {
        // 2016 has no CLUSTER_TYPE: it is WSFC only.
        Some(_) if s.version.0 == 13 => return Err(SqlError::syntax_near("CLUSTER_TYPE")),
        Some(t) if t == "NONE" => (2, "NONE"),
        Some(t) if t == "EXTERNAL" => (1, "EXTERNAL"),
        Some(t) if t == "WSFC" => (0, "WSFC"),
        Some(t) => return Err(SqlError::syntax_near(&t)),
        None => (0, "WSFC"),
    };
    let local_name = if distributed {
        // A distributed AG joins AGs; one of them must be here.
        replicas.iter().find(|r| s.ag(&r.name).is_some_and(|a| !a.distributed)).map(|r| r.name.clone())
    } else {
        replicas.iter().find(|r| r.name.eq_ignore_ascii_case(&s.name)).map(|r| r.name.clone())
    };
    if local_name.is_none() {
        return Err(SqlError::new(
            35237,
            16,
            1,
            format!(
                "None of the specified replicas for availability group {name} maps to the instance of SQL Server to which you are connected. Reenter the command, specifying this server instance to host one of the replicas. This replica will be the initial primary replica."
            ),
        ));
    }
    for db in databases {
        let Some(d) = s.database(db) else {
            return Err(SqlError::new(
                35238,
                16,
                1,
                format!(
                    "Database '{db}' cannot be added to availability group '{name}'. The database does not exist on this SQL Server instance. Verify that the database name is correct, then retry the operation."
                ),
            ));
        };
        if d.group_database_id.is_some() {
            return Err(SqlError::new(
                35244,
                16,
                1,
                format!(
                    "Database '{db}' cannot be added to availability group '{name}'. The database is currently joined to another availability group. Verify that the database name is correct and that the database is not joined to an availability group, then retry the operation."
                ),
            ));
        }
        if d.recovery != "FULL" || !has_full_backup(c, &d.name) {
            return Err(SqlError::new(
                1475,
                16,
                105,
                format!(
                    "Database \"{db}\" might contain bulk logged changes that have not been backed up. Take a log backup on the principal database or primary database. Then restore this backup either on the mirror database to enable database mirroring or on every secondary database to enable you to join it to the availability group."
                ),
            ));
        }
    }
    for r in replicas {
        let url = if distributed { "LISTENER_URL" } else { "ENDPOINT_URL" };
        if opt(&r.opts, url).and_then(Value::text).is_none() {
            return Err(SqlError::new(
                35236,
                15,
                1,
                format!(
                    "The endpoint URL was not specified for the availability replica hosted by server instance '{}'. Reenter the command, specifying the endpoint URL of this instance of SQL Server.",
                    r.name
                ),
            ));
        }
    }
    let s = world.server_mut(side);
    let mut out = Vec::new();
    for r in replicas {
        let text = |k: &str| opt(&r.opts, k).and_then(Value::text).map(|t| t.to_ascii_uppercase());
        out.push(Replica {
            id: s.guid(),
            name: r.name.clone(),
            endpoint_url: opt(&r.opts, if distributed { "LISTENER_URL" } else { "ENDPOINT_URL" })
                .and_then(Value::text)
                .unwrap_or_default(),
            mode: if text("AVAILABILITY_MODE").as_deref() == Some("SYNCHRONOUS_COMMIT") {
                AvailabilityMode::Synchronous
            } else {
                AvailabilityMode::Asynchronous
            },
            failover_manual: text("FAILOVER_MODE").as_deref() != Some("AUTOMATIC"),
            seeding_automatic: text("SEEDING_MODE").as_deref() == Some("AUTOMATIC"),
            session_timeout: text("SESSION_TIMEOUT").and_then(|t| t.parse().ok()).unwrap_or(10),
        });
    }
    // The local replica (or the local AG, in a distributed AG) comes first.
    if let Some(i) = out.iter().position(|r| Some(&r.name) == local_name.as_ref()) {
        out.swap(0, i);
    }
    let id = s.guid();
    for db in databases {
        let g = s.guid();
        if let Some(d) = s.databases.iter_mut().find(|d| d.name.eq_ignore_ascii_case(db)) {
            d.group_database_id = Some(g);
        }
    }
    s.ags.push(AvailabilityGroup {
        id,
        name: name.to_string(),
        distributed,
        cluster_type,
        replicas: out,
        databases: databases.to_vec(),
        created: OffsetDateTime::now_utc(),
    });
    if distributed && side == SideId::Sql && world.link(name).is_none() {
        let local = local_name.unwrap_or_default();
        let database = world.sql.ag(&local).and_then(|a| a.databases.first().cloned()).unwrap_or_default();
        world.links.push(Link {
            dag: name.to_string(),
            database,
            pinned: false,
            status: LinkStatus::waiting(),
            since: None,
            growth: None,
        });
    }
    Ok(())
}

/// A full backup that starts a log chain (not COPY_ONLY), from msdb.
fn has_full_backup(c: &Catalog, db: &str) -> bool {
    c.db.query_row(
        "SELECT COUNT(*) FROM [msdb.dbo.backupset] WHERE database_name = ? AND type = 'D' AND is_copy_only = 0",
        [db],
        |r| r.get::<_, i64>(0),
    )
    .is_ok_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_passwords() {
        assert_eq!(date("03/30/2051").unwrap().date(), time::macros::date!(2051 - 03 - 30));
        assert_eq!(date("20510330").unwrap().date(), time::macros::date!(2051 - 03 - 30));
        assert_eq!(date("2051-03-30").unwrap().date(), time::macros::date!(2051 - 03 - 30));
        assert_eq!(date("13/40/2051").unwrap_err().number, 241);
        assert!(check_password("<strong_password>").is_err(), "the seed's placeholder is not complex");
        assert!(check_password("Lab-Only-Passw0rd").is_ok());
    }
}
