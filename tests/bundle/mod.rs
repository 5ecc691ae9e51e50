//! `milink bundle`: what goes in (the diagnosis, evidence, a manifest), what
//! never does (secrets; with --redact identities, names and addresses),
//! `bundle verify` against tampered, truncated, bomb and escaping zips, and the
//! replay: every scenario's bundle diagnosed again as a lab.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::*;

fn milink() -> Command {
    Command::new(env!("CARGO_BIN_EXE_milink"))
}

fn entries(zip: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let mut b = Vec::new();
        f.read_to_end(&mut b).unwrap();
        out.insert(f.name().unwrap().to_string(), b);
    }
    out
}

/// (id, side, severity) of every finding, and the root cause's id.
fn outline(report: &Value) -> (Vec<(String, String, String)>, Value) {
    let f = report["findings"].as_array().unwrap();
    let mut v: Vec<_> = f
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().into(),
                f["side"].as_str().unwrap().into(),
                f["severity"].as_str().unwrap().into(),
            )
        })
        .collect();
    v.sort();
    (v, report["root_cause"]["id"].clone())
}

#[test]
fn a_bundle_holds_the_diagnosis_its_evidence_and_a_manifest_python_agrees_with() {
    let dir = tempfile::tempdir().unwrap();
    for scenario in
        ["link-healthy.toml", "disconnected-mi-cert-rotated.toml", "split-brain.toml", "sql-cert-expired.toml"]
    {
        let zip = dir.path().join(scenario.replace(".toml", ".zip"));
        let out = milink().args(["bundle", "--lab"]).arg(scenario_path(scenario)).arg("-o").arg(&zip).output().unwrap();
        assert!(zip.exists(), "{scenario}: {}", String::from_utf8_lossy(&out.stderr));
        let diag =
            milink().args(["diagnose", "--format", "json", "--lab"]).arg(scenario_path(scenario)).output().unwrap();
        assert_eq!(out.status.code(), diag.status.code(), "{scenario}: the bundle exits as diagnose does");
        let e = entries(&zip);
        let bundled: Value = serde_json::from_slice(&e["report.json"]).unwrap();
        let direct: Value = serde_json::from_slice(&diag.stdout).unwrap();
        assert_eq!(outline(&bundled), outline(&direct), "{scenario}: the same findings and root cause");
        for f in
            ["report.md", "report.html", "environment.json", "manifest.json", "evidence/dns.json", "evidence/tcp.json"]
        {
            assert!(e.contains_key(f), "{scenario}: {f}");
        }
        let html = String::from_utf8_lossy(&e["report.html"]);
        assert!(
            html.contains("<svg") && !html.contains("src=\"http") && !html.contains("href=\"http"),
            "self-contained"
        );
        let props: Value = serde_json::from_slice(&e["evidence/sql_server/queries/props.json"]).unwrap();
        assert!(props["query"].as_str().unwrap().contains("SERVERPROPERTY('ProductVersion')"));
        // Columns in the server's order, with their types.
        assert_eq!(props["columns"][0], serde_json::json!({ "name": "version", "type": "nvarchar" }));
        assert!(
            props["columns"].as_array().unwrap().iter().any(|c| c["name"] == "engine_edition" && c["type"] == "int")
        );
        assert!(
            String::from_utf8_lossy(&e["evidence/sql_server/tls-chain.pem"]).starts_with("-----BEGIN CERTIFICATE-----")
        );
        if scenario == "disconnected-mi-cert-rotated.toml" {
            assert_eq!(bundled["root_cause"]["id"], "mi-cert-not-imported");
            assert!(html.contains("Root cause") && html.contains("mi-cert-not-imported"));
            let replicas: Value = serde_json::from_slice(&e["evidence/sql_server/queries/link_replicas.json"]).unwrap();
            assert!(replicas["rows"].to_string().contains("DISCONNECTED"), "the link DMV rows are there");
        }
        // A client nobody here wrote reads the zip and checks every hash.
        let py = python(
            "-c",
            &[
                "import hashlib, json, sys, zipfile\n\
                 z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None\n\
                 m = json.loads(z.read('manifest.json'))\n\
                 for f in m['files']:\n\
                 \x20   b = z.read(f['path']); assert len(b) == f['size'] and hashlib.sha256(b).hexdigest() == f['sha256'], f['path']\n\
                 assert sorted(n for n in z.namelist() if n != 'manifest.json') == sorted(f['path'] for f in m['files'])\n\
                 print(len(m['files']))",
                zip.to_str().unwrap(),
            ],
            "zipfile",
            "python3's zipfile",
            "",
        );
        assert!(py.status.success(), "{scenario}: {}", String::from_utf8_lossy(&py.stderr));
        let v = milink().args(["bundle", "verify"]).arg(&zip).output().unwrap();
        assert_eq!(v.status.code(), Some(0), "{}", String::from_utf8_lossy(&v.stdout));
    }
}

