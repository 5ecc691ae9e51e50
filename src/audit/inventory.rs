//! The fleet inventory (`fleet.toml`): SQL Servers and managed instances, with
//! shared `[defaults]` and per-entry overrides. Secrets are named (an
//! environment variable or a file), never written inline.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::profile::Secret;
use crate::report::Side;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    SqlServer,
    ManagedInstance,
}

impl Kind {
    pub fn side(self) -> Side {
        match self {
            Kind::SqlServer => Side::SqlServer,
            Kind::ManagedInstance => Side::ManagedInstance,
        }
    }
}

/// One entry as written; every field may also come from `[defaults]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: Option<String>,
    kind: Option<Kind>,
    /// The name the TLS certificate carries (and what DNS resolves).
    host: Option<String>,
    /// Connect here instead of resolving `host` (a hosts-file entry).
    address: Option<IpAddr>,
    port: Option<u16>,
    user: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    /// An Azure AD access token for the managed instance, instead of a password.
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    ca_cert: Option<PathBuf>,
    trust_server_certificate: Option<bool>,
    /// Managed instance: read its trust certificates and links from ARM too.
    arm_resource_id: Option<String>,
    arm_base_url: Option<String>,
    arm_ca_cert: Option<PathBuf>,
    arm_token_env: Option<String>,
    arm_token_file: Option<PathBuf>,
    // Present only to refuse them with a clear message.
    password: Option<toml::Value>,
    token: Option<toml::Value>,
    arm_token: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Entry,
    #[serde(default, rename = "instance")]
    instances: Vec<Entry>,
}

/// How to reach ARM for one managed instance.
#[derive(Clone)]
pub struct ArmAccess {
    pub resource_id: String,
    pub base_url: String,
    pub ca_cert: Option<PathBuf>,
    pub token: Option<Secret>,
}

/// One instance, ready to audit.
#[derive(Clone)]
pub struct Instance {
    pub name: String,
    pub kind: Kind,
    pub host: String,
    pub address: Option<IpAddr>,
    pub port: u16,
    pub user: String,
    /// A password or a token; `Err` keeps why it could not be read, so the
    /// instance is UNKNOWN with that reason instead of failing the whole run.
    pub credential: Result<Credential, String>,
    pub ca_cert: Option<PathBuf>,
    pub trust_server_certificate: bool,
    pub arm: Option<Result<ArmAccess, String>>,
}

#[derive(Clone)]
pub enum Credential {
    Password(Secret),
    Token(Secret),
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read inventory {path}")]
    Read { path: String, source: std::io::Error },
    #[error("inventory {path}: {message}")]
    Invalid { path: String, message: String },
}

pub struct Inventory {
    pub instances: Vec<Instance>,
}

