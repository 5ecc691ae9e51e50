//! What a command of the link's life did, per link: the roles, commit modes
//! and hardened LSNs before and after, the steps it ran, what a forced
//! failover may have lost; as a table, JSON or Markdown.

use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

use super::Side;
use super::view::View;

/// The link's state at one moment, as both sides and ARM show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    pub sql_server_role: Option<String>,
    pub managed_instance_role: Option<String>,
    pub connected: Option<bool>,
    /// SQL Server's members of the distributed AG (availability_mode_desc).
    pub sql_server_mode: String,
    /// ARM's `replicationMode` of the instance's half.
    pub managed_instance_mode: Option<String>,
    pub sql_server_hardened_lsn: Option<String>,
    pub managed_instance_hardened_lsn: Option<String>,
    pub hybrid_secondary_usage: Option<String>,
    /// The distributed AG still exists somewhere.
    pub link_exists: bool,
}

impl Snapshot {
    pub fn of(v: &View) -> Snapshot {
        let primary = [&v.sql, &v.mi].into_iter().find(|h| h.is("PRIMARY"));
        Snapshot {
            sql_server_role: v.sql.role.clone(),
            managed_instance_role: v.mi.role.clone(),
            connected: primary.and_then(|h| h.connected),
            sql_server_mode: v.sql.mode(),
            managed_instance_mode: v.arm.replication_mode.clone(),
            sql_server_hardened_lsn: v.sql.database.as_ref().map(|d| d.last_hardened_lsn.clone()),
            managed_instance_hardened_lsn: v.mi.database.as_ref().map(|d| d.last_hardened_lsn.clone()),
            hybrid_secondary_usage: v.arm.hybrid_secondary_usage.clone(),
            link_exists: !v.gone(),
        }
    }
}

/// What a forced failover may lose: what the new primary hardened against
/// what the old primary had, as far as it can be read.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LossEstimate {
    pub new_primary: Side,
    pub hardened_lsn: Option<String>,
    pub last_commit_time: Option<String>,
    /// The old primary's end of log and last commit, when it can be read.
    pub old_primary_end_of_log_lsn: Option<String>,
    pub old_primary_last_commit_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_primary_unreadable: Option<String>,
}

impl LossEstimate {
    pub fn of(v: &View, to: Side) -> LossEstimate {
        let (t, f) = (v.half(to.is_sql()), v.half(!to.is_sql()));
        LossEstimate {
            new_primary: to,
            hardened_lsn: t.database.as_ref().map(|d| d.last_hardened_lsn.clone()),
            last_commit_time: t.database.as_ref().and_then(|d| d.last_commit_time.clone()),
            old_primary_end_of_log_lsn: f.database.as_ref().map(|d| d.end_of_log_lsn.clone()),
            old_primary_last_commit_time: f.database.as_ref().and_then(|d| d.last_commit_time.clone()),
            old_primary_unreadable: f.unreadable.clone(),
        }
    }

