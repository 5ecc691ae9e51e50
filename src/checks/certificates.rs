//! Certificates of the link: SQL Server's endpoint certificate (master key,
//! name, expiry), the managed instance's imported under its FQDN and byte-equal
//! to what it presents, SQL Server's trusted on the managed instance, Azure roots.

use super::collect::Evidence;
use super::{F, blocked, facts, rows};
use crate::probe::sql::{Fields, Record, unhex};
use crate::profile::Profile;
use crate::report::{Finding, Severity, Side};
use crate::tsql::{binary, ident, nstring};

fn days_left(expiry: &str) -> Option<i64> {
    let t = crate::probe::sql::datetime(expiry)?;
    Some((t.assume_utc() - time::OffsetDateTime::now_utc()).whole_days())
}

/// Each name in its own position: `[bracketed]` where it is an identifier,
/// `N'…'` where it is a string.
fn rotation_remedy(name: &str) -> String {
    let new = format!("{name}_new");
    format!(
        "Rotate: USE [master]; CREATE CERTIFICATE {} WITH SUBJECT = {}, EXPIRY_DATE = N'<date>'; upload its public key to the managed instance (New-AzSqlInstanceServerTrustCertificate -PublicKey <SELECT CERTENCODED(CERT_ID({}))>); then ALTER ENDPOINT … AUTHENTICATION = CERTIFICATE {}; drop the old one last.",
        ident(&new),
        nstring(&format!("Certificate for {name}")),
        nstring(&new),
        ident(&new)
    )
}

fn der(r: &Record) -> Option<Vec<u8>> {
    unhex(r.str("der")?)
}

type Rows<'a> = Result<&'a [Record], (Severity, String)>;
type Session<'a> = Result<&'a crate::checks::collect::Facts, (Severity, String)>;

pub fn evaluate(ev: &Evidence, p: &Profile, out: &mut Vec<Finding>) {
    let sql = facts(&ev.sql, "login-sql");
    let sql_certs = sql.clone().and_then(|f| rows(f, "certificates", "login-sql-permissions"));
    let endpoint = sql.clone().and_then(|f| rows(f, "endpoint", "login-sql-permissions"));
    let mi = facts(&ev.mi, "login-mi");
    let own = own_certificate(&sql_certs, &endpoint, p, out);
    out.push(mi_imported(&sql_certs, &mi, p));
    out.push(trusted_on_mi(&mi, own));
    out.push(azure_roots(&sql_certs));
}

/// SQL Server's endpoint certificate (`cert-sql-endpoint`, `cert-sql-endpoint-expiry`).
fn own_certificate<'a>(
    sql_certs: &Rows<'a>,
    endpoint: &Rows<'_>,
    p: &Profile,
    out: &mut Vec<Finding>,
) -> Option<&'a Record> {
    let s = Side::SqlServer;
    match (&sql_certs, &endpoint) {
        (Err(why), _) | (_, Err(why)) => {
            out.push(blocked("cert-sql-endpoint", s, why.clone()));
            out.push(blocked("cert-sql-endpoint-expiry", s, why.clone()));
            None
        }
        (Ok(certs), Ok(ep)) => {
            let id = ep.first().and_then(|e| e.int("certificate_id")).unwrap_or(0);
            match certs.iter().find(|c| c.int("certificate_id") == Some(id) && id != 0) {
                None => {
                    let why = if ep.is_empty() {
                        "no mirroring endpoint (endpoint-sql-present)"
                    } else {
                        "the endpoint has no certificate"
                    };
                    out.push(
                        F::new("cert-sql-endpoint", s, Severity::Fail)
                            .found(why.split(" (").next().unwrap_or(why))
                            .ev("reason", why)
                            .remedy("USE [master]; CREATE CERTIFICATE [Cert_<server>_endpoint] WITH SUBJECT = N'Certificate for <server>', EXPIRY_DATE = N'<date>'; then ALTER ENDPOINT … AUTHENTICATION = CERTIFICATE [Cert_<server>_endpoint]")
                            .done(),
                    );
                    out.push(
                        F::skip("cert-sql-endpoint-expiry", s, "no endpoint certificate (cert-sql-endpoint)").done(),
                    );
                    None
                }
                Some(c) => {
                    let name = c.str("name").unwrap_or("");
                    let pvt = c.str("pvt_key_encryption_type").unwrap_or("");
                    let mut f = F::new("cert-sql-endpoint", s, Severity::Pass)
                        .found(format!(
                            "{name}, {}",
                            match pvt {
                                "MK" => "private key under the master key",
                                "PW" => "private key under a password",
                                "SK" => "private key under the service master key",
                                "NA" => "no private key",
                                other => other,
                            }
                        ))
                        .ev("name", name)
                        .ev("pvt_key_encryption_type", pvt)
                        .ev("subject", c.str("subject").unwrap_or(""));
                    // The DER itself (CERTENCODED), read with x509-parser.
                    if let Some(info) = der(c).as_deref().and_then(crate::probe::tls::describe) {
                        f = f
                            .ev("key", format!("{} {}", info.key_algorithm, info.key_bits))
                            .ev("signature", info.signature_algorithm);
                    }
                    if pvt != "MK" {
                        f = f.severity(Severity::Fail).remedy(format!(
                            "The private key must be encrypted by the database master key: USE [master]; ALTER CERTIFICATE {} WITH PRIVATE KEY (DECRYPTION BY PASSWORD = N'<current password>'); -- without ENCRYPTION BY PASSWORD it is re-encrypted by the master key",
                            ident(name)
                        ));
                    } else if name.contains('\\') {
                        f = f.severity(Severity::Fail).remedy("The certificate name must not contain `\\`: create one named e.g. Cert_<server>_endpoint and switch the endpoint to it.");
                    }
                    out.push(f.done());

                    let expiry = c.str("expiry_date").unwrap_or("");
                    let left = days_left(expiry);
                    let mut f = F::new("cert-sql-endpoint-expiry", s, Severity::Pass)
                        .ev("name", name)
                        .ev("expiry_date", expiry);
                    if let Some(d) = left {
                        f = f.ev("days_left", d).found(crate::report::expiry_phrase(d, expiry));
                    }
                    let rotate = rotation_remedy(name);
                    f = match left {
                        None => f.severity(Severity::Error).ev("note", "unreadable expiry_date"),
                        Some(d) if d < 0 => f
                            .severity(Severity::Fail)
                            .remedy(format!("The certificate has expired and the link fails with it. {rotate}")),
                        Some(d) if d < p.thresholds.crit_days => f.severity(Severity::Fail).remedy(rotate),
                        Some(d) if d < p.thresholds.warn_days => f.severity(Severity::Warn).remedy(rotate),
                        Some(_) => f,
                    };
                    out.push(f.done());
                    Some(c)
                }
            }
        }
    }
}

