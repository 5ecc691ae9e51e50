//! The pre-flight checks. Evidence is gathered concurrently (`collect`), then
//! each family turns it into findings with stable IDs. `CHECKS` is the one
//! list of IDs: `milink checks` prints it and the README is tested against it.

mod capacity;
mod certificates;
pub mod collect;
mod database;
pub use database::{LOG_FILLING_PERCENT, LOG_FULL_PERCENT};
mod dns;
mod endpoint;
mod instance;
mod login;
mod multidb;
mod network;
mod policy;
mod tls;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::profile::Profile;
use crate::report::{Finding, Report, Severity, Side};
pub use collect::Evidence;

#[derive(Debug, Serialize)]
pub struct CheckInfo {
    pub id: &'static str,
    pub family: &'static str,
    pub title: &'static str,
    pub doc_url: &'static str,
}

const PREP: &str = "https://learn.microsoft.com/azure/azure-sql/managed-instance/managed-instance-link-preparation";
const MULTIDB: &str =
    "https://learn.microsoft.com/azure/azure-sql/managed-instance/managed-instance-link-feature-overview";
const SCRIPTS: &str =
    "https://learn.microsoft.com/azure/azure-sql/managed-instance/managed-instance-link-configure-how-to-scripts";
const OVERVIEW: &str =
    "https://learn.microsoft.com/azure/azure-sql/managed-instance/managed-instance-link-feature-overview";
const BEST: &str = "https://learn.microsoft.com/azure/azure-sql/managed-instance/managed-instance-link-best-practices";
const TLS_DOC: &str =
    "https://learn.microsoft.com/sql/database-engine/configure-windows/configure-sql-server-encryption";
const REDIRECT: &str = "https://learn.microsoft.com/azure/azure-sql/managed-instance/connection-types-overview";
const POLICY: &str = "https://learn.microsoft.com/azure/azure-sql/managed-instance/update-policy";
const HYBRID: &str =
    "https://learn.microsoft.com/azure/azure-sql/managed-instance/managed-instance-link-disaster-recovery";
const TROUBLESHOOT: &str =
    "https://learn.microsoft.com/azure/azure-sql/managed-instance/managed-instance-link-troubleshoot-how-to";
const PERMS: &str = "https://learn.microsoft.com/sql/relational-databases/system-dynamic-management-views/system-dynamic-management-views";

macro_rules! checks {
    ($(($id:literal, $family:literal, $title:literal, $doc:expr)),* $(,)?) => {
        pub static CHECKS: &[CheckInfo] = &[$(CheckInfo { id: $id, family: $family, title: $title, doc_url: $doc }),*];
    };
}

