//! Times relative to lab start (`now`, `-3d`, `+400d`), so files never rot.

use serde::Deserialize;
use time::{Duration, OffsetDateTime};

/// A point in time relative to lab start: `now`, `-3d`, `+400d`, `-90m`, `+2h`, `-30s`,
/// or an absolute `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelTime(pub String);

impl<'de> Deserialize<'de> for RelTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_offset(&s).map_err(serde::de::Error::custom)?;
        Ok(RelTime(s))
    }
}

impl RelTime {
    pub fn at(&self, now: OffsetDateTime) -> OffsetDateTime {
        match parse_offset(&self.0).expect("checked when the scenario was read") {
            When::Offset(d) => now + d,
            When::Date(d) => d.midnight().assume_utc(),
        }
    }
}

pub(super) enum When {
    Offset(Duration),
    Date(time::Date),
}

pub(super) fn parse_offset(s: &str) -> Result<When, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(When::Offset(Duration::ZERO));
    }
    if let Ok(d) = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")) {
        return Ok(When::Date(d));
    }
    let bad = || format!("`{s}` is not a time: use now, -3d, +400d, -90m, +2h, -30s or YYYY-MM-DD");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'-') => (-1, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => return Err(bad()),
    };
    let unit = rest.chars().last().ok_or_else(bad)?;
    let n: i64 = rest[..rest.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let seconds_per = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return Err(bad()),
    };
    // Within a million days either way: a certificate date, not an overflow.
    let secs = n.checked_mul(seconds_per).filter(|s| s.abs() <= 86_400 * 1_000_000).ok_or_else(bad)?;
    Ok(When::Offset(Duration::seconds(secs * sign)))
}
