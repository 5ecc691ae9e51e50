//! The Prometheus text exposition format (0.0.4), shared by the audit's
//! `--format prometheus` and the watch's `/metrics`.

use std::fmt::Write;

/// A label value with `\`, `"` and newlines escaped.
pub fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// One metric family: HELP, TYPE, then a sample per `(labels, value)`
/// (`labels` already written as `a="x",b="y"`, or empty).
pub fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_escape_and_unlabelled_samples_have_no_braces() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut out = String::new();
        family(&mut out, "m", "gauge", "help", &[(String::new(), 1.0), ("side=\"x\"".into(), 2.0)]);
        assert_eq!(out, "# HELP m help\n# TYPE m gauge\nm 1\nm{side=\"x\"} 2\n");
    }
}
