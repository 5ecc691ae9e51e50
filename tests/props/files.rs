//! Files and certificates from other people.

use milink::lab::certs::LabCa;
use milink::lab::scenario::{Scenario, TlsCert};
use milink::probe::tls;
use milink::profile::Profile;
use proptest::prelude::*;

use super::{damaged, hostile};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn real_certificate() -> Vec<u8> {
    let ca = LabCa::new().unwrap();
    ca.server_identity("sql.lab", TlsCert::Valid, None).unwrap().chain[0].to_vec()
}

/// Text with characters changed, cut, or a line of random printable junk added.
fn damaged_text(base: &'static str) -> impl Strategy<Value = String> {
    (damaged(base.as_bytes().to_vec()), proptest::option::of("[ -~]{0,80}")).prop_map(|(b, extra)| {
        let mut s = String::from_utf8_lossy(&b).to_string();
        if let Some(e) = extra {
            s.push('\n');
            s.push_str(&e);
        }
        s
    })
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn certificates_never_panic(der in hostile(real_certificate())) {
        if let Some(info) = tls::describe(&der) {
            // What the table and the audit print stays text.
            let _ = format!("{} {} {}", info.subject, info.not_after, info.days_left);
        }
    }

    #[test]
    fn profiles_never_panic(text in damaged_text(include_str!("../../examples/link.toml"))) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("link.toml");
        std::fs::write(&path, &text).unwrap();
        if let Ok(mut p) = Profile::load(&path) {
            // A profile that loads is in range: its deadline can be started.
            p.start_clock();
            let _ = p.limit().step();
        }
    }

    #[test]
    fn scenarios_never_panic(text in damaged_text(include_str!("../../scenarios/healthy.toml"))) {
        let _ = Scenario::parse(&text, "damaged.toml");
    }

    #[test]
    fn the_undamaged_files_load(_x in 0..1u8) {
        // The control: the bases themselves are good input.
        assert!(Scenario::parse(include_str!("../../scenarios/healthy.toml"), "healthy.toml").is_ok());
        assert!(tls::describe(&real_certificate()).is_some());
    }
}

#[test]
fn relative_times_with_odd_units_or_huge_numbers_are_errors() {
    // Found by `scenarios_never_panic`: a multi-byte last character panicked; so did an overflow.
    for expiry in ["+4000\u{fffd}", "+99999999999999999d", "-9223372036854775807s"] {
        let text = format!(
            "{}\n[[sql_server.certificates]]\nname = \"odd\"\nexpiry = \"{expiry}\"\n",
            include_str!("../../scenarios/healthy.toml")
        );
        let e = Scenario::parse(&text, "odd.toml").unwrap_err().to_string();
        assert!(e.contains("is not a time"), "{expiry}: {e}");
    }
}
