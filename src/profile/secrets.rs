//! Passwords and tokens: a value that never prints, and the 0600 secrets file.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ProfileError;

/// A password or token: never printed, never serialised.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The secrets file: TOML, readable by its owner only (like an ssh key).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mi_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mi_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key_password: Option<String>,
}

impl Secrets {
    pub fn load(path: &Path) -> Result<Secrets, ProfileError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path).map_err(|e| ProfileError::Read(path.display().to_string(), e))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(ProfileError::Missing(format!(
                    "{} is readable by others (mode {mode:o}): chmod 600 it, it holds secrets",
                    path.display()
                )));
            }
        }
        let text = crate::input::read_file(path).map_err(|e| ProfileError::Read(path.display().to_string(), e))?;
        // The error names the line only: a value could be a secret.
        toml::from_str(&text).map_err(|e| ProfileError::Invalid {
            path: path.display().to_string(),
            line: e.span().map(|s| text[..s.start].matches('\n').count() + 1).unwrap_or(0),
            message: "not a secrets file (keys: sql_password, mi_password, mi_token, arm_token, master_key_password)"
                .into(),
        })
    }

    /// Writes the file with mode 0600 from the start.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(path)?;
        f.write_all(toml::to_string(self).map_err(std::io::Error::other)?.as_bytes())
    }
}

pub(super) fn read_env_or_file(env: &str, file: Option<&Path>) -> Result<Option<Secret>, ProfileError> {
    if let Some(f) = file {
        let s = std::fs::read_to_string(f).map_err(|e| ProfileError::Read(f.display().to_string(), e))?;
        return Ok(Some(Secret::new(s.trim_end_matches(['\r', '\n']))));
    }
    Ok(std::env::var(env).ok().filter(|s| !s.is_empty()).map(Secret::new))
}

pub(super) fn secret(env: &str, file: Option<&Path>, what: &str) -> Result<Option<Secret>, ProfileError> {
    if let Some(s) = read_env_or_file(env, file)? {
        return Ok(Some(s));
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let p =
            rpassword::prompt_password(format!("{what}: ")).map_err(|e| ProfileError::Read("terminal".into(), e))?;
        return Ok(Some(Secret::new(p)));
    }
    Ok(None)
}
