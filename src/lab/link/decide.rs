//! What a link does, decided from what each half holds and how the dials
//! between the sides ended. Pure: the caller dials and applies the verdict.
//! The first thing that fails is what SQL Server would report.

use super::texts;
use crate::lab::state::objects::{Cipher, EndpointState};
use crate::lab::state::{SideId, World};

/// How one side's dial to the other ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dial {
    Open,
    Refused,
    TimedOut,
    /// Accepted, then closed before any handshake (a reset).
    Reset,
    NoName,
    Unreachable,
}

/// A host and port out of an endpoint URL (`TCP://host:5022`, `tcp://fqdn:5022;Server=[mi]`).
pub fn url_target(url: &str) -> Option<(String, u16)> {
    let rest = url.trim().split_once("://").map(|(_, r)| r).unwrap_or(url.trim());
    let rest = rest.split(';').next()?;
    let (host, port) = rest.rsplit_once(':')?;
    Some((host.trim_matches(['[', ']']).to_string(), port.trim_end_matches('/').parse().ok()?))
}

/// The dials a link needs, read from the halves: (from side, host, port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dials {
    /// The managed instance to SQL Server's endpoint (the DAG's partner endpoint).
    pub mi_to_sql: Option<(String, u16)>,
    /// SQL Server to the managed instance's endpoint (the DAG's listener URL).
    pub sql_to_mi: Option<(String, u16)>,
}

pub fn dials(world: &World, dag: &str) -> Dials {
    let sql_dag = world.sql.ag(dag).filter(|a| a.distributed);
    let mi_dag = world.arm.dags.iter().find(|d| d.name.eq_ignore_ascii_case(dag));
    Dials {
        mi_to_sql: mi_dag.and_then(|d| url_target(&d.partner_endpoint)),
        sql_to_mi: sql_dag.and_then(|d| d.replicas.get(1)).and_then(|r| url_target(&r.endpoint_url)),
    }
}

/// The verdict on one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Only SQL Server's half exists: DISCONNECTED, no error (the documented state before joining).
    Waiting,
    /// Both halves exist and everything agrees.
    Connect,
    /// The error the side's DMV and error log show.
    Fail { side: SideId, number: i32, description: String, log: Option<(SideId, String)> },
    /// Both halves are gone.
    Gone,
    /// Both sides are PRIMARY after a forced failover: they do not connect.
    SplitBrain,
}

fn fail(side: SideId, number: i32, description: impl Into<String>) -> Verdict {
    Verdict::Fail { side, number, description: description.into(), log: None }
}