impl Inventory {
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let p = path.display().to_string();
        // Regular files of at most 1 MiB (thousands of instances).
        let text = crate::input::read_file(path).map_err(|source| InventoryError::Read { path: p.clone(), source })?;
        Inventory::parse(&text, path.parent().unwrap_or(Path::new(".")), &p)
    }

    /// Relative file names are relative to `dir`, the inventory's folder.
    pub fn parse(text: &str, dir: &Path, origin: &str) -> Result<Inventory, InventoryError> {
        let invalid = |message: String| InventoryError::Invalid { path: origin.to_string(), message };
        let file: File = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut instances = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, e) in file.instances.iter().enumerate() {
            let at = |m: &str| invalid(format!("instance[{i}]: {m}"));
            for (set, field) in [
                (e.password.is_some() || file.defaults.password.is_some(), "password"),
                (e.token.is_some() || file.defaults.token.is_some(), "token"),
                (e.arm_token.is_some() || file.defaults.arm_token.is_some(), "arm_token"),
            ] {
                if set {
                    return Err(at(&format!(
                        "`{field}` is not allowed: secrets are never written inline; use {field}_env or {field}_file"
                    )));
                }
            }
            let d = &file.defaults;
            let host = e.host.clone().ok_or_else(|| at("`host` is missing"))?;
            let kind = e.kind.or(d.kind).ok_or_else(|| at("`kind` is missing (sql_server or managed_instance)"))?;
            let name = e.name.clone().unwrap_or_else(|| host.clone());
            if !names.insert(name.clone()) {
                return Err(at(&format!("the name `{name}` is used twice")));
            }
            let file_in = |f: &PathBuf| if f.is_absolute() { f.clone() } else { dir.join(f) };
            let secret = |env: Option<&String>, file: Option<&PathBuf>, what: &str| -> Option<Result<Secret, String>> {
                match (env, file) {
                    (Some(v), _) => Some(
                        std::env::var(v)
                            .map(Secret::new)
                            .map_err(|_| format!("{what}: environment variable {v} is not set")),
                    ),
                    (None, Some(f)) => {
                        let f = file_in(f);
                        Some(
                            std::fs::read_to_string(&f)
                                .map(|s| Secret::new(s.trim_end_matches(['\r', '\n'])))
                                .map_err(|err| format!("{what}: {}: {err}", f.display())),
                        )
                    }
                    (None, None) => None,
                }
            };
            let token = secret(
                e.token_env.as_ref().or(d.token_env.as_ref()),
                e.token_file.as_ref().or(d.token_file.as_ref()),
                "token",
            );
            let password = secret(
                e.password_env.as_ref().or(d.password_env.as_ref()),
                e.password_file.as_ref().or(d.password_file.as_ref()),
                "password",
            );
            let credential = match (token, password) {
                (Some(t), _) if kind == Kind::ManagedInstance => t.map(Credential::Token),
                (_, Some(p)) => p.map(Credential::Password),
                _ => Err(
                    "no credential: set password_env or password_file (token_env/token_file for a managed instance)"
                        .into(),
                ),
            };
            let arm = e.arm_resource_id.clone().filter(|_| kind == Kind::ManagedInstance).map(|resource_id| {
                let token = secret(
                    e.arm_token_env.as_ref().or(d.arm_token_env.as_ref()),
                    e.arm_token_file.as_ref().or(d.arm_token_file.as_ref()),
                    "arm token",
                )
                .transpose()?;
                Ok(ArmAccess {
                    resource_id,
                    base_url: e
                        .arm_base_url
                        .clone()
                        .or(d.arm_base_url.clone())
                        .unwrap_or_else(|| "https://management.azure.com".into()),
                    ca_cert: e.arm_ca_cert.as_ref().or(d.arm_ca_cert.as_ref()).map(file_in),
                    token,
                })
            });
            instances.push(Instance {
                name,
                kind,
                host,
                address: e.address.or(d.address),
                port: e.port.or(d.port).unwrap_or(1433),
                user: e.user.clone().or(d.user.clone()).unwrap_or_default(),
                credential,
                ca_cert: e.ca_cert.as_ref().or(d.ca_cert.as_ref()).map(file_in),
                trust_server_certificate: e.trust_server_certificate.or(d.trust_server_certificate).unwrap_or(false),
                arm,
            });
        }
        if instances.is_empty() {
            return Err(invalid("no [[instance]] entries".into()));
        }
        Ok(Inventory { instances })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory, InventoryError> {
        Inventory::parse(text, Path::new("/inv"), "fleet.toml")
    }

    #[test]
    fn defaults_apply_and_entries_override() {
        let inv = parse(
            "[defaults]\nuser = \"audit\"\nport = 1444\nca_cert = \"ca.pem\"\npassword_env = \"MILINK_TEST_UNSET_VAR\"\n\
             [[instance]]\nkind = \"sql_server\"\nhost = \"a.lab\"\n\
             [[instance]]\nkind = \"managed_instance\"\nhost = \"b.lab\"\nport = 1433\nuser = \"other\"\nca_cert = \"/abs/ca.pem\"\n",
        )
        .unwrap();
        let (a, b) = (&inv.instances[0], &inv.instances[1]);
        assert_eq!((a.name.as_str(), a.port, a.user.as_str()), ("a.lab", 1444, "audit"));
        assert_eq!(a.ca_cert.as_deref(), Some(Path::new("/inv/ca.pem")));
        assert_eq!((b.port, b.user.as_str()), (1433, "other"));
        assert_eq!(b.ca_cert.as_deref(), Some(Path::new("/abs/ca.pem")));
        // A missing secret is the instance's problem, not the run's.
        assert!(a.credential.as_ref().err().unwrap().contains("MILINK_TEST_UNSET_VAR"));
    }

    #[test]
    fn inline_secrets_are_refused() {
        for field in ["password", "token", "arm_token"] {
            let text = format!("[[instance]]\nkind = \"sql_server\"\nhost = \"a\"\n{field} = \"hunter2\"\n");
            let e = parse(&text).err().unwrap().to_string();
            assert!(e.contains(&format!("{field}_env")), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        let e = |t: &str| parse(t).err().unwrap().to_string();
        assert!(e("[[instance]]\nhost = \"a\"\n").contains("`kind` is missing"));
        assert!(e("[[instance]]\nkind = \"sql_server\"\n").contains("`host` is missing"));
        assert!(e("[[instance]]\nkind = \"sql_server\"\nhost = \"a\"\nprot = 1\n").contains("unknown field"));
        assert!(
            e("[[instance]]\nkind = \"sql_server\"\nhost = \"a\"\n[[instance]]\nkind = \"sql_server\"\nhost = \"a\"\n")
                .contains("used twice")
        );
        assert!(e("").contains("no [[instance]]"));
    }
}
