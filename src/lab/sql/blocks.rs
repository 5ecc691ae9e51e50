//! The control of flow the lab runs around statements: `BEGIN TRY … END TRY
//! BEGIN CATCH … END CATCH` and dynamic SQL `EXEC (N'…')`, which runs in a
//! scope of its own. An error inside TRY (a statement's, or a dynamic batch's
//! name-resolution error) is caught: what ran before it stays, the rest of TRY
//! is skipped, and CATCH runs with ERROR_NUMBER() and ERROR_MESSAGE() set, as
//! on SQL Server. A support bundle's recorded answers apply to dynamic batches
//! too, so a batch of recorded statements replays statement by statement.

use super::ddl::{Tok, Token};
use super::{Output, Session, execute_batch};
use crate::lab::catalog::Catalog;

/// One piece of a batch.
enum Unit {
    /// Statements run as a batch of their own (the byte range of the text).
    Plain(std::ops::Range<usize>),
    /// `EXEC (N'…')`: the string, run as a batch.
    Dynamic(String),
    TryCatch {
        body: std::ops::Range<usize>,
        handler: std::ops::Range<usize>,
    },
}

fn kw(t: &[Token], i: usize, a: &str, b: &str) -> bool {
    t.get(i).is_some_and(|x| x.is(a)) && t.get(i + 1).is_some_and(|x| x.is(b))
}

/// Whether the batch uses TRY/CATCH or dynamic SQL (the rest goes as before).
pub fn has_blocks(t: &[Token]) -> bool {
    (0..t.len()).any(|i| kw(t, i, "BEGIN", "TRY") || dynamic_at(t, i).is_some())
}

/// `EXEC (N'…')` or `EXECUTE ('…')` at `i`: the string and the index after it.
fn dynamic_at(t: &[Token], i: usize) -> Option<(String, usize)> {
    let head = t.get(i)?;
    if !(head.is("EXEC") || head.is("EXECUTE")) || !t.get(i + 1)?.is_sym('(') {
        return None;
    }
    let Tok::Str(s) = &t.get(i + 2)?.tok else { return None };
    t.get(i + 3)?.is_sym(')').then(|| (s.clone(), i + 4))
}

/// The index of the matching `END <what>` for a `BEGIN <what>` at `from`.
fn matching_end(t: &[Token], from: usize, what: &str) -> Option<usize> {
    let mut depth = 0;
    let mut i = from;
    while i < t.len() {
        if kw(t, i, "BEGIN", what) {
            depth += 1;
        } else if kw(t, i, "END", what) {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
        i += 1;
    }
    None
}

fn units(text: &str, t: &[Token]) -> Result<Vec<Unit>, String> {
    let mut out = Vec::new();
    let mut plain_from: Option<usize> = None;
    let flush = |out: &mut Vec<Unit>, from: &mut Option<usize>, to: usize| {
        if let Some(f) = from.take()
            && !text[f..to].trim().trim_matches(';').trim().is_empty()
        {
            out.push(Unit::Plain(f..to));
        }
    };
    let mut i = 0;
    while i < t.len() {
        if kw(t, i, "BEGIN", "TRY") {
            flush(&mut out, &mut plain_from, t[i].start);
            let end_try = matching_end(t, i, "TRY").ok_or("BEGIN TRY without END TRY")?;
            if !kw(t, end_try + 2, "BEGIN", "CATCH") {
                return Err("END TRY must be followed by BEGIN CATCH".into());
            }
            let end_catch = matching_end(t, end_try + 2, "CATCH").ok_or("BEGIN CATCH without END CATCH")?;
            // From after BEGIN TRY to END TRY, and after BEGIN CATCH to END CATCH.
            let between = |from: usize, to: usize| t[from.min(to)].start..t[to].start;
            out.push(Unit::TryCatch { body: between(i + 2, end_try), handler: between(end_try + 4, end_catch) });
            i = end_catch + 2;
            continue;
        }
        if let Some((s, next)) = dynamic_at(t, i) {
            flush(&mut out, &mut plain_from, t[i].start);
            out.push(Unit::Dynamic(s));
            i = next;
            continue;
        }
        if plain_from.is_none() && !t[i].is_sym(';') {
            plain_from = Some(t[i].start);
        }
        i += 1;
    }
    flush(&mut out, &mut plain_from, text.len());
    Ok(out)
}

/// A batch with blocks as the pieces a server runs one after another: each
/// piece's text, and whether it is a statement that does work (a TRY block or
/// dynamic SQL), for a server slow at each (the `slow_queries` fault).
pub fn pieces(text: &str) -> Option<Vec<(String, bool)>> {
    let t = super::ddl::tokens(text).ok()?;
    if !has_blocks(&t) {
        return None;
    }
    let us = units(text, &t).ok()?;
    Some(
        us.into_iter()
            .map(|u| match u {
                Unit::Plain(r) => (text[r].to_string(), false),
                Unit::Dynamic(s) => (format!("EXEC ({})", crate::tsql::nstring(&s)), true),
                Unit::TryCatch { body, handler } => {
                    (format!("BEGIN TRY {} END TRY BEGIN CATCH {} END CATCH", &text[body], &text[handler]), true)
                }
            })
            .collect(),
    )
}

/// Runs a batch with blocks; `tokens` are its tokens.
pub fn run(catalog: &Catalog, session: &mut Session, text: &str, tokens: &[Token]) -> Vec<Output> {
    let units = match units(text, tokens) {
        Ok(u) => u,
        Err(why) => return vec![Output::Error(super::SqlError::new(102, 15, 1, format!("Incorrect syntax: {why}.")))],
    };
    let mut out = Vec::new();
    for u in units {
        let part = match u {
            Unit::Plain(r) => execute_batch(catalog, session, &text[r]),
            Unit::Dynamic(s) => dynamic(catalog, session, &s),
            Unit::TryCatch { body, handler } => try_catch(catalog, session, &text[body], &text[handler]),
        };
        let stop = part.iter().any(|o| matches!(o, Output::Fault(_)));
        out.extend(part);
        if stop {
            break;
        }
    }
    out
}

/// Dynamic SQL: a recorded answer when a replayed bundle has one, else the batch.
fn dynamic(catalog: &Catalog, session: &mut Session, sql: &str) -> Vec<Output> {
    use crate::lab::sql::replay::Answer;
    match session.replay.as_ref().and_then(|r| r.get(sql)) {
        Some(Answer::Rows(rs)) => vec![Output::Rows(rs.clone())],
        Some(Answer::Error(e)) => vec![Output::Error(e.clone())],
        Some(Answer::Fault(f)) => vec![Output::Fault(*f)],
        None => execute_batch(catalog, session, sql),
    }
}

fn try_catch(catalog: &Catalog, session: &mut Session, body: &str, handler: &str) -> Vec<Output> {
    let mut out = execute_batch(catalog, session, body);
    let Some(at) = out.iter().position(|o| matches!(o, Output::Error(e) if e.class > 10)) else { return out };
    let Output::Error(e) = out.remove(at) else { unreachable!() };
    // What ran before the error stands; the rest of TRY does not run.
    out.truncate(at);
    set_caught(catalog, Some((i64::from(e.number), e.message.clone())));
    out.extend(execute_batch(catalog, session, handler));
    set_caught(catalog, None);
    out
}

fn set_caught(catalog: &Catalog, e: Option<(i64, String)>) {
    *catalog.caught.lock().unwrap_or_else(|p| p.into_inner()) = e;
}
