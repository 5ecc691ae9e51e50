//! Server-side token encoders (MS-TDS 2.2.7): LOGINACK, ENVCHANGE, ERROR/INFO,
//! DONE, COLMETADATA and ROW with the column types the catalog uses.

use rusqlite::types::Value;

use crate::lab::sql::{SqlError, SqlType};
use crate::lab::sqltime::parse_datetime;

/// SQL_Latin1_General_CP1_CI_AS, as SQL Server sends it.
pub const COLLATION: [u8; 5] = [0x09, 0x04, 0xD0, 0x00, 0x34];

pub const DONE_MORE: u16 = 0x01;
pub const DONE_ERROR: u16 = 0x02;
pub const DONE_COUNT: u16 = 0x10;
pub const DONE_ATTN: u16 = 0x20;
const CMD_SELECT: u16 = 0xC1;

#[derive(Default)]
pub struct Tokens {
    pub buf: Vec<u8>,
    /// Offset of the last DONE's status, so the batch's final DONE can drop MORE.
    last_done: Option<usize>,
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

impl Tokens {
    fn b_varchar(&mut self, s: &str) {
        let units: Vec<u16> = s.encode_utf16().take(255).collect();
        self.buf.push(units.len() as u8);
        self.buf.extend(units.iter().flat_map(|u| u.to_le_bytes()));
    }

    fn us_varchar(&mut self, s: &str) {
        let units: Vec<u16> = s.encode_utf16().take(65535).collect();
        self.buf.extend((units.len() as u16).to_le_bytes());
        self.buf.extend(units.iter().flat_map(|u| u.to_le_bytes()));
    }

    /// A token whose body starts with a u16 length.
    fn with_len(&mut self, token: u8, body: impl FnOnce(&mut Tokens)) {
        self.buf.push(token);
        let at = self.buf.len();
        self.buf.extend([0, 0]);
        body(self);
        let len = (self.buf.len() - at - 2) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_le_bytes());
    }

    pub fn login_ack(&mut self, version: (u32, u32, u32)) {
        self.with_len(0xAD, |t| {
            t.buf.push(1); // SQL_TSQL
            t.buf.extend([0x74, 0x00, 0x00, 0x04]); // TDS 7.4
            t.b_varchar("Microsoft SQL Server");
            t.buf.extend([version.0 as u8, version.1 as u8]);
            t.buf.extend((version.2 as u16).to_be_bytes());
        });
    }

    /// ENVCHANGE with binary values (B_VARBYTE): transactions (8 begin, 9 commit,
    /// 10 rollback) carry their 8-byte descriptor this way.
    pub fn env_change_bytes(&mut self, kind: u8, new: &[u8], old: &[u8]) {
        self.with_len(0xE3, |t| {
            t.buf.push(kind);
            t.buf.push(new.len() as u8);
            t.buf.extend(new);
            t.buf.push(old.len() as u8);
            t.buf.extend(old);
        });
    }

    pub fn env_change(&mut self, kind: u8, new: &str, old: &str) {
        self.with_len(0xE3, |t| {
            t.buf.push(kind);
            t.b_varchar(new);
            t.b_varchar(old);
        });
    }

    pub fn env_collation(&mut self) {
        self.with_len(0xE3, |t| {
            t.buf.extend([7, 5]);
            t.buf.extend(COLLATION);
            t.buf.push(0);
        });
    }

    pub fn env_routing(&mut self, host: &str, port: u16) {
        self.with_len(0xE3, |t| {
            t.buf.push(20);
            let host16 = utf16(host);
            let value_len = (1 + 2 + 2 + host16.len()) as u16;
            t.buf.extend(value_len.to_le_bytes());
            t.buf.push(0); // TCP
            t.buf.extend(port.to_le_bytes());
            t.buf.extend(((host16.len() / 2) as u16).to_le_bytes());
            t.buf.extend(host16);
            t.buf.extend([0, 0]); // old value
        });
    }

    fn message(&mut self, token: u8, e: &SqlError, server: &str) {
        self.with_len(token, |t| {
            t.buf.extend(e.number.to_le_bytes());
            t.buf.push(e.state);
            t.buf.push(e.class);
            t.us_varchar(&e.message);
            t.b_varchar(server);
            t.b_varchar("");
            t.buf.extend(1i32.to_le_bytes());
        });
    }

