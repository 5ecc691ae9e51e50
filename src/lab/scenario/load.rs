//! Reading a scenario file: TOML with unknown keys rejected, `extends`
//! resolved inside the file's folder, errors with line, column and key.

use std::path::{Path, PathBuf};

use super::Scenario;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid { path: String, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    Inconsistent { path: String, message: String },
    #[error("{field} is {ip}: this lab may only hand out or dial {allowed}")]
    Address { field: String, ip: std::net::IpAddr, allowed: &'static str },
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        Scenario::parse_in(&read(path)?, &path.display().to_string(), path.parent())
    }

    /// Parses and validates; `origin` names the file in error messages, and
    /// `extends` is looked up in the project's scenarios folder.
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"));
        Scenario::parse_in(text, origin, Some(dir))
    }

    /// A scenario's table with its `extends` chain merged in (no `extends`
    /// left), for tools that derive scenarios from it (fleets).
    pub fn resolved_table(path: &Path) -> Result<toml::Table, ScenarioError> {
        let mut table = read_table(path)?;
        resolve_extends(&mut table, path.parent(), &mut vec![chain_key(path)])?;
        table.remove("extends");
        Ok(table)
    }

    /// Parses a scenario whose `extends` is already resolved.
    pub fn parse_resolved(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse_in(text, origin, None)
    }

    fn parse_in(text: &str, origin: &str, dir: Option<&Path>) -> Result<Scenario, ScenarioError> {
        let invalid = |e: toml::de::Error| {
            // A merged table has no spans of its own: point at the key's first mention.
            let span = e.span().map(|s| s.start).or_else(|| {
                let key = e.message().split('`').nth(1)?;
                text.find(&format!("\n{key}")).map(|i| i + 1).or_else(|| text.find(key))
            });
            let (line, column) = span.map(|s| line_col(text, s)).unwrap_or((0, 0));
            let message = crate::input::shorten(e.message(), 300);
            ScenarioError::Invalid { path: origin.to_string(), line, column, message }
        };
        let mut table: toml::Table = toml::from_str(text).map_err(invalid)?;
        let start = dir
            .map(|d| d.join(origin))
            .and_then(|p| std::fs::canonicalize(p).ok())
            .unwrap_or_else(|| PathBuf::from(origin));
        resolve_extends(&mut table, dir, &mut vec![start])?;
        let scenario: Scenario = table.try_into().map_err(invalid)?;
        scenario.validate().map_err(|message| ScenarioError::Inconsistent {
            path: origin.to_string(),
            message: crate::input::shorten(&message, 300),
        })?;
        Ok(scenario)
    }
}

/// Replaces `extends = "base.toml"` with the base's table merged under this one,
/// following the base's own `extends`. `chain` holds the files on the way, to
/// name a cycle.
fn resolve_extends(table: &mut toml::Table, dir: Option<&Path>, chain: &mut Vec<PathBuf>) -> Result<(), ScenarioError> {
    let Some(toml::Value::String(base)) = table.remove("extends") else {
        return Ok(());
    };
    let named_in = chain.last().map(|p| p.display().to_string()).unwrap_or_else(|| "the scenario".into());
    let refuse = |message: String| ScenarioError::Inconsistent { path: named_in.clone(), message };
    // Scenarios come from other people: `extends` stays inside the folder of the
    // file that names it.
    if !stays_inside(Path::new(&base)) {
        return Err(refuse(format!(
            "extends = \"{}\": only a relative path inside this file's folder (no leading `/`, no `..` above it)",
            crate::input::shorten(&base, 200)
        )));
    }
    let base_path = dir.unwrap_or(Path::new(".")).join(&base);
    let key = chain_key(&base_path);
    if chain.contains(&key) || chain.len() >= 8 {
        let mut names: Vec<String> = chain.iter().map(|p| p.display().to_string()).collect();
        names.push(key.display().to_string());
        return Err(refuse(format!("`extends` goes round in a cycle (or more than 8 deep): {}", names.join(" → "))));
    }
    let mut merged = read_table(&base_path)?;
    chain.push(key);
    resolve_extends(&mut merged, base_path.parent(), chain)?;
    chain.pop();
    // What a scenario expects is its own: a fault changes the outcome.
    merged.remove("expect");
    merge(&mut merged, std::mem::take(table));
    merged.insert("extends".into(), toml::Value::String(base));
    *table = merged;
    Ok(())
}

/// A file as the `extends` chain names it: its real path when it exists.
fn chain_key(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A scenario file's TOML, errors with the line and column.
fn read_table(path: &Path) -> Result<toml::Table, ScenarioError> {
    let text = read(path)?;
    toml::from_str(&text).map_err(|e| ScenarioError::Invalid {
        path: path.display().to_string(),
        line: e.span().map(|s| line_col(&text, s.start).0).unwrap_or(0),
        column: e.span().map(|s| line_col(&text, s.start).1).unwrap_or(0),
        message: crate::input::shorten(e.message(), 300),
    })
}

/// A relative path that never climbs above its starting folder.
fn stays_inside(p: &Path) -> bool {
    let mut depth = 0i32;
    for c in p.components() {
        match c {
            std::path::Component::Normal(_) => depth += 1,
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            std::path::Component::RootDir | std::path::Component::Prefix(_) => return false,
        }
    }
    true
}

fn read(path: &Path) -> Result<String, ScenarioError> {
    crate::input::read_file(path).map_err(|source| ScenarioError::Read { path: path.display().to_string(), source })
}

/// Tables merge key by key; anything else in `over` replaces what `base` had.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}
