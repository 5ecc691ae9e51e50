//! A fleet of labs from one file: groups of links, each a copy of a scenario
//! under names of its own (`SQL0001`, `mi-0001`), with its certificates'
//! dates changed per copy. All served from one process; the inventory milink's
//! audit reads is written beside them.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::scenario::{Scenario, ScenarioError};
use super::{Lab, LabError};

/// Links per fleet; 2,000 instances.
const MAX_LINKS: usize = 1000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    pub description: String,
    #[serde(rename = "group")]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub expect: FleetExpect,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetExpect {
    pub exit_code: Option<u8>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// The scenario each copy starts from, relative to the fleet file.
    pub scenario: PathBuf,
    pub count: usize,
    #[serde(default)]
    pub certificates: Vec<CertChange>,
    /// The inventory gets a wrong password for this side (`sql_server` or
    /// `managed_instance`): the audit must say it cannot log in.
    #[serde(default)]
    pub wrong_password: Option<String>,
    /// What the audit should conclude for each copy: `ok`, `warn`, `crit`,
    /// `unknown` per side, and `ok`, `fail`, `unknown` or `none` for the link.
    #[serde(default)]
    pub expect: GroupExpect,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupExpect {
    pub sql_server: Option<String>,
    pub managed_instance: Option<String>,
    pub link: Option<String>,
}

/// New dates for one certificate of the base scenario, by its name there.
/// A list of expiries is spread over the copies in turn.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertChange {
    pub side: String,
    pub name: String,
    #[serde(default)]
    pub start: Option<String>,
    pub expiry: OneOrMany,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn pick(&self, k: usize) -> Option<&str> {
        match self {
            OneOrMany::One(s) => Some(s),
            OneOrMany::Many(v) if v.is_empty() => None,
            OneOrMany::Many(v) => Some(&v[k % v.len()]),
        }
    }
}

/// One copy: its number (1-based across the fleet), its group, its scenario.
pub struct Member {
    pub number: usize,
    pub group: usize,
    pub scenario: Scenario,
}

fn inconsistent(path: &Path, message: String) -> ScenarioError {
    ScenarioError::Inconsistent { path: path.display().to_string(), message }
}

/// Whether a file is a fleet rather than one scenario (it has `[[group]]`).
pub fn is_fleet(path: &Path) -> bool {
    crate::input::read_file(path)
        .ok()
        .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
        .is_some_and(|t| t.contains_key("group"))
}

impl Fleet {
    pub fn load(path: &Path) -> Result<Fleet, ScenarioError> {
        let text = crate::input::read_file(path)
            .map_err(|source| ScenarioError::Read { path: path.display().to_string(), source })?;
        let fleet: Fleet = toml::from_str(&text).map_err(|e| ScenarioError::Invalid {
            path: path.display().to_string(),
            line: 0,
            column: 0,
            message: e.message().to_string(),
        })?;
        let total: usize = fleet.groups.iter().map(|g| g.count).sum();
        if total == 0 || total > MAX_LINKS {
            return Err(inconsistent(path, format!("{total} links: a fleet has 1 to {MAX_LINKS}")));
        }
        for g in &fleet.groups {
            if let Some(s) = &g.wrong_password
                && s != "sql_server"
                && s != "managed_instance"
            {
                return Err(inconsistent(path, format!("wrong_password `{s}`: sql_server or managed_instance")));
            }
        }
        Ok(fleet)
    }

    /// Every copy, renamed and with its certificate dates set.
    pub fn members(&self, path: &Path) -> Result<Vec<Member>, ScenarioError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut out = Vec::new();
        for (gi, g) in self.groups.iter().enumerate() {
            let base_path = dir.join(&g.scenario);
            let base = Scenario::resolved_table(&base_path)?;
            for k in 0..g.count {
                let number = out.len() + 1;
                let mut t = base.clone();
                t.remove("expect");
                for c in &g.certificates {
                    set_dates(&mut t, c, k).map_err(|m| inconsistent(path, format!("group {}: {m}", gi + 1)))?;
                }
                let text = rename(&t, number).map_err(|m| inconsistent(&base_path, m))?;
                let origin = format!("{} (copy {number})", base_path.display());
                out.push(Member { number, group: gi, scenario: Scenario::parse_resolved(&text, &origin)? });
            }
        }
        Ok(out)
    }
}