/// Every form a secret could take in a file: raw, UTF-16LE, hex.
fn forms(secret: &str) -> Vec<Vec<u8>> {
    let utf16: Vec<u8> = secret.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    vec![secret.as_bytes().to_vec(), utf16, hex.clone().into_bytes(), hex.to_uppercase().into_bytes()]
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

const CANARIES: &str = "[sql_server.login]\nuser = \"contoso_dba\"\npassword = \"CANARY-sql-7f3e9a\"\n\
    [managed_instance.login]\nuser = \"mi_admin_x\"\npassword = \"CANARY-mi-c41d2b\"\n";

#[test]
fn no_secret_enters_a_bundle_and_identities_can_be_redacted() {
    let lab = LabProcess::start_with("link-healthy.toml", CANARIES);
    let info: Value = serde_json::from_str(&lab.line).unwrap();
    let profile = PathBuf::from(info["profile"].as_str().unwrap());
    let secrets: toml::Table =
        toml::from_str(&std::fs::read_to_string(profile.parent().unwrap().join("link.secrets.toml")).unwrap()).unwrap();
    let canaries: Vec<String> = secrets.values().filter_map(|v| v.as_str().map(String::from)).collect();
    assert!(canaries.iter().any(|c| c == "CANARY-sql-7f3e9a") && canaries.len() >= 3, "{canaries:?}");

    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.zip");
    let out = milink().args(["bundle", "--profile"]).arg(&profile).arg("-o").arg(&plain).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let e = entries(&plain);
    for (name, bytes) in &e {
        for c in &canaries {
            for form in forms(c) {
                assert!(!contains(bytes, &form), "a secret in {name}");
            }
        }
    }
    // Without redaction the names are there: the redaction test below means something.
    let all: Vec<u8> = e.values().flatten().copied().collect();
    assert!(contains(&all, b"sqlprod01.contoso.lab") && contains(&all, b"SQLPROD01"));

    let red = dir.path().join("red.zip");
    let out = milink()
        .args(["bundle", "--redact", "identities", "--profile"])
        .arg(&profile)
        .arg("-o")
        .arg(&red)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let identities = [
        info["sql_server"]["fqdn"].as_str().unwrap(),
        info["managed_instance"]["fqdn"].as_str().unwrap(),
        info["sql_server"]["host"].as_str().unwrap(),
        info["managed_instance"]["host"].as_str().unwrap(),
        info["sql_server"]["name"].as_str().unwrap(),
        "contoso_dba",
        "mi_admin_x",
        "6d9a4c1e-4b1f-4f4e-9a51-3c2d8e7f0a11",
    ];
    for (name, bytes) in entries(&red) {
        let lower = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
        for id in identities {
            assert!(!lower.contains(&id.to_ascii_lowercase()), "{id} in {name}");
            let utf16: Vec<u8> = id.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
            assert!(!contains(&bytes, &utf16), "{id} (UTF-16) in {name}");
        }
        for c in &canaries {
            assert!(!contains(&bytes, c.as_bytes()), "a secret in {name}");
        }
    }
    // The same value, the same alias, and the map beside the zip (not in it).
    let map: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("red.aliases.json")).unwrap()).unwrap();
    let alias_of = |v: &str| {
        map["aliases"].as_object().unwrap().iter().find(|(_, o)| o.as_str() == Some(v)).map(|(a, _)| a.clone()).unwrap()
    };
    let host = alias_of("sqlprod01.contoso.lab");
    let report = String::from_utf8(entries(&red)["report.json"].clone()).unwrap();
    let dns = String::from_utf8(entries(&red)["evidence/dns.json"].clone()).unwrap();
    assert!(report.contains(&host) && dns.contains(&host), "{host} names the host in the report and the evidence");
    assert!(!entries(&red).contains_key("red.aliases.json"));
}

