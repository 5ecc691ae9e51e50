//! Reading and validating scenario files.

use super::reltime::parse_offset;
use super::*;

#[test]
fn relative_times() {
    let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1000);
    assert_eq!(RelTime("-3d".into()).at(now), now - Duration::days(3));
    assert_eq!(RelTime("+2h".into()).at(now), now + Duration::hours(2));
    assert_eq!(RelTime("now".into()).at(now), now);
    assert!(parse_offset("3d").is_err());
    assert!(parse_offset("-3w").is_err());
}

#[test]
fn fault_class_fields_are_validated_with_the_field_named() {
    let bad = |extra: &str| {
        Scenario::parse(&format!("extends = \"healthy.toml\"\ndescription = \"x\"\n{extra}"), "x.toml")
            .unwrap_err()
            .to_string()
    };
    let e = bad("[managed_instance]\ntier = \"Hyperscale\"\n");
    assert!(e.contains("managed_instance.tier `Hyperscale`"), "{e}");
    let e = bad("[sql_server]\ntier = \"BusinessCritical\"\n");
    assert!(e.contains("sql_server.tier: only a managed instance"), "{e}");
    let e = bad("[[sql_server.databases]]\nname = \"A\"\ntde_certificate = \"Nope\"\n");
    assert!(e.contains("tde_certificate `Nope` is not in sql_server.certificates"), "{e}");
    let e = bad(
        "[[managed_instance.certificates]]\nname = \"mi-endpoint\"\nprivate_key = \"MK\"\n[[managed_instance.certificates]]\nname = \"T\"\ncopy_of = \"sql_server:Nope\"\nprivate_key = \"NA\"\n",
    );
    assert!(e.contains("sql_server has no certificate `Nope`"), "{e}");
    assert_eq!(split_copy_of("sql_server:TDE_A"), ("sql_server", Some("TDE_A")));
}

#[test]
fn extends_stays_inside_its_folder_and_names_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    for base in ["/etc/passwd", "../healthy.toml", "a/../../x.toml"] {
        let f = write("abs.toml", &format!("extends = \"{base}\"\ndescription = \"x\"\n"));
        let e = Scenario::load(&f).unwrap_err().to_string();
        assert!(e.contains("only a relative path inside this file's folder"), "{base}: {e}");
    }
    write("a.toml", "extends = \"b.toml\"\ndescription = \"a\"\n");
    let b = write("b.toml", "extends = \"a.toml\"\ndescription = \"b\"\n");
    let e = Scenario::load(&b).unwrap_err().to_string();
    assert!(e.contains("cycle") && e.contains("b.toml → ") && e.contains("a.toml → "), "{e}");
    let zero = write("zero.toml", "extends = \"z\"\ndescription = \"x\"\n");
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("z")).unwrap();
    let e = format!("{:#}", anyhow::Error::from(Scenario::load(&zero).unwrap_err()));
    assert!(e.contains("not a regular file"), "{e}");
}

#[test]
fn a_huge_bad_value_is_not_echoed_in_full() {
    let text = format!(
        "extends = \"healthy.toml\"\ndescription = \"x\"\n[sql_server]\nversion = \"{}\"\n",
        "9".repeat(100_000)
    );
    let e = Scenario::parse(&text, "x.toml").unwrap_err().to_string();
    assert!(e.len() < 600 && e.contains("bytes)"), "{} bytes: {}", e.len(), &e[..200.min(e.len())]);
}

#[test]
fn extends_merges_tables_and_replaces_arrays() {
    let text = "extends = \"healthy.toml\"\ndescription = \"x\"\n[sql_server]\ncollation = \"Latin1_General_CS_AS\"\ntrace_flags = []\n";
    let s = Scenario::parse(text, "x.toml").unwrap();
    assert_eq!(s.sql_server.collation, "Latin1_General_CS_AS");
    assert!(s.sql_server.trace_flags.is_empty());
    assert_eq!(s.sql_server.name, "SQLPROD01");
    let err = Scenario::parse("extends = \"healthy.toml\"\ndescription = \"x\"\n[sql_server]\nbogus = 1\n", "x.toml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("x.toml:4:") && err.contains("bogus"), "{err}");
}

#[test]
fn dns_records_never_point_at_real_addresses() {
    let base = "extends = \"healthy.toml\"\ndescription = \"x\"\n[[dns.records]]\nname = \"a.lab\"\ntype = \"A\"\n";
    assert!(Scenario::parse(&format!("{base}value = \"203.0.113.7\"\n"), "x").is_ok());
    let err = Scenario::parse(&format!("{base}value = \"20.50.1.2\"\n"), "x").unwrap_err().to_string();
    assert!(err.contains("hands out no other address"), "{err}");
}

#[test]
fn loopback_mode_refuses_every_field_that_names_a_documentation_address() {
    let base = "extends = \"healthy.toml\"\ndescription = \"x\"\n";
    let cases = [
        ("[[dns.records]]\nname = \"a.lab\"\ntype = \"A\"\nvalue = \"203.0.113.7\"\n", "dns.records[0].value"),
        ("[[dns.records]]\nname = \"a.lab\"\ntype = \"AAAA\"\nvalue = \"2001:db8::7\"\n", "dns.records[0].value"),
        ("[sql_server.endpoint]\nurl_host = \"198.51.100.20\"\n", "sql_server.endpoint.url_host"),
        ("[managed_instance.endpoint]\nurl_host = \"192.0.2.9\"\n", "managed_instance.endpoint.url_host"),
    ];
    for (extra, field) in cases {
        let s = Scenario::parse(&format!("{base}{extra}"), "x").unwrap();
        let err = s.check_addresses(Mode::Loopback).unwrap_err().to_string();
        assert!(err.starts_with(field) && err.contains("loopback mode"), "{err}");
        assert!(s.check_addresses(Mode::Topology).is_ok(), "{field} is fine inside namespaces");
    }
    let ok = Scenario::parse(&format!("{base}[sql_server.endpoint]\nurl_host = \"127.0.0.9\"\n"), "x").unwrap();
    assert!(ok.check_addresses(Mode::Loopback).is_ok());
    // A name is resolved by the lab's own DNS, whose records are checked above.
    let name = Scenario::parse(&format!("{base}[sql_server.endpoint]\nurl_host = \"sql.lab\"\n"), "x").unwrap();
    assert!(name.check_addresses(Mode::Loopback).is_ok());
}

#[test]
fn errors_name_line_and_key() {
    let text = "description = \"x\"\n[sql_server]\nname = \"a\"\nbogus = 1\n";
    let err = Scenario::parse(text, "s.toml").unwrap_err().to_string();
    assert!(err.starts_with("s.toml:4:"), "{err}");
    assert!(err.contains("bogus"), "{err}");
}

/// The link's procedures come with the builds that ship them, unless the
/// scenario says the Azure Connect pack is missing.
#[test]
fn link_procedures_by_build_and_by_word() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/healthy.toml");
    let mut s = Scenario::load(&path).unwrap().sql_server;
    for (v, has) in [("13.0.6300.2", false), ("13.0.7000.253", true), ("15.0.4198.2", false), ("16.0.1000.6", true)] {
        s.version = v.into();
        assert_eq!(s.has_link_procedures(), has, "{v}");
    }
    s.version = "14.0.3490.10".into();
    s.connect_pack = Some(false);
    assert!(!s.has_link_procedures());
}
