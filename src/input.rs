//! Files and values that come from other people (profiles, scenarios, fleets,
//! inventories, secrets): regular files only, capped in size; durations in a
//! sane range; long values cut when shown.

use std::io;
use std::path::Path;
use std::time::Duration;

/// The most milink reads of one input file.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads a regular file of at most `MAX_FILE_BYTES` (`/dev/zero`, a FIFO or a
/// huge file is refused before anything is read).
pub fn read_file(path: &Path) -> io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} bytes; the limit is {MAX_FILE_BYTES} bytes (1 MiB)", meta.len()),
        ));
    }
    // The file may grow between the two calls: read no more than the cap.
    let mut text = String::new();
    io::Read::read_to_string(&mut io::Read::take(std::fs::File::open(path)?, MAX_FILE_BYTES + 1), &mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("more than {MAX_FILE_BYTES} bytes")));
    }
    Ok(text)
}

/// Per-operation timeouts milink accepts: 10 ms to one hour.
pub const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(3600));

pub fn check_timeout(what: &str, d: Duration) -> Result<Duration, String> {
    if d < TIMEOUT_RANGE.0 || d > TIMEOUT_RANGE.1 {
        return Err(format!("{what} {} is outside 10ms..1h", humantime::format_duration(d)));
    }
    Ok(d)
}

/// Whole-run deadlines milink accepts: 100 ms to one day.
pub fn check_deadline(what: &str, d: Duration) -> Result<Duration, String> {
    if d < Duration::from_millis(100) || d > Duration::from_secs(86_400) {
        return Err(format!("{what} {} is outside 100ms..24h", humantime::format_duration(d)));
    }
    Ok(d)
}

/// clap's parser for `--deadline`.
pub fn parse_deadline(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{}: {e}", shorten(s, 40)))?;
    check_deadline("the deadline", d)
}

/// clap's parser for `--timeout`-like flags.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{}: {e}", shorten(s, 40)))?;
    check_timeout("the duration", d)
}

/// clap's parser for intervals and run lengths (`watch --interval`, `--for`,
/// `history --since`): 10 ms to 7 days.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{}: {e}", shorten(s, 40)))?;
    if d < Duration::from_millis(10) || d > Duration::from_secs(7 * 86_400) {
        return Err(format!("`{s}`: give 10ms to 7 days"));
    }
    Ok(d)
}

/// At most `max` characters of `s`, with the full size named when cut.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}… ({} bytes)", s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_and_huge_files_are_refused_unread() {
        let e = read_file(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"));
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::File::create(&big).unwrap().set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(read_file(&big).unwrap_err().to_string().contains("the limit is 1048576 bytes"));
    }

    #[test]
    fn timeouts_out_of_range_are_usage_errors() {
        assert!(parse_timeout("18446744073709551615s").is_err());
        assert!(parse_timeout("0s").is_err());
        assert_eq!(parse_timeout("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_timeout(&"9".repeat(100_000)).unwrap_err().len() < 200);
    }

    #[test]
    fn long_values_are_cut_with_their_size() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten(&"x".repeat(10), 4), "xxxx… (10 bytes)");
    }
}
