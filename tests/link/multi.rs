//! A multi-database link (preview) through the CLI: `link apply --link-mode
//! multi` makes one link for several databases, `add-database` and
//! `remove-database` change what it carries, and the rest of its life is
//! refused until milink knows it.

use serde_json::Value;

use super::*;

fn diagnosed(lab: &Running) -> Vec<(String, Vec<String>, bool)> {
    let d = milink_with(&["diagnose", "--format", "json", "--profile", lab.profile().to_str().unwrap()], &[]);
    let v: Value = serde_json::from_slice(&d.stdout).unwrap_or_else(|_| panic!("{}", text(&d)));
    v["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let dbs = l["databases"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_string()).collect();
            (l["link"].as_str().unwrap().to_string(), dbs, l["healthy"] == true)
        })
        .collect()
}

/// (link, database) of every database state the lab runs.
fn lab_links(lab: &Running) -> Vec<(String, String)> {
    let s = lab.state();
    let mut v: Vec<_> = s["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["dag"].as_str().unwrap().to_string(), l["database"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn one_link_carries_several_databases_and_they_come_and_go() {
    let lab = Running::start("link-create-multi.toml");
    let plan = text(&lab.link(&["plan", "--link-mode", "multi", "--database", "SalesDB", "--database", "HRDB"]));
    assert!(plan.contains("preview"), "the plan says the mode is a preview: {plan}");
    let o = lab.link(&["apply", "--link-mode", "multi", "--database", "SalesDB", "--database", "HRDB", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let link = "link-sqlprod01".to_string();
    assert_eq!(lab_links(&lab), [(link.clone(), "HRDB".into()), (link.clone(), "SalesDB".into())]);
    assert_eq!(diagnosed(&lab), [(link.clone(), vec!["HRDB".into(), "SalesDB".into()], true)]);

    let o = lab.link(&["add-database", "--database", "StockDB", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(lab_links(&lab).len(), 3, "{:?}", lab_links(&lab));
    let after_add = diagnosed(&lab);
    assert_eq!(after_add.len(), 1, "still one link: {after_add:?}");
    assert_eq!(after_add[0].1.len(), 3, "{after_add:?}");
    assert!(after_add[0].2, "healthy: {after_add:?}");

    let o = lab.link(&["remove-database", "--database", "HRDB", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("Kept: the database HRDB on both sides"), "{}", text(&o));
    assert_eq!(lab_links(&lab), [(link.clone(), "SalesDB".into()), (link.clone(), "StockDB".into())]);
    let after_remove = diagnosed(&lab);
    assert_eq!(after_remove, [(link.clone(), vec!["SalesDB".into(), "StockDB".into()], true)]);
    // Nothing was dropped on either side.
    let drops: Vec<_> = lab.record().into_iter().filter(|(_, kind, _)| kind.contains("DROP DATABASE")).collect();
    assert!(drops.is_empty(), "{drops:?}");

    // Its failover is not milink's yet: refused as a usage error, nothing changed.
    let before = lab.record().len();
    let f = lab.link(&["failover", "--link-mode", "multi", "--to", "managed-instance", "--yes"]);
    assert_eq!(f.status.code(), Some(3), "{}", text(&f));
    assert!(text(&f).contains("multi-database link (preview)"), "{}", text(&f));
    assert_eq!(lab.record().len(), before);
    assert!(lab.lab.stop().success());
}

/// A single-database link cannot take a second database, and a name against
/// the rules stops the plan before anything changes.
#[test]
fn multi_database_rules_stop_a_plan_before_it_starts() {
    let lab = Running::start("link-create-multi.toml");
    let o = lab.link(&["add-database", "--database", "StockDB", "--yes"]);
    assert_eq!(o.status.code(), Some(3), "no link to add to: {}", text(&o));
    assert!(text(&o).contains("no link to add to"), "{}", text(&o));
    let bad_name = std::fs::read_to_string(lab.profile()).unwrap().replace("[link]", "[link]\nname = \"Link-Prod-\"");
    std::fs::write(lab.profile(), bad_name).unwrap();
    let before = lab.record().len();
    let o = lab.link(&["apply", "--link-mode", "multi", "--database", "SalesDB", "--database", "HRDB", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("Link-Prod-"), "{}", text(&o));
    assert_eq!(lab.record().len(), before, "nothing changed");
    assert!(lab.lab.stop().success());
}
