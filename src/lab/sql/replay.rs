//! Answers recorded in a support bundle, given back as they were: a replayed
//! side answers each recorded statement with the rows, the error or the
//! silence it gave when the bundle was made, and anything else from its
//! catalog. Datetimes move forward by the bundle's age, so a replay a month
//! later sees a certificate as many days from expiry as the bundle did.

use std::collections::HashMap;

use super::{ResultSet, SqlError, SqlType};
use rusqlite::types::Value;

pub use crate::lab::scenario::recorded::{AnswerFault, Recorded, RecordedError};

/// A recorded error as the server sends it, at `class` (16 for a statement, 14 for a login).
pub fn sql_error(e: &RecordedError, class: u8) -> SqlError {
    SqlError::new(e.number, class, 1, e.message.clone())
}

#[derive(Debug, Clone)]
pub enum Answer {
    Rows(ResultSet),
    Error(SqlError),
    Fault(AnswerFault),
}

/// A side's recorded answers, by statement text (whitespace collapsed).
#[derive(Debug, Default)]
pub struct Answers(HashMap<String, Answer>);

impl Answers {
    /// `shift`: how far to move recorded datetimes (the bundle's age).
    pub fn build(recorded: &[Recorded], shift: time::Duration) -> Result<Answers, String> {
        let mut out = HashMap::new();
        for (i, r) in recorded.iter().enumerate() {
            let answer = match (&r.fault, &r.error) {
                (Some(f), _) => Answer::Fault(*f),
                (None, Some(e)) => Answer::Error(sql_error(e, 16)),
                (None, None) => Answer::Rows(rows(r, shift).map_err(|e| format!("replay[{i}]: {e}"))?),
            };
            out.insert(key(&r.query), answer);
        }
        Ok(Answers(out))
    }

    pub fn get(&self, batch: &str) -> Option<&Answer> {
        if self.0.is_empty() {
            return None;
        }
        self.0.get(&key(batch))
    }
}

fn key(sql: &str) -> String {
    sql.trim().trim_end_matches(';').split_whitespace().collect::<Vec<_>>().join(" ")
}

fn rows(r: &Recorded, shift: time::Duration) -> Result<ResultSet, String> {
    let columns: Vec<(String, SqlType)> = r
        .columns
        .iter()
        .map(|[name, ty]| Ok((name.clone(), column_type(ty, name, &r.rows)?)))
        .collect::<Result<_, String>>()?;
    let rows = r
        .rows
        .iter()
        .map(|row| {
            if let Some(k) = row.keys().find(|k| !columns.iter().any(|(n, _)| n == *k)) {
                return Err(format!("a row has `{k}`, which is not among the columns"));
            }
            columns.iter().map(|(name, ty)| value(row.get(name), *ty, shift)).collect()
        })
        .collect::<Result<_, String>>()?;
    Ok(ResultSet { columns, rows })
}

/// A type as the bundle names it; text and binary without a length get the
/// longest length that holds their values.
fn column_type(ty: &str, name: &str, rows: &[toml::Table]) -> Result<SqlType, String> {
    let longest = rows.iter().filter_map(|r| r.get(name)?.as_str().map(str::len)).max().unwrap_or(0);
    let t = ty.trim().to_ascii_lowercase();
    Ok(match t.as_str() {
        "nvarchar" | "sql_variant" => SqlType::NVarChar((longest <= 4000).then_some(4000)),
        "varchar" => SqlType::VarChar((longest <= 8000).then_some(8000)),
        // Hex text, two characters a byte.
        "varbinary" => SqlType::VarBinary((longest <= 16000).then_some(8000)),
        "money" => SqlType::Numeric(19, 4),
        other => SqlType::parse(other).ok_or_else(|| format!("column `{name}`: unknown type `{ty}`"))?,
    })
}

fn value(v: Option<&toml::Value>, ty: SqlType, shift: time::Duration) -> Result<Value, String> {
    let Some(v) = v else { return Ok(Value::Null) };
    Ok(match (v, ty) {
        (toml::Value::Boolean(b), _) => Value::Integer(*b as i64),
        (toml::Value::Integer(i), SqlType::Real | SqlType::Float) => Value::Real(*i as f64),
        (toml::Value::Integer(i), _) => Value::Integer(*i),
        (toml::Value::Float(f), _) => Value::Real(*f),
        (toml::Value::String(s), SqlType::VarBinary(_)) => Value::Blob(
            crate::probe::sql::unhex(s).ok_or_else(|| format!("`{}` is not hex", crate::input::shorten(s, 40)))?,
        ),
        (toml::Value::String(s), SqlType::DateTime) => Value::Text(shifted(s, shift)?),
        (toml::Value::String(s), _) => Value::Text(s.clone()),
        (toml::Value::Datetime(d), SqlType::DateTime) => Value::Text(shifted(&d.to_string(), shift)?),
        (other, _) => return Err(format!("a {} where a {ty:?} value belongs", other.type_str())),
    })
}

fn shifted(s: &str, shift: time::Duration) -> Result<String, String> {
    let t = crate::lab::sqltime::parse_datetime(s).ok_or_else(|| format!("`{s}` is not a datetime"))?;
    Ok(crate::lab::sqltime::datetime_text((t + shift).assume_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(text: &str) -> Recorded {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn rows_come_back_typed_and_moved_by_the_bundles_age() {
        let r = recorded(
            r#"query = "SELECT  name, expiry_date, der FROM sys.certificates"
               columns = [["name", "nvarchar"], ["expiry_date", "datetime"], ["der", "varbinary"], ["n", "int"]]
               rows = [{ name = "c1", expiry_date = "2026-01-01 00:00:00.000", der = "0x3082", n = 7 }, { name = "c2" }]"#,
        );
        let a = Answers::build(&[r], time::Duration::days(10)).unwrap();
        let Some(Answer::Rows(rs)) = a.get("SELECT name, expiry_date, der\nFROM sys.certificates;") else {
            panic!("the same statement, other whitespace")
        };
        assert_eq!(rs.columns[0], ("name".into(), SqlType::NVarChar(Some(4000))));
        assert_eq!(rs.rows[0][1], Value::Text("2026-01-11 00:00:00.000".into()));
        assert_eq!(rs.rows[0][2], Value::Blob(vec![0x30, 0x82]));
        assert_eq!(rs.rows[1][1], Value::Null);
        assert!(a.get("SELECT 1").is_none());
    }

    #[test]
    fn a_row_with_a_stray_column_or_a_bad_value_is_refused() {
        let stray = recorded(
            r#"query = "q"
            columns = [["a", "int"]]
            rows = [{ b = 1 }]"#,
        );
        assert!(Answers::build(&[stray], time::Duration::ZERO).unwrap_err().contains("`b`"));
        let bad = recorded(
            r#"query = "q"
            columns = [["d", "datetime"]]
            rows = [{ d = "soon" }]"#,
        );
        assert!(Answers::build(&[bad], time::Duration::ZERO).is_err());
    }
}
