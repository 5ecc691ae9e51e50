//! A side's recorded statements (`queries/*.json`) as the scenario's
//! `recorded` entries, and reading them back.

use serde_json::Value;
use toml::{Table, Value as T};

use super::{Files, table};

/// Every `queries/*.json` of a side as a `recorded` entry.
/// `redacted` counts binary values the bundle's redaction shortened.
pub(super) fn recorded(f: &Files, dir: &str, redacted: &mut usize) -> anyhow::Result<Vec<Table>> {
    let mut out = Vec::new();
    let prefix = format!("{dir}/queries/");
    for name in f.0.keys().filter(|k| k.starts_with(&prefix)) {
        let q = f.need(name)?;
        let Some(query) = q["query"].as_str() else { continue };
        let mut r = Table::new();
        r.insert("query".into(), T::from(query));
        if let Some(e) = q.get("error") {
            match (e["code"].as_i64(), e["timed_out"].as_bool().unwrap_or(false)) {
                (_, true) => {
                    r.insert("fault".into(), T::from("silence"));
                }
                (Some(code), _) => {
                    let message = e["message"].as_str().unwrap_or_default();
                    r.insert("error".into(), table([("number", T::Integer(code)), ("message", T::from(message))]));
                }
                (None, _) => {
                    let endless = e["message"].as_str().unwrap_or_default().contains("goes on past");
                    r.insert("fault".into(), T::from(if endless { "endless" } else { "hang_up" }));
                }
            }
            out.push(r);
            continue;
        }
        let rows = q["rows"].as_array().cloned().unwrap_or_default();
        let mut columns: Vec<[String; 2]> = q["columns"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|c| Some([c["name"].as_str()?.to_string(), c["type"].as_str()?.to_string()]))
                    .collect()
            })
            .unwrap_or_default();
        if columns.is_empty()
            && let Some(Value::Object(first)) = rows.first()
        {
            // Column names only: the types follow from the values.
            columns = first.iter().map(|(k, v)| [k.clone(), guess_type(v).into()]).collect();
        }
        r.insert(
            "columns".into(),
            T::Array(columns.iter().map(|c| T::Array(c.iter().map(|s| T::from(s.as_str())).collect())).collect()),
        );
        let binary: Vec<&str> =
            columns.iter().filter(|[_, t]| t.starts_with("varbinary")).map(|[n, _]| n.as_str()).collect();
        let rows: Vec<T> = rows
            .iter()
            .filter_map(Value::as_object)
            .map(|row| {
                let kept = row.iter().filter(|(k, v)| {
                    // What redaction shortened (`0x…(20 bytes left out…`) is not the value: NULL.
                    let cut = binary.contains(&k.as_str())
                        && v.as_str().is_some_and(|s| crate::probe::sql::unhex(s).is_none());
                    *redacted += cut as usize;
                    !cut
                });
                T::Table(kept.filter_map(|(k, v)| Some((k.clone(), toml_value(v)?))).collect())
            })
            .collect();
        r.insert("rows".into(), T::Array(rows));
        out.push(r);
    }
    Ok(out)
}

fn guess_type(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "bit",
        Value::Number(n) if n.is_i64() => "bigint",
        Value::Number(_) => "float",
        _ => "nvarchar",
    }
}

/// JSON to TOML; `null` has no TOML form and stays out (the column reads NULL).
fn toml_value(v: &Value) -> Option<T> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => T::Boolean(*b),
        Value::Number(n) => n.as_i64().map(T::Integer).unwrap_or_else(|| T::Float(n.as_f64().unwrap_or_default())),
        Value::String(s) => T::from(s.as_str()),
        other => T::from(other.to_string()),
    })
}

/// The first row of the recorded statement whose text contains `marker`.
pub(super) fn first_row<'a>(recorded: &'a [Table], marker: &str) -> Option<&'a Table> {
    let r = recorded.iter().find(|r| r.get("query").and_then(T::as_str).is_some_and(|q| q.contains(marker)))?;
    r.get("rows")?.as_array()?.first()?.as_table()
}