checks![
    ("dns-sql-host", "dns", "SQL Server's host name resolves", PREP),
    ("dns-mi-fqdn", "dns", "The managed instance's FQDN resolves to its VNet-local endpoint", PREP),
    ("dns-resolvers-agree", "dns", "The OS resolver and the configured DNS servers agree", PREP),
    (
        "dns-sql-host-from-mi",
        "dns",
        "The endpoint URL's SQL Server host resolves from the managed instance's VNet",
        PREP
    ),
    ("network-sql-1433", "network", "TCP to SQL Server 1433 (TDS)", PREP),
    ("network-sql-5022", "network", "TCP to SQL Server's mirroring endpoint", PREP),
    ("network-mi-1433", "network", "TCP to the managed instance 1433 (TDS)", PREP),
    ("network-mi-5022", "network", "TCP to the managed instance's mirroring endpoint 5022", PREP),
    ("network-mi-redirect", "network", "The managed instance's redirect ports 11000-11999", REDIRECT),
    ("network-mi-to-sql-5022", "network", "From the managed instance to SQL Server's endpoint (Agent job)", PREP),
    ("network-sql-to-mi-5022", "network", "From SQL Server to the managed instance's 5022 (Agent job)", PREP),
    ("network-sql-to-mi-hadr", "network", "From SQL Server to the managed instance node's HADR port (Agent job)", PREP),
    ("tls-sql-certificate", "tls", "SQL Server's TLS certificate on 1433", TLS_DOC),
    ("tls-mi-certificate", "tls", "The managed instance's TLS certificate on 1433", TLS_DOC),
    ("login-sql", "login", "Log in to SQL Server", PREP),
    ("login-mi", "login", "Log in to the managed instance", PREP),
    ("login-sql-permissions", "login", "SQL Server login has VIEW SERVER STATE and sysadmin", PERMS),
    ("login-mi-permissions", "login", "Managed instance login has VIEW SERVER STATE", PERMS),
    ("instance-sql-version", "instance", "SQL Server version and update support the link", OVERVIEW),
    ("instance-sql-edition", "instance", "SQL Server edition supports the link", OVERVIEW),
    ("instance-sql-host-os", "instance", "SQL Server's host operating system", OVERVIEW),
    ("instance-sql-hadr", "instance", "Always On availability groups enabled and the HADR manager running", PREP),
    ("instance-sql-master-key", "instance", "A database master key exists in master", PREP),
    ("instance-sql-trace-flags", "instance", "Startup trace flags 1800 and 9567", PREP),
    ("instance-collation-match", "instance", "SQL Server and the managed instance use the same collation", SCRIPTS),
    ("instance-sql-multidb", "instance", "SQL Server can carry a multi-database link (preview)", MULTIDB),
    (
        "instance-mi-capacity",
        "instance",
        "The instance stays within its database limit with the link's databases",
        OVERVIEW
    ),
    ("instance-mi-update-policy", "instance", "The managed instance's update policy fits the link's direction", POLICY),
    (
        "instance-mi-hybrid-secondary",
        "instance",
        "The managed instance's license-free DR setting (hybridSecondaryUsage)",
        HYBRID
    ),
    ("endpoint-sql-present", "endpoint", "SQL Server has a DATABASE_MIRRORING endpoint", SCRIPTS),
    ("endpoint-sql-started", "endpoint", "The mirroring endpoint is STARTED with role ALL", SCRIPTS),
    ("endpoint-sql-port", "endpoint", "The endpoint listens on the port that was probed", SCRIPTS),
    ("endpoint-sql-listener-ip", "endpoint", "The endpoint listens on all addresses (LISTENER_IP = ALL)", SCRIPTS),
    ("endpoint-sql-auth", "endpoint", "The endpoint authenticates with a certificate", SCRIPTS),
    ("endpoint-sql-encryption", "endpoint", "The endpoint requires encryption with AES", SCRIPTS),
    ("cert-sql-endpoint", "certificates", "SQL Server's endpoint certificate exists, under the master key", SCRIPTS),
    ("cert-sql-endpoint-expiry", "certificates", "SQL Server's endpoint certificate is not near expiry", BEST),
    (
        "cert-mi-imported",
        "certificates",
        "The managed instance's certificate is imported on SQL Server under its FQDN",
        SCRIPTS
    ),
    ("cert-sql-trusted-on-mi", "certificates", "SQL Server's certificate is trusted on the managed instance", SCRIPTS),
    ("cert-azure-roots", "certificates", "Azure root CAs are imported on SQL Server", SCRIPTS),
    ("database-exists", "database", "The database exists and is a user database", PREP),
    ("database-online", "database", "The database is ONLINE", PREP),
    ("database-recovery-full", "database", "The database uses the FULL recovery model", PREP),
    ("database-full-backup", "database", "A full backup that is not COPY_ONLY exists", PREP),
    ("database-log-files", "database", "The database has one log file", OVERVIEW),
    ("database-filestream", "database", "No FILESTREAM or FileTable data", OVERVIEW),
    (
        "database-in-memory",
        "database",
        "Memory-optimized (In-Memory OLTP) data goes only to a Business Critical instance",
        OVERVIEW
    ),
    ("database-tde", "database", "A TDE database's certificate is on the managed instance", PREP),
    ("database-mi-name-free", "database", "No other database of the same name on the managed instance", TROUBLESHOOT),
    ("database-log-space", "database", "Log space used", BEST),
    ("database-log-backup", "database", "Log backups are recent", BEST),
    ("link-present", "link", "A distributed availability group for the link exists", TROUBLESHOOT),
    ("link-connected", "link", "The side's replica is CONNECTED to its partner", TROUBLESHOOT),
    ("link-sync-health", "link", "The link's database replicas are HEALTHY", TROUBLESHOOT),
    ("link-lag", "link", "The link keeps up: send queue and secondary lag", TROUBLESHOOT),
    ("link-split-brain", "link", "Not both sides PRIMARY", TROUBLESHOOT),
    ("link-seeding", "link", "Automatic seeding did not fail and ends before the link is cancelled", TROUBLESHOOT),
    ("link-errorlog", "link", "No mirroring-endpoint errors in the error log", TROUBLESHOOT),
    (
        "link-listener-url",
        "link",
        "SQL Server's DAG reaches the instance at tcp://<FQDN>:5022;Server=[<instance name>]",
        SCRIPTS
    ),
    ("link-local-ag", "link", "SQL Server's AG with several replicas: the link names its listener", SCRIPTS),
    ("link-names-match-arm", "link", "SQL Server's DAG and AG names match the instance's DAG resource", TROUBLESHOOT),
    (
        "link-arm-health",
        "link",
        "ARM's view of each database of the link (replica state, errors, certificate)",
        TROUBLESHOOT
    ),
];

