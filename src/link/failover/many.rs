//! A failover of several links at once. Every link is read and judged first,
//! so one link that cannot go refuses them all before anything changes; then
//! each link fails over with sessions of its own, side by side, so ten links
//! take about as long as one (the settle time and the waits overlap). Lines
//! from the links interleave but stay whole.

use std::io::Write;
use std::sync::Mutex;

use futures_util::future::join_all;

use super::super::LinkError;
use super::super::exec::{self, say};
use super::super::plan::Names;
use super::report::{LinkOutcome, LossEstimate, Outcome};
use super::run::{Ctx, Sides, failed_over, forced_one, journal_of, needs, planned_one};
use super::view::View;
use super::{FailoverOptions, preconditions};
use crate::profile::Profile;

/// A writer several links share: each keeps its line until it is whole.
struct Shared<'a>(Mutex<&'a mut dyn Write>);

struct Lines<'s, 'a> {
    to: &'s Shared<'a>,
    line: Vec<u8>,
}

impl Write for Lines<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        if let Some(end) = self.line.iter().rposition(|b| *b == b'\n') {
            let whole: Vec<u8> = self.line.drain(..=end).collect();
            let mut out = self.to.0.lock().unwrap_or_else(|p| p.into_inner());
            out.write_all(&whole)?;
            out.flush()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Fails every link of `given` over, all at once.
pub(super) async fn failover(
    p: &Profile,
    first: Sides,
    dbs: &[String],
    o: &FailoverOptions,
    out: &mut dyn Write,
) -> Result<Outcome, LinkError> {
    let needs = needs(o);
    let names: Vec<Names> = dbs.iter().map(|db| Names::of(p, db)).collect();
    let opened = join_all(names.iter().skip(1).map(|_| Sides::open(p))).await;
    let mut sides = vec![first];
    for s in opened {
        sides.push(s?);
    }
    let views = judge_all(p, &mut sides, &names, o).await?;
    let what = if o.forced { "forced failover" } else { "planned failover" };
    let journal = journal_of(p);
    if views.iter().any(|v| !failed_over(v, o.to, &journal)) {
        ask(&views, o, out)?;
    }
    let o = FailoverOptions { yes: true, ..o.clone() };
    let shared = Shared(Mutex::new(out));
    let runs = sides.iter_mut().zip(&names).map(|(s, n)| {
        let (o, shared) = (&o, &shared);
        async move {
            let mut lines = Lines { to: shared, line: Vec::new() };
            let mut cx = Ctx::new(journal_of(p), &mut lines, o, needs);
            cx.one_of_many = true;
            if o.forced { forced_one(s, n, o, &mut cx).await } else { planned_one(s, n, o, &mut cx).await }
        }
    });
    let results: Vec<Result<LinkOutcome, LinkError>> = join_all(runs).await;
    let out = shared.0.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut links = Vec::new();
    let mut failed = Vec::new();
    for (r, n) in results.into_iter().zip(&names) {
        match r {
            Ok(l) => links.push(l),
            Err(e) => failed.push(format!("{}: {e}", n.db)),
        }
    }
    if failed.is_empty() {
        return Ok(Outcome::new(format!("{what} to {} of {} links", o.to.name(), names.len()), links));
    }
    let went: Vec<&str> = links.iter().map(|l| l.database.as_str()).collect();
    say(
        out,
        &format!(
            "{} of {} links failed over: {}",
            went.len(),
            names.len(),
            if went.is_empty() { "none".into() } else { went.join(", ") }
        ),
    );
    Err(LinkError::Step {
        step: format!("{what} of {} links", names.len()),
        message: format!("{}. Run the same command again: what is done is not repeated.", failed.join("; ")),
    })
}

/// What to do before a change, said once for every link, and the one question.
fn ask(views: &[View], o: &FailoverOptions, out: &mut dyn Write) -> Result<(), LinkError> {
    let list = views.iter().map(|v| v.database.as_str()).collect::<Vec<_>>().join(", ");
    if o.forced {
        if !o.yes {
            for v in views {
                say(out, &format!("{}: {}", v.database, LossEstimate::of(v, o.to).text()));
            }
        }
        let question = format!(
            "A forced failover of {} links ({list}) to {} may lose every transaction listed above.",
            views.len(),
            o.to.name()
        );
        return exec::confirm_typed(&question, &views.len().to_string(), o.yes);
    }
    say(
        out,
        &format!(
            "Stop the workload on {} now: milink waits until each database's last_hardened_lsn is equal on both sides and stays so for {}.",
            o.to.other().name(),
            humantime::format_duration(o.settle)
        ),
    );
    exec::confirm(&format!("Fail {} links ({list}) over to {}?", views.len(), o.to.name()), o.yes)
}

/// Every link's preconditions, read side by side; any refusal refuses all.
async fn judge_all(
    p: &Profile,
    sides: &mut [Sides],
    names: &[Names],
    o: &FailoverOptions,
) -> Result<Vec<View>, LinkError> {
    let views = join_all(sides.iter_mut().zip(names).map(|(s, n)| s.view(n))).await;
    let journal = journal_of(p);
    let mut refusals = Vec::new();
    for (v, n) in views.iter().zip(names) {
        let found = if o.forced {
            preconditions::forced(v, o.to)
        } else if failed_over(v, o.to, &journal) {
            Vec::new()
        } else {
            preconditions::planned(v, o.to, o.cleanup)
        };
        refusals.extend(found.into_iter().map(|mut r| {
            r.why = format!("{}: {}", n.db, r.why);
            r
        }));
    }
    if refusals.is_empty() {
        return Ok(views);
    }
    let what = if o.forced { "forced" } else { "planned" };
    Err(LinkError::Refused {
        what: format!("a {what} failover of {} links is refused; nothing was changed", names.len()),
        refusals,
    })
}
