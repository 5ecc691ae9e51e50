//! What the audit concludes: each certificate's status by days left, each
//! link's trust both ways, each unreadable instance.

use serde::Serialize;

use super::inventory::{Instance, Kind};
use super::read::{Read, SeenCert, Usage};
use crate::report::Side;

/// Nagios states; `Fail` is a link whose trust is broken (CRITICAL for the
/// exit code, named apart because nothing has expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Unknown,
    Crit,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Unknown => "unknown",
            Status::Crit => "crit",
            Status::Fail => "fail",
        }
    }

    /// 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; CRITICAL outranks UNKNOWN,
    /// which outranks WARNING (the worst state wins).
    /// The word a Nagios plugin prints.
    pub fn nagios(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARNING",
            Status::Unknown => "UNKNOWN",
            Status::Crit | Status::Fail => "CRITICAL",
        }
    }

    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warn => 1,
            Status::Unknown => 3,
            Status::Crit | Status::Fail => 2,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CertRow {
    pub status: Status,
    pub instance: String,
    pub side: Side,
    pub usage: &'static str,
    pub certificate: String,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
    /// RFC 3339, UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(skip)]
    pub not_after_unix: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Why the status is what it is, in words.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrustCheck {
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkRow {
    pub status: Status,
    pub link: String,
    pub sql_server: String,
    pub managed_instance: String,
    /// The managed instance's current certificate, imported on SQL Server.
    pub mi_cert_on_sql: TrustCheck,
    /// SQL Server's endpoint certificate, trusted by the managed instance.
    pub sql_cert_on_mi: TrustCheck,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceRow {
    pub status: Status,
    pub instance: String,
    pub side: Side,
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

pub struct Thresholds {
    pub warn_days: i64,
    pub crit_days: i64,
}

fn rfc3339(unix: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).ok()?;
    t.format(&time::format_description::well_known::Rfc3339).ok()
}

/// Whole days left, rounded down: a certificate expiring in 3 hours has 0.
pub fn days_left(not_after: i64, now: i64) -> i64 {
    (not_after - now).div_euclid(86_400)
}

pub fn cert_row(i: &Instance, c: &SeenCert, t: &Thresholds, now: i64) -> CertRow {
    let days = c.not_after.map(|na| days_left(na, now));
    let (status, detail) = match (c.not_before, c.not_after, days) {
        (_, None, _) | (_, _, None) => (Status::Unknown, "no validity period could be read".to_string()),
        (Some(nb), Some(na), _) if nb > na => {
            (Status::Crit, format!("invalid validity period: not before {} is after not after {}", show(nb), show(na)))
        }
        (_, Some(na), _) if na <= now => (Status::Crit, format!("expired on {}", show(na))),
        (Some(nb), _, _) if nb > now => (Status::Crit, format!("not valid before {}", show(nb))),
        (_, Some(na), Some(d)) if d < t.crit_days => (Status::Crit, format!("expires in {d} days, on {}", show(na))),
        (_, Some(na), Some(d)) if d < t.warn_days => (Status::Warn, format!("expires in {d} days, on {}", show(na))),
        (_, Some(na), Some(d)) => (Status::Ok, format!("expires in {d} days, on {}", show(na))),
    };
    let detail = match c.usage {
        Usage::Endpoint if i.kind == Kind::ManagedInstance => {
            format!("{detail}; Azure rotates it (SQL Server must then import the new one)")
        }
        _ => detail,
    };
    CertRow {
        status,
        instance: i.name.clone(),
        side: i.kind.side(),
        usage: c.usage.as_str(),
        certificate: c.name.clone(),
        subject: c.subject.clone(),
        thumbprint: c.thumbprint.clone(),
        not_before: c.not_before.and_then(rfc3339),
        not_after: c.not_after.and_then(rfc3339),
        not_after_unix: c.not_after,
        days_left: days,
        key: c.key.clone(),
        signature: c.signature.clone(),
        detail,
    }
}

fn show(unix: i64) -> String {
    rfc3339(unix).map(|s| s.chars().take(10).collect()).unwrap_or_else(|| unix.to_string())
}

/// The links found from the DAGs on either side, for pairs the inventory has
/// both sides of; each side's trust of the other's current certificate.
pub fn links(instances: &[(&Instance, Result<&Read, &str>)]) -> Vec<LinkRow> {
    let mut out = Vec::new();
    let mis: Vec<_> = instances.iter().filter(|(i, _)| i.kind == Kind::ManagedInstance).collect();
    for (sql, sql_read) in instances.iter().filter(|(i, _)| i.kind == Kind::SqlServer) {
        let Ok(sread) = sql_read else { continue };
        for dag in &sread.dags {
            let Some((mi, mi_read)) = mis.iter().find(|(m, _)| m.host.eq_ignore_ascii_case(&dag.partner_host)) else {
                continue;
            };
            out.push(link(&dag.name, sql, sread, mi, *mi_read));
        }
    }
    // A DAG seen only from the managed instance, whose SQL Server is unreadable.
    for (mi, mi_read) in &mis {
        let Ok(mread) = mi_read else { continue };
        for dag in &mread.dags {
            if out.iter().any(|l| l.link == dag.name && l.managed_instance == mi.name) {
                continue;
            }
            let sql = instances.iter().find(|(i, r)| {
                i.kind == Kind::SqlServer
                    && r.is_err()
                    && (i.host.eq_ignore_ascii_case(&dag.partner_host)
                        || i.address.is_some_and(|a| a.to_string() == dag.partner_host))
            });
            if let Some((sql, Err(why))) = sql {
                out.push(unreadable(&dag.name, sql, mi, format!("SQL Server {} could not be read: {why}", sql.name)));
            }
        }
    }
    out.sort_by(|a, b| {
        (std::cmp::Reverse(a.status), &a.link, &a.sql_server).cmp(&(
            std::cmp::Reverse(b.status),
            &b.link,
            &b.sql_server,
        ))
    });
    out
}

fn link(name: &str, sql: &Instance, s: &Read, mi: &Instance, m: Result<&Read, &str>) -> LinkRow {
    match m {
        Ok(m) => row(name, sql, mi, mi_cert_on_sql(mi, s, m), sql_cert_on_mi(mi, s, m)),
        Err(why) => unreadable(name, sql, mi, format!("the managed instance could not be read: {why}")),
    }
}

fn row(name: &str, sql: &Instance, mi: &Instance, a: TrustCheck, b: TrustCheck) -> LinkRow {
    LinkRow {
        status: a.status.max(b.status),
        link: name.to_string(),
        sql_server: sql.name.clone(),
        managed_instance: mi.name.clone(),
        mi_cert_on_sql: a,
        sql_cert_on_mi: b,
    }
}

/// A link one of whose sides could not be read: both checks UNKNOWN, with why.
fn unreadable(name: &str, sql: &Instance, mi: &Instance, why: String) -> LinkRow {
    let unknown = || TrustCheck { status: Status::Unknown, detail: why.clone(), remedy: None };
    row(name, sql, mi, unknown(), unknown())
}

fn mi_cert_on_sql(mi: &Instance, s: &Read, m: &Read) -> TrustCheck {
    let Some(presented) = m.of(Usage::Endpoint).next() else {
        return TrustCheck {
            status: Status::Unknown,
            detail: "the managed instance's endpoint certificate could not be read (sp_get_endpoint_certificate 4)"
                .into(),
            remedy: None,
        };
    };
    let imported: Vec<&SeenCert> = s.of(Usage::Partner).filter(|c| c.name.eq_ignore_ascii_case(&mi.host)).collect();
    let now_tp = presented.thumbprint.clone().unwrap_or_default();
    let import = format!(
        "read the managed instance's current certificate (EXEC sp_get_endpoint_certificate 4 on it) and import it on SQL Server: USE [master]; CREATE CERTIFICATE {} FROM BINARY = <EndpointCertificatePublicKey>;",
        crate::tsql::ident(&mi.host)
    );
    if imported.iter().any(|c| c.der.is_some() && c.der == presented.der) {
        return TrustCheck { status: Status::Ok, detail: format!("imported, thumbprint {now_tp}"), remedy: None };
    }
    match imported.first() {
        Some(old) => TrustCheck {
            status: Status::Fail,
            detail: format!(
                "rotated, not imported: SQL Server holds {} (thumbprint {}, not after {}); the managed instance presents thumbprint {now_tp} now",
                old.name,
                old.thumbprint.as_deref().unwrap_or("?"),
                old.not_after.and_then(rfc3339).unwrap_or_default()
            ),
            remedy: Some(format!(
                "On SQL Server: USE [master]; DROP CERTIFICATE {}; then {import}",
                crate::tsql::ident(&old.name)
            )),
        },
        None => TrustCheck {
            status: Status::Fail,
            detail: format!("SQL Server has no certificate named {}", mi.host),
            remedy: Some(format!("On SQL Server, {import}")),
        },
    }
}

fn sql_cert_on_mi(mi: &Instance, s: &Read, m: &Read) -> TrustCheck {
    let Some(own) = s.of(Usage::Endpoint).next() else {
        return TrustCheck {
            status: Status::Fail,
            detail: "SQL Server's mirroring endpoint has no certificate".into(),
            remedy: Some("ALTER ENDPOINT … FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE [<cert>])".into()),
        };
    };
    let tp = own.thumbprint.clone().unwrap_or_default();
    let in_catalog = m.of(Usage::Trust).any(|t| t.der.is_some() && t.der == own.der);
    let in_arm = m.arm_trust.as_ref().map(|list| list.iter().any(|t| t.eq_ignore_ascii_case(&tp)));
    let resource = mi.name.as_str();
    let upload = format!(
        "New-AzSqlInstanceServerTrustCertificate -ResourceGroupName <rg> -InstanceName {resource} -Name {} -PublicKey <SELECT CERTENCODED(CERT_ID({})) on SQL Server>",
        own.name,
        crate::tsql::nstring(&own.name)
    );
    match (in_catalog, in_arm) {
        (_, Some(true)) => {
            TrustCheck { status: Status::Ok, detail: format!("trusted (ARM), thumbprint {tp}"), remedy: None }
        }
        (true, None) => TrustCheck {
            status: Status::Ok,
            detail: format!(
                "trusted, thumbprint {tp} (read from sys.certificates; whether server trust certificates show there is UNCONFIRMED)"
            ),
            remedy: None,
        },
        _ => {
            let stale = m.of(Usage::Trust).find(|t| t.name.eq_ignore_ascii_case(&own.name) || t.subject == own.subject);
            let detail = match stale {
                Some(t) => format!(
                    "stale trust: the managed instance trusts {} (thumbprint {}), SQL Server's endpoint uses thumbprint {tp}",
                    t.name,
                    t.thumbprint.as_deref().unwrap_or("?")
                ),
                None => format!("the managed instance does not trust SQL Server's certificate {} ({tp})", own.name),
            };
            let remedy = match stale {
                Some(t) => format!(
                    "Remove-AzSqlInstanceServerTrustCertificate -ResourceGroupName <rg> -InstanceName {resource} -Name {}; then {upload}",
                    t.name
                ),
                None => upload,
            };
            TrustCheck { status: Status::Fail, detail, remedy: Some(remedy) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_down_and_negative_is_expired() {
        assert_eq!(days_left(86_400 * 3 - 1, 0), 2);
        assert_eq!(days_left(3600, 0), 0);
        assert_eq!(days_left(-1, 0), -1);
    }

    #[test]
    fn crit_outranks_unknown_outranks_warn() {
        let worst = [Status::Warn, Status::Unknown].into_iter().max().unwrap();
        assert_eq!(worst.exit_code(), 3);
        let worst = [Status::Crit, Status::Unknown, Status::Warn].into_iter().max().unwrap();
        assert_eq!(worst.exit_code(), 2);
        assert_eq!(Status::Fail.exit_code(), 2);
    }
}
