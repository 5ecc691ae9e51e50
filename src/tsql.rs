//! Quoting for generated T-SQL: one helper per position, so a name holding `]`
//! or `'` comes out right wherever it goes. Checks' remedies, probes and link
//! creation all write their statements with these.

/// An identifier in brackets: `[Sales]]DB]` (`]` doubled).
pub fn ident(name: &str) -> String {
    format!("[{}]", name.replace(']', "]]"))
}

/// A Unicode string literal: `N'O''Brien'` (`'` doubled).
pub fn nstring(s: &str) -> String {
    format!("N'{}'", s.replace('\'', "''"))
}

/// A binary literal: `0x3082…` in upper-case hex.
pub fn binary(bytes: &[u8]) -> String {
    format!("0x{}", hex(bytes))
}

/// Upper-case hex without a prefix, as ARM's `publicBlob` and thumbprints are
/// written.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// Each `0x` literal of more than `min_digits` hex digits, replaced by what `f`
/// makes of its digits (shorter for a table, left out for a redacted bundle).
pub fn map_blobs(s: &str, min_digits: usize, f: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("0x") {
        out.push_str(&rest[..at]);
        let digits = rest[at + 2..].chars().take_while(|c| c.is_ascii_hexdigit()).count();
        if digits > min_digits {
            out.push_str(&f(&rest[at + 2..at + 2 + digits]));
        } else {
            out.push_str(&rest[at..at + 2 + digits]);
        }
        rest = &rest[at + 2 + digits..];
    }
    out.push_str(rest);
    out
}

/// A certificate's thumbprint: the SHA-1 of its DER, as `sys.certificates`
/// and ARM show it.
pub fn thumbprint(der: &[u8]) -> String {
    use sha1::Digest;
    hex(&sha1::Sha1::digest(der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_position_has_its_own_rule() {
        assert_eq!(ident("Sales]DB"), "[Sales]]DB]");
        assert_eq!(ident("[x]"), "[[x]]]");
        assert_eq!(ident("O'Brien DB"), "[O'Brien DB]");
        assert_eq!(nstring("O'Brien DB"), "N'O''Brien DB'");
        assert_eq!(nstring("Sales]DB"), "N'Sales]DB'");
        assert_eq!(ident("Ünïcødé 数据"), "[Ünïcødé 数据]");
        let long = "a]".repeat(64);
        assert_eq!(ident(&long).len(), 2 + 128 + 64);
        assert_eq!(binary(&[0x30, 0x82, 0x0a]), "0x30820A");
    }
}
