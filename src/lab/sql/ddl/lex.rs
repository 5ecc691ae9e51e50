//! T-SQL tokens, as far as the link DDL needs them: words, `[bracketed]]names]`
//! and `"quoted"` identifiers, `'strings'` and `N'strings'` with `''`, numbers,
//! `0x` binaries, `@variables` and punctuation. Comments are skipped.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A bare word: a keyword or an unquoted identifier.
    Word(String),
    /// `[name]` or `"name"`, unquoted.
    Quoted(String),
    Str(String),
    Num(String),
    Binary(Vec<u8>),
    Var(String),
    Sym(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    /// Byte range in the batch text.
    pub start: usize,
    pub end: usize,
}

impl Token {
    /// The keyword, upper-cased, when this is a bare word.
    pub fn word(&self) -> Option<String> {
        match &self.tok {
            Tok::Word(w) => Some(w.to_ascii_uppercase()),
            _ => None,
        }
    }

    pub fn is(&self, kw: &str) -> bool {
        matches!(&self.tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    pub fn is_sym(&self, c: char) -> bool {
        self.tok == Tok::Sym(c)
    }

    /// An identifier, bare or quoted.
    pub fn name(&self) -> Option<&str> {
        match &self.tok {
            Tok::Word(w) | Tok::Quoted(w) => Some(w),
            _ => None,
        }
    }
}

/// Where the text stops being T-SQL the tokenizer can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub at: usize,
    pub near: String,
}

pub fn tokens(text: &str) -> Result<Vec<Token>, LexError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize| LexError { at, near: text[at..].chars().take(20).collect() };
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            // Block comments nest in T-SQL.
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            if depth != 0 {
                return Err(err(start));
            }
            continue;
        }
        let tok = if (c == b'N' || c == b'n') && b.get(i + 1) == Some(&b'\'') {
            i += 1;
            let (s, next) = quoted(text, i, b'\'', b'\'').ok_or_else(|| err(start))?;
            i = next;
            Tok::Str(s)
        } else if c == b'\'' {
            let (s, next) = quoted(text, i, b'\'', b'\'').ok_or_else(|| err(start))?;
            i = next;
            Tok::Str(s)
        } else if c == b'[' {
            let (s, next) = quoted(text, i, b'[', b']').ok_or_else(|| err(start))?;
            i = next;
            Tok::Quoted(s)
        } else if c == b'"' {
            let (s, next) = quoted(text, i, b'"', b'"').ok_or_else(|| err(start))?;
            i = next;
            Tok::Quoted(s)
        } else if c == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
            i += 2;
            let from = i;
            while i < b.len() && b[i].is_ascii_hexdigit() {
                i += 1;
            }
            let hex = &text[from..i];
            if !hex.len().is_multiple_of(2) {
                return Err(err(start));
            }
            Tok::Binary(
                (0..hex.len()).step_by(2).map(|j| u8::from_str_radix(&hex[j..j + 2], 16).unwrap_or(0)).collect(),
            )
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            Tok::Num(text[start..i].to_string())
        } else if c == b'@' {
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'@' || b[i] >= 0x80) {
                i += 1;
            }
            Tok::Var(text[start..i].to_string())
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'#' || c >= 0x80 {
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'#' | b'$' | b'@') || b[i] >= 0x80)
            {
                i += 1;
            }
            Tok::Word(text[start..i].to_string())
        } else {
            let ch = text[i..].chars().next().unwrap_or(' ');
            i += ch.len_utf8();
            Tok::Sym(ch)
        };
        out.push(Token { tok, start, end: i });
    }
    Ok(out)
}

/// A quoted run from `open` to `close`, where a doubled `close` stands for one.
fn quoted(text: &str, at: usize, open: u8, close: u8) -> Option<(String, usize)> {
    let b = text.as_bytes();
    debug_assert_eq!(b[at], open);
    let mut i = at + 1;
    let mut s = String::new();
    let mut run = i;
    while i < b.len() {
        if b[i] == close {
            if b.get(i + 1) == Some(&close) {
                s.push_str(&text[run..=i]);
                i += 2;
                run = i;
                continue;
            }
            s.push_str(&text[run..i]);
            return Some((s, i + 1));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokens(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn names_strings_and_binaries() {
        assert_eq!(
            toks("CREATE CERTIFICATE [Sales]]DB cert] FROM BINARY = 0x3082aB"),
            vec![
                Tok::Word("CREATE".into()),
                Tok::Word("CERTIFICATE".into()),
                Tok::Quoted("Sales]DB cert".into()),
                Tok::Word("FROM".into()),
                Tok::Word("BINARY".into()),
                Tok::Sym('='),
                Tok::Binary(vec![0x30, 0x82, 0xab]),
            ]
        );
        assert_eq!(toks("N'O''Brien DB' 'x'"), vec![Tok::Str("O'Brien DB".into()), Tok::Str("x".into())]);
        assert_eq!(toks("-- note\n/* a /* nested */ b */ @v"), vec![Tok::Var("@v".into())]);
        assert!(tokens("[unclosed").is_err());
        assert!(tokens("'unclosed").is_err());
    }
}
