//! A plan as people read it (a table, blockers first), as JSON for scripts, as
//! Markdown for a change ticket; and the journal as `status` shows it.

use comfy_table::{ContentArrangement, Table};

use super::journal::Entry;
use super::plan::{Action, Plan, State, Step, Until, short};

fn what(s: &Step, full: bool) -> String {
    match &s.action {
        Action::Sql { shown, .. } => {
            if full {
                shown.clone()
            } else {
                short(shown)
            }
        }
        Action::Arm { method, url, body } => {
            let body = body.as_ref().map(|b| {
                let t = serde_json::to_string(b).unwrap_or_default();
                if full { t } else { short_json(&t) }
            });
            match body {
                Some(b) => format!("{method} …/{url}\n{b}"),
                None => format!("{method} …/{url}"),
            }
        }
        Action::WaitSeeding { database } => format!("poll sys.dm_hadr_physical_seeding_stats for {database}"),
        Action::Wait { database, until } => match until {
            Until::HardenedLsnsEqual => {
                format!("poll last_hardened_lsn of {database} on both sides until equal and unchanged")
            }
            Until::Roles { primary } => format!("poll both sides until {} is PRIMARY and connected", primary.as_str()),
            Until::FullBackup { side, after } => {
                format!("poll msdb.dbo.backupset on {} for a full backup of {database} after {after}", side.as_str())
            }
            Until::Connected => format!("poll both sides until {database} is CONNECTED and synchronizing"),
        },
    }
}

/// Long hex in JSON bodies, shortened like T-SQL blobs.
fn short_json(t: &str) -> String {
    let mut out = String::new();
    for part in t.split('"') {
        if !out.is_empty() || t.starts_with('"') {
            out.push('"');
        }
        if part.len() > 40 && part.chars().all(|c| c.is_ascii_hexdigit()) {
            out.push_str(&format!("{}…({} bytes)", &part[..8], part.len() / 2));
        } else {
            out.push_str(part);
        }
    }
    out
}

fn state(s: &State) -> String {
    match s {
        State::Todo => "TO DO".into(),
        State::Done => "done".into(),
        State::Blocked(why) => format!("BLOCKED: {why}"),
    }
}

pub fn table(p: &Plan) -> String {
    let mut out = String::new();
    if !p.blockers.is_empty() {
        let mut t = Table::new();
        t.set_content_arrangement(ContentArrangement::Dynamic).set_width(140);
        t.set_header(["", "check", "side", "what stops the link", "fix"]);
        for b in &p.blockers {
            t.add_row([
                if b.waived { "waived".into() } else { "BLOCKER".to_string() },
                b.check.to_string(),
                b.side.to_string(),
                b.said(),
                b.remedy.clone().map(|r| short(&r)).unwrap_or_default(),
            ]);
        }
        out.push_str(&format!("Blockers (fix them, or --waive <check> each):\n{t}\n\n"));
    }
    let mut t = Table::new();
    t.set_content_arrangement(ContentArrangement::Dynamic).set_width(160);
    t.set_header(["#", "state", "where", "step", "statement or request", "resolves"]);
    for (i, s) in p.steps.iter().enumerate() {
        t.add_row([
            (i + 1).to_string(),
            state(&s.state),
            s.place.as_str().to_string(),
            format!("{}\n{}", s.id, s.title),
            what(s, false),
            s.resolves.join(", "),
        ]);
    }
    out.push_str(&format!("{t}\n"));
    for n in &p.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out.push_str(&summary(p));
    out
}

pub fn summary(p: &Plan) -> String {
    let todo = p.steps.iter().filter(|s| s.state == State::Todo).count();
    let done = p.steps.iter().filter(|s| s.state == State::Done).count();
    let blocked = p.steps.iter().filter(|s| matches!(s.state, State::Blocked(_))).count();
    let blockers = p.blockers.iter().filter(|b| !b.waived).count();
    format!("{} steps: {todo} to do, {done} done, {blocked} blocked; {blockers} blocker(s)\n", p.steps.len())
}

pub fn json(p: &Plan) -> String {
    serde_json::to_string_pretty(p).expect("a plan serialises")
}

pub fn markdown(p: &Plan) -> String {
    let mut out = String::from("# Link creation plan\n\n");
    if !p.blockers.is_empty() {
        out.push_str("## Blockers\n\n| check | side | what | fix |\n|---|---|---|---|\n");
        for b in &p.blockers {
            let mark = if b.waived { " (waived)" } else { "" };
            out.push_str(&format!(
                "| `{}`{mark} | {} | {} | {} |\n",
                b.check,
                b.side,
                b.said().replace('|', "\\|"),
                b.remedy.clone().map(|r| short(&r).replace('|', "\\|")).unwrap_or_default()
            ));
        }
        out.push('\n');
    }
    out.push_str("## Steps\n\n");
    for (i, s) in p.steps.iter().enumerate() {
        out.push_str(&format!("{}. **{}** — {} ({}, {})\n\n", i + 1, s.id, s.title, s.place.as_str(), state(&s.state)));
        out.push_str(&format!("   ```\n   {}\n   ```\n\n", what(s, true).replace('\n', "\n   ")));
    }
    for n in &p.notes {
        out.push_str(&format!("> {n}\n\n"));
    }
    out.push_str(&summary(p));
    out
}

pub fn journal(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "The journal is empty: milink link apply has not run with this profile.\n".into();
    }
    let mut t = Table::new();
    t.set_content_arrangement(ContentArrangement::Dynamic).set_width(160);
    t.set_header(["time (UTC)", "step", "event", "detail"]);
    for e in entries {
        let detail = e.action.clone().or(e.detail.clone()).unwrap_or_default();
        let detail = match e.ms {
            Some(ms) => format!("{detail} ({ms} ms)"),
            None => detail,
        };
        t.add_row([e.at.clone(), e.step.clone(), e.event.clone(), short(&detail)]);
    }
    format!("{t}\n")
}
