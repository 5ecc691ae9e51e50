//! `milink bundle verify`: every file against the manifest's size and SHA-256,
//! and a scan for anything that looks like a secret. A bundle comes from
//! someone else: names with `..` or a root, zip bombs and oversized entries are
//! refused before anything is read in full.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::Serialize;

/// The most one file of a bundle may hold, and all of them together.
pub const MAX_FILE: u64 = 64 << 20;
pub const MAX_TOTAL: u64 = 512 << 20;
const MAX_ENTRIES: usize = 10_000;
/// A file that inflates more than this many times over is a zip bomb.
const MAX_RATIO: u64 = 200;

#[derive(Debug, Default, Serialize)]
pub struct Verdict {
    pub files: usize,
    /// Hashes or sizes that do not match, files missing or not listed.
    pub mismatches: Vec<String>,
    /// Text that looks like a password, token or private key: (file, what).
    pub suspicious: Vec<(String, String)>,
}

impl Verdict {
    pub fn clean(&self) -> bool {
        self.mismatches.is_empty() && self.suspicious.is_empty()
    }
}

/// Reads every entry, bounded; an error means the zip cannot be trusted at all.
pub fn read_entries(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    use anyhow::{Context, bail};
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let file = std::fs::File::open(path)?;
    let mut zip = zip::ZipArchive::new(file).with_context(|| format!("{} is not a readable zip", path.display()))?;
    if zip.len() > MAX_ENTRIES {
        bail!("{} entries; a bundle has at most {MAX_ENTRIES}", zip.len());
    }
    let mut out = BTreeMap::new();
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut f = zip.by_index(i)?;
        let name = f.name()?.to_string();
        if f.enclosed_name().is_none() || name.split(['/', '\\']).any(|c| c == "..") || name.starts_with('/') {
            bail!("entry `{}` points outside the bundle", crate::input::shorten(&name, 100));
        }
        if f.is_dir() {
            continue;
        }
        if f.size() > MAX_FILE || f.size() > MAX_RATIO * f.compressed_size().max(1024) {
            bail!("entry `{name}` would inflate to {} bytes: refused (a zip bomb?)", f.size());
        }
        let mut bytes = Vec::new();
        (&mut f).take(MAX_FILE + 1).read_to_end(&mut bytes).with_context(|| format!("reading `{name}`"))?;
        total += bytes.len() as u64;
        if bytes.len() as u64 > MAX_FILE || total > MAX_TOTAL {
            bail!("the bundle inflates past {MAX_TOTAL} bytes: refused");
        }
        out.insert(name, bytes);
    }
    Ok(out)
}

pub fn verify(path: &Path) -> anyhow::Result<Verdict> {
    check(&read_entries(path)?)
}

/// The manifest against the entries, and a scan of each for secrets.
pub fn check(entries: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<Verdict> {
    let mut v = Verdict { files: entries.len(), ..Default::default() };
    let manifest: serde_json::Value = match entries.get("manifest.json").map(|b| serde_json::from_slice(b)) {
        Some(Ok(m)) => m,
        Some(Err(e)) => anyhow::bail!("manifest.json is not JSON: {e}"),
        None => anyhow::bail!("no manifest.json: not a milink bundle"),
    };
    let listed = manifest["files"].as_array().cloned().unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    for f in &listed {
        let name = f["path"].as_str().unwrap_or_default().to_string();
        seen.insert(name.clone());
        match entries.get(&name) {
            None => v.mismatches.push(format!("{name}: in the manifest, not in the zip")),
            Some(b) => {
                if f["size"].as_u64() != Some(b.len() as u64) {
                    v.mismatches.push(format!("{name}: size {} (manifest says {})", b.len(), f["size"]));
                }
                if f["sha256"].as_str() != Some(&super::sha256(b)) {
                    v.mismatches.push(format!("{name}: SHA-256 differs from the manifest"));
                }
            }
        }
    }
    for (name, bytes) in entries {
        if name != "manifest.json" && !seen.contains(name) {
            v.mismatches.push(format!("{name}: in the zip, not in the manifest"));
        }
        for what in secrets_in(&String::from_utf8_lossy(bytes)) {
            v.suspicious.push((name.clone(), what));
        }
    }
    Ok(v)
}

/// What in `text` looks like a secret (placeholders such as `N'<password>'` do not).
pub fn secrets_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    if text.contains("PRIVATE KEY-----") {
        found.push("a PEM private key".into());
    }
    let lower = text.to_ascii_lowercase();
    for key in ["password", "pwd", "secret", "token", "accountkey", "sharedaccesssignature"] {
        let mut at = 0;
        while let Some(i) = lower[at..].find(key) {
            let after = &text[at + i + key.len()..];
            let value = after.trim_start_matches(['"', '\'', ' ']);
            if let Some(rest) = value.strip_prefix(['=', ':']) {
                let rest = rest.trim_start_matches([' ', '"', '\'']).trim_start_matches("N'");
                let v: String = rest.chars().take_while(|c| !c.is_whitespace() && !"\"',;)}".contains(*c)).collect();
                let placeholder = v.is_empty()
                    || v.starts_with('<')
                    || v == "null"
                    || v.starts_with("[redacted")
                    || v.starts_with('{');
                if !placeholder && v.len() >= 4 {
                    found.push(format!("a value after `{key}`"));
                }
            }
            at += i + key.len();
        }
    }
    // A JWT: three base64url parts, the first a JSON header.
    for (i, _) in text.match_indices("eyJ") {
        let t: String = text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).collect();
        if t.split('.').count() == 3 && t.len() > 40 {
            found.push("a JSON Web Token".into());
        }
    }
    if text.contains("Bearer ey") {
        found.push("a bearer token".into());
    }
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_seen_and_placeholders_are_not() {
        assert!(secrets_in("ENCRYPTION BY PASSWORD = N'<password>'").is_empty());
        assert!(secrets_in(r#""password": null"#).is_empty());
        assert_eq!(secrets_in("Password=Hunter2Hunter2;"), ["a value after `password`"]);
        assert_eq!(secrets_in(r#"{"sql_password": "Canary-123"}"#), ["a value after `password`"]);
        assert!(secrets_in("-----BEGIN PRIVATE KEY-----").contains(&"a PEM private key".to_string()));
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert!(secrets_in(jwt).contains(&"a JSON Web Token".to_string()));
    }
}