/// The managed instance's certificate, imported on SQL Server under its FQDN.
fn mi_imported(sql_certs: &Rows<'_>, mi: &Session<'_>, p: &Profile) -> Finding {
    let fqdn = &p.managed_instance.fqdn;
    let presented = mi.clone().and_then(|f| rows(f, "endpoint_cert", "login-mi-permissions"));
    match (&sql_certs, &presented) {
        (Err(why), _) | (_, Err(why)) => blocked("cert-mi-imported", Side::Link, why.clone()),
        (Ok(certs), Ok(pres)) => {
            let theirs = pres.first().and_then(|r| r.str("endpointcertificatepublickey")).and_then(unhex);
            let exact = certs.iter().find(|c| c.str("name") == Some(fqdn.as_str()));
            let loose = certs.iter().find(|c| c.str("name").is_some_and(|n| n.eq_ignore_ascii_case(fqdn)));
            let create = theirs
                .as_ref()
                .map(|d| format!("USE [master]; CREATE CERTIFICATE {} FROM BINARY = {};", ident(fqdn), binary(d)));
            let f = F::new("cert-mi-imported", Side::Link, Severity::Pass).ev("expected_name", fqdn.clone());
            match (exact.or(loose), &theirs) {
                (None, _) => f.severity(Severity::Fail).found(format!("nothing under {fqdn}")).remedy(create.unwrap_or_else(|| "Import the managed instance's certificate (EXEC sp_get_endpoint_certificate 4 on the managed instance) under its FQDN.".into())),
                (Some(c), Some(t)) if der(c).as_ref() != Some(t) => f
                    .severity(Severity::Fail)
                    .found("an older certificate: not what the managed instance presents now")
                    .ev("imported_expiry", c.str("expiry_date").unwrap_or(""))
                    .remedy(format!("The imported certificate differs from what the managed instance presents now (rotated?): DROP CERTIFICATE {}; then {}", ident(c.str("name").unwrap_or(fqdn)), create.unwrap_or_default())),
                (Some(c), _) if exact.is_none() => f.severity(Severity::Warn).found(format!("imported as {}", c.str("name").unwrap_or(""))).ev("imported_as", c.str("name").unwrap_or("")).remedy("The certificate's name must be exactly the managed instance's FQDN (same case)."),
                (Some(_), _) => f.found("imported, the same bytes").ev("byte_equal", theirs.is_some()),
            }
            .done()
        }
    }
}

