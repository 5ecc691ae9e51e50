//! The link databases' logs. The application's writes land on the side it
//! points at while that side is PRIMARY; the secondary hardens them at once in
//! synchronous commit and a moment later in asynchronous commit, only while the
//! link is connected and seeded; and a managed instance that became primary
//! takes its first full backup a little later.

use std::time::Duration;

use time::OffsetDateTime;

use crate::lab::state::objects::AvailabilityMode;
use crate::lab::state::{BackupSet, Link, SideId, Workload, World};

/// What one transaction adds to a send queue.
const KB_PER_TRANSACTION: i64 = 4;

/// Moves every live link's logs forward to `now`; true when anything shown changed.
pub fn advance(w: &mut World, now: OffsetDateTime) -> bool {
    let writes = writes(&mut w.workload, now);
    let lag = w.replication.async_lag;
    let sync: Vec<bool> = w.links.iter().map(|l| synchronous(w, l)).collect();
    let mut changed = false;
    for (l, sync) in w.links.iter_mut().zip(sync).filter(|(l, _)| !l.pinned) {
        if writes > 0 && l.status.role(l.writer) == "PRIMARY" {
            let n = l.status.log.of(l.writer) + writes;
            l.status.log.commit(l.writer, n, now);
            changed = true;
        }
        remember(l, now, lag);
        changed |= harden(l, sync, lag, now);
    }
    changed | take_due_backups(w, now)
}

/// Whether anything still moves on its own: writes, or a secondary catching up.
pub fn moving(w: &World, now: OffsetDateTime) -> bool {
    w.workload.writing(now)
        || !w.pending_backups.is_empty()
        || w.links.iter().filter(|l| !l.pinned).any(|l| {
            l.status.connected && l.status.primary().is_some_and(|p| l.status.log.of(p) != l.status.log.of(p.other()))
        })
}

/// Whole transactions the application wrote since it was last counted.
fn writes(load: &mut Workload, now: OffsetDateTime) -> u64 {
    let end = load.stop_at.map_or(now, |t| t.min(now));
    let secs = (end - load.counted_to).as_seconds_f64().max(0.0);
    load.counted_to = now.max(load.counted_to);
    if load.tps <= 0.0 || secs <= 0.0 {
        return 0;
    }
    let x = load.tps * secs + load.carry;
    load.carry = x.fract();
    x.trunc() as u64
}

/// The primary's log over the last moments, so an asynchronous secondary can
/// harden what the primary had `lag` ago.
fn remember(l: &mut Link, now: OffsetDateTime, lag: Duration) {
    let Some(p) = l.status.primary() else {
        l.history.clear();
        return;
    };
    let n = l.status.log.of(p);
    if l.history.back().is_none_or(|(_, x)| *x != n) {
        l.history.push_back((now, n));
    }
    let keep = time::Duration::try_from(lag * 2).unwrap_or(time::Duration::SECOND);
    while l.history.len() > 1 && now - l.history[1].0 > keep {
        l.history.pop_front();
    }
}

/// The secondary hardens what it can; the queue and lag follow.
fn harden(l: &mut Link, sync: bool, lag: Duration, now: OffsetDateTime) -> bool {
    let st = &mut l.status;
    let Some(p) = st.primary() else { return false };
    if !st.connected || !st.seeded() {
        return false;
    }
    let s = p.other();
    let before = st.clone();
    let primary = st.log.of(p);
    let target = if sync {
        primary
    } else {
        let as_of = now - time::Duration::try_from(lag).unwrap_or_default();
        l.history.iter().rev().find(|(t, _)| *t <= as_of).map_or(st.log.of(s), |(_, n)| *n)
    };
    if target > st.log.of(s) {
        match st.log.committed(p) {
            Some(at) => st.log.commit(s, target, at),
            None => st.log.set(s, target),
        }
    }
    let behind = primary.saturating_sub(st.log.of(s));
    st.log_send_queue_kb = behind as i64 * KB_PER_TRANSACTION;
    st.lag_seconds = match l.history.iter().find(|(_, n)| *n > st.log.of(s)) {
        Some((since, _)) => (now - *since).whole_seconds().max(0),
        None => 0,
    };
    st.sync_state = sync_state(sync, behind).into();
    *st != before
}

pub fn sync_state(sync: bool, behind: u64) -> &'static str {
    if sync && behind == 0 { "SYNCHRONIZED" } else { "SYNCHRONIZING" }
}

/// Whether the primary's half commits synchronously: every member of its
/// distributed AG in SYNCHRONOUS_COMMIT.
pub fn synchronous(w: &World, l: &Link) -> bool {
    let side = l.status.primary().unwrap_or(SideId::Sql);
    w.server(side)
        .ag(&l.dag)
        .filter(|a| a.distributed && !a.replicas.is_empty())
        .is_some_and(|a| a.replicas.iter().all(|r| r.mode == AvailabilityMode::Synchronous))
}

/// Automated backups that came due: a full backup of the database, as far as its log is.
fn take_due_backups(w: &mut World, now: OffsetDateTime) -> bool {
    let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut w.pending_backups).into_iter().partition(|b| b.due <= now);
    w.pending_backups = later;
    for b in &due {
        let n = w
            .links
            .iter()
            .find(|l| l.database.eq_ignore_ascii_case(&b.database))
            .map(|l| l.status.log.of(b.side))
            .unwrap_or(0);
        w.server_mut(b.side).backups.push(BackupSet {
            database: b.database.clone(),
            kind: 'D',
            copy_only: false,
            finished: now,
            first: n,
            last: n,
            device: None,
        });
    }
    !due.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workload_writes_whole_transactions_until_it_stops() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut w = Workload { tps: 10.0, stop_at: Some(t0 + time::Duration::seconds(2)), counted_to: t0, carry: 0.0 };
        assert_eq!(writes(&mut w, t0 + time::Duration::milliseconds(250)), 2);
        assert_eq!(writes(&mut w, t0 + time::Duration::milliseconds(500)), 3, "the half carries over");
        assert_eq!(writes(&mut w, t0 + time::Duration::seconds(5)), 15, "nothing after it stops");
        assert_eq!(writes(&mut w, t0 + time::Duration::seconds(6)), 0);
    }
}
