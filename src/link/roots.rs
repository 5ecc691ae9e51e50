//! The Azure root certificates SQL Server must trust for the instance's
//! certificate chain: at least these two (mi-link-facts §3), as public DER
//! (from the Mozilla root store, as certifi ships it).

pub const ROOTS: &[(&str, &[u8])] = &[
    ("DigiCert Global Root G2", include_bytes!("roots/digicert-global-root-g2.der")),
    ("Microsoft RSA Root Certificate Authority 2017", include_bytes!("roots/microsoft-rsa-root-2017.der")),
];

#[cfg(test)]
mod tests {
    #[test]
    fn the_roots_are_the_named_certificates() {
        for (name, der) in super::ROOTS {
            let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
            assert!(c.subject().to_string().contains(name), "{name}: {}", c.subject());
            assert_eq!(c.subject(), c.issuer(), "{name} is self-signed");
        }
    }
}
