//! What a scenario must be to be run: every name it refers to exists, every
//! value is in range, and no address leaves the lab.

use super::{Scenario, parse_version, split_copy_of};
use crate::lab::addr::{self, Mode};

impl Scenario {
    pub(super) fn validate(&self) -> Result<(), String> {
        for step in &self.timeline {
            step.validate()?;
        }
        for (label, side) in self.sides() {
            parse_version(&side.version)
                .ok_or_else(|| format!("{label}.version `{}` is not major.minor.build.revision", side.version))?;
            if let Some(ep) = side.endpoint.as_ref().filter(|e| e.present)
                && let Some(cert) = ep.certificate.as_ref().filter(|c| !c.is_empty())
                && !side.certificates.iter().any(|c| &c.name == cert)
            {
                return Err(format!("{label}.endpoint.certificate `{cert}` is not in {label}.certificates"));
            }
            for c in &side.certificates {
                if let Some(other) = &c.copy_of {
                    let (from, named) = split_copy_of(other);
                    let Some((_, from_side)) = self.sides().into_iter().find(|(l, _)| *l == from) else {
                        return Err(format!(
                            "{label}.certificates `{}`: copy_of must be sql_server or managed_instance (or <side>:<certificate>)",
                            c.name
                        ));
                    };
                    if let Some(n) = named
                        && !from_side.certificates.iter().any(|x| x.name == n && x.copy_of.is_none())
                    {
                        return Err(format!(
                            "{label}.certificates `{}`: copy_of `{other}`: {from} has no certificate `{n}` of its own",
                            c.name
                        ));
                    }
                }
                if c.previous && c.copy_of.is_none() {
                    return Err(format!("{label}.certificates `{}`: previous needs copy_of", c.name));
                }
            }
            for ag in &side.availability_groups {
                if let Some(d) = ag.databases.iter().find(|d| !side.databases.iter().any(|x| &x.name == *d)) {
                    return Err(format!(
                        "{label}.availability_groups `{}`: database `{d}` is not in {label}.databases",
                        ag.name
                    ));
                }
            }
            for d in &side.databases {
                if let Some(c) = &d.tde_certificate
                    && !side.certificates.iter().any(|x| &x.name == c)
                {
                    return Err(format!(
                        "{label}.databases `{}`: tde_certificate `{c}` is not in {label}.certificates",
                        d.name
                    ));
                }
            }
            for b in &side.backups {
                if !side.databases.iter().any(|d| d.name == b.database) {
                    return Err(format!("{label}.backups: database `{}` is not in {label}.databases", b.database));
                }
            }
            match side.tier.as_deref() {
                None => {}
                Some(_) if !side.is_managed_instance() => {
                    return Err(format!("{label}.tier: only a managed instance (engine_edition 8) has a service tier"));
                }
                Some("GeneralPurpose" | "BusinessCritical" | "NextGenGeneralPurpose") => {}
                Some(t) => {
                    return Err(format!(
                        "{label}.tier `{t}` is not GeneralPurpose, BusinessCritical or NextGenGeneralPurpose"
                    ));
                }
            }
            if let Some(p) = side.tds.redirect_port
                && !(11000..=11999).contains(&p)
            {
                return Err(format!("{label}.tds.redirect_port {p} is outside 11000-11999"));
            }
        }
        self.validate_arm()?;
        self.validate_network()
    }

    fn validate_arm(&self) -> Result<(), String> {
        if let Some(u) = &self.arm.hybrid_secondary_usage
            && !matches!(u.as_str(), "Active" | "Passive")
        {
            return Err(format!("arm.hybrid_secondary_usage `{u}` is not Active or Passive"));
        }
        Ok(())
    }

    /// Faults name known sides; DNS records known types and never a real address.
    fn validate_network(&self) -> Result<(), String> {
        for f in &self.network.faults {
            if !matches!(f.from.as_str(), "sql_server" | "managed_instance" | "host" | "any") {
                return Err(format!(
                    "network.faults: from `{}` is not sql_server, managed_instance, host or any",
                    f.from
                ));
            }
            if !matches!(f.to.as_str(), "sql_server" | "managed_instance") {
                return Err(format!("network.faults: to `{}` is not sql_server or managed_instance", f.to));
            }
        }
        for r in &self.dns.records {
            let kind = r.kind.to_ascii_uppercase();
            let needs_value = matches!(kind.as_str(), "A" | "AAAA" | "CNAME");
            if !needs_value && !matches!(kind.as_str(), "NXDOMAIN" | "SERVFAIL" | "SILENT") {
                return Err(format!("dns.records `{}`: unknown type `{}`", r.name, r.kind));
            }
            if needs_value && r.value.is_none() {
                return Err(format!("dns.records `{}`: type {} needs a value", r.name, r.kind));
            }
            // Never a real address, whatever the mode; loopback mode narrows this
            // further at start (`check_addresses`).
            if matches!(kind.as_str(), "A" | "AAAA") {
                let ip: std::net::IpAddr = r.value.as_deref().unwrap_or("").parse().map_err(|_| {
                    format!("dns.records `{}`: `{}` is not an address", r.name, r.value.as_deref().unwrap_or(""))
                })?;
                if !addr::allowed(Mode::Topology, ip) {
                    return Err(format!(
                        "dns.records `{}`: {ip} is outside {}; the lab hands out no other address",
                        r.name,
                        addr::describe(Mode::Topology)
                    ));
                }
            }
            if !matches!(r.view.as_str(), "all" | "sql_server" | "managed_instance") {
                return Err(format!("dns.records `{}`: view must be all, sql_server or managed_instance", r.name));
            }
        }
        Ok(())
    }
}