    pub fn text(&self) -> String {
        let to = self.new_primary;
        let mut s = format!(
            "What may be lost: {} has hardened the log up to LSN {} (last commit {}).",
            to.name(),
            self.hardened_lsn.as_deref().unwrap_or("?"),
            self.last_commit_time.as_deref().unwrap_or("unknown")
        );
        match (&self.old_primary_unreadable, &self.old_primary_end_of_log_lsn) {
            (Some(why), _) => s.push_str(&format!(
                " {} cannot be read ({why}): whatever it committed after {} is not on {}.",
                to.other().name(),
                self.last_commit_time.as_deref().unwrap_or("that"),
                to.name()
            )),
            (None, Some(end)) if Some(end) == self.hardened_lsn.as_ref() => {
                s.push_str(&format!(" {}'s log ends at the same LSN: nothing is lost.", to.other().name()))
            }
            (None, Some(end)) => s.push_str(&format!(
                " {}'s log ends at LSN {end} (last commit {}): the transactions between are not on {}.",
                to.other().name(),
                self.old_primary_last_commit_time.as_deref().unwrap_or("unknown"),
                to.name()
            )),
            (None, None) => {}
        }
        s
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkOutcome {
    pub database: String,
    pub distributed_availability_group: String,
    /// The steps this run carried out, in order (none: there was nothing to do).
    pub steps: Vec<String>,
    pub before: Snapshot,
    pub after: Snapshot,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_loss: Option<LossEstimate>,
    pub notes: Vec<String>,
}

pub fn link(before: &View, after: &View, steps: Vec<String>, data_loss: Option<LossEstimate>) -> LinkOutcome {
    LinkOutcome {
        database: before.database.clone(),
        distributed_availability_group: before.dag.clone(),
        steps,
        before: Snapshot::of(before),
        after: Snapshot::of(after),
        data_loss,
        notes: vec![],
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub command: String,
    pub links: Vec<LinkOutcome>,
}

impl Outcome {
    pub fn new(command: String, links: Vec<LinkOutcome>) -> Outcome {
        Outcome { command, links }
    }

    /// Every link was as asked already.
    pub fn nothing_done(&self) -> bool {
        self.links.iter().all(|l| l.steps.is_empty())
    }
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

/// (what, before, after) for each value a person compares.
fn rows(l: &LinkOutcome) -> Vec<(&'static str, String, String)> {
    let (b, a) = (&l.before, &l.after);
    let connected = |c: Option<bool>| match c {
        Some(true) => "CONNECTED".to_string(),
        Some(false) => "DISCONNECTED".to_string(),
        None => "-".to_string(),
    };
    vec![
        ("SQL Server role", opt(&b.sql_server_role), opt(&a.sql_server_role)),
        ("managed instance role", opt(&b.managed_instance_role), opt(&a.managed_instance_role)),
        ("link", connected(b.connected), connected(a.connected)),
        ("commit mode on SQL Server", b.sql_server_mode.clone(), a.sql_server_mode.clone()),
        ("replicationMode (ARM)", opt(&b.managed_instance_mode), opt(&a.managed_instance_mode)),
        ("SQL Server last_hardened_lsn", opt(&b.sql_server_hardened_lsn), opt(&a.sql_server_hardened_lsn)),
        (
            "managed instance last_hardened_lsn",
            opt(&b.managed_instance_hardened_lsn),
            opt(&a.managed_instance_hardened_lsn),
        ),
        ("hybridSecondaryUsage", opt(&b.hybrid_secondary_usage), opt(&a.hybrid_secondary_usage)),
    ]
}

pub fn table(o: &Outcome) -> String {
    let mut out = String::new();
    for l in &o.links {
        let mut t = Table::new();
        t.set_content_arrangement(ContentArrangement::Dynamic).set_width(120);
        t.set_header(["", "before", "after"]);
        for (what, before, after) in rows(l) {
            let mark = if before != after { format!("{after}  (changed)") } else { after };
            t.add_row([what.to_string(), before, mark]);
        }
        out.push_str(&format!("{} ({}): {}\n{t}\n", l.database, l.distributed_availability_group, done(l)));
        if let Some(loss) = &l.data_loss {
            out.push_str(&format!("{}\n", loss.text()));
        }
        for n in &l.notes {
            out.push_str(&format!("note: {n}\n"));
        }
    }
    out
}

fn done(l: &LinkOutcome) -> String {
    if l.steps.is_empty() {
        "nothing to do".into()
    } else {
        format!("{} step(s): {}", l.steps.len(), l.steps.join(", "))
    }
}

pub fn json(o: &Outcome) -> String {
    serde_json::to_string_pretty(o).expect("an outcome serialises")
}

pub fn markdown(o: &Outcome) -> String {
    let mut out = format!("# milink link {}\n\n", o.command);
    for l in &o.links {
        out.push_str(&format!(
            "## {} ({})\n\n{}\n\n| | before | after |\n|---|---|---|\n",
            l.database,
            l.distributed_availability_group,
            done(l)
        ));
        for (what, before, after) in rows(l) {
            out.push_str(&format!("| {what} | {before} | {after} |\n"));
        }
        out.push('\n');
        if let Some(loss) = &l.data_loss {
            out.push_str(&format!("> {}\n\n", loss.text()));
        }
        for n in &l.notes {
            out.push_str(&format!("- {n}\n"));
        }
    }
    out
}
