//! T-SQL built-in functions, registered on the catalog's SQLite connection.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use rusqlite::Error;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::Value;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use crate::lab::catalog::{Catalog, Shown};
use crate::lab::sqltime::{datetime_text, parse_datetime};

/// Registers the built-ins on a catalog's connection. Certificates and databases
/// are read from what the catalog shows at call time, so DDL is seen at once.
pub fn register(catalog: &Catalog) -> rusqlite::Result<()> {
    let (db, facts, current_db) = (&catalog.db, &catalog.facts, catalog.current_db.clone());
    let shown = catalog.shown.clone();
    let flags = FunctionFlags::SQLITE_UTF8;
    let props = facts.properties.clone();
    db.create_scalar_function("serverproperty", 1, flags, move |ctx| {
        let name: String = ctx.get::<Option<String>>(0)?.unwrap_or_default();
        Ok(props.get(&name.to_ascii_lowercase()).cloned().unwrap_or(Value::Null))
    })?;
    // Outside a CATCH block both are NULL.
    let c = catalog.caught.clone();
    db.create_scalar_function("error_number", 0, FunctionFlags::SQLITE_UTF8, move |_| {
        Ok(c.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(n, _)| *n))
    })?;
    let c = catalog.caught.clone();
    db.create_scalar_function("error_message", 0, FunctionFlags::SQLITE_UTF8, move |_| {
        Ok(c.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(_, m)| m.clone()))
    })?;
    // System procedures have negative object ids; the link's exist with its update.
    let link_procs = facts.connect_pack;
    let multidb = facts.multidb;
    db.create_scalar_function("object_id", 1, flags, move |ctx| {
        let name: String = ctx.get::<Option<String>>(0)?.unwrap_or_default().to_ascii_lowercase();
        let short = name.replace(['[', ']'], "");
        let short = short.rsplit('.').next().unwrap_or("");
        Ok(match short {
            "sp_certificate_add_issuer" if link_procs => Some(-1_072_722_139i64),
            "sp_get_endpoint_certificate" if link_procs => Some(-1_072_722_140),
            "sp_executesql" => Some(-1_073_741_000),
            "sp_multidb_milink" if multidb => Some(-1_072_722_141),
            _ => None,
        })
    })?;
    certificates(db, &shown)?;
    dates(db)?;
    let d = shown.clone();
    db.create_scalar_function("db_name", 1, flags, move |ctx| {
        let id: Option<i64> = ctx.get(0)?;
        Ok(id.and_then(|i| read(&d).databases.iter().find(|(di, _)| *di == i).map(|(_, n)| n.clone())))
    })?;
    let d = shown;
    db.create_scalar_function("db_id", 1, flags, move |ctx| {
        let name: Option<String> = ctx.get(0)?;
        Ok(name.and_then(|n| read(&d).databases.iter().find(|(_, dn)| dn.eq_ignore_ascii_case(&n)).map(|(i, _)| *i)))
    })?;
    let sysadmin = facts.sysadmin;
    db.create_scalar_function("is_srvrolemember", 1, flags, move |ctx| {
        let role: String = ctx.get(0)?;
        Ok(if role.eq_ignore_ascii_case("sysadmin") { sysadmin as i64 } else { 0 })
    })?;
    let vss = facts.view_server_state;
    db.create_scalar_function("has_perms_by_name", -1, flags, move |ctx| {
        let perm: String = ctx.get(ctx.len() - 1)?;
        Ok(match perm.to_ascii_uppercase().as_str() {
            "VIEW SERVER STATE" => (vss || sysadmin) as i64,
            _ => sysadmin as i64,
        })
    })?;
    strings(db)?;
    db.create_scalar_function("lab_current_db", 0, flags, move |_| Ok(current_db.load(Ordering::Relaxed)))?;
    Ok(())
}

