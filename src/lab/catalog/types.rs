//! T-SQL column types: parsed from the catalog's type text or a CAST, and
//! mapped to SQLite affinities and TDS wire types.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Bit,
    Real,
    Float,
    /// Length in characters; `None` = (max).
    NVarChar(Option<u16>),
    NChar(u16),
    VarChar(Option<u16>),
    Char(u16),
    VarBinary(Option<u16>),
    DateTime,
    Guid,
    Numeric(u8, u8),
    Variant,
}

impl SqlType {
    /// Parses `nvarchar(60)`, `sysname`, `varbinary(max)`, `numeric(25,0)`…
    pub fn parse(text: &str) -> Option<SqlType> {
        let t = text.trim().to_ascii_lowercase();
        let (base, args) = match t.split_once('(') {
            Some((b, rest)) => (b.trim().to_string(), Some(rest.trim_end_matches(')').to_string())),
            None => (t.clone(), None),
        };
        let len = |default: u16| -> Option<Option<u16>> {
            match args.as_deref().map(str::trim) {
                None => Some(Some(default)),
                Some("max") => Some(None),
                Some(n) => n.parse().ok().map(Some),
            }
        };
        Some(match base.as_str() {
            "tinyint" => SqlType::TinyInt,
            "smallint" => SqlType::SmallInt,
            "int" | "integer" => SqlType::Int,
            "bigint" => SqlType::BigInt,
            "bit" => SqlType::Bit,
            "real" => SqlType::Real,
            "float" => SqlType::Float,
            "sysname" => SqlType::NVarChar(Some(128)),
            "nvarchar" => SqlType::NVarChar(len(1)?),
            "varchar" => SqlType::VarChar(len(1)?),
            "nchar" => SqlType::NChar(len(1)?.unwrap_or(1)),
            "char" => SqlType::Char(len(1)?.unwrap_or(1)),
            "varbinary" | "binary" => SqlType::VarBinary(len(1)?),
            // datetime2, date and datetimeoffset go on the wire as datetime (no client here reads their extra precision or offset).
            "datetime" | "datetime2" | "smalldatetime" | "date" | "datetimeoffset" => SqlType::DateTime,
            "uniqueidentifier" => SqlType::Guid,
            "numeric" | "decimal" => {
                let (p, s) = match args.as_deref() {
                    None => (18, 0),
                    Some(a) => {
                        let mut it = a.split(',').map(|x| x.trim().parse::<u8>());
                        let p = it.next()?.ok()?;
                        let s = it.next().transpose().ok()?.unwrap_or(0);
                        (p, s)
                    }
                };
                SqlType::Numeric(p, s)
            }
            "sql_variant" => SqlType::Variant,
            _ => return None,
        })
    }

    /// The SQLite type name used in CREATE TABLE and CAST: its affinity decides
    /// how SQLite stores and compares the value.
    pub fn sqlite_affinity(self) -> &'static str {
        match self {
            SqlType::TinyInt | SqlType::SmallInt | SqlType::Int | SqlType::BigInt | SqlType::Bit => "INTEGER",
            SqlType::Real | SqlType::Float => "REAL",
            // LSNs are numeric(25,0) and must stay exact; a scale needs fractions.
            SqlType::Numeric(_, 0) => "INTEGER",
            SqlType::Numeric(..) => "REAL",
            SqlType::VarBinary(_) => "BLOB",
            SqlType::Variant => "",
            _ => "TEXT",
        }
    }

    pub fn is_text(self) -> bool {
        matches!(self, SqlType::NVarChar(_) | SqlType::NChar(_) | SqlType::VarChar(_) | SqlType::Char(_))
    }
}

#[cfg(test)]
mod tests {
    use super::SqlType::*;
    use super::*;

    #[test]
    fn parses_catalog_types() {
        assert_eq!(SqlType::parse("sysname"), Some(NVarChar(Some(128))));
        assert_eq!(SqlType::parse("NVARCHAR(MAX)"), Some(NVarChar(None)));
        assert_eq!(SqlType::parse("numeric(25,0)"), Some(Numeric(25, 0)));
        assert_eq!(SqlType::parse("char(2)"), Some(Char(2)));
        assert_eq!(SqlType::parse("varbinary(85)"), Some(VarBinary(Some(85))));
        assert_eq!(SqlType::parse("geography"), None);
    }
}