pub fn info(id: &str) -> &'static CheckInfo {
    CHECKS.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("check `{id}` is not in CHECKS"))
}

/// Builds one finding; the title and doc URL come from `CHECKS`.
pub struct F(Finding);

impl F {
    pub fn new(id: &'static str, side: Side, severity: Severity) -> F {
        let i = info(id);
        F(Finding {
            id: i.id,
            family: i.family,
            side,
            severity,
            title: i.title.to_string(),
            found: None,
            subject: None,
            evidence: BTreeMap::new(),
            remedy: None,
            doc_url: i.doc_url,
        })
    }

    pub fn ev(mut self, k: &str, v: impl Into<serde_json::Value>) -> F {
        self.0.evidence.insert(k.to_string(), v.into());
        self
    }

    pub fn severity(mut self, s: Severity) -> F {
        self.0.severity = s;
        self
    }

    pub fn current(&self) -> Severity {
        self.0.severity
    }

    pub fn remedy(mut self, r: impl Into<String>) -> F {
        self.0.remedy = Some(r.into());
        self
    }

    /// What was found, for the table's result column.
    pub fn found(mut self, s: impl Into<String>) -> F {
        self.0.found = Some(s.into());
        self
    }

    pub fn subject(mut self, s: impl Into<String>) -> F {
        self.0.subject = Some(s.into());
        self
    }

    /// A skipped check says why.
    pub fn skip(id: &'static str, side: Side, reason: impl Into<String>) -> F {
        F::new(id, side, Severity::Skip).ev("reason", reason.into())
    }

    /// The finding; an error that says nothing of what it found says why.
    pub fn done(mut self) -> Finding {
        if self.0.found.is_none() && self.0.severity == Severity::Error {
            let why =
                ["reason", "error", "note"].iter().find_map(|k| self.0.evidence.get(*k)?.as_str().map(str::to_string));
            self.0.found = why.map(|w| crate::input::shorten(&w, 100));
        }
        self.0
    }
}

/// Why a side's facts are not there, as a finding of `id` would say it.
pub fn facts<'a>(side: &'a collect::SideEvidence, login_id: &str) -> Result<&'a collect::Facts, (Severity, String)> {
    match &side.sql {
        collect::Sql::Facts(f) => Ok(f),
        collect::Sql::Skipped(reason) => Err((Severity::Skip, format!("no SQL session: {reason}"))),
        collect::Sql::Failed(_) => Err((Severity::Skip, format!("the login failed ({login_id})"))),
    }
}

/// One query's rows, or why a check that needs them cannot say anything.
pub fn rows<'a>(
    f: &'a collect::Facts,
    key: &str,
    perm_id: &str,
) -> Result<&'a [crate::probe::sql::Record], (Severity, String)> {
    match f.rows(key) {
        None => Err(match &f.cut_short {
            Some(how_far) => (Severity::Error, format!("timeout: {how_far}")),
            None => (Severity::Skip, "not queried: an earlier query on this side stalled".into()),
        }),
        Some(Ok(r)) => Ok(r),
        Some(Err(e)) if e.timed_out => Err((Severity::Error, format!("timeout: {}", e.message))),
        Some(Err(e)) => match e.code {
            Some(297 | 300 | 229 | 262) => {
                Err((Severity::Skip, format!("permission denied: {} ({perm_id})", e.message)))
            }
            Some(208 | 2812) => Err((Severity::Skip, format!("not on this version: {}", e.message))),
            _ => Err((Severity::Error, format!("query failed: {}", e.message))),
        },
    }
}

/// A finding that only says why the check could not decide.
pub fn blocked(id: &'static str, side: Side, why: (Severity, String)) -> Finding {
    F::new(id, side, why.0).ev("reason", why.1).done()
}

/// Gathers the evidence and runs every family.
pub async fn run(profile: &Profile) -> Report {
    let ev = collect::collect(profile).await;
    Report::new(evaluate(&ev, profile))
}

pub fn evaluate(ev: &Evidence, p: &Profile) -> Vec<Finding> {
    let mut out = Vec::new();
    dns::evaluate(ev, p, &mut out);
    network::evaluate(ev, p, &mut out);
    tls::evaluate(ev, p, &mut out);
    login::evaluate(ev, p, &mut out);
    instance::evaluate(ev, p, &mut out);
    policy::evaluate(ev, p, &mut out);
    capacity::evaluate(ev, p, &mut out);
    multidb::evaluate(ev, p, &mut out);
    endpoint::evaluate(ev, p, &mut out);
    certificates::evaluate(ev, p, &mut out);
    database::evaluate(ev, p, &mut out);
    out
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_kebab_case() {
        let mut ids: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
        assert!(ids.iter().all(|i| i.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')));
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), CHECKS.len());
    }
}