/// `CERT_ID`, `CERTENCODED` and `CERTPROPERTY` over the certificates shown.
fn certificates(db: &rusqlite::Connection, shown: &Arc<RwLock<Shown>>) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8;
    let c = shown.clone();
    db.create_scalar_function("cert_id", 1, flags, move |ctx| {
        let name: Option<String> = ctx.get(0)?;
        let c = &read(&c).certs;
        Ok(name.and_then(|n| c.iter().find(|(_, (cn, _))| cn.eq_ignore_ascii_case(&n)).map(|(id, _)| *id)))
    })?;
    let c = shown.clone();
    db.create_scalar_function("certencoded", 1, flags, move |ctx| {
        let id: Option<i64> = ctx.get(0)?;
        Ok(id.and_then(|i| read(&c).certs.get(&i).map(|(_, cert)| cert.der.clone())))
    })?;
    let c = shown.clone();
    db.create_scalar_function("certproperty", 2, flags, move |ctx| {
        let id: Option<i64> = ctx.get(0)?;
        let prop: String = ctx.get::<Option<String>>(1)?.unwrap_or_default().to_ascii_lowercase();
        let certs = &read(&c).certs;
        let Some((_, cert)) = id.and_then(|i| certs.get(&i)) else {
            return Ok(Value::Null);
        };
        Ok(match prop.as_str() {
            "expiry_date" => Value::Text(datetime_text(cert.expiry)),
            "start_date" => Value::Text(datetime_text(cert.start)),
            "issuer_name" => Value::Text(cert.issuer.trim_start_matches("CN=").to_string()),
            "subject" => Value::Text(cert.subject.trim_start_matches("CN=").to_string()),
            "cert_serial_number" => Value::Text(cert.serial_hex.clone()),
            _ => Value::Null,
        })
    })?;
    Ok(())
}

/// `NEWID`, the clock, `DATEDIFF` and `DATEADD`.
fn dates(db: &rusqlite::Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8;
    db.create_scalar_function("newid", 0, FunctionFlags::SQLITE_UTF8, |_| Ok(newid()))?;
    for name in ["getdate", "getutcdate", "sysutcdatetime", "sysdatetime"] {
        db.create_scalar_function(name, 0, flags, |_| Ok(datetime_text(OffsetDateTime::now_utc())))?;
    }
    db.create_scalar_function("datediff", 3, flags, |ctx| {
        let part: String = ctx.get(0)?;
        let (Some(a), Some(b)) = (datetime_arg(ctx, 1)?, datetime_arg(ctx, 2)?) else {
            return Ok(None);
        };
        Ok(Some(datediff(&part, a, b).ok_or_else(|| user_err(format!("datepart datediff {part}")))?))
    })?;
    db.create_scalar_function("dateadd", 3, flags, |ctx| {
        let part: String = ctx.get(0)?;
        let n: i64 = ctx.get(1)?;
        let Some(d) = datetime_arg(ctx, 2)? else {
            return Ok(None);
        };
        let step = unit(&part).ok_or_else(|| user_err(format!("datepart dateadd {part}")))?;
        Ok(Some(datetime_text((d + step * n as i32).assume_utc())))
    })?;
    Ok(())
}

/// `LEN` (trailing spaces ignored), `CHARINDEX`, `LEFT` and `RIGHT`.
fn strings(db: &rusqlite::Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8;
    db.create_scalar_function("len", 1, flags, |ctx| {
        let s: Option<String> = ctx.get(0)?;
        Ok(s.map(|s| s.trim_end_matches(' ').chars().count() as i64))
    })?;
    db.create_scalar_function("charindex", 2, flags, |ctx| {
        let (needle, hay): (Option<String>, Option<String>) = (ctx.get(0)?, ctx.get(1)?);
        Ok(match (needle, hay) {
            (Some(n), Some(h)) => {
                let (n, h) = (n.to_lowercase(), h.to_lowercase());
                h.find(&n).map(|i| h[..i].chars().count() as i64 + 1).unwrap_or(0)
            }
            _ => 0,
        })
    })?;
    db.create_scalar_function("left", 2, flags, |ctx| {
        let s: Option<String> = ctx.get(0)?;
        let n: i64 = ctx.get(1)?;
        Ok(s.map(|s| s.chars().take(n.max(0) as usize).collect::<String>()))
    })?;
    db.create_scalar_function("right", 2, flags, |ctx| {
        let s: Option<String> = ctx.get(0)?;
        let n: i64 = ctx.get(1)?;
        Ok(s.map(|s| {
            let chars: Vec<char> = s.chars().collect();
            chars[chars.len().saturating_sub(n.max(0) as usize)..].iter().collect::<String>()
        }))
    })?;
    Ok(())
}