fn python_zip(dir: &Path, name: &str, script: &str) -> PathBuf {
    let path = dir.join(name);
    let out = python("-c", &[script, path.to_str().unwrap()], "zipfile", "python3's zipfile", "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    path
}

#[test]
fn verify_refuses_what_was_changed_cut_or_made_to_hurt() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.zip");
    let out =
        milink().args(["bundle", "--lab"]).arg(scenario_path("healthy.toml")).arg("-o").arg(&good).output().unwrap();
    assert!(good.exists(), "{}", String::from_utf8_lossy(&out.stderr));
    let g = good.to_str().unwrap();
    let verify = |p: &Path| {
        let o = milink().args(["bundle", "verify"]).arg(p).output().unwrap();
        (o.status.code(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    };
    // A file changed after the manifest was written.
    let tampered = python_zip(
        dir.path(),
        "tampered.zip",
        &format!(
            "import sys, zipfile\nsrc = zipfile.ZipFile('{g}')\nout = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)\n\
             for n in src.namelist():\n    b = src.read(n)\n    out.writestr(n, b.replace(b'pass', b'PASS') if n == 'report.json' else b)\nout.close()"
        ),
    );
    let (code, text) = verify(&tampered);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("MISMATCH report.json: SHA-256 differs"), "{text}");
    // A secret slipped in (listed in the manifest, so only the scan sees it).
    let leaked = python_zip(
        dir.path(),
        "leaked.zip",
        &format!(
            "import sys, zipfile, json, hashlib\nsrc = zipfile.ZipFile('{g}')\nout = zipfile.ZipFile(sys.argv[1], 'w')\n\
             files = {{n: src.read(n) for n in src.namelist() if n != 'manifest.json'}}\nfiles['notes.txt'] = b'sa password = Hunter2Hunter2'\n\
             for n, b in files.items(): out.writestr(n, b)\n\
             out.writestr('manifest.json', json.dumps({{'files': [{{'path': n, 'size': len(b), 'sha256': hashlib.sha256(b).hexdigest()}} for n, b in files.items()]}}))\nout.close()"
        ),
    );
    let (code, text) = verify(&leaked);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("SECRET?  notes.txt"), "{text}");
    // Cut short.
    let cut = dir.path().join("cut.zip");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (code, text) = verify(&cut);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("not a readable zip"), "{text}");
    // A bomb: 200 MB of zeros in a few hundred kilobytes.
    let bomb = python_zip(
        dir.path(),
        "bomb.zip",
        "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)\nz.writestr('report.json', b'0' * (200 << 20))\nz.close()",
    );
    let (code, text) = verify(&bomb);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("refused"), "{text}");
    // A name that climbs out.
    let escape = python_zip(
        dir.path(),
        "escape.zip",
        "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w')\nz.writestr('../../etc/evil', b'x')\nz.close()",
    );
    let (code, text) = verify(&escape);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("points outside the bundle"), "{text}");
}

