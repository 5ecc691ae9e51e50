//! The steps that create a link, in order, each with its state (to do, already
//! done, blocked) decided from what was observed: re-planned before every step,
//! so a run that stopped anywhere continues where it stopped.

use serde::Serialize;
use serde_json::{Value, json};

use super::observe::{Observed, SqlSide};
use super::roots::ROOTS;
use crate::azure::arm::segment;
use crate::profile::Profile;
use crate::report::{Finding, Severity};
use crate::tsql::{binary, hex, ident, nstring, thumbprint};

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
    pub remedy: Option<String>,
    pub waived: bool,
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

fn sql(
    place: Where,
    id: impl Into<String>,
    title: impl Into<String>,
    run: String,
    shown: String,
    done: bool,
    resolves: Vec<&'static str>,
) -> Step {
    Step {
        id: id.into(),
        place,
        title: title.into(),
        state: if done { State::Done } else { State::Todo },
        action: Action::Sql { shown, run },
        resolves,
    }
}

/// The endpoint's certificate name: the one it uses, the profile's, or the documented default.
pub fn certificate_name(p: &Profile, s: &SqlSide) -> String {
    if let Some(c) = s.endpoint_certificate().filter(|c| c.private_key == "MK") {
        return c.name.clone();
    }
    p.link.certificate.clone().unwrap_or_else(|| format!("Cert_{}_endpoint", s.server_name.replace('\\', "_")))
}