/// How many arguments SQL Server's built-in takes, as its Msg 174 says it.
pub fn arity(name: &str) -> Option<&'static str> {
    Some(match name {
        "newid" | "getdate" | "getutcdate" | "sysdatetime" | "sysutcdatetime" => "0",
        "serverproperty" | "cert_id" | "certencoded" | "len" | "is_srvrolemember" => "1",
        "left" | "right" | "certproperty" => "2",
        "datediff" | "dateadd" => "3",
        "charindex" => "2 to 3",
        "db_name" | "db_id" => "0 to 1",
        "has_perms_by_name" => "3 to 5",
        _ => return None,
    })
}

/// A version-4 GUID from the TLS provider's random source.
fn newid() -> String {
    let mut b = [0u8; 16];
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    if provider.secure_random.fill(&mut b).is_err() {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        b.copy_from_slice(&nanos.to_le_bytes());
    }
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let h = crate::tsql::hex(&b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn read(s: &RwLock<Shown>) -> std::sync::RwLockReadGuard<'_, Shown> {
    s.read().unwrap_or_else(|p| p.into_inner())
}

fn user_err(msg: String) -> Error {
    Error::UserFunctionError(msg.into())
}

fn datetime_arg(ctx: &Context<'_>, i: usize) -> rusqlite::Result<Option<PrimitiveDateTime>> {
    let s: Option<String> = ctx.get(i)?;
    s.map(|s| parse_datetime(&s).ok_or_else(|| user_err(format!("conversion of '{s}' to datetime")))).transpose()
}

fn unit(part: &str) -> Option<Duration> {
    Some(match part.to_ascii_lowercase().as_str() {
        "day" | "dd" | "d" => Duration::DAY,
        "hour" | "hh" => Duration::HOUR,
        "minute" | "mi" | "n" => Duration::MINUTE,
        "second" | "ss" | "s" => Duration::SECOND,
        "week" | "wk" | "ww" => Duration::WEEK,
        _ => return None,
    })
}

/// Counts boundaries crossed, as SQL Server's DATEDIFF does.
fn datediff(part: &str, a: PrimitiveDateTime, b: PrimitiveDateTime) -> Option<i64> {
    let p = part.to_ascii_lowercase();
    Some(match p.as_str() {
        "year" | "yy" | "yyyy" => (b.year() - a.year()) as i64,
        "month" | "mm" | "m" => (b.year() - a.year()) as i64 * 12 + b.month() as i64 - a.month() as i64,
        "day" | "dd" | "d" => (b.date() - a.date()).whole_days(),
        _ => {
            let u = unit(&p)?.whole_seconds();
            let secs = |t: PrimitiveDateTime| t.assume_utc().unix_timestamp().div_euclid(u);
            secs(b) - secs(a)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datediff_counts_boundaries() {
        let a = parse_datetime("2026-01-01 23:59:59.000").unwrap();
        let b = parse_datetime("2026-01-02 00:00:01").unwrap();
        assert_eq!(datediff("day", a, b), Some(1));
        assert_eq!(datediff("hour", a, b), Some(1));
        assert_eq!(datediff("month", a, b), Some(0));
    }
}
