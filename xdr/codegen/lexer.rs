//! Tokenizer for the XDR language (RFC 4506 section 6.2).

use std::fmt;
use std::rc::Rc;

/// A position in a spec file, for error messages (`file:line:col`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: Rc<str>,
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A spec error: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub loc: Option<Loc>,
    pub msg: String,
}

impl Error {
    pub fn at(loc: &Loc, msg: impl Into<String>) -> Error {
        Error {
            loc: Some(loc.clone()),
            msg: msg.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.loc {
            Some(loc) => write!(f, "{loc}: error: {}", self.msg),
            None => write!(f, "error: {}", self.msg),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    /// An unsigned literal; a leading `-` is a separate `Punct`. i128 holds
    /// every value from -2^63 to 2^64-1 without overflow tricks.
    Num(i128),
    Punct(char),
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "`{s}`"),
            Tok::Num(n) => write!(f, "number {n}"),
            Tok::Punct(c) => write!(f, "`{c}`"),
            Tok::Eof => write!(f, "end of file"),
        }
    }
}

/// Splits one file into tokens, each with its location. The last token
/// is always `Eof`.
pub fn tokenize(file: &str, src: &str) -> Result<Vec<(Tok, Loc)>> {
    let file: Rc<str> = Rc::from(file);
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    // Moves past `n` chars, tracking line/column.
    let advance = |i: &mut usize, line: &mut u32, col: &mut u32, n: usize| {
        for _ in 0..n {
            if chars.get(*i) == Some(&'\n') {
                *line += 1;
                *col = 1;
            } else {
                *col += 1;
            }
            *i += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let loc = Loc {
            file: file.clone(),
            line,
            col,
        };
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            advance(&mut i, &mut line, &mut col, 1);
        } else if c == '/' && next == Some('*') {
            let body = chars[i + 2..].windows(2).position(|w| w == ['*', '/']);
            let Some(len) = body else {
                return Err(Error::at(&loc, "unterminated /* comment"));
            };
            advance(&mut i, &mut line, &mut col, len + 4);
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                advance(&mut i, &mut line, &mut col, 1);
            }
        } else if c == '%' {
            return Err(Error::at(
                &loc,
                "`%` pass-through lines are not supported (they are rpcgen C \
                 snippets, meaningless for Rust); remove the line",
            ));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                advance(&mut i, &mut line, &mut col, 1);
            }
            toks.push((Tok::Ident(chars[start..i].iter().collect()), loc));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                advance(&mut i, &mut line, &mut col, 1);
            }
            let text: String = chars[start..i].iter().collect();
            toks.push((Tok::Num(parse_number(&text, &loc)?), loc));
        } else if "{}[]<>()=;:,*-".contains(c) {
            toks.push((Tok::Punct(c), loc));
            advance(&mut i, &mut line, &mut col, 1);
        } else {
            return Err(Error::at(&loc, format!("unexpected character {c:?}")));
        }
    }
    let eof = Loc { file, line, col };
    toks.push((Tok::Eof, eof));
    Ok(toks)
}

/// Parses an RFC 4506 constant: decimal, `0x` hexadecimal, or octal with
/// a leading `0` (as in C). Values above 2^64-1 are rejected.
fn parse_number(text: &str, loc: &Loc) -> Result<i128> {
    let parsed = if let Some(hex) = text.strip_prefix("0x").or(text.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16)
    } else if text.len() > 1 && text.starts_with('0') {
        u64::from_str_radix(&text[1..], 8)
    } else {
        text.parse::<u64>()
    };
    parsed
        .map(i128::from)
        .map_err(|_| Error::at(loc, format!("invalid or out-of-range number `{text}`")))
}
