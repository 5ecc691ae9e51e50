//! Role changes of a link, as SQL Server and ARM carry them out: a planned
//! failover (the secondary has every transaction first), a forced one (the
//! secondary keeps what it hardened; the rest stays on the old primary only),
//! and a side told to be secondary again after a split brain. T-SQL and the
//! fake ARM both come here, so each shows in both sides' DMVs and in ARM.

use time::OffsetDateTime;

use super::log;
use crate::lab::state::objects::AvailabilityMode;
use crate::lab::state::{PendingBackup, SideId, World};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleError {
    NoLink,
    /// Automatic seeding has not finished (ARM: OperationCanNotStartDueToMiLink).
    Seeding,
    NotConnected,
    /// Planned failover over T-SQL needs synchronous commit.
    NotSynchronousCommit,
    /// The secondary lacks this many transactions.
    Behind(u64),
    /// The side is in that role already.
    AlreadyIn(&'static str),
    /// Both sides are PRIMARY: only a forced role change helps.
    SplitBrain,
}

/// How a planned failover may start: ARM switches to synchronous commit and
/// waits for the secondary itself; `ALTER AVAILABILITY GROUP … FAILOVER`
/// needs the link synchronized already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planned {
    CatchUp,
    AlreadySynchronized,
}

/// Whether a planned failover to `to` could start now.
pub fn can_fail_over(w: &World, dag: &str, to: SideId, how: Planned) -> Result<(), RoleError> {
    let l = w.link(dag).ok_or(RoleError::NoLink)?;
    let st = &l.status;
    if st.split_brain() {
        return Err(RoleError::SplitBrain);
    }
    if st.role(to) == "PRIMARY" {
        return Err(RoleError::AlreadyIn("PRIMARY"));
    }
    if !st.seeded() {
        return Err(RoleError::Seeding);
    }
    if !st.connected {
        return Err(RoleError::NotConnected);
    }
    if how == Planned::AlreadySynchronized {
        if !log::synchronous(w, l) {
            return Err(RoleError::NotSynchronousCommit);
        }
        let behind = st.log.of(to.other()).saturating_sub(st.log.of(to));
        if behind > 0 {
            return Err(RoleError::Behind(behind));
        }
    }
    Ok(())
}

/// A planned failover to `to`: nothing is lost, the roles swap, and the link
/// goes back to asynchronous commit (as the service does after a planned failover).
pub fn planned(w: &mut World, dag: &str, to: SideId, how: Planned, now: OffsetDateTime) -> Result<(), RoleError> {
    can_fail_over(w, dag, to, how)?;
    let database = {
        let l = w.links.iter_mut().find(|l| l.dag.eq_ignore_ascii_case(dag)).ok_or(RoleError::NoLink)?;
        let from = to.other();
        let (n, at) = (l.status.log.of(from), l.status.log.committed(from));
        match at {
            Some(at) => l.status.log.commit(to, n, at),
            None => l.status.log.set(to, n),
        }
        l.status.set_role(to, "PRIMARY");
        l.status.set_role(from, "SECONDARY");
        l.status.failing_over = false;
        l.status.log_send_queue_kb = 0;
        l.status.lag_seconds = 0;
        l.writer = to;
        l.history.clear();
        l.database.clone()
    };
    set_mode(w, dag, SideId::Sql, AvailabilityMode::Asynchronous);
    set_mode(w, dag, SideId::Mi, AvailabilityMode::Asynchronous);
    became_primary(w, to, &database, now);
    w.mutated(to, "FAILOVER (planned)", dag);
    Ok(())
}

/// A forced failover to `to` (FORCE_FAILOVER_ALLOW_DATA_LOSS): it keeps what
/// it hardened; the old primary keeps its role until told otherwise.
pub fn forced(w: &mut World, dag: &str, to: SideId, now: OffsetDateTime) -> Result<(), RoleError> {
    let database = {
        let l = w.links.iter_mut().find(|l| l.dag.eq_ignore_ascii_case(dag)).ok_or(RoleError::NoLink)?;
        if l.status.role(to) == "PRIMARY" {
            return Err(RoleError::AlreadyIn("PRIMARY"));
        }
        l.status.set_role(to, "PRIMARY");
        l.status.failing_over = false;
        l.status.connected = false;
        l.status.health = "NOT_HEALTHY".into();
        l.status.sync_state = "NOT SYNCHRONIZING".into();
        l.writer = to;
        l.history.clear();
        l.database.clone()
    };
    became_primary(w, to, &database, now);
    w.mutated(to, "FAILOVER (forced, data loss allowed)", dag);
    Ok(())
}

/// `SET (ROLE = SECONDARY)` on `side` after a split brain: its copy goes back
/// to what the primary has (its own later transactions leave the database;
/// a tail-log backup taken before keeps them), and the link can connect again.
pub fn set_secondary(w: &mut World, dag: &str, side: SideId) -> Result<(), RoleError> {
    let l = w.links.iter_mut().find(|l| l.dag.eq_ignore_ascii_case(dag)).ok_or(RoleError::NoLink)?;
    if l.status.role(side) != "PRIMARY" {
        return Err(RoleError::AlreadyIn("SECONDARY"));
    }
    l.status.set_role(side, "SECONDARY");
    l.status.failing_over = false;
    if l.status.role(side.other()) == "PRIMARY" {
        let other = side.other();
        let (n, at) = (l.status.log.of(other), l.status.log.committed(other));
        match at {
            Some(at) => l.status.log.commit(side, n, at),
            None => l.status.log.set(side, n),
        }
        l.writer = other;
    }
    l.since = None;
    l.history.clear();
    w.mutated(side, "SET (ROLE = SECONDARY)", dag);
    Ok(())
}

/// Every member of `side`'s half of the distributed AG in `mode`; ARM's
/// `replicationMode` follows the managed instance's half.
pub fn set_mode(w: &mut World, dag: &str, side: SideId, mode: AvailabilityMode) {
    if let Some(ag) = w.server_mut(side).ags.iter_mut().find(|a| a.distributed && a.name.eq_ignore_ascii_case(dag)) {
        for r in &mut ag.replicas {
            r.mode = mode;
        }
    }
    if side == SideId::Mi
        && let Some(d) = w.arm.dags.iter_mut().find(|d| d.name.eq_ignore_ascii_case(dag))
    {
        d.replication_mode = if mode == AvailabilityMode::Synchronous { "Sync" } else { "Async" }.into();
    }
}

/// A managed instance backs up a database it is now primary for, a little later.
fn became_primary(w: &mut World, side: SideId, database: &str, now: OffsetDateTime) {
    if side == SideId::Mi {
        let after = time::Duration::try_from(w.replication.first_backup_after).unwrap_or_default();
        w.pending_backups.push(PendingBackup { side, database: database.into(), due: now + after });
    }
}
