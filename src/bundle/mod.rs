//! `milink bundle`: one zip for a support ticket — the diagnosis as JSON,
//! Markdown and an HTML page with a picture of the link, the raw evidence
//! behind it, the environment and a manifest of SHA-256 hashes. Secrets never
//! enter it; `--redact identities` also replaces names, addresses and logins
//! with stable aliases (the map is written beside the zip, not in it).

mod evidence;
mod html;
pub mod redact;
pub mod replay;
pub mod verify;

use std::io::Write;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::checks::collect;
use crate::diagnose::{self, Diagnosis};
use crate::profile::Profile;

/// One file of the bundle: its path inside the zip and its bytes.
pub struct Entry {
    pub path: String,
    pub bytes: Vec<u8>,
}

pub struct Bundle {
    pub entries: Vec<Entry>,
    pub diagnosis: Diagnosis,
    /// With `--redact identities`: alias → original, for the file beside the zip.
    pub aliases: Option<serde_json::Value>,
}

pub struct Options {
    pub redact_identities: bool,
    /// A watch history: its last day of events go in (`evidence/history.json`
    /// and the page's timeline).
    pub history: Option<std::path::PathBuf>,
    /// The command line as typed (secrets never come from it; flags are kept).
    pub command_line: Vec<String>,
}

/// Gathers the evidence once, diagnoses it, and lays out every file.
pub async fn build(p: &Profile, o: &Options) -> Bundle {
    let started = std::time::Instant::now();
    let now = time::OffsetDateTime::now_utc();
    let ev = collect::collect(p).await;
    let diagnosis = diagnose::evaluate(&ev, p);
    let history = o.history.as_deref().map(watch_history).unwrap_or_default();
    let mut entries = vec![
        text("report.json", serde_json::to_string_pretty(&diagnosis).expect("a diagnosis serialises")),
        text("report.md", crate::report::markdown(&diagnosis.report, Some(&diagnosis.root_cause_markdown()))),
        text("report.html", html::page(&diagnosis, p, &history)),
    ];
    if !history.is_empty() {
        entries.push(text("evidence/history.json", serde_json::to_string_pretty(&history).expect("json")));
    }
    entries.extend(evidence::files(&ev, p, !o.redact_identities));
    entries.push(text(
        "environment.json",
        serde_json::to_string_pretty(&json!({
            "milink_version": env!("CARGO_PKG_VERSION"),
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "time_utc": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "time_zone": std::env::var("TZ").unwrap_or_else(|_| "UTC offset unknown (TZ not set)".into()),
            "duration_ms": started.elapsed().as_millis() as u64,
            "command_line": o.command_line,
            "redacted_identities": o.redact_identities,
        }))
        .expect("json"),
    ));
    let aliases = if o.redact_identities {
        let map = redact::Aliases::gather(p, &ev);
        for e in &mut entries {
            e.bytes = map.apply(&e.bytes);
        }
        Some(map.to_json())
    } else {
        None
    };
    entries.push(manifest(&entries));
    Bundle { entries, diagnosis, aliases }
}

/// The last day of a watch history's events (none when it cannot be read).
fn watch_history(path: &Path) -> Vec<crate::watch::events::Event> {
    let since = crate::watch::events::stamp(time::OffsetDateTime::now_utc() - time::Duration::days(1));
    match crate::watch::history::History::open(path).and_then(|h| h.events_since(&since)) {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(error = %e, "the watch history is left out");
            Vec::new()
        }
    }
}

fn text(path: &str, s: String) -> Entry {
    Entry { path: path.into(), bytes: s.into_bytes() }
}

pub fn sha256(b: &[u8]) -> String {
    crate::tsql::hex(&Sha256::digest(b)).to_ascii_lowercase()
}

/// Every other file with its size and SHA-256.
fn manifest(entries: &[Entry]) -> Entry {
    let files: Vec<_> =
        entries.iter().map(|e| json!({ "path": e.path, "size": e.bytes.len(), "sha256": sha256(&e.bytes) })).collect();
    text("manifest.json", serde_json::to_string_pretty(&json!({ "files": files })).expect("json"))
}

/// Writes the zip (deflate, UTF-8 names), and the alias map beside it.
pub fn write(b: &Bundle, path: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let now = time::OffsetDateTime::now_utc();
    let stamp = zip::DateTime::from_date_and_time(
        now.year().clamp(1980, 2107) as u16,
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
    )
    .unwrap_or_default();
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644)
        .last_modified_time(stamp);
    for e in &b.entries {
        zip.start_file(e.path.as_str(), options)?;
        zip.write_all(&e.bytes)?;
    }
    zip.finish()?;
    if let Some(a) = &b.aliases {
        let beside = aliases_path(path);
        std::fs::write(&beside, serde_json::to_string_pretty(a)?)
            .with_context(|| format!("writing {}", beside.display()))?;
    }
    Ok(())
}

/// `case.zip` → `case.aliases.json`.
pub fn aliases_path(zip: &Path) -> std::path::PathBuf {
    zip.with_extension("aliases.json")
}

/// `milink-<link>-<UTC time>.zip`.
pub fn default_name(p: &Profile) -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp =
        now.format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z")).unwrap_or_default();
    let link: String =
        p.link.dag.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    format!("milink-{link}-{stamp}.zip")
}