fn set_dates(t: &mut toml::Table, c: &CertChange, k: usize) -> Result<(), String> {
    let certs = t
        .get_mut(&c.side)
        .and_then(|s| s.get_mut("certificates"))
        .and_then(|v| v.as_array_mut())
        .ok_or_else(|| format!("{} has no certificates", c.side))?;
    let cert = certs
        .iter_mut()
        .filter_map(|v| v.as_table_mut())
        .find(|x| x.get("name").and_then(|n| n.as_str()) == Some(c.name.as_str()))
        .ok_or_else(|| format!("{} has no certificate `{}`", c.side, c.name))?;
    if let Some(e) = c.expiry.pick(k) {
        cert.insert("expiry".into(), e.into());
    }
    if let Some(s) = &c.start {
        cert.insert("start".into(), s.clone().into());
    }
    Ok(())
}

/// The copy's names replace the base's everywhere they appear (certificate
/// names, subjects, endpoint URLs): `SQLPROD01` → `SQL0042`, `mi-contoso` → `mi-0042`.
fn rename(t: &toml::Table, n: usize) -> Result<String, String> {
    let get = |side: &str, k: &str| {
        t.get(side)
            .and_then(|s| s.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("{side}.{k} is missing"))
    };
    let (sql, sql_fqdn, mi) =
        (get("sql_server", "name")?, get("sql_server", "fqdn")?, get("managed_instance", "name")?);
    let text = toml::to_string(t).map_err(|e| e.to_string())?;
    let sql_new = format!("SQL{n:04}");
    Ok(text
        .replace(&sql_fqdn, &format!("sql{n:04}.fleet.lab"))
        .replace(&sql, &sql_new)
        .replace(&sql.to_ascii_lowercase(), &sql_new.to_ascii_lowercase())
        .replace(&mi, &format!("mi-{n:04}")))
}

/// The labs of a fleet, running, and the inventory that lists them.
pub struct FleetLab {
    pub labs: Vec<(Member, Lab)>,
    pub inventory: PathBuf,
    dir: PathBuf,
}

impl Drop for FleetLab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Serialize)]
pub struct FleetInfo {
    pub description: String,
    pub links: usize,
    pub instances: usize,
    /// The inventory for `milink audit certs --inventory`.
    pub inventory: String,
}

impl FleetLab {
    pub async fn start(fleet: &Fleet, path: &Path) -> Result<FleetLab, LabError> {
        let members = fleet.members(path)?;
        let dir = std::env::temp_dir().join(format!("milink-fleet-{}-{:x}", std::process::id(), super::net::random()));
        std::fs::create_dir_all(dir.join("secrets"))?;
        let mut labs = Vec::with_capacity(members.len());
        for m in members {
            let lab = Lab::start(&m.scenario).await?;
            labs.push((m, lab));
        }
        let inventory = dir.join("inventory.toml");
        std::fs::write(&inventory, inventory_text(fleet, &labs, &dir)?)?;
        Ok(FleetLab { labs, inventory, dir })
    }

    pub fn info(&self, fleet: &Fleet) -> FleetInfo {
        FleetInfo {
            description: fleet.description.clone(),
            links: self.labs.len(),
            instances: self.labs.len() * 2,
            inventory: self.inventory.display().to_string(),
        }
    }
}

fn secret_file(dir: &Path, name: &str, value: &str) -> io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let rel = format!("secrets/{name}");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(dir.join(&rel))?;
    io::Write::write_all(&mut f, value.as_bytes())?;
    Ok(rel)
}

