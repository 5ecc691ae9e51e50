//! The watch history: every poll's key values and every event, in SQLite
//! (WAL). Each poll is one transaction, so a watch killed mid-write leaves the
//! file as it was after the last whole poll.

use std::path::Path;

use anyhow::Context;
use rusqlite::{Connection, params};

use super::events::Event;
use super::poll::Snapshot;

pub struct History {
    db: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS polls (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    side TEXT NOT NULL,
    reachable INTEGER NOT NULL,
    connected TEXT,
    role TEXT,
    health TEXT,
    send_queue_kb INTEGER NOT NULL,
    redo_queue_kb INTEGER NOT NULL,
    lag_s INTEGER NOT NULL,
    last_error INTEGER,
    poll_ms REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    side TEXT NOT NULL,
    kind TEXT NOT NULL,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_at ON events (at);
CREATE INDEX IF NOT EXISTS polls_at ON polls (at);
";

impl History {
    pub fn open(path: &Path) -> anyhow::Result<History> {
        let db = Connection::open(path).with_context(|| format!("opening the history {}", path.display()))?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL: readers (`milink history`) never block the watch, and a crash
        // loses at most the transaction in flight.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.execute_batch(SCHEMA).with_context(|| format!("{} is not a milink history", path.display()))?;
        Ok(History { db })
    }

    /// One poll and its events, together or not at all.
    pub fn record(&mut self, s: &Snapshot, events: &[Event]) -> anyhow::Result<()> {
        let at = super::events::stamp(s.at);
        let tx = self.db.transaction()?;
        {
            let mut poll = tx.prepare_cached(
                "INSERT INTO polls (at, side, reachable, connected, role, health, send_queue_kb, redo_queue_kb, lag_s, last_error, poll_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for (side, st) in s.sides() {
                poll.execute(params![
                    at,
                    side,
                    st.reachable,
                    st.worst.connected,
                    st.worst.role,
                    st.worst.health,
                    st.worst.send_queue_kb,
                    st.worst.redo_queue_kb,
                    st.worst.lag_s,
                    st.worst.last_error.as_ref().map(|e| e.number),
                    st.poll_ms
                ])?;
            }
            let mut event = tx.prepare_cached("INSERT INTO events (at, side, kind, json) VALUES (?1, ?2, ?3, ?4)")?;
            for e in events {
                event.execute(params![e.at, e.side, e.kind, serde_json::to_string(e)?])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Events outside a poll (a diagnosis that came back).
    pub fn record_events(&mut self, events: &[Event]) -> anyhow::Result<()> {
        let tx = self.db.transaction()?;
        for e in events {
            tx.execute(
                "INSERT INTO events (at, side, kind, json) VALUES (?1, ?2, ?3, ?4)",
                params![e.at, e.side, e.kind, serde_json::to_string(e)?],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Events at or after `since` (a `stamp`), oldest first.
    pub fn events_since(&self, since: &str) -> anyhow::Result<Vec<Event>> {
        let mut q = self.db.prepare("SELECT json FROM events WHERE at >= ?1 ORDER BY id")?;
        let rows = q.query_map([since], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for json in rows {
            out.push(serde_json::from_str(&json?).context("an event in the history is not readable")?);
        }
        Ok(out)
    }

    /// How many polls the history holds (per side).
    pub fn polls(&self) -> anyhow::Result<i64> {
        Ok(self.db.query_row("SELECT COUNT(*) FROM polls WHERE side = 'sql_server'", [], |r| r.get(0))?)
    }
}
