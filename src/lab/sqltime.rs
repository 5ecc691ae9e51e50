//! Datetimes as the catalog stores them and SQL Server prints them:
//! `2026-11-22 05:27:03.123`, UTC.

use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

pub fn datetime_text(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// `YYYY-MM-DD[ HH:MM:SS[.fff]]`, as the catalog stores datetimes.
pub fn parse_datetime(s: &str) -> Option<PrimitiveDateTime> {
    let s = s.trim();
    let (date, rest) = s.split_at(s.find([' ', 'T']).unwrap_or(s.len()));
    let mut d = date.split('-').map(|p| p.parse::<i32>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let date = Date::from_calendar_date(y, time::Month::try_from(m as u8).ok()?, day as u8).ok()?;
    let rest = rest.trim_start_matches([' ', 'T']);
    if rest.is_empty() {
        return Some(date.midnight());
    }
    let (hms, frac) = rest.split_once('.').unwrap_or((rest, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<u8>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next().flatten().unwrap_or(0));
    let ms: u16 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    Some(PrimitiveDateTime::new(date, Time::from_hms_milli(h, mi, sec, ms).ok()?))
}