/// The inventory a DBA would write for these servers: names, addresses, the
/// lab CA, and secrets in files beside it (mode 0600), never inline.
fn inventory_text(fleet: &Fleet, labs: &[(Member, Lab)], dir: &Path) -> io::Result<String> {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut out = format!(
        "# milink audit inventory for the lab fleet: {}\n# Secrets are in ./secrets (mode 0600).\n",
        fleet.description
    );
    for (m, lab) in labs {
        let group = &fleet.groups[m.group];
        for (side, info) in [("sql_server", &lab.info.sql_server), ("managed_instance", &lab.info.managed_instance)] {
            let password = if group.wrong_password.as_deref() == Some(side) {
                "Not-The-Password-1"
            } else {
                info.password.as_str()
            };
            let pw = secret_file(dir, &format!("{}.password", info.name), password)?;
            out.push_str(&format!(
                "\n[[instance]]\nname = {}\nkind = {}\nhost = {}\naddress = {}\nport = {}\nuser = {}\npassword_file = {}\nca_cert = {}\n",
                q(&info.name),
                q(side),
                q(&info.fqdn),
                q(&info.host),
                info.port,
                q(&info.user),
                q(&pw),
                q(&info.ca_cert)
            ));
            if side == "managed_instance" {
                let a = &lab.info.arm;
                let token = secret_file(dir, &format!("{}.arm-token", info.name), &a.token)?;
                out.push_str(&format!(
                    "arm_resource_id = {}\narm_base_url = {}\narm_ca_cert = {}\narm_token_file = {}\n",
                    q(&format!(
                        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Sql/managedInstances/{}",
                        a.subscription_id, a.resource_group, a.managed_instance
                    )),
                    q(&a.base_url),
                    q(&a.ca_cert),
                    q(&token)
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenarios() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fleets/x.toml")
    }

    #[test]
    fn copies_get_their_own_names_and_dates() {
        let fleet: Fleet = toml::from_str(
            "description = \"x\"\n[[group]]\nscenario = \"../link-healthy.toml\"\ncount = 3\n\
             [[group.certificates]]\nside = \"sql_server\"\nname = \"Cert_SQLPROD01_endpoint\"\nexpiry = [\"+5d\", \"+20d\"]\n",
        )
        .unwrap();
        let m = fleet.members(&scenarios()).unwrap();
        assert_eq!(m.len(), 3);
        let s = &m[1].scenario;
        assert_eq!(s.sql_server.name, "SQL0002");
        assert_eq!(s.sql_server.fqdn, "sql0002.fleet.lab");
        assert!(s.managed_instance.fqdn.starts_with("mi-0002."));
        let ep = |s: &Scenario| s.sql_server.certificates.iter().any(|c| c.name == "Cert_SQL0002_endpoint");
        assert!(ep(s), "the endpoint certificate is renamed with the server");
        // The partner certificate on SQL Server is named after the copy's instance.
        assert!(s.sql_server.certificates.iter().any(|c| c.name == s.managed_instance.fqdn));
        let expiry =
            |s: &Scenario, n: &str| s.sql_server.certificates.iter().find(|c| c.name == n).map(|c| c.expiry.0.clone());
        assert_ne!(expiry(&m[0].scenario, "Cert_SQL0001_endpoint"), expiry(s, "Cert_SQL0002_endpoint"));
        assert_eq!(expiry(&m[0].scenario, "Cert_SQL0001_endpoint"), expiry(&m[2].scenario, "Cert_SQL0003_endpoint"));
    }

    #[test]
    fn mistakes_are_named() {
        let bad: Fleet = toml::from_str(
            "description = \"x\"\n[[group]]\nscenario = \"../link-healthy.toml\"\ncount = 1\n\
             [[group.certificates]]\nside = \"sql_server\"\nname = \"nope\"\nexpiry = \"+5d\"\n",
        )
        .unwrap();
        let e = bad.members(&scenarios()).err().unwrap().to_string();
        assert!(e.contains("no certificate `nope`"), "{e}");
    }
}
