//! `milink lab`: stand-ins on loopback that speak the real protocols, built
//! from a scenario file.

pub mod catalog;
pub mod certs;
pub mod scenario;
pub mod sql;

use time::OffsetDateTime;

use catalog::{BuildInput, Catalog, CatalogError};
use scenario::Scenario;

/// Both sides' catalogs. Certificates are made first so an import on one side
/// is byte-equal to the other side's certificate.
pub fn build_catalogs(
    scenario: &Scenario,
    now: OffsetDateTime,
    sql_endpoint_host: &str,
) -> Result<(Catalog, Catalog), CatalogError> {
    let sql_certs = catalog::make_certs(&scenario.sql_server, now, 0x1000)?;
    let mi_certs = catalog::make_certs(&scenario.managed_instance, now, 0x2000)?;
    let sql = catalog::build(BuildInput {
        label: "sql_server",
        scenario,
        side: &scenario.sql_server,
        own: &sql_certs,
        other_side: &scenario.managed_instance,
        other: &mi_certs,
        sql_endpoint_host: sql_endpoint_host.to_string(),
        now,
    })?;
    let mi = catalog::build(BuildInput {
        label: "managed_instance",
        scenario,
        side: &scenario.managed_instance,
        own: &mi_certs,
        other_side: &scenario.sql_server,
        other: &sql_certs,
        sql_endpoint_host: sql_endpoint_host.to_string(),
        now,
    })?;
    Ok((sql, mi))
}