/// Decides one link. `mi_dial` and `sql_dial` are the outcomes of `dials()`.
/// `db`: the database of the link state being decided (a multi-database
/// link has one per database).
pub fn decide(world: &World, dag: &str, db: &str, mi_dial: Option<&Dial>, sql_dial: Option<&Dial>) -> Verdict {
    let sql_dag = world.sql.ag(dag).filter(|a| a.distributed);
    let mi_dag = world.arm.dags.iter().find(|d| d.name.eq_ignore_ascii_case(dag));
    let (sql_dag, mi_dag) = match (sql_dag, mi_dag) {
        (None, None) => return Verdict::Gone,
        (Some(_), None) => return Verdict::Waiting,
        (sql, Some(mi)) => (sql, mi),
    };
    if world.link(dag).is_some_and(|l| l.status.split_brain()) {
        return Verdict::SplitBrain;
    }
    let sql_ag_name = sql_dag.and_then(|d| d.replicas.first()).map(|r| r.name.clone()).unwrap_or_default();
    let sql_url = mi_dag.partner_endpoint.clone();

    // The managed instance reaches SQL Server's endpoint first.
    if let Some(v) = dial_failure(SideId::Mi, mi_dial, &sql_ag_name, world) {
        return v;
    }
    let Some(sql_dag) = sql_dag else {
        return fail(SideId::Mi, 41976, texts::not_responding(&mi_dag.partner_ag, &sql_url));
    };
    // And SQL Server the managed instance's.
    let mi_ag_name = sql_dag.replicas.get(1).map(|r| r.name.clone()).unwrap_or_default();
    if let Some(v) = dial_failure(SideId::Sql, sql_dial, &mi_ag_name, world) {
        return v;
    }
    // SQL Server's half must name the instance for its gateway to route the link there.
    let mi_url = sql_dag.replicas.get(1).map(|r| r.endpoint_url.clone()).unwrap_or_default();
    if !mi_url.to_ascii_lowercase().contains(&format!(";server=[{}]", world.mi.name.to_ascii_lowercase())) {
        return fail(SideId::Sql, 41976, texts::not_responding(&mi_ag_name, &mi_url));
    }
    // SQL Server 2016/2017 without the Azure Connect pack cannot answer the redirect.
    if !world.sql.connect_pack {
        return Verdict::Fail {
            side: SideId::Mi,
            number: 41976,
            description: texts::not_responding(&mi_dag.partner_ag, &sql_url),
            log: Some((SideId::Sql, texts::REDIRECT_EMPTY.into())),
        };
    }
    // The endpoints' handshake: authentication, encryption, certificates.
    let (Some(sql_ep), Some(mi_ep)) = (&world.sql.endpoint, &world.mi.endpoint) else {
        return fail(SideId::Mi, 35207, texts::REFUSED);
    };
    if sql_ep.auth.certificate.is_none() {
        return Verdict::Fail {
            side: SideId::Mi,
            number: 35207,
            description: texts::NO_CONNECT_PERMISSION.into(),
            log: Some((SideId::Sql, texts::login_failed(texts::NO_CONNECT_PERMISSION))),
        };
    }
    if !compatible(&sql_ep.cipher, &mi_ep.cipher) {
        return Verdict::Fail {
            side: SideId::Sql,
            number: 35206,
            description: texts::timeout_established(&mi_ag_name),
            log: Some((SideId::Sql, texts::login_failed(texts::NO_ALGORITHM))),
        };
    }
    let now = time::OffsetDateTime::now_utc();
    match world.sql.endpoint_certificate() {
        Some(c) if c.valid_at(now) => {}
        _ => {
            return Verdict::Fail {
                side: SideId::Mi,
                number: 35207,
                description: texts::REMOTE_CERT_EXPIRED.into(),
                log: Some((SideId::Sql, texts::login_failed(texts::OWN_CERT_EXPIRED))),
            };
        }
    }
    let sql_der = world.sql.endpoint_certificate().map(|c| c.cert.der.clone()).unwrap_or_default();
    if !world.mi.certificates.iter().any(|c| c.cert.der == sql_der) {
        return fail(SideId::Mi, 41973, texts::SQL_CERT_NOT_ON_MI);
    }
    let mi_der = world.mi.endpoint_certificate().map(|c| c.cert.der.clone()).unwrap_or_default();
    let imported = world.sql.certificate(&world.mi.fqdn).is_some_and(|c| c.cert.der == mi_der);
    if !imported {
        return fail(SideId::Sql, 41974, texts::MI_CERT_NOT_ON_SQL);
    }
    // The names and the database must match what each half expects.
    if !mi_dag.partner_ag.eq_ignore_ascii_case(&sql_ag_name) || !mi_dag.instance_ag.eq_ignore_ascii_case(&mi_ag_name) {
        return fail(SideId::Mi, 41976, texts::not_responding(&mi_dag.partner_ag, &sql_url));
    }
    let in_ag = world.sql.ag(&sql_ag_name).is_some_and(|a| a.databases.iter().any(|d| d.eq_ignore_ascii_case(db)));
    let in_dag = mi_dag.databases.iter().any(|d| d.eq_ignore_ascii_case(db));
    match (in_ag, in_dag) {
        (true, true) => Verdict::Connect,
        // Removed from a multi-database link on both sides: its state goes.
        (false, false) if mi_dag.databases.len() > 1 || world.links_of(dag).count() > 1 => Verdict::Gone,
        _ => fail(SideId::Mi, 41977, texts::NO_TARGET_DATABASE),
    }
}

/// Whether a dial's outcome is an error, and which.
fn dial_failure(from: SideId, dial: Option<&Dial>, replica: &str, world: &World) -> Option<Verdict> {
    let d = dial?;
    let v = match d {
        Dial::Open => return None,
        Dial::TimedOut => fail(from, 35201, texts::timeout(replica)),
        Dial::Refused => {
            let stopped =
                from == SideId::Mi && world.sql.endpoint.as_ref().is_some_and(|e| e.state != EndpointState::Started);
            if stopped { fail(from, 35204, texts::CLOSED_REFUSED) } else { fail(from, 35207, texts::REFUSED) }
        }
        Dial::Reset => fail(from, 35207, texts::RESET),
        Dial::NoName => fail(from, 35207, texts::NO_SUCH_HOST),
        Dial::Unreachable => fail(from, 35207, texts::UNREACHABLE),
    };
    Some(v)
}

/// Encryption is negotiated between the two endpoints' settings.
fn compatible(a: &Cipher, b: &Cipher) -> bool {
    a.compatible(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        assert_eq!(url_target("TCP://127.0.0.2:5022"), Some(("127.0.0.2".into(), 5022)));
        assert_eq!(
            url_target("tcp://mi.x.database.windows.net:5022;Server=[mi]"),
            Some(("mi.x.database.windows.net".into(), 5022))
        );
        assert_eq!(url_target("TCP://[::1]:7022"), Some(("::1".into(), 7022)));
        assert_eq!(url_target("nonsense"), None);
    }
}