    pub fn error(&mut self, e: &SqlError, server: &str) {
        self.message(0xAA, e, server);
    }

    pub fn info(&mut self, e: &SqlError, server: &str) {
        self.message(0xAB, e, server);
    }

    /// FEATUREEXTACK acknowledging FEDAUTH with a security token (no nonce).
    pub fn fedauth_ack(&mut self) {
        self.buf.extend([0xAE, 0x02, 0, 0, 0, 0, 0xFF]);
    }

    pub fn return_status(&mut self, status: i32) {
        self.buf.push(0x79);
        self.buf.extend(status.to_le_bytes());
    }

    pub fn done(&mut self, token: u8, status: u16, cmd: u16, rows: u64) {
        self.buf.push(token);
        self.last_done = Some(self.buf.len());
        self.buf.extend(status.to_le_bytes());
        self.buf.extend(cmd.to_le_bytes());
        self.buf.extend(rows.to_le_bytes());
    }

    /// Clears DONE_MORE on the last DONE: the end of the response.
    /// The tokens so far, for a response that goes on (every DONE says MORE).
    pub fn unfinished(self) -> Vec<u8> {
        self.buf
    }

    pub fn finish(mut self) -> Vec<u8> {
        match self.last_done {
            Some(at) => {
                let status = u16::from_le_bytes([self.buf[at], self.buf[at + 1]]) & !DONE_MORE;
                self.buf[at..at + 2].copy_from_slice(&status.to_le_bytes());
            }
            None => self.done(0xFD, 0, 0, 0),
        }
        self.buf
    }

    pub fn result_set(&mut self, columns: &[(String, SqlType)], rows: &[Vec<Value>]) {
        self.buf.push(0x81);
        self.buf.extend((columns.len() as u16).to_le_bytes());
        for (name, ty) in columns {
            self.buf.extend(0u32.to_le_bytes()); // UserType
            self.buf.extend(0x0001u16.to_le_bytes()); // Flags: nullable
            type_info(&mut self.buf, *ty);
            self.b_varchar(name);
        }
        for row in rows {
            self.buf.push(0xD1);
            for ((_, ty), v) in columns.iter().zip(row) {
                value(&mut self.buf, *ty, v);
            }
        }
        self.done(0xFD, DONE_MORE | DONE_COUNT, CMD_SELECT, rows.len() as u64);
    }
}

fn type_info(b: &mut Vec<u8>, ty: SqlType) {
    match ty {
        SqlType::TinyInt => b.extend([0x26, 1]),
        SqlType::SmallInt => b.extend([0x26, 2]),
        SqlType::Int => b.extend([0x26, 4]),
        SqlType::BigInt => b.extend([0x26, 8]),
        SqlType::Bit => b.extend([0x68, 1]),
        SqlType::Real => b.extend([0x6D, 4]),
        SqlType::Float => b.extend([0x6D, 8]),
        SqlType::DateTime => b.extend([0x6F, 8]),
        SqlType::Guid => b.extend([0x24, 16]),
        SqlType::Numeric(p, s) => b.extend([0x6C, numeric_len(p), p, s]),
        SqlType::NVarChar(n) => {
            b.push(0xE7);
            b.extend(n.map(|n| n.min(4000) * 2).unwrap_or(0xFFFF).to_le_bytes());
            b.extend(COLLATION);
        }
        SqlType::NChar(n) => {
            b.push(0xEF);
            b.extend((n.min(4000) * 2).to_le_bytes());
            b.extend(COLLATION);
        }
        SqlType::VarChar(n) => {
            b.push(0xA7);
            b.extend(n.map(|n| n.min(8000)).unwrap_or(0xFFFF).to_le_bytes());
            b.extend(COLLATION);
        }
        SqlType::Char(n) => {
            b.push(0xAF);
            b.extend(n.min(8000).to_le_bytes());
            b.extend(COLLATION);
        }
        SqlType::VarBinary(n) => {
            b.push(0xA5);
            b.extend(n.map(|n| n.min(8000)).unwrap_or(0xFFFF).to_le_bytes());
        }
        SqlType::Variant => {
            // sys.types.max_length of sql_variant.
            b.push(0x62);
            b.extend(8016u32.to_le_bytes());
        }
    }
}

