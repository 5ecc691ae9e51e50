//! The journal of `milink link apply`: one JSON line per event (a step started,
//! accepted by ARM, done or failed), beside the profile. `status` reads it back;
//! a resumed `apply` finds an ARM operation still running in it.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// UTC, RFC 3339.
    pub at: String,
    pub step: String,
    /// started, accepted, done, failed, skipped
    pub event: String,
    /// The statement or request, secrets redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// An error, or the URL of an accepted long-running operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u128>,
}

pub struct Journal {
    path: PathBuf,
}

impl Journal {
    pub fn at(path: &Path) -> Journal {
        Journal { path: path.to_path_buf() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event, flushed at once: a kill right after loses nothing.
    pub fn write(
        &self,
        step: &str,
        event: &str,
        action: Option<&str>,
        detail: Option<&str>,
        ms: Option<u128>,
    ) -> std::io::Result<()> {
        let e = Entry {
            at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            step: step.into(),
            event: event.into(),
            action: action.map(str::to_string),
            detail: detail.map(str::to_string),
            ms,
        };
        let mut f = std::fs::OpenOptions::new().create(true).append(true).read(true).open(&self.path)?;
        // A line a kill cut short must not swallow this one.
        let cut = {
            use std::io::{Read, Seek, SeekFrom};
            let len = f.seek(SeekFrom::End(0))?;
            let mut last = [b'\n'];
            if len > 0 {
                f.seek(SeekFrom::End(-1))?;
                f.read_exact(&mut last)?;
            }
            last[0] != b'\n'
        };
        let line = serde_json::to_string(&e).map_err(std::io::Error::other)?;
        // One write of the whole line: links failing over side by side share the file.
        f.write_all(format!("{}{line}\n", if cut { "\n" } else { "" }).as_bytes())?;
        f.sync_data()
    }

    /// Every entry; a line cut short by a kill is skipped.
    pub fn read(&self) -> Vec<Entry> {
        std::fs::read_to_string(&self.path)
            .map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
            .unwrap_or_default()
    }

    /// The last entry for `step`.
    pub fn last(&self, step: &str) -> Option<Entry> {
        self.read().into_iter().rev().find(|e| e.step == step)
    }

    /// The operation ARM accepted for `step` that no later entry ended (a run
    /// killed while ARM worked, whatever `started` a later run wrote).
    pub fn pending_operation(&self, step: &str) -> Option<String> {
        let mut pending = None;
        for e in self.read().into_iter().filter(|e| e.step == step) {
            match e.event.as_str() {
                "accepted" => pending = e.detail,
                "done" | "failed" | "stopped" => pending = None,
                _ => {}
            }
        }
        pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_line_is_skipped_and_pending_operations_found() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::at(&dir.path().join("j.jsonl"));
        j.write("mi-link:SalesDB", "started", Some("PUT x"), None, None).unwrap();
        j.write("mi-link:SalesDB", "accepted", None, Some("https://arm/op/1"), None).unwrap();
        std::fs::OpenOptions::new().append(true).open(j.path()).unwrap().write_all(b"{\"at\": \"cut sh").unwrap();
        assert_eq!(j.read().len(), 2);
        assert_eq!(j.pending_operation("mi-link:SalesDB").as_deref(), Some("https://arm/op/1"));
        // A resumed run writes `started` first: the operation is still the one to follow.
        j.write("mi-link:SalesDB", "started", Some("PUT x"), None, None).unwrap();
        assert_eq!(j.pending_operation("mi-link:SalesDB").as_deref(), Some("https://arm/op/1"));
        j.write("mi-link:SalesDB", "done", None, None, Some(3)).unwrap();
        assert_eq!(j.pending_operation("mi-link:SalesDB"), None);
    }
}
