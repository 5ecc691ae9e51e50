//! A cursor over a statement's tokens, with the small parsers every
//! statement's parser shares (names, options, values).

use super::lex::{Tok, Token};
use super::statement::{Opt, Value};
use crate::lab::sql::SqlError;

pub(super) struct P<'a> {
    pub(super) t: &'a [Token],
    pub(super) i: usize,
}

impl<'a> P<'a> {
    pub(super) fn peek(&self) -> Option<&'a Token> {
        self.t.get(self.i)
    }

    pub(super) fn near(&self) -> SqlError {
        match self.peek() {
            Some(t) => match &t.tok {
                Tok::Word(w) | Tok::Quoted(w) | Tok::Num(w) => SqlError::syntax_near(w),
                Tok::Str(s) => SqlError::syntax_near(s),
                Tok::Var(v) => SqlError::syntax_near(v),
                Tok::Binary(_) => SqlError::syntax_near("0x"),
                Tok::Sym(c) => SqlError::syntax_near(&c.to_string()),
            },
            None => SqlError::syntax_near(self.t.last().and_then(|t| t.name()).unwrap_or("")),
        }
    }

    pub(super) fn eat(&mut self, kw: &str) -> bool {
        if self.peek().is_some_and(|t| t.is(kw)) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn eat_sym(&mut self, c: char) -> bool {
        if self.peek().is_some_and(|t| t.is_sym(c)) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn expect(&mut self, kw: &str) -> Result<(), SqlError> {
        if self.eat(kw) { Ok(()) } else { Err(self.near()) }
    }

    pub(super) fn expect_sym(&mut self, c: char) -> Result<(), SqlError> {
        if self.eat_sym(c) { Ok(()) } else { Err(self.near()) }
    }

    pub(super) fn name(&mut self) -> Result<String, SqlError> {
        match self.peek().and_then(|t| t.name()) {
            Some(n) => {
                self.i += 1;
                Ok(n.to_string())
            }
            None => Err(self.near()),
        }
    }

    pub(super) fn string(&mut self) -> Result<String, SqlError> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Str(s)) => {
                self.i += 1;
                Ok(s.clone())
            }
            _ => Err(self.near()),
        }
    }

    pub(super) fn done(&self) -> Result<(), SqlError> {
        if self.i == self.t.len() { Ok(()) } else { Err(self.near()) }
    }

    /// `( name [= value] [, …] )`; a value runs until `,` or `)`.
    pub(super) fn options(&mut self) -> Result<Vec<Opt>, SqlError> {
        self.expect_sym('(')?;
        let mut out = Vec::new();
        loop {
            let name = self.name()?.to_ascii_uppercase();
            let value = if self.eat_sym('=') {
                Some(self.value()?)
            } else if self.peek().is_some_and(|t| t.is_sym('(')) {
                Some(Value::List(self.options()?))
            } else {
                None
            };
            out.push(Opt { name, value });
            if self.eat_sym(')') {
                return Ok(out);
            }
            self.expect_sym(',')?;
        }
    }

    pub(super) fn value(&mut self) -> Result<Value, SqlError> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Str(s)) => {
                self.i += 1;
                Ok(Value::Str(s.clone()))
            }
            Some(Tok::Num(n)) => {
                self.i += 1;
                Ok(Value::Num(n.clone()))
            }
            Some(Tok::Sym('(')) => Ok(Value::List(self.options()?)),
            Some(Tok::Word(_) | Tok::Quoted(_)) => {
                let mut words = Vec::new();
                while let Some(n) = self.peek().and_then(|t| t.name()) {
                    words.push(n.to_string());
                    self.i += 1;
                }
                Ok(Value::Words(words))
            }
            _ => Err(self.near()),
        }
    }
}