fn numeric_len(p: u8) -> u8 {
    match p {
        0..=9 => 5,
        10..=19 => 9,
        20..=28 => 13,
        _ => 17,
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        Value::Real(r) => Some(*r as i64),
        Value::Text(t) => t.trim().parse().ok(),
        _ => None,
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Integer(i) => Some(i.to_string()),
        Value::Real(r) => Some(r.to_string()),
        Value::Text(t) => Some(t.clone()),
        Value::Blob(b) => Some(String::from_utf8_lossy(b).into_owned()),
    }
}

/// The integer a numeric(p, s) value is sent as: the value times 10^s.
fn numeric_mantissa(v: &Value, scale: u8) -> Option<i128> {
    let factor = 10i128.checked_pow(scale as u32)?;
    match v {
        Value::Integer(i) => (*i as i128).checked_mul(factor),
        Value::Real(r) => Some((r * factor as f64).round() as i128),
        Value::Text(t) => match t.trim().parse::<i128>() {
            Ok(i) => i.checked_mul(factor),
            Err(_) => t.trim().parse::<f64>().ok().map(|r| (r * factor as f64).round() as i128),
        },
        _ => None,
    }
}

/// PLP (partially length-prefixed) body for (max) types: one chunk.
fn plp(b: &mut Vec<u8>, data: Option<&[u8]>) {
    match data {
        None => b.extend(u64::MAX.to_le_bytes()),
        Some(d) => {
            b.extend((d.len() as u64).to_le_bytes());
            if !d.is_empty() {
                b.extend((d.len() as u32).to_le_bytes());
                b.extend(d);
            }
            b.extend(0u32.to_le_bytes());
        }
    }
}

fn short(b: &mut Vec<u8>, data: Option<&[u8]>) {
    match data {
        None => b.extend(0xFFFFu16.to_le_bytes()),
        Some(d) => {
            b.extend((d.len() as u16).to_le_bytes());
            b.extend(d);
        }
    }
}

fn latin1(s: &str) -> Vec<u8> {
    s.chars().map(|c| if (c as u32) < 256 { c as u8 } else { b'?' }).collect()
}

fn datetime_bytes(v: &Value) -> Option<[u8; 8]> {
    let dt = parse_datetime(&as_text(v)?)?;
    let base = time::Date::from_calendar_date(1900, time::Month::January, 1).ok()?;
    let days = (dt.date() - base).whole_days() as i32;
    let t = dt.time();
    let ms = (t.hour() as u64 * 3600 + t.minute() as u64 * 60 + t.second() as u64) * 1000 + t.millisecond() as u64;
    let ticks = (ms * 300 / 1000) as u32;
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&days.to_le_bytes());
    out[4..].copy_from_slice(&ticks.to_le_bytes());
    Some(out)
}

/// `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX` in SQL Server's mixed-endian byte order.
fn guid_bytes(v: &Value) -> Option<[u8; 16]> {
    let hex: String = as_text(v)?.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    if hex.len() != 32 {
        return None;
    }
    let mut raw = [0u8; 16];
    for (i, byte) in raw.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).ok()?;
    }
    raw[0..4].reverse();
    raw[4..6].reverse();
    raw[6..8].reverse();
    Some(raw)
}

