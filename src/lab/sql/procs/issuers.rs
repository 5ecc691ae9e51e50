//! `sp_certificate_add_issuer @certificate_id, @issuer_domain`: marks a root
//! certificate as the issuer the server trusts for a domain (the Azure roots for
//! `*.database.windows.net`).

use crate::lab::catalog::Catalog;
use crate::lab::sql::SqlError;

pub fn add(c: &Catalog, id: Option<i64>, domain: Option<String>) -> Result<(), SqlError> {
    let Some(domain) = domain.filter(|d| !d.trim().is_empty()) else {
        return Err(SqlError::new(
            201,
            16,
            4,
            "Procedure or function 'sp_certificate_add_issuer' expects parameter '@issuer_domain', which was not supplied.",
        ));
    };
    let mut world = c.world();
    let s = world.server_mut(c.side);
    let Some(cert) = id.and_then(|id| s.certificates.iter_mut().find(|x| x.id == id)) else {
        // UNCONFIRMED: the exact error for an unknown certificate id.
        return Err(SqlError::new(
            15151,
            16,
            1,
            format!(
                "Cannot find the certificate '{}', because it does not exist or you do not have permission.",
                id.unwrap_or(0)
            ),
        ));
    };
    if !cert.issuer_for.iter().any(|d| d.eq_ignore_ascii_case(&domain)) {
        cert.issuer_for.push(domain.clone());
    }
    let name = cert.name.clone();
    world.mutated(c.side, "sp_certificate_add_issuer", format!("{name} {domain}"));
    c.show(&world).map_err(|e| SqlError::new(50000, 16, 1, format!("lab catalog: {e}")))
}
