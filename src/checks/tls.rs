//! The TLS certificate each side presents on 1433, judged on its own.

use super::F;
use super::collect::{Evidence, SideEvidence};
use crate::probe::tls::{Outcome, Verdict};
use crate::profile::Profile;
use crate::report::{Finding, Severity, Side};

fn one(id: &'static str, side: Side, s: &SideEvidence, p: &Profile) -> Finding {
    let Some(outcome) = &s.tls else {
        return F::skip(id, side, "the name did not resolve (dns check)").done();
    };
    let c = match outcome {
        Outcome::NoTls => {
            return F::new(id, side, Severity::Fail)
                .found("offers no TLS (ENCRYPT_NOT_SUP)")
                .ev("prelogin_encryption", "ENCRYPT_NOT_SUP")
                .remedy("The server offers no TLS: install a certificate for SQL Server (SQL Server Configuration Manager > Protocols > Certificate) and restart the service.")
                .done();
        }
        Outcome::Failed { message } => {
            return F::new(id, side, Severity::Error).found("no TLS handshake").ev("error", message.clone()).done();
        }
        Outcome::Captured(c) => c,
    };
    let mut f = F::new(id, side, Severity::Pass)
        .ev("mode", c.mode)
        .ev("verdict", serde_json::to_value(c.verdict).unwrap_or_default());
    if let Some(v) = &c.tls_version {
        f = f.ev("tls_version", v.clone());
    }
    if let Some(leaf) = c.chain.first() {
        f = f
            .ev("subject", leaf.subject.clone())
            .ev("issuer", leaf.issuer.clone())
            .ev("sans", leaf.sans.join(","))
            .ev("not_after", leaf.not_after.clone())
            .ev("days_left", leaf.days_left)
            .ev("key", format!("{} {}", leaf.key_algorithm, leaf.key_bits))
            .ev("signature", leaf.signature_algorithm.clone());
    }
    if let Some(d) = &c.verdict_detail {
        f = f.ev("detail", d.clone());
    }
    let name = if side == Side::SqlServer { &p.sql_server.host } else { &p.managed_instance.fqdn };
    if let Some(leaf) = c.chain.first() {
        let when = crate::report::expiry_phrase(leaf.days_left, &leaf.not_after);
        f = f.found(match c.verdict {
            Verdict::Trusted => format!("trusted; {when}"),
            Verdict::Expired => when,
            Verdict::NotYetValid => {
                format!("not valid before {}", leaf.not_before.get(..10).unwrap_or(&leaf.not_before))
            }
            Verdict::WrongName => format!("not for {name} (SANs: {})", leaf.sans.join(", ")),
            Verdict::Untrusted => format!("issued by {}, not trusted here", leaf.issuer),
            Verdict::Invalid => "does not verify".into(),
            Verdict::InvalidValidity => "validity period inverted: never valid".into(),
        });
    }
    f = match c.verdict {
        Verdict::Trusted => f,
        Verdict::Expired => f.severity(Severity::Fail).remedy("The certificate has expired: issue a new one for the server's name and bind it to SQL Server."),
        Verdict::NotYetValid => f.severity(Severity::Fail).remedy("The certificate is not valid yet: check the server's clock and the certificate's start date."),
        Verdict::WrongName => f.severity(Severity::Fail).remedy(format!("The certificate is not for `{name}`: issue one whose SAN includes the name clients use.")),
        Verdict::Untrusted => f.severity(Severity::Fail).remedy("The certificate's issuer is not trusted here: give the issuing CA in the profile (ca_cert) or use a certificate from a trusted CA."),
        Verdict::Invalid => f.severity(Severity::Fail),
        Verdict::InvalidValidity => f.severity(Severity::Fail).remedy("The certificate's validity period is inverted (not before is after not after): it is never valid. Issue a new one and bind it to SQL Server."),
    };
    if f.current() == Severity::Pass
        && let Some(leaf) = c.chain.first()
    {
        if leaf.key_algorithm == "RSA" && leaf.key_bits < 2048 {
            f = f.severity(Severity::Warn).remedy(
                "The RSA key is shorter than 2048 bits: reissue the certificate with a 2048-bit or larger key.",
            );
        } else if leaf.signature_algorithm.to_ascii_lowercase().contains("sha1") {
            f = f.severity(Severity::Warn).remedy("The certificate is signed with SHA-1: reissue it with SHA-256.");
        } else if leaf.days_left < p.thresholds.warn_days {
            f = f.severity(Severity::Warn).remedy("The certificate expires soon: renew it.");
        }
    }
    f.done()
}

pub fn evaluate(ev: &Evidence, p: &Profile, out: &mut Vec<Finding>) {
    out.push(one("tls-sql-certificate", Side::SqlServer, &ev.sql, p));
    out.push(one("tls-mi-certificate", Side::ManagedInstance, &ev.mi, p));
}
