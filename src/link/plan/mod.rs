//! The steps that create a link, in order, each with its state (to do, already
//! done, blocked) decided from what was observed: re-planned before every step,
//! so a run that stopped anywhere continues where it stopped.

use serde::Serialize;
use serde_json::Value;

pub mod multi;
pub(crate) mod steps;

use super::observe::{Observed, SqlSide};
use crate::profile::Profile;
use crate::report::{Finding, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Where {
    SqlServer,
    ManagedInstance,
    Arm,
    Milink,
}

impl Where {
    pub fn as_str(self) -> &'static str {
        match self {
            Where::SqlServer => "sql_server",
            Where::ManagedInstance => "managed_instance",
            Where::Arm => "arm",
            Where::Milink => "milink",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum State {
    Todo,
    Done,
    Blocked(String),
}

/// What a step does.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    /// T-SQL, as shown (secrets as `<redacted>`); `run` is what is sent.
    Sql {
        shown: String,
        #[serde(skip)]
        run: String,
    },
    Arm {
        method: String,
        url: String,
        body: Option<Value>,
    },
    /// Waits for automatic seeding of a database to finish.
    WaitSeeding {
        database: String,
    },
    /// Reads both sides again and again until what `until` names is true.
    Wait {
        database: String,
        until: Until,
    },
}

/// What a wait of the link's life waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "for")]
pub enum Until {
    /// `last_hardened_lsn` equal on both sides, and unchanged for a while (the
    /// documented gate before a planned failover).
    HardenedLsnsEqual,
    /// `primary` is PRIMARY and the other side SECONDARY on both sides, and the
    /// link is connected.
    Roles { primary: Where },
    /// The new primary has a full backup of the database that finished after `after`.
    FullBackup { side: Where, after: String },
    /// The link is CONNECTED and the secondary synchronizing again.
    Connected,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Stable: the journal and `--from` name steps by it.
    pub id: String,
    #[serde(rename = "where")]
    pub place: Where,
    pub title: String,
    #[serde(flatten)]
    pub state: State,
    pub action: Action,
    /// The check IDs whose findings this step resolves.
    pub resolves: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Blocker {
    pub check: &'static str,
    pub side: &'static str,
    pub severity: Severity,
    pub what: String,
    /// What the check found, when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    pub remedy: Option<String>,
    pub waived: bool,
}

impl Blocker {
    /// The check's title and, when it says, what it found.
    pub fn said(&self) -> String {
        match &self.found {
            Some(f) => format!("{}: {f}", self.what),
            None => self.what.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub blockers: Vec<Blocker>,
    pub steps: Vec<Step>,
    /// Choices milink made that a DBA would want to know about.
    pub notes: Vec<String>,
}

impl Plan {
    pub fn blocked(&self) -> bool {
        self.blockers.iter().any(|b| !b.waived)
    }

    pub fn next(&self) -> Option<&Step> {
        self.steps.iter().find(|s| s.state == State::Todo)
    }

    pub fn done(&self) -> bool {
        self.steps.iter().all(|s| s.state == State::Done)
    }
}

/// Checks whose failure a step of the plan fixes, so they do not block.
const RESOLVED_BY_STEPS: &[&str] = &[
    "instance-sql-master-key",
    "endpoint-sql-present",
    "endpoint-sql-started",
    "endpoint-sql-auth",
    "endpoint-sql-encryption",
    "endpoint-sql-port",
    "cert-sql-endpoint",
    "cert-mi-imported",
    "cert-sql-trusted-on-mi",
    "cert-azure-roots",
    "link-present",
    "link-connected",
    "link-sync-health",
    "link-seeding",
];

/// Failing pre-flight checks that creation cannot fix: the plan lists them first.
pub fn blockers(findings: &[Finding], waive: &[String]) -> Vec<Blocker> {
    findings
        .iter()
        .filter(|f| matches!(f.severity, Severity::Fail | Severity::Error))
        .filter(|f| !RESOLVED_BY_STEPS.contains(&f.id))
        // Before the endpoint exists its port refuses: the endpoint step fixes that,
        // a firewall that drops the port it does not.
        .filter(|f| {
            !(f.id == "network-sql-5022" && f.evidence.get("outcome").and_then(Value::as_str) == Some("refused"))
        })
        .map(|f| Blocker {
            check: f.id,
            side: f.side.as_str(),
            severity: f.severity,
            what: format!("{}{}", f.title, f.subject.as_ref().map(|s| format!(" ({s})")).unwrap_or_default()),
            found: f.found.clone(),
            remedy: f.remedy.clone(),
            waived: waive.iter().any(|w| w == f.id),
        })
        .collect()
}

/// Names for one database, from the profile's patterns.
pub struct Names {
    pub db: String,
    pub sql_ag: String,
    pub mi_ag: String,
    pub dag: String,
}

impl Names {
    /// A database's names in the profile's mode: its own link, or the one
    /// multi-database link (preview) it belongs to.
    pub fn in_mode(p: &Profile, db: &str) -> Names {
        match p.link.mode {
            crate::profile::LinkMode::Single => Names::of(p, db),
            crate::profile::LinkMode::Multi => {
                let link = p.link.multi_name(&p.sql_server.host);
                Names { db: db.to_string(), sql_ag: format!("ag_{link}"), mi_ag: format!("ag_{link}_mi"), dag: link }
            }
        }
    }

    pub fn of(p: &Profile, db: &str) -> Names {
        let f = |pattern: &str| pattern.replace("{db}", db);
        Names { db: db.to_string(), sql_ag: f(&p.link.sql_ag), mi_ag: f(&p.link.mi_ag), dag: f(&p.link.dag) }
    }
}

/// What the plan needs besides the observation.
pub struct Inputs<'a> {
    pub profile: &'a Profile,
    pub observed: &'a Observed,
    /// SQL Server's endpoint host for endpoint URLs (an address or a name).
    pub endpoint_host: String,
    pub databases: &'a [String],
    pub now: time::OffsetDateTime,
}

/// The endpoint's certificate name: the one it uses, the profile's, or the documented default.
pub fn certificate_name(p: &Profile, s: &SqlSide) -> String {
    if let Some(c) = s.endpoint_certificate().filter(|c| c.private_key == "MK") {
        return c.name.clone();
    }
    p.link.certificate.clone().unwrap_or_else(|| format!("Cert_{}_endpoint", s.server_name.replace('\\', "_")))
}

pub fn plan(i: &Inputs<'_>) -> Vec<Step> {
    let cert = certificate_name(i.profile, &i.observed.sql);
    let mut steps = vec![
        steps::master_key(i),
        steps::certificate(i, &cert),
        steps::trust_certificate(i, &cert),
        steps::import_mi_certificate(i),
    ];
    steps.extend(steps::azure_roots(i));
    steps.push(steps::endpoint(i, &cert));
    if i.profile.link.mode == crate::profile::LinkMode::Multi {
        steps.extend(multi::steps(i));
    } else {
        for db in i.databases {
            steps.extend(steps::database(i, db));
        }
    }
    // A step that depends on an unfinished blocked one cannot run either.
    let mut blocked = false;
    for st in &mut steps {
        if blocked && st.state == State::Todo {
            st.state = State::Blocked("an earlier step is blocked".into());
        }
        blocked |= matches!(st.state, State::Blocked(_));
    }
    steps
}

/// The table's shorter text: long blobs as `0x3082…(N bytes)`.
pub fn short(s: &str) -> String {
    crate::tsql::map_blobs(s, 16, |hex| format!("0x{}…({} bytes)", &hex[..8], hex.len() / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_shortened_for_people() {
        let s = format!("CREATE CERTIFICATE [x] FROM BINARY = 0x{};", "AB".repeat(900));
        assert_eq!(short(&s), "CREATE CERTIFICATE [x] FROM BINARY = 0xABABABAB…(900 bytes);");
        assert_eq!(short("SELECT 0x01"), "SELECT 0x01");
    }
}