fn value(b: &mut Vec<u8>, ty: SqlType, v: &Value) {
    let null = matches!(v, Value::Null);
    match ty {
        SqlType::TinyInt | SqlType::SmallInt | SqlType::Int | SqlType::BigInt | SqlType::Bit => {
            let width = match ty {
                SqlType::TinyInt | SqlType::Bit => 1,
                SqlType::SmallInt => 2,
                SqlType::Int => 4,
                _ => 8,
            };
            match as_i64(v) {
                Some(i) if !null => {
                    b.push(width as u8);
                    b.extend(&i.to_le_bytes()[..width]);
                }
                _ => b.push(0),
            }
        }
        SqlType::Real | SqlType::Float => {
            let f = match v {
                Value::Real(r) => Some(*r),
                other => as_i64(other).map(|i| i as f64),
            };
            match (f, ty) {
                (Some(f), SqlType::Real) => {
                    b.push(4);
                    b.extend((f as f32).to_le_bytes());
                }
                (Some(f), _) => {
                    b.push(8);
                    b.extend(f.to_le_bytes());
                }
                (None, _) => b.push(0),
            }
        }
        SqlType::DateTime => match datetime_bytes(v) {
            Some(d) => {
                b.push(8);
                b.extend(d);
            }
            None => b.push(0),
        },
        SqlType::Guid => match guid_bytes(v) {
            Some(g) => {
                b.push(16);
                b.extend(g);
            }
            None => b.push(0),
        },
        SqlType::Numeric(p, scale) => match numeric_mantissa(v, scale) {
            Some(i) => {
                let len = numeric_len(p);
                b.push(len);
                b.push(if i < 0 { 0 } else { 1 });
                let mut mag = i.unsigned_abs().to_le_bytes().to_vec();
                mag.resize(len as usize - 1, 0);
                b.extend(mag);
            }
            None => b.push(0),
        },
        SqlType::NVarChar(None) => plp(b, as_text(v).map(|s| utf16(&s)).as_deref()),
        SqlType::NVarChar(Some(_)) | SqlType::NChar(_) => short(b, as_text(v).map(|s| utf16(&s)).as_deref()),
        SqlType::VarChar(None) => plp(b, as_text(v).map(|s| latin1(&s)).as_deref()),
        SqlType::VarChar(Some(_)) => short(b, as_text(v).map(|s| latin1(&s)).as_deref()),
        SqlType::Char(n) => {
            short(b, as_text(v).map(|s| format!("{s:<width$}", width = n as usize)).map(|s| latin1(&s)).as_deref())
        }
        SqlType::VarBinary(n) => {
            let data = match v {
                Value::Blob(d) => Some(d.clone()),
                Value::Null => None,
                other => as_text(other).map(String::into_bytes),
            };
            match n {
                None => plp(b, data.as_deref()),
                Some(_) => short(b, data.as_deref()),
            }
        }
        SqlType::Variant => variant(b, v),
    }
}

/// sql_variant (MS-TDS 2.2.5.5.3): base type, properties, value.
fn variant(b: &mut Vec<u8>, v: &Value) {
    let mut body = Vec::new();
    match v {
        Value::Null => {
            b.extend(0u32.to_le_bytes());
            return;
        }
        Value::Integer(i) => match i32::try_from(*i) {
            Ok(i) => {
                body.extend([0x38, 0]);
                body.extend(i.to_le_bytes());
            }
            Err(_) => {
                body.extend([0x7F, 0]);
                body.extend(i.to_le_bytes());
            }
        },
        Value::Real(r) => {
            body.extend([0x3E, 0]);
            body.extend(r.to_le_bytes());
        }
        Value::Text(t) => {
            // SERVERPROPERTY's strings are nvarchar(128): 256 bytes at most.
            let data = utf16(t);
            let max: u16 = if data.len() <= 256 { 256 } else { 8000 };
            body.extend([0xE7, 7]);
            body.extend(COLLATION);
            body.extend(max.to_le_bytes());
            body.extend(data);
        }
        Value::Blob(d) => {
            body.extend([0xA5, 2]);
            body.extend(8000u16.to_le_bytes());
            body.extend(d);
        }
    }
    b.extend((body.len() as u32).to_le_bytes());
    b.extend(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_is_mixed_endian() {
        let g = guid_bytes(&Value::Text("00112233-4455-6677-8899-AABBCCDDEEFF".into())).unwrap();
        assert_eq!(g, [0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF]);
    }

    #[test]
    fn datetime_counts_days_from_1900_and_ticks_of_300ths() {
        let d = datetime_bytes(&Value::Text("1900-01-02 00:00:01.000".into())).unwrap();
        assert_eq!(i32::from_le_bytes(d[..4].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(d[4..].try_into().unwrap()), 300);
    }
}