/// SQL Server's certificate, trusted on the managed instance.
fn trusted_on_mi(mi: &Session<'_>, own: Option<&Record>) -> Finding {
    let mi_certs = mi.clone().and_then(|f| rows(f, "certificates", "login-mi-permissions"));
    match (&mi_certs, own) {
        (Err(why), _) => blocked("cert-sql-trusted-on-mi", Side::Link, why.clone()),
        (_, None) => F::skip(
            "cert-sql-trusted-on-mi",
            Side::Link,
            "no SQL Server endpoint certificate to look for (cert-sql-endpoint)",
        )
        .done(),
        (Ok(theirs), Some(c)) => {
            let mine = der(c);
            let found = theirs.iter().any(|t| der(t).is_some() && der(t) == mine);
            let f = F::new("cert-sql-trusted-on-mi", Side::Link, Severity::Pass)
                .ev("certificate", c.str("name").unwrap_or(""))
                .ev("note", "read from the managed instance's sys.certificates (whether server trust certificates show there is UNCONFIRMED)");
            let name = c.str("name").unwrap_or("");
            let upload = format!(
                "Upload SQL Server's public key to the managed instance: New-AzSqlInstanceServerTrustCertificate -ResourceGroupName <rg> -InstanceName <mi> -Name {name} -PublicKey <SELECT CERTENCODED(CERT_ID({}))>",
                nstring(name)
            );
            // The same name or subject with other bytes: SQL Server's certificate was
            // replaced and the instance still trusts the one before.
            let same = |t: &&Record| {
                t.str("name").is_some_and(|n| n.eq_ignore_ascii_case(name))
                    || (t.str("subject").is_some() && t.str("subject") == c.str("subject"))
            };
            match (found, theirs.iter().find(same)) {
                (true, _) => f.found(format!("{name} is there")),
                (false, Some(old)) => f
                    .severity(Severity::Fail)
                    .found(format!("an older one is trusted instead ({})", old.str("name").unwrap_or("")))
                    .ev("trusted_instead", old.str("name").unwrap_or(""))
                    .ev("trusted_expiry", old.str("expiry_date").unwrap_or(""))
                    .ev("current_expiry", c.str("expiry_date").unwrap_or(""))
                    .remedy(format!(
                        "The managed instance trusts an older certificate of SQL Server's: it was replaced on SQL Server and the new one never uploaded. Remove the old trust first (it holds the name): Remove-AzSqlInstanceServerTrustCertificate -ResourceGroupName <rg> -InstanceName <mi> -Name {}; then: {upload}",
                        old.str("name").unwrap_or(name)
                    )),
                (false, None) => f.severity(Severity::Fail).found(format!("{name} is not there")).remedy(upload),
            }
            .done()
        }
    }
}

/// Azure root CAs on SQL Server.
fn azure_roots(sql_certs: &Rows<'_>) -> Finding {
    let s = Side::SqlServer;
    match &sql_certs {
        Err(why) => blocked("cert-azure-roots", s, why.clone()),
        Ok(certs) => {
            let has = |needle: &str| {
                certs.iter().any(|c| {
                    c.str("subject").is_some_and(|x| x.contains(needle))
                        || c.str("name").is_some_and(|x| x.contains(needle))
                })
            };
            let missing: Vec<&str> = ["DigiCert Global Root G2", "Microsoft RSA Root Certificate Authority 2017"]
                .into_iter()
                .filter(|n| !has(n))
                .collect();
            let f = F::new("cert-azure-roots", s, Severity::Pass)
                .ev("note", "whether sp_certificate_add_issuer ran cannot be read from sys.certificates (UNCONFIRMED)");
            if missing.is_empty() {
                f.found("both imported")
            } else {
                f.severity(Severity::Warn).found(format!("missing: {}", missing.join(", "))).ev("missing", missing.join(", ")).remedy(
                    missing
                        .iter()
                        .map(|n| format!("CREATE CERTIFICATE {} FROM FILE = N'<path to {n}.crt>'; EXEC sp_certificate_add_issuer CERT_ID({}), N'*.database.windows.net';", ident(n), nstring(n)))
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            }
            .done()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rotation_remedy_quotes_each_position_by_its_own_rule() {
        let r = rotation_remedy("O'Brien]Cert");
        assert!(
            r.contains("CREATE CERTIFICATE [O'Brien]]Cert_new] WITH SUBJECT = N'Certificate for O''Brien]Cert'"),
            "{r}"
        );
        assert!(r.contains("CERT_ID(N'O''Brien]Cert_new')"), "{r}");
        assert!(r.contains("AUTHENTICATION = CERTIFICATE [O'Brien]]Cert_new]"), "{r}");
        for name in ["[x", "a b", "Ünïcødé 数据", &"n".repeat(128)] {
            let r = rotation_remedy(name);
            assert!(r.contains(&ident(&format!("{name}_new"))) && r.contains(&nstring(&format!("{name}_new"))), "{r}");
        }
    }
}