pub fn plan(i: &Inputs<'_>) -> Vec<Step> {
    let (p, o, s) = (i.profile, i.observed, &i.observed.sql);
    let mut steps = Vec::new();
    let master = "USE [master]; ";

    // 1. The database master key, which protects the endpoint certificate's private key.
    let password = p.master_key_password.as_ref().map(|x| x.expose()).unwrap_or("");
    let mut key = sql(
        Where::SqlServer,
        "sql-master-key",
        "Create the database master key in master",
        format!("{master}CREATE MASTER KEY ENCRYPTION BY PASSWORD = {};", nstring(password)),
        format!("{master}CREATE MASTER KEY ENCRYPTION BY PASSWORD = N'<redacted>';"),
        s.master_key,
        vec!["instance-sql-master-key"],
    );
    if !s.master_key && password.is_empty() {
        key.state = State::Blocked(
            "no master key password: set MILINK_MASTER_KEY_PASSWORD, link.master_key_password_file, or the secrets file".into(),
        );
    }
    steps.push(key);

    // 2. SQL Server's endpoint certificate.
    let cert = certificate_name(p, s);
    let own = s.certificate(&cert).filter(|c| !c.der.is_empty());
    let expiry = i.now + time::Duration::days(i64::from(p.link.certificate_days));
    let expiry = format!("{:04}{:02}{:02}", expiry.year(), expiry.month() as u8, expiry.day());
    let create_cert = format!(
        "{master}CREATE CERTIFICATE {} WITH SUBJECT = {}, EXPIRY_DATE = {};",
        ident(&cert),
        nstring(&format!("Certificate for {cert}")),
        nstring(&expiry)
    );
    steps.push(sql(
        Where::SqlServer,
        "sql-certificate",
        format!("Create SQL Server's endpoint certificate {cert}"),
        create_cert.clone(),
        create_cert,
        own.is_some(),
        vec!["cert-sql-endpoint"],
    ));

    // 3. Its public key, trusted by the managed instance (ARM serverTrustCertificates).
    let api = if o.arm.api.is_empty() { super::observe::NEW_API } else { o.arm.api.as_str() };
    let trust_url = format!("serverTrustCertificates/{}", segment(&cert));
    let trusted = own.is_some_and(|c| o.arm.trust.iter().any(|(_, t)| *t == thumbprint(&c.der)));
    steps.push(Step {
        id: "mi-trust-sql-certificate".into(),
        place: Where::Arm,
        title: format!("Upload {cert}'s public key to the managed instance (server trust certificate)"),
        state: if trusted { State::Done } else { State::Todo },
        action: Action::Arm {
            method: "PUT".into(),
            url: format!("{trust_url}?api-version={api}"),
            body: Some(json!({ "properties": { "publicBlob": own.map(|c| hex(&c.der)).unwrap_or_else(|| "<the certificate's public key, once created>".into()) } })),
        },
        resolves: vec!["cert-sql-trusted-on-mi"],
    });

    // 4. The instance's endpoint certificate, imported on SQL Server under its FQDN.
    let fqdn = &p.managed_instance.fqdn;
    let mi_der = o.mi_cert.clone().or(o.arm.endpoint_cert.clone());
    let imported = s.certificate(fqdn);
    let current = match (&mi_der, imported) {
        (Some(d), Some(c)) => &c.der == d,
        _ => false,
    };
    let create = |der: &str| format!("{master}CREATE CERTIFICATE {} FROM BINARY = {der};", ident(fqdn));
    let (run, shown, title) = match (&mi_der, imported) {
        (Some(d), Some(_)) => (
            format!("{master}DROP CERTIFICATE {}; {}", ident(fqdn), create(&binary(d))),
            format!("{master}DROP CERTIFICATE {}; {}", ident(fqdn), create(&binary(d))),
            format!("Replace the stale certificate {fqdn} with the one the instance presents now"),
        ),
        (Some(d), None) => (
            create(&binary(d)),
            create(&binary(d)),
            format!("Import the managed instance's endpoint certificate as {fqdn}"),
        ),
        (None, _) => (
            String::new(),
            create("<the instance's certificate>"),
            format!("Import the managed instance's endpoint certificate as {fqdn}"),
        ),
    };
    let mut step =
        sql(Where::SqlServer, "sql-import-mi-certificate", title, run, shown, current, vec!["cert-mi-imported"]);
    if mi_der.is_none() && !current {
        step.state = State::Blocked("the managed instance's endpoint certificate could not be read (sp_get_endpoint_certificate 4 or ARM endpointCertificates)".into());
    }
    steps.push(step);

    // 5. The Azure root certificates, where the version can register them as issuers.
    if s.has_add_issuer() {
        for (name, der) in ROOTS {
            let has = s.certificates.iter().any(|c| c.name.eq_ignore_ascii_case(name) || c.subject.contains(name));
            let text = format!(
                "{master}CREATE CERTIFICATE {} FROM BINARY = {}; EXEC sp_certificate_add_issuer CERT_ID({}), N'*.database.windows.net';",
                ident(name),
                binary(der),
                nstring(name)
            );
            let id = format!("sql-azure-root:{}", name.to_ascii_lowercase().replace(' ', "-"));
            steps.push(sql(
                Where::SqlServer,
                id,
                format!("Import the Azure root {name} and register it as an issuer"),
                text.clone(),
                text,
                has,
                vec!["cert-azure-roots"],
            ));
        }
    }

    // 6. The mirroring endpoint: created, or an existing one given certificate
    // authentication and AES without losing what its AGs use.
    let port = p.sql_server.endpoint_port.or(s.endpoint.as_ref().map(|e| e.port)).unwrap_or(5022);
    let endpoint_ok = s.endpoint.as_ref().is_some_and(|e| {
        e.state.eq_ignore_ascii_case("STARTED")
            && e.auth.contains("CERTIFICATE")
            && s.endpoint_certificate().is_some_and(|c| c.name.eq_ignore_ascii_case(&cert))
            && e.encryption
            && e.algorithm.contains("AES")
    });
    let (run, title) = match &s.endpoint {
        None => (
            format!(
                "{master}CREATE ENDPOINT {} STATE = STARTED AS TCP (LISTENER_PORT = {port}, LISTENER_IP = ALL) FOR DATABASE_MIRRORING (ROLE = ALL, AUTHENTICATION = CERTIFICATE {}, ENCRYPTION = REQUIRED ALGORITHM AES);",
                ident(&p.link.endpoint_name),
                ident(&cert)
            ),
            format!("Create the mirroring endpoint {} on port {port}", p.link.endpoint_name),
        ),
        Some(e) => {
            let windows = ["NTLM", "KERBEROS", "NEGOTIATE"].into_iter().find(|w| e.auth.contains(w));
            let auth = match windows {
                Some(w) => format!("WINDOWS {w} CERTIFICATE {}", ident(&cert)),
                None => format!("CERTIFICATE {}", ident(&cert)),
            };
            let algorithm = if e.encryption && e.algorithm.contains("RC4") { "AES RC4" } else { "AES" };
            (
                format!(
                    "{master}ALTER ENDPOINT {} STATE = STARTED FOR DATABASE_MIRRORING (ROLE = ALL, AUTHENTICATION = {auth}, ENCRYPTION = REQUIRED ALGORITHM {algorithm});",
                    ident(&e.name)
                ),
                match windows {
                    Some(w) => format!(
                        "Add certificate authentication and AES to the endpoint {} (keeping {w} for its AGs)",
                        e.name
                    ),
                    None => format!("Set the endpoint {} to certificate authentication and AES, started", e.name),
                },
            )
        }
    };
    steps.push(sql(
        Where::SqlServer,
        "sql-endpoint",
        title,
        run.clone(),
        run,
        endpoint_ok,
        vec!["endpoint-sql-present", "endpoint-sql-started", "endpoint-sql-auth", "endpoint-sql-encryption"],
    ));

    // 7-10. Per database: the AG, the DAG, the instance's half, seeding.
    let sql_url = format!("TCP://{}:{port}", i.endpoint_host);
    let mi_name = p.arm.managed_instance.clone().unwrap_or_else(|| fqdn.split('.').next().unwrap_or("").to_string());
    let mi_url = format!("tcp://{fqdn}:5022;Server=[{mi_name}]");
    for db in i.databases {
        let n = Names::of(p, db);
        let ag = s.ag_of(db).map(|a| a.name.clone()).unwrap_or(n.sql_ag.clone());
        // 2016 has no CLUSTER_TYPE: its AGs are WSFC ones.
        let cluster = if s.version.0 == 13 { String::new() } else { "WITH (CLUSTER_TYPE = NONE) ".into() };
        let create_ag = format!(
            "{master}CREATE AVAILABILITY GROUP {} {cluster}FOR DATABASE {} REPLICA ON {} WITH (ENDPOINT_URL = {}, AVAILABILITY_MODE = SYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL, SEEDING_MODE = AUTOMATIC);",
            ident(&ag),
            ident(db),
            nstring(&s.server_name),
            nstring(&sql_url)
        );
        let mut ag_step = sql(
            Where::SqlServer,
            format!("sql-ag:{db}"),
            format!("Create the availability group {ag} for {db}"),
            create_ag.clone(),
            create_ag,
            s.ag_of(db).is_some(),
            vec!["link-present"],
        );
        if s.ag_of(db).is_none() && s.ag(&ag).is_some() {
            ag_step.state = State::Blocked(format!(
                "an availability group {ag} exists already, without {db}: name another in link.sql_ag"
            ));
        }
        steps.push(ag_step);

        let create_dag = format!(
            "{master}CREATE AVAILABILITY GROUP {} WITH (DISTRIBUTED) AVAILABILITY GROUP ON {} WITH (LISTENER_URL = {}, AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL, SEEDING_MODE = AUTOMATIC, SESSION_TIMEOUT = 20), {} WITH (LISTENER_URL = {}, AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL, SEEDING_MODE = AUTOMATIC);",
            ident(&n.dag),
            nstring(&ag),
            nstring(&sql_url),
            nstring(&n.mi_ag),
            nstring(&mi_url)
        );
        let dag_done = s.ag(&n.dag).is_some_and(|a| a.distributed);
        steps.push(sql(
            Where::SqlServer,
            format!("sql-dag:{db}"),
            format!("Create the distributed availability group {} to the managed instance", n.dag),
            create_dag.clone(),
            create_dag,
            dag_done,
            vec!["link-present"],
        ));

        let body = if o.arm.new_schema() || o.arm.api.is_empty() {
            json!({ "properties": {
                "partnerAvailabilityGroupName": ag,
                "instanceAvailabilityGroupName": n.mi_ag,
                "partnerEndpoint": sql_url,
                "databases": [{ "databaseName": db }],
                "instanceLinkRole": "Secondary",
                "failoverMode": if p.managed_instance.failback { "Manual" } else { "None" },
                "seedingMode": "Automatic",
                "replicationMode": "Async",
            }})
        } else {
            json!({ "properties": {
                "targetDatabase": db,
                "sourceEndpoint": sql_url,
                "primaryAvailabilityGroupName": ag,
                "secondaryAvailabilityGroupName": n.mi_ag,
                "replicationMode": "Async",
            }})
        };
        steps.push(Step {
            id: format!("mi-link:{db}"),
            place: Where::Arm,
            title: format!("Join the managed instance to {} (its distributedAvailabilityGroups resource)", n.dag),
            state: if o.arm.dag(&n.dag).is_some() { State::Done } else { State::Todo },
            action: Action::Arm {
                method: "PUT".into(),
                url: format!("distributedAvailabilityGroups/{}?api-version={api}", segment(&n.dag)),
                body: Some(body),
            },
            resolves: vec!["link-present", "link-connected"],
        });

        let seeded =
            s.seeding.iter().any(|x| x.database.eq_ignore_ascii_case(db) && x.size > 0 && x.transferred >= x.size)
                || s.links.iter().any(|(d, c, h)| d.eq_ignore_ascii_case(&n.dag) && *c && h == "HEALTHY");
        steps.push(Step {
            id: format!("wait-seeding:{db}"),
            place: Where::Milink,
            title: format!("Wait for automatic seeding of {db} to the managed instance"),
            state: if seeded { State::Done } else { State::Todo },
            action: Action::WaitSeeding { database: db.clone() },
            resolves: vec!["link-seeding", "link-sync-health"],
        });
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
