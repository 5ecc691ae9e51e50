//! `--redact identities`: host names, addresses, logins, server names and Azure
//! IDs replaced by stable aliases (`host-1`, `address-2`…) in every file, the
//! same value by the same alias everywhere, so the diagnosis still reads.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Value, json};

use crate::checks::collect::{Evidence, Resolution, Sql};
use crate::probe::sql::Fields;
use crate::profile::Profile;

#[derive(Default)]
pub struct Aliases {
    /// original → alias; hosts and server names match whatever their case.
    map: BTreeMap<String, (String, bool)>,
    counts: BTreeMap<&'static str, usize>,
}

impl Aliases {
    fn add(&mut self, kind: &'static str, value: &str, any_case: bool) {
        let v = value.trim();
        if v.len() < 3 || self.map.keys().any(|k| k.eq_ignore_ascii_case(v)) {
            return;
        }
        let n = self.counts.entry(kind).or_default();
        *n += 1;
        self.map.insert(v.to_string(), (format!("{kind}-{n}"), any_case));
    }

    fn host(&mut self, h: &str) {
        match h.parse::<IpAddr>() {
            Ok(ip) => self.add("address", &ip.to_string(), false),
            Err(_) => self.add("host", h, true),
        }
    }

    fn resolution(&mut self, r: &Resolution) {
        self.host(&r.name);
        let answers = r.os.iter().chain(r.servers.iter().map(|(_, a)| a));
        for ip in answers.flat_map(|a| a.addresses().to_vec()).chain(r.chosen) {
            self.add("address", &ip.to_string(), false);
        }
        for (server, _) in &r.servers {
            self.add("address", &server.ip().to_string(), false);
        }
    }

    /// Everything in the run that names a machine, a person or a subscription.
    pub fn gather(p: &Profile, ev: &Evidence) -> Aliases {
        let mut a = Aliases::default();
        a.host(&p.sql_server.host);
        a.host(&p.managed_instance.fqdn);
        if let Some(h) = &p.sql_server.endpoint_host {
            a.host(h);
        }
        for ip in [p.sql_server.address, p.managed_instance.address].into_iter().flatten() {
            a.add("address", &ip.to_string(), false);
        }
        for r in [Some(&ev.sql_name), Some(&ev.mi_name), ev.endpoint_name.as_ref(), ev.mi_public_name.as_ref()]
            .into_iter()
            .flatten()
        {
            a.resolution(r);
        }
        for (_, pr) in &ev.probes {
            if let Some(pr) = pr {
                a.add("address", &pr.addr.ip().to_string(), false);
            }
        }
        for u in [&p.sql_server.user, &p.managed_instance.user].into_iter().flatten() {
            a.add("login", u, true);
        }
        for side in [&ev.sql, &ev.mi] {
            if let Sql::Failed(e) = &side.sql
                && let Some((host, ..)) = &e.routed_to
            {
                a.host(host);
            }
            let Sql::Facts(f) = &side.sql else { continue };
            if let Some((host, _)) = &f.routed_to {
                a.host(host);
            }
            if let Some(r) = f.first("props") {
                a.add("server", r.str("server_name").unwrap_or(""), true);
            }
            for r in f.rows("link_replicas").and_then(|r| r.as_ref().ok()).into_iter().flatten() {
                a.add("server", r.str("replica_server_name").unwrap_or(""), true);
                if let Some(url) = r.str("endpoint_url") {
                    a.host(&crate::audit::read::url_host(url));
                }
            }
        }
        for (kind, v) in [
            ("subscription", &p.arm.subscription_id),
            ("resource-group", &p.arm.resource_group),
            ("instance", &p.arm.managed_instance),
        ] {
            if let Some(v) = v {
                a.add(kind, v, true);
            }
        }
        a
    }

    /// Every alias put in, longest original first (so a longer name is never
    /// cut by a shorter one it contains); a match must not be part of a longer word.
    pub fn apply(&self, bytes: &[u8]) -> Vec<u8> {
        let mut text = hide_blobs(&String::from_utf8_lossy(bytes));
        let mut keys: Vec<&String> = self.map.keys().collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
        for k in keys {
            let (alias, any_case) = &self.map[k];
            text = replace_word(&text, k, alias, *any_case, alias.starts_with("login-"));
        }
        text.into_bytes()
    }

    /// alias → original, for the file beside the zip.
    pub fn to_json(&self) -> Value {
        let m: BTreeMap<&str, &str> = self.map.iter().map(|(k, (alias, _))| (alias.as_str(), k.as_str())).collect();
        json!({ "note": "the originals behind the aliases in the bundle; keep this file out of the ticket", "aliases": m })
    }
}

/// A login may be an everyday word (`milink_version` must stay a key); a host
/// or server name inside `Cert_SQLPROD01_endpoint` is still that name.
fn word_char(c: Option<char>, underscore: bool) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric() || (underscore && c == '_'))
}

fn replace_word(text: &str, from: &str, to: &str, any_case: bool, underscore: bool) -> String {
    let hay = if any_case { text.to_ascii_lowercase() } else { text.to_string() };
    let needle = if any_case { from.to_ascii_lowercase() } else { from.to_string() };
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut at = 0;
    while let Some(i) = hay[at..].find(&needle) {
        let start = at + i;
        let end = start + needle.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        if word_char(before, underscore) || word_char(after, underscore) {
            at = start + needle.len().max(1);
            continue;
        }
        out.push_str(&text[last..start]);
        out.push_str(to);
        last = end;
        at = end;
    }
    out.push_str(&text[last..]);
    out
}

/// Certificate blobs name hosts inside their bytes: left out when redacting.
fn hide_blobs(s: &str) -> String {
    crate::tsql::map_blobs(s, 32, |hex| format!("0x…({} bytes left out: a certificate names hosts)", hex.len() / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_value_gets_the_same_alias_and_words_stay_whole() {
        let mut a = Aliases::default();
        a.add("host", "sql.contoso.local", true);
        a.add("address", "10.0.0.1", false);
        a.add("server", "SQLPROD01", true);
        a.add("login", "milink", true);
        let out = a.apply(b"SQL.contoso.local at 10.0.0.1 and 10.0.0.12; sqlprod01 != SQLPROD01X; Cert_SQLPROD01_endpoint; milink_version by milink; 0x3082AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            "host-1 at address-1 and 10.0.0.12; server-1 != SQLPROD01X; Cert_server-1_endpoint; milink_version by login-1; 0x…(22 bytes left out: a certificate names hosts)"
        );
    }
}
