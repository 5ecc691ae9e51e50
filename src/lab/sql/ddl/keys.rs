//! The database master key and certificates: a created certificate is a
//! real X.509 certificate, an imported one is parsed from its DER.

use time::{Duration, OffsetDateTime};

use super::parse::CertSource;
use super::{Ctx, Done};
use crate::lab::certs::{self, EndpointCert};
use crate::lab::sql::SqlError;
use crate::lab::state::World;
use crate::lab::state::objects::{Certificate, Origin, PrivateKey};

pub(super) fn create_master_key(cx: &Ctx<'_>, world: &mut World, password: String) -> Done {
    let side = cx.side;
    let session = cx.session;
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
    Ok(("CREATE MASTER KEY", db))
}

pub(super) fn create_certificate(
    cx: &Ctx<'_>,
    world: &mut World,
    name: String,
    source: CertSource,
    password: Option<String>,
    warnings: &mut Vec<SqlError>,
) -> Done {
    let side = cx.side;
    let session = cx.session;
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
            let cert = certs::endpoint_cert(&subject, None, start, expiry, 0x3000 + id as u64).map_err(|_| {
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
    Ok(("CREATE CERTIFICATE", name))
}

pub(super) fn drop_certificate(cx: &Ctx<'_>, world: &mut World, name: String) -> Done {
    let side = cx.side;
    let s = world.server_mut(side);
    let Some(i) = s.certificates.iter().position(|c| c.name.eq_ignore_ascii_case(&name)) else {
        return Err(SqlError::new(
            15151,
            16,
            1,
            format!("Cannot drop the certificate '{name}', because it does not exist or you do not have permission."),
        ));
    };
    if s.endpoint.as_ref().and_then(|e| e.auth.certificate.as_deref()).is_some_and(|n| n.eq_ignore_ascii_case(&name)) {
        return Err(SqlError::new(
            15187,
            16,
            1,
            "The certificate cannot be dropped because it is used by one or more endpoint(s).",
        ));
    }
    s.certificates.remove(i);
    Ok(("DROP CERTIFICATE", name))
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
