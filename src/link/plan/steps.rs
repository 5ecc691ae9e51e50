//! One builder per step of link creation. Each decides from what was observed
//! whether its step is to do, done or blocked, and what it would run.

use serde_json::json;

use super::super::observe::NEW_API;
use super::super::roots::ROOTS;
use super::{Action, Inputs, Names, State, Step, Where};
use crate::azure::arm::segment;
use crate::tsql::{binary, hex, ident, nstring, thumbprint};

const MASTER: &str = "USE [master]; ";

pub(crate) fn sql(
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

/// The api-version the instance answers (the new schema when nothing was read yet).
fn api<'a>(i: &'a Inputs<'_>) -> &'a str {
    if i.observed.arm.api.is_empty() { NEW_API } else { i.observed.arm.api.as_str() }
}

/// The database master key, which protects the endpoint certificate's private key.
pub fn master_key(i: &Inputs<'_>) -> Step {
    let s = &i.observed.sql;
    let password = i.profile.master_key_password.as_ref().map(|x| x.expose()).unwrap_or("");
    let mut key = sql(
        Where::SqlServer,
        "sql-master-key",
        "Create the database master key in master",
        format!("{MASTER}CREATE MASTER KEY ENCRYPTION BY PASSWORD = {};", nstring(password)),
        format!("{MASTER}CREATE MASTER KEY ENCRYPTION BY PASSWORD = N'<redacted>';"),
        s.master_key,
        vec!["instance-sql-master-key"],
    );
    if !s.master_key && password.is_empty() {
        key.state = State::Blocked(
            "no master key password: set MILINK_MASTER_KEY_PASSWORD, link.master_key_password_file, or the secrets file".into(),
        );
    }
    key
}

/// SQL Server's endpoint certificate, valid `link.certificate_days`.
pub fn certificate(i: &Inputs<'_>, cert: &str) -> Step {
    let own = i.observed.sql.certificate(cert).filter(|c| !c.der.is_empty());
    let expiry = i.now + time::Duration::days(i64::from(i.profile.link.certificate_days));
    let expiry = format!("{:04}{:02}{:02}", expiry.year(), expiry.month() as u8, expiry.day());
    let create = format!(
        "{MASTER}CREATE CERTIFICATE {} WITH SUBJECT = {}, EXPIRY_DATE = {};",
        ident(cert),
        nstring(&format!("Certificate for {cert}")),
        nstring(&expiry)
    );
    sql(
        Where::SqlServer,
        "sql-certificate",
        format!("Create SQL Server's endpoint certificate {cert}"),
        create.clone(),
        create,
        own.is_some(),
        vec!["cert-sql-endpoint"],
    )
}

/// Its public key, trusted by the managed instance (ARM serverTrustCertificates).
pub fn trust_certificate(i: &Inputs<'_>, cert: &str) -> Step {
    let own = i.observed.sql.certificate(cert).filter(|c| !c.der.is_empty());
    let trusted = own.is_some_and(|c| i.observed.arm.trust.iter().any(|(_, t)| *t == thumbprint(&c.der)));
    let blob = own.map(|c| hex(&c.der)).unwrap_or_else(|| "<the certificate's public key, once created>".into());
    Step {
        id: "mi-trust-sql-certificate".into(),
        place: Where::Arm,
        title: format!("Upload {cert}'s public key to the managed instance (server trust certificate)"),
        state: if trusted { State::Done } else { State::Todo },
        action: Action::Arm {
            method: "PUT".into(),
            url: format!("serverTrustCertificates/{}?api-version={}", segment(cert), api(i)),
            body: Some(json!({ "properties": { "publicBlob": blob } })),
        },
        resolves: vec!["cert-sql-trusted-on-mi"],
    }
}

/// The instance's endpoint certificate, imported on SQL Server under its FQDN
/// (replaced when Azure rotated it).
pub fn import_mi_certificate(i: &Inputs<'_>) -> Step {
    let (o, s) = (i.observed, &i.observed.sql);
    let fqdn = &i.profile.managed_instance.fqdn;
    let mi_der = o.mi_cert.clone().or(o.arm.endpoint_cert.clone());
    let imported = s.certificate(fqdn);
    let current = matches!((&mi_der, imported), (Some(d), Some(c)) if &c.der == d);
    let create = |der: &str| format!("{MASTER}CREATE CERTIFICATE {} FROM BINARY = {der};", ident(fqdn));
    let (run, shown, title) = match (&mi_der, imported) {
        (Some(d), Some(_)) => {
            let replace = format!("{MASTER}DROP CERTIFICATE {}; {}", ident(fqdn), create(&binary(d)));
            (
                replace.clone(),
                replace,
                format!("Replace the stale certificate {fqdn} with the one the instance presents now"),
            )
        }
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
    step
}

/// The Azure root certificates, where the version can register them as issuers.
pub fn azure_roots(i: &Inputs<'_>) -> Vec<Step> {
    let s = &i.observed.sql;
    if !s.has_add_issuer() {
        return vec![];
    }
    ROOTS
        .iter()
        .map(|(name, der)| {
            let has = s.certificates.iter().any(|c| c.name.eq_ignore_ascii_case(name) || c.subject.contains(name));
            let text = format!(
                "{MASTER}CREATE CERTIFICATE {} FROM BINARY = {}; EXEC sp_certificate_add_issuer CERT_ID({}), N'*.database.windows.net';",
                ident(name),
                binary(der),
                nstring(name)
            );
            sql(
                Where::SqlServer,
                format!("sql-azure-root:{}", name.to_ascii_lowercase().replace(' ', "-")),
                format!("Import the Azure root {name} and register it as an issuer"),
                text.clone(),
                text,
                has,
                vec!["cert-azure-roots"],
            )
        })
        .collect()
}

/// The mirroring endpoint: created, or an existing one given certificate
/// authentication and AES without losing what its AGs use.
pub fn endpoint(i: &Inputs<'_>, cert: &str) -> Step {
    let (p, s) = (i.profile, &i.observed.sql);
    let port = endpoint_port(i);
    let endpoint_ok = s.endpoint.as_ref().is_some_and(|e| {
        e.state.eq_ignore_ascii_case("STARTED")
            && e.auth.contains("CERTIFICATE")
            && s.endpoint_certificate().is_some_and(|c| c.name.eq_ignore_ascii_case(cert))
            && e.encryption
            && e.algorithm.contains("AES")
    });
    let (run, title) = match &s.endpoint {
        None => (
            format!(
                "{MASTER}CREATE ENDPOINT {} STATE = STARTED AS TCP (LISTENER_PORT = {port}, LISTENER_IP = ALL) FOR DATABASE_MIRRORING (ROLE = ALL, AUTHENTICATION = CERTIFICATE {}, ENCRYPTION = REQUIRED ALGORITHM AES);",
                ident(&p.link.endpoint_name),
                ident(cert)
            ),
            format!("Create the mirroring endpoint {} on port {port}", p.link.endpoint_name),
        ),
        Some(e) => {
            let windows = ["NTLM", "KERBEROS", "NEGOTIATE"].into_iter().find(|w| e.auth.contains(w));
            let auth = match windows {
                Some(w) => format!("WINDOWS {w} CERTIFICATE {}", ident(cert)),
                None => format!("CERTIFICATE {}", ident(cert)),
            };
            let algorithm = if e.encryption && e.algorithm.contains("RC4") { "AES RC4" } else { "AES" };
            let title = match windows {
                Some(w) => format!(
                    "Add certificate authentication and AES to the endpoint {} (keeping {w} for its AGs)",
                    e.name
                ),
                None => format!("Set the endpoint {} to certificate authentication and AES, started", e.name),
            };
            (
                format!(
                    "{MASTER}ALTER ENDPOINT {} STATE = STARTED FOR DATABASE_MIRRORING (ROLE = ALL, AUTHENTICATION = {auth}, ENCRYPTION = REQUIRED ALGORITHM {algorithm});",
                    ident(&e.name)
                ),
                title,
            )
        }
    };
    sql(
        Where::SqlServer,
        "sql-endpoint",
        title,
        run.clone(),
        run,
        endpoint_ok,
        vec!["endpoint-sql-present", "endpoint-sql-started", "endpoint-sql-auth", "endpoint-sql-encryption"],
    )
}

pub(super) fn endpoint_port(i: &Inputs<'_>) -> u16 {
    i.profile.sql_server.endpoint_port.or(i.observed.sql.endpoint.as_ref().map(|e| e.port)).unwrap_or(5022)
}

/// Per database: the AG, the distributed AG, the instance's half, seeding.
pub fn database(i: &Inputs<'_>, db: &str) -> Vec<Step> {
    let n = Names::of(i.profile, db);
    let ag = i.observed.sql.ag_of(db).map(|a| a.name.clone()).unwrap_or(n.sql_ag.clone());
    let sql_url = format!("TCP://{}:{}", i.endpoint_host, endpoint_port(i));
    vec![
        availability_group(i, db, &ag, &sql_url),
        distributed_ag(i, &n, &ag, &sql_url),
        mi_link(i, &n, &ag, &sql_url),
        wait_seeding(i, &n),
    ]
}

fn availability_group(i: &Inputs<'_>, db: &str, ag: &str, sql_url: &str) -> Step {
    let s = &i.observed.sql;
    // 2016 has no CLUSTER_TYPE: its AGs are WSFC ones.
    let cluster = if s.version.0 == 13 { String::new() } else { "WITH (CLUSTER_TYPE = NONE) ".into() };
    let create = format!(
        "{MASTER}CREATE AVAILABILITY GROUP {} {cluster}FOR DATABASE {} REPLICA ON {} WITH (ENDPOINT_URL = {}, AVAILABILITY_MODE = SYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL, SEEDING_MODE = AUTOMATIC);",
        ident(ag),
        ident(db),
        nstring(&s.server_name),
        nstring(sql_url)
    );
    let mut step = sql(
        Where::SqlServer,
        format!("sql-ag:{db}"),
        format!("Create the availability group {ag} for {db}"),
        create.clone(),
        create,
        s.ag_of(db).is_some(),
        vec!["link-present"],
    );
    if s.ag_of(db).is_none() && s.ag(ag).is_some() {
        step.state = State::Blocked(format!(
            "an availability group {ag} exists already, without {db}: name another in link.sql_ag"
        ));
    }
    step
}

pub(super) fn distributed_ag(i: &Inputs<'_>, n: &Names, ag: &str, sql_url: &str) -> Step {
    let fqdn = &i.profile.managed_instance.fqdn;
    let mi_name =
        i.profile.arm.managed_instance.clone().unwrap_or_else(|| fqdn.split('.').next().unwrap_or("").to_string());
    let mi_url = format!("tcp://{fqdn}:5022;Server=[{mi_name}]");
    let create = format!(
        "{MASTER}CREATE AVAILABILITY GROUP {} WITH (DISTRIBUTED) AVAILABILITY GROUP ON {} WITH (LISTENER_URL = {}, AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL, SEEDING_MODE = AUTOMATIC, SESSION_TIMEOUT = 20), {} WITH (LISTENER_URL = {}, AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL, SEEDING_MODE = AUTOMATIC);",
        ident(&n.dag),
        nstring(ag),
        nstring(sql_url),
        nstring(&n.mi_ag),
        nstring(&mi_url)
    );
    sql(
        Where::SqlServer,
        format!("sql-dag:{}", n.db),
        format!("Create the distributed availability group {} to the managed instance", n.dag),
        create.clone(),
        create,
        i.observed.sql.ag(&n.dag).is_some_and(|a| a.distributed),
        vec!["link-present"],
    )
}

fn mi_link(i: &Inputs<'_>, n: &Names, ag: &str, sql_url: &str) -> Step {
    let o = i.observed;
    let body = if o.arm.new_schema() || o.arm.api.is_empty() {
        json!({ "properties": {
            "partnerAvailabilityGroupName": ag,
            "instanceAvailabilityGroupName": n.mi_ag,
            "partnerEndpoint": sql_url,
            "databases": [{ "databaseName": n.db }],
            "instanceLinkRole": "Secondary",
            "failoverMode": if i.profile.managed_instance.failback { "Manual" } else { "None" },
            "seedingMode": "Automatic",
            "replicationMode": "Async",
        }})
    } else {
        json!({ "properties": {
            "targetDatabase": n.db,
            "sourceEndpoint": sql_url,
            "primaryAvailabilityGroupName": ag,
            "secondaryAvailabilityGroupName": n.mi_ag,
            "replicationMode": "Async",
        }})
    };
    Step {
        id: format!("mi-link:{}", n.db),
        place: Where::Arm,
        title: format!("Join the managed instance to {} (its distributedAvailabilityGroups resource)", n.dag),
        state: if o.arm.dag(&n.dag).is_some() { State::Done } else { State::Todo },
        action: Action::Arm {
            method: "PUT".into(),
            url: format!("distributedAvailabilityGroups/{}?api-version={}", segment(&n.dag), api(i)),
            body: Some(body),
        },
        resolves: vec!["link-present", "link-connected"],
    }
}

pub(super) fn wait_seeding(i: &Inputs<'_>, n: &Names) -> Step {
    let s = &i.observed.sql;
    // A multi-database link is healthy as a whole while a database added to it
    // still seeds: there only the database's own seeding tells.
    let per_database = i.profile.link.mode == crate::profile::LinkMode::Multi;
    let seeded =
        s.seeding.iter().any(|x| x.database.eq_ignore_ascii_case(&n.db) && x.size > 0 && x.transferred >= x.size)
            || (!per_database
                && s.links.iter().any(|(d, c, h)| d.eq_ignore_ascii_case(&n.dag) && *c && h == "HEALTHY"));
    Step {
        id: format!("wait-seeding:{}", n.db),
        place: Where::Milink,
        title: format!("Wait for automatic seeding of {} to the managed instance", n.db),
        state: if seeded { State::Done } else { State::Todo },
        action: Action::WaitSeeding { database: n.db.clone() },
        resolves: vec!["link-seeding", "link-sync-health"],
    }
}
