//! What changed between two polls, as events: one per side and kind whose
//! value changed. The first poll gives each kind's starting value (`from` is
//! empty), so the history starts with the whole picture.

use serde::{Deserialize, Serialize};

use super::poll::{LinkState, SideState, Snapshot};
use crate::checks::{LOG_FILLING_PERCENT, LOG_FULL_PERCENT};
use crate::diagnose::{LAG_FAIL_S, LAG_WARN_S, QUEUE_FAIL_KB, QUEUE_WARN_KB};
use crate::profile::Thresholds;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339, UTC, fixed width (see `stamp`).
    pub at: String,
    /// `sql_server`, `managed_instance` or `link`.
    pub side: String,
    /// `reachable`, `connected`, `role`, `health`, `last_connect_error`, `queue`,
    /// `lag`, `seeding`, `certificate`, `log_space`, `split_brain`, `root_cause`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub from: Option<String>,
    pub to: String,
    /// `ok`, `warn` or `fail`: how the new value reads.
    pub severity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A fixed-width UTC time (`2026-11-23T16:40:02.123Z`): it sorts as text.
pub fn stamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"))
        .unwrap_or_default()
}

/// One side's values that events follow: (kind, subject, value, severity, detail).
type Value = (&'static str, Option<String>, String, &'static str, Option<String>);

fn values(s: &SideState, t: &Thresholds, now: i64) -> Vec<Value> {
    let mut v: Vec<Value> = Vec::new();
    // Each link's own values, named by its distributed AG.
    for (dag, l) in &s.links {
        link_values(dag, l, &mut v);
    }
    if let Some(f) = &s.seeding_failure {
        v.push(("seeding", None, "failed".into(), "fail", Some(f.clone())));
    }
    for (name, not_after) in &s.certificates {
        let (secs, days) = (not_after - now, (not_after - now) / 86_400);
        let (value, sev) = match days {
            _ if secs < 0 => ("expired", "fail"),
            d if d < t.crit_days => ("expires within the critical days", "fail"),
            d if d < t.warn_days => ("expires within the warning days", "warn"),
            _ => ("valid", "ok"),
        };
        let n = |d: i64| if d == 1 { "1 day".to_string() } else { format!("{d} days") };
        let detail = if secs < 0 { format!("expired {} ago", n(-days)) } else { format!("{} left", n(days)) };
        v.push(("certificate", Some(name.clone()), value.into(), sev, Some(detail)));
    }
    for (db, used) in &s.log_used {
        let (value, sev) = match used {
            u if *u >= LOG_FULL_PERCENT => ("nearly full", "fail"),
            u if *u >= LOG_FILLING_PERCENT => ("filling", "warn"),
            _ => ("room", "ok"),
        };
        v.push(("log_space", Some(db.clone()), value.into(), sev, Some(format!("{used:.0}% used"))));
    }
    v
}

fn link_values(dag: &str, l: &LinkState, v: &mut Vec<Value>) {
    let subject = || Some(dag.to_string());
    if let Some(c) = &l.connected {
        v.push(("connected", subject(), c.clone(), if c == "CONNECTED" { "ok" } else { "fail" }, None));
    }
    if let Some(r) = &l.role {
        v.push(("role", subject(), r.clone(), "ok", None));
    }
    if let Some(h) = &l.health {
        let sev = match h.as_str() {
            "HEALTHY" => "ok",
            "PARTIALLY_HEALTHY" => "warn",
            _ => "fail",
        };
        v.push(("health", subject(), h.clone(), sev, None));
    }
    if let Some(e) = &l.last_error {
        let value = format!("{} at {}", e.number, e.timestamp);
        v.push(("last_connect_error", subject(), value, "fail", Some(e.description.clone())));
    }
    let level = |x: i64, warn: i64, fail: i64| match x {
        x if x >= fail => ("far behind", "fail"),
        x if x >= warn => ("behind", "warn"),
        _ => ("keeping up", "ok"),
    };
    // Queues and lag only mean something where the link has a replica.
    if l.role.is_some() {
        let queue = l.send_queue_kb.max(l.redo_queue_kb);
        let (q, qs) = level(queue, QUEUE_WARN_KB, QUEUE_FAIL_KB);
        let detail = format!("send queue {} KB, redo queue {} KB", l.send_queue_kb, l.redo_queue_kb);
        v.push(("queue", subject(), q.into(), qs, Some(detail)));
        let (lg, ls) = level(l.lag_s, LAG_WARN_S, LAG_FAIL_S);
        v.push(("lag", subject(), lg.into(), ls, Some(format!("{} s behind", l.lag_s))));
    }
}

/// Both sides PRIMARY of the distributed AG: a split brain.
fn split_brain(s: &Snapshot) -> Option<bool> {
    let mut any = None;
    for (dag, a) in &s.sql_server.links {
        if let (Some(a), Some(b)) = (&a.role, s.managed_instance.links.get(dag).and_then(|l| l.role.as_ref())) {
            any = Some(any.unwrap_or(false) || (a == "PRIMARY" && b == "PRIMARY"));
        }
    }
    any
}

/// Follows the polls: each side's last values seen while it answered, so a
/// side that comes back is compared with how it was before it went away.
#[derive(Default)]
pub struct Tracker {
    seen: [Option<Vec<Value>>; 2],
    reachable: [Option<bool>; 2],
    split: Option<bool>,
}