/// Bundles a scenario's lab, replays the bundle, and says how the two
/// diagnoses differ (`None`: the same findings, sides, severities, root cause).
fn round_trip(scenario: &Path, dir: &Path, extra: &[&str]) -> Option<String> {
    let name = scenario.file_stem().unwrap().to_string_lossy().to_string();
    let zip = dir.join(format!("{name}.zip"));
    let out = milink().args(["bundle", "--lab"]).arg(scenario).args(extra).arg("-o").arg(&zip).output().unwrap();
    if !zip.exists() {
        return Some(format!("{name}: no bundle: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let bundled: Value = serde_json::from_slice(&entries(&zip)["report.json"]).unwrap();
    let replay = milink().args(["diagnose", "--format", "json", "--bundle"]).arg(&zip).args(extra).output().unwrap();
    let Ok(replayed) = serde_json::from_slice::<Value>(&replay.stdout) else {
        return Some(format!("{name}: the replay failed: {}", String::from_utf8_lossy(&replay.stderr)));
    };
    let (a, b) = (outline(&bundled), outline(&replayed));
    if a == b && replay.status.code() == out.status.code() {
        return None;
    }
    let only = |x: &[(String, String, String)], y: &[(String, String, String)]| {
        x.iter().filter(|f| !y.contains(f)).cloned().collect::<Vec<_>>()
    };
    Some(format!(
        "{name}: bundled only {:?}, replayed only {:?}, root cause {} vs {}",
        only(&a.0, &b.0),
        only(&b.0, &a.0),
        a.1,
        b.1
    ))
}

#[test]
fn every_scenario_replays_from_its_bundle_to_the_same_diagnosis() {
    let dir = tempfile::tempdir().unwrap();
    let (loopback, topology): (Vec<PathBuf>, Vec<PathBuf>) =
        scenario_files().into_iter().partition(|f| !milink::lab::scenario::Scenario::load(f).unwrap().needs_topology());
    let mut failures = Vec::new();
    for chunk in loopback.chunks(6) {
        let runs: Vec<_> = chunk
            .iter()
            .cloned()
            .map(|f| {
                let d = dir.path().to_path_buf();
                std::thread::spawn(move || round_trip(&f, &d, &[]))
            })
            .collect();
        failures.extend(runs.into_iter().filter_map(|r| r.join().unwrap()));
    }
    if can_run_topology() {
        failures.extend(topology.iter().filter_map(|f| round_trip(f, dir.path(), &["--topology"])));
    }
    assert!(loopback.len() > 80, "{} scenarios", loopback.len());
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn a_bundle_becomes_a_scenario_to_edit_and_a_lab_to_point_milink_at() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("blocked.zip");
    let scenario = scenario_path("disconnected-sql-inbound-blocked.toml");
    milink().args(["bundle", "--lab"]).arg(&scenario).arg("-o").arg(&zip).output().unwrap();

    // The derived scenario, written out, runs as any scenario does and expects what the bundle found.
    let out = milink().args(["lab", "scenario-from", "--bundle"]).arg(&zip).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let case = dir.path().join("case.toml");
    std::fs::write(&case, &text).unwrap();
    let s = milink::lab::scenario::Scenario::load(&case).unwrap();
    assert_eq!(s.expect["root_cause"].as_str(), Some("sql-inbound-5022-blocked"));
    assert!(s.sql_server.recorded.iter().any(|r| r.query.contains("dm_hadr_availability_replica_states")));
    let diagnose = |file: &Path| {
        let o = milink().args(["diagnose", "--format", "json", "--lab"]).arg(file).output().unwrap();
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let replayed = diagnose(&case);
    assert_eq!(replayed["root_cause"]["id"], "sql-inbound-5022-blocked");
    assert_eq!(finding(&replayed, "network-sql-5022")["severity"], "fail");

    // Try the fix: open the port, and mark the recorded link as connected again.
    let fixed = text.replace("DISCONNECTED", "CONNECTED");
    let mut table: toml::Table = toml::from_str(&fixed).unwrap();
    table["network"]["faults"] = toml::Value::Array(vec![]);
    let fixed_file = dir.path().join("fixed.toml");
    std::fs::write(&fixed_file, toml::to_string(&table).unwrap()).unwrap();
    let after = diagnose(&fixed_file);
    assert_eq!(finding(&after, "network-sql-5022")["severity"], "pass", "the edit is what the lab does");
    assert_ne!(after["root_cause"]["id"], "sql-inbound-5022-blocked");

    // `lab up --bundle`: a running lab with a profile, for any milink command.
    let lab = LabProcess::from_bundle(&zip);
    let info: Value = serde_json::from_str(&lab.line).unwrap();
    let o = milink()
        .args(["diagnose", "--format", "json", "--profile"])
        .arg(info["profile"].as_str().unwrap())
        .output()
        .unwrap();
    let via_profile: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(via_profile["root_cause"]["id"], "sql-inbound-5022-blocked");
    lab.stop();
}

#[test]
fn a_bad_bundle_is_not_replayed_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.zip");
    milink().args(["bundle", "--lab"]).arg(scenario_path("healthy.toml")).arg("-o").arg(&good).output().unwrap();
    let g = good.to_str().unwrap();
    let tampered = python_zip(
        dir.path(),
        "tampered.zip",
        &format!(
            "import sys, zipfile\nsrc = zipfile.ZipFile('{g}')\nout = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)\n\
             for n in src.namelist():\n    b = src.read(n)\n    out.writestr(n, b.replace(b'FULL', b'SIMPLE') if n.endswith('databases.json') else b)\nout.close()"
        ),
    );
    let cut = dir.path().join("cut.zip");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let escape = python_zip(
        dir.path(),
        "escape.zip",
        "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w')\nz.writestr('../evil.json', b'{}')\nz.close()",
    );
    let bomb = python_zip(
        dir.path(),
        "bomb.zip",
        "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)\nz.writestr('report.json', b'0' * (200 << 20))\nz.close()",
    );
    let not_ours = python_zip(
        dir.path(),
        "not-ours.zip",
        "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w')\nz.writestr('manifest.json', b'{\"files\": []}')\nz.close()",
    );
    let work = tempfile::tempdir().unwrap();
    for (zip, says) in [
        (&tampered, "does not match its manifest"),
        (&cut, "not a readable zip"),
        (&escape, "points outside the bundle"),
        (&bomb, "refused"),
        (&not_ours, "not a milink bundle"),
    ] {
        for args in [&["diagnose", "--bundle"][..], &["lab", "scenario-from", "--bundle"], &["lab", "up", "--bundle"]] {
            let o = milink().current_dir(work.path()).args(args).arg(zip).output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(3), "{args:?} {}: {err}", zip.display());
            assert!(err.contains(says), "{args:?} {}: {err}", zip.display());
            assert!(o.stdout.is_empty(), "nothing printed as if it worked");
        }
    }
    // Output flags belong to check and diagnose: bundle refuses them rather than ignoring them.
    for flag in [&["--format", "json"][..], &["-v"], &["--fix-sql", "fix.sql"]] {
        let o = milink()
            .current_dir(work.path())
            .arg("bundle")
            .args(flag)
            .arg("--lab")
            .arg(scenario_path("healthy.toml"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(3), "{flag:?}");
    }
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0, "nothing written where it ran");
    assert!(!dir.path().parent().unwrap().join("evil.json").exists());
}
