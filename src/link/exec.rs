//! What carrying out any step of the link shares: an ARM change followed to
//! its end (and, after a kill, found again in the journal instead of being
//! asked twice), a server error as text, a line of progress, a confirmation.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::LinkError;
use super::journal::Journal;
use super::observe;
use crate::azure::arm::{Accepted, Arm, ArmError};
use crate::probe::sql;

/// PUT, PATCH, POST or DELETE `url` (relative to the instance, with its
/// api-version), waiting for a long-running operation to end. An instance
/// that does not know the new schema gets the old api-version, as plans do.
pub async fn arm_change(
    arm: &Arm,
    journal: &Journal,
    step: &str,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> Result<(), LinkError> {
    let (child, api) = url.split_once("?api-version=").unwrap_or((url, observe::NEW_API));
    // A run killed while ARM worked left the operation's URL: follow it, do not ask again.
    if let Some(poll) = journal.pending_operation(step) {
        match arm.wait(&poll, Duration::ZERO).await {
            Ok(()) => return Ok(()),
            Err(ArmError::Api { status: 404, .. } | ArmError::Operation { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let method: Method = method.parse().unwrap_or(Method::PUT);
    let mut accepted = arm.change(method.clone(), &arm.url(child, api), body).await;
    if matches!(
        accepted.as_ref().err().and_then(ArmError::code),
        Some("NoRegisteredProviderFound" | "InvalidApiVersionParameter")
    ) && api == observe::NEW_API
    {
        accepted = arm.change(method, &arm.url(child, observe::OLD_API), body).await;
    }
    match accepted? {
        Accepted::Done(_) => Ok(()),
        pending @ Accepted::Pending { .. } => {
            let Accepted::Pending { retry_after, .. } = &pending else { unreachable!() };
            let poll = pending.poll_url().unwrap_or_default();
            journal
                .write(step, "accepted", None, Some(&poll), None)
                .map_err(|e| LinkError::Journal(journal.path().display().to_string(), e))?;
            arm.wait(&poll, *retry_after).await.map_err(LinkError::from)
        }
    }
}

/// A server's error as the journal and the screen show it.
pub fn failure(f: &sql::SqlFailure) -> String {
    match f.code {
        Some(c) => format!("Msg {c}: {}", f.message),
        None => f.message.clone(),
    }
}

pub fn say(out: &mut dyn Write, line: &str) {
    let _ = writeln!(out, "{line}");
}

/// Asks on the terminal; without one, only `--yes` confirms.
pub fn confirm(question: &str, yes: bool) -> Result<(), LinkError> {
    let given = answer(question, &format!("{question} [y/N] "), yes)?;
    confirmed(given.is_none_or(|a| matches!(a.to_ascii_lowercase().as_str(), "y" | "yes")))
}

/// Asks for `word` to be typed (a forced failover's confirmation).
pub fn confirm_typed(question: &str, word: &str, yes: bool) -> Result<(), LinkError> {
    let given = answer(question, &format!("{question}\nType {word} to go ahead: "), yes)?;
    confirmed(given.is_none_or(|a| a == word))
}

/// What was typed after `prompt` (trimmed); `None` with `--yes`, which asks nothing.
fn answer(question: &str, prompt: &str, yes: bool) -> Result<Option<String>, LinkError> {
    if yes {
        return Ok(None);
    }
    if !std::io::stdin().is_terminal() {
        return Err(LinkError::Usage(format!("{question}: confirm with --yes (no terminal to ask on)")));
    }
    eprint!("{prompt}");
    let mut typed = String::new();
    let _ = std::io::stdin().read_line(&mut typed);
    Ok(Some(typed.trim().to_string()))
}

fn confirmed(yes: bool) -> Result<(), LinkError> {
    if yes { Ok(()) } else { Err(LinkError::Usage("not confirmed: nothing was changed".into())) }
}