impl Tracker {
    /// The events from the previous poll to `now`.
    pub fn update(&mut self, now: &Snapshot, t: &Thresholds) -> Vec<Event> {
        let at = stamp(now.at);
        let unix = now.at.unix_timestamp();
        let mut out = Vec::new();
        let event = |side: &str, kind: &str, subject, from, to, severity: &str, detail| Event {
            at: at.clone(),
            side: side.into(),
            kind: kind.into(),
            subject,
            from,
            to,
            severity: severity.into(),
            detail,
        };
        for (i, (side, state)) in now.sides().into_iter().enumerate() {
            let up = state.reachable;
            if self.reachable[i] != Some(up) {
                let from = self.reachable[i].map(|r| if r { "reachable" } else { "unreachable" }.to_string());
                let (to, sev) = if up { ("reachable", "ok") } else { ("unreachable", "fail") };
                out.push(event(side, "reachable", None, from, to.into(), sev, state.problem.clone()));
                self.reachable[i] = Some(up);
            }
            // While a side does not answer, its values are unknown, not changed.
            if !up {
                continue;
            }
            let new = values(state, t, unix);
            let old = self.seen[i].take().unwrap_or_default();
            for (kind, subject, value, severity, detail) in &new {
                let prev = old.iter().find(|o| o.0 == *kind && o.1 == *subject).map(|o| o.2.clone());
                if prev.as_ref() != Some(value) {
                    out.push(event(side, kind, subject.clone(), prev, value.clone(), severity, detail.clone()));
                }
            }
            self.seen[i] = Some(new);
        }
        let is = split_brain(now);
        if is.is_some() && is != self.split && (is == Some(true) || self.split.is_some()) {
            let name = |b: bool| if b { "both PRIMARY" } else { "one PRIMARY" }.to_string();
            let yes = is == Some(true);
            let detail = yes.then(|| "both sides are PRIMARY of the distributed AG (a forced failover?)".to_string());
            out.push(event(
                "link",
                "split_brain",
                None,
                self.split.map(name),
                name(yes),
                if yes { "fail" } else { "ok" },
                detail,
            ));
        }
        if is.is_some() {
            self.split = is;
        }
        out
    }
}

/// Whether the link went from fine to broken: the moment to diagnose.
pub fn turned_bad(events: &[Event]) -> bool {
    events.iter().any(|e| {
        (e.from.is_some() || matches!(e.kind.as_str(), "last_connect_error" | "seeding" | "split_brain"))
            && e.severity == "fail"
            && matches!(
                e.kind.as_str(),
                "connected" | "health" | "split_brain" | "reachable" | "seeding" | "last_connect_error"
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(connected: &str, role: &str) -> LinkState {
        LinkState {
            connected: Some(connected.into()),
            role: Some(role.into()),
            health: Some("HEALTHY".into()),
            ..Default::default()
        }
    }

    fn snap(connected: &str, role_mi: &str) -> Snapshot {
        let side = |role: &str| SideState {
            reachable: true,
            links: [("DAG_SalesDB".to_string(), link(connected, role))].into(),
            ..Default::default()
        };
        Snapshot { at: time::OffsetDateTime::now_utc(), sql_server: side("PRIMARY"), managed_instance: side(role_mi) }
    }

    /// Two links: one breaking is one link's events only, each naming it.
    #[test]
    fn a_broken_link_among_several_changes_alone() {
        let (t, mut k) = (Thresholds::default(), Tracker::default());
        let mut a = snap("CONNECTED", "SECONDARY");
        for side in [&mut a.sql_server, &mut a.managed_instance] {
            let role = side.links["DAG_SalesDB"].role.clone().unwrap();
            side.links.insert("DAG_HRDB".into(), link("CONNECTED", &role));
        }
        k.update(&a, &t);
        let mut b = a.clone();
        b.managed_instance.links.get_mut("DAG_HRDB").unwrap().connected = Some("DISCONNECTED".into());
        let e = k.update(&b, &t);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            (e[0].kind.as_str(), e[0].subject.as_deref(), e[0].to.as_str()),
            ("connected", Some("DAG_HRDB"), "DISCONNECTED")
        );
    }

    #[test]
    fn a_change_is_one_event_and_no_change_is_none() {
        let (t, mut k) = (Thresholds::default(), Tracker::default());
        let first = k.update(&snap("CONNECTED", "SECONDARY"), &t);
        assert!(first.iter().all(|e| e.from.is_none()) && first.iter().any(|e| e.kind == "connected"));
        assert!(k.update(&snap("CONNECTED", "SECONDARY"), &t).is_empty());
        let e = k.update(&snap("DISCONNECTED", "SECONDARY"), &t);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e.iter().all(|e| e.kind == "connected" && e.to == "DISCONNECTED" && e.severity == "fail"));
        assert!(turned_bad(&e));
        let e = k.update(&snap("DISCONNECTED", "PRIMARY"), &t);
        assert!(e.iter().any(|e| e.kind == "split_brain" && e.to == "both PRIMARY"), "{e:?}");
    }

    #[test]
    fn a_side_that_comes_back_is_compared_with_how_it_left() {
        let (t, mut k) = (Thresholds::default(), Tracker::default());
        let a = snap("CONNECTED", "SECONDARY");
        k.update(&a, &t);
        let mut gone = a.clone();
        gone.sql_server = SideState { problem: Some("login timed out".into()), ..Default::default() };
        let e = k.update(&gone, &t);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].kind.as_str(), e[0].to.as_str()), ("reachable", "unreachable"));
        let mut back = a.clone();
        back.sql_server.links.get_mut("DAG_SalesDB").unwrap().connected = Some("DISCONNECTED".into());
        let e = k.update(&back, &t);
        let kinds: Vec<_> = e.iter().map(|e| (e.kind.as_str(), e.from.as_deref(), e.to.as_str())).collect();
        assert_eq!(
            kinds,
            [("reachable", Some("unreachable"), "reachable"), ("connected", Some("CONNECTED"), "DISCONNECTED")]
        );
    }
}
