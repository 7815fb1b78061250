//! Statement boundaries and words, read the way each engine's own lexer reads
//! them: where strings, quoted identifiers and comments begin and end.
//!
//! Used where the engine itself cannot be asked first: counting statements before
//! SQLite prepares any of them, naming a second statement in an error, finding the
//! words of a statement for the policy checks in [`crate::db::policy`]. It decides
//! nothing about read-only: the engines do that. A word this reader misses would be
//! a word the policy misses, so every rule below is the engine's, checked against
//! the servers themselves (`tests/api/lexing.rs` asks PostgreSQL and MariaDB how
//! they read generated statements):
//!
//! - **PostgreSQL** (with `standard_conforming_strings` pinned on at start-up):
//!   `--` comments end at a line feed *or* a carriage return; block comments
//!   nest; `'…'` doubles its quote and knows no backslash, `E'…'` does; `$tag$ …
//!   $tag$` quotes when the `$` does not continue an identifier, a tag being any
//!   letters, digits (not first), `_` and bytes of non-ASCII characters; `$` is an
//!   identifier character; `"…"` is an identifier.
//! - **MySQL/MariaDB**: `--` starts a comment only before white space, a control
//!   character or the end (`1--1` is one minus minus one); `#` comments; block
//!   comments do not nest; `'…'` and `"…"` are strings with backslash escapes,
//!   unless the server's `sql_mode` has `NO_BACKSLASH_ESCAPES` (no escapes) or
//!   `ANSI_QUOTES` (`"…"` is an identifier) — the pool reads both when it opens;
//!   `` `…` `` is an identifier.
//! - **SQLite**: `--` to a line feed, block comments that do not nest (an open one
//!   runs to the end), `'…'` strings, `"…"`, `` `…` `` and `[…]` identifiers, no
//!   backslash escapes.
//!
//! The reader walks bytes but only ever cuts the text at ASCII bytes, so no text
//! can make it slice inside a character.

/// What changes how MySQL/MariaDB reads quotes: the server's `sql_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct MysqlModes {
    /// `ANSI_QUOTES`: `"…"` is an identifier, not a string.
    pub ansi_quotes: bool,
    /// `NO_BACKSLASH_ESCAPES`: a backslash in a string is an ordinary character.
    pub no_backslash_escapes: bool,
}

impl MysqlModes {
    /// The modes named in a `sql_mode` value (`@@sql_mode` lists every flag).
    pub(crate) fn from_sql_mode(sql_mode: &str) -> Self {
        let has = |flag: &str| {
            sql_mode
                .split(',')
                .any(|m| m.trim().eq_ignore_ascii_case(flag))
        };
        Self {
            ansi_quotes: has("ANSI_QUOTES"),
            no_backslash_escapes: has("NO_BACKSLASH_ESCAPES"),
        }
    }
}

/// Lexical rules that differ between the engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// PostgreSQL, with `standard_conforming_strings` on.
    Postgres,
    /// MySQL or MariaDB, with the server's quoting modes.
    Mysql(MysqlModes),
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// The dialect of an engine, with MySQL's default modes.
    pub(crate) fn of(engine: crate::db::params::Engine) -> Self {
        match engine {
            crate::db::params::Engine::Postgresql => Self::Postgres,
            crate::db::params::Engine::Mysql => Self::Mysql(MysqlModes::default()),
            crate::db::params::Engine::Sqlite => Self::Sqlite,
        }
    }
}

/// What a stretch of text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A keyword, name or number.
    Word,
    /// A quoted identifier: its content is a name.
    Quoted,
    /// A string literal.
    Text,
    /// A comment.
    Comment,
    /// `;`.
    Semicolon,
    /// Any other character (operators, punctuation).
    Punct,
}

/// One token: what it is and where it stands (byte offsets at character
/// boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

/// The tokens of a text, white space left out.
pub(crate) struct Lexer<'a> {
    bytes: &'a [u8],
    at: usize,
    dialect: Dialect,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(sql: &'a str, dialect: Dialect) -> Self {
        Self {
            bytes: sql.as_bytes(),
            at: 0,
            dialect,
        }
    }

    fn byte(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied()
    }

    /// Whether `b` belongs to an identifier or a number.
    fn is_word_byte(&self, b: u8) -> bool {
        b.is_ascii_alphanumeric()
            || b == b'_'
            || b >= 0x80
            || (b == b'$' && self.dialect != Dialect::Sqlite)
    }

    /// The index just past the first `stop` byte from `i`, or the end.
    fn past(&self, i: usize, stop: impl Fn(u8) -> bool) -> usize {
        self.bytes[i..]
            .iter()
            .position(|&b| stop(b))
            .map_or(self.bytes.len(), |p| i + p + 1)
    }

    /// The end of a quoted run opened at `i`: the quote doubled stands for
    /// itself; with `backslash`, a backslash escapes the next byte.
    fn quoted(&self, i: usize, quote: u8, backslash: bool) -> usize {
        let mut j = i + 1;
        while let Some(b) = self.byte(j) {
            if backslash && b == b'\\' {
                j += 2;
            } else if b == quote {
                if self.byte(j + 1) == Some(quote) {
                    j += 2;
                } else {
                    return j + 1;
                }
            } else {
                j += 1;
            }
        }
        self.bytes.len()
    }

    /// The end of a block comment opened at `i`; PostgreSQL's nest.
    fn block_comment(&self, i: usize) -> usize {
        let nests = self.dialect == Dialect::Postgres;
        let (mut depth, mut j) = (1usize, i + 2);
        while j < self.bytes.len() {
            match (self.bytes[j], self.byte(j + 1)) {
                (b'/', Some(b'*')) if nests => {
                    depth += 1;
                    j += 2;
                }
                (b'*', Some(b'/')) => {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        return j;
                    }
                }
                _ => j += 1,
            }
        }
        self.bytes.len()
    }

    /// Whether `--` at `i` starts a comment.
    fn dash_comment(&self, i: usize) -> bool {
        match self.dialect {
            Dialect::Mysql(_) => self.byte(i + 2).is_none_or(|b| b <= 0x20 || b == 0x7f),
            Dialect::Postgres | Dialect::Sqlite => true,
        }
    }

    /// A PostgreSQL dollar quote opened at `i` (`$$`, `$tag$`): its end, or
    /// `None` when the `$` opens none (a parameter `$1`, or part of a name).
    fn dollar_quote(&self, i: usize) -> Option<usize> {
        if i > 0 && self.is_word_byte(self.bytes[i - 1]) {
            return None;
        }
        let mut j = i + 1;
        if let Some(b) = self.byte(j)
            && (b.is_ascii_alphabetic() || b == b'_' || b >= 0x80)
        {
            while self
                .byte(j)
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80)
            {
                j += 1;
            }
        }
        if self.byte(j) != Some(b'$') {
            return None;
        }
        let delimiter = &self.bytes[i..=j];
        let body = j + 1;
        Some(
            self.bytes[body..]
                .windows(delimiter.len())
                .position(|w| w == delimiter)
                .map_or(self.bytes.len(), |p| body + p + delimiter.len()),
        )
    }

    /// PostgreSQL's `E'…'`: the quote follows an `E` that is a word of its own.
    fn escape_string(&self, quote: usize) -> bool {
        quote >= 1
            && matches!(self.bytes[quote - 1], b'e' | b'E')
            && (quote == 1 || !self.is_word_byte(self.bytes[quote - 2]))
    }

    /// The token starting at `i`: its kind and end.
    fn token_at(&self, i: usize) -> (Kind, usize) {
        let b = self.bytes[i];
        let next = self.byte(i + 1);
        let mysql = match self.dialect {
            Dialect::Mysql(modes) => Some(modes),
            Dialect::Postgres | Dialect::Sqlite => None,
        };
        match (b, next) {
            (b'-', Some(b'-')) if self.dash_comment(i) => {
                let carriage_return = self.dialect == Dialect::Postgres;
                let end = self.past(i, |b| b == b'\n' || (carriage_return && b == b'\r'));
                (Kind::Comment, end)
            }
            (b'#', _) if mysql.is_some() => (Kind::Comment, self.past(i, |b| b == b'\n')),
            (b'/', Some(b'*')) => (Kind::Comment, self.block_comment(i)),
            (b'\'', _) => {
                let backslash = match self.dialect {
                    Dialect::Postgres => self.escape_string(i),
                    Dialect::Mysql(modes) => !modes.no_backslash_escapes,
                    Dialect::Sqlite => false,
                };
                (Kind::Text, self.quoted(i, b'\'', backslash))
            }
            (b'"', _) => match mysql {
                Some(modes) if !modes.ansi_quotes => (
                    Kind::Text,
                    self.quoted(i, b'"', !modes.no_backslash_escapes),
                ),
                _ => (Kind::Quoted, self.quoted(i, b'"', false)),
            },
            (b'`', _) if self.dialect != Dialect::Postgres => {
                (Kind::Quoted, self.quoted(i, b'`', false))
            }
            (b'[', _) if self.dialect == Dialect::Sqlite => {
                (Kind::Quoted, self.past(i, |b| b == b']'))
            }
            (b'$', _) if self.dialect == Dialect::Postgres => match self.dollar_quote(i) {
                Some(end) => (Kind::Text, end),
                None => self.word_or_punct(i),
            },
            (b';', _) => (Kind::Semicolon, i + 1),
            _ => self.word_or_punct(i),
        }
    }

    fn word_or_punct(&self, i: usize) -> (Kind, usize) {
        if !self.is_word_byte(self.bytes[i]) {
            return (Kind::Punct, i + 1);
        }
        let mut j = i + 1;
        while self.byte(j).is_some_and(|b| self.is_word_byte(b)) {
            j += 1;
        }
        (Kind::Word, j)
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        while self.byte(self.at).is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
        if self.at >= self.bytes.len() {
            return None;
        }
        let start = self.at;
        let (kind, end) = self.token_at(start);
        // Every end stands after an ASCII byte or at the end of the text, so a
        // token never cuts a character; `min` keeps a `\` escape at the very end
        // within the text.
        self.at = end.min(self.bytes.len()).max(start + 1);
        Some(Token {
            kind,
            start,
            end: self.at,
        })
    }
}

/// The statements in `sql`, without empty ones (a trailing `;` does not count).
pub(crate) fn split(sql: &str, dialect: Dialect) -> Vec<&str> {
    let mut statements = Vec::new();
    let mut start = 0;
    for token in Lexer::new(sql, dialect) {
        if token.kind == Kind::Semicolon {
            statements.push(&sql[start..token.start]);
            start = token.end;
        }
    }
    statements.push(&sql[start..]);
    statements
        .into_iter()
        .filter(|s| !is_blank(s, dialect))
        .collect()
}

/// Number of non-empty statements.
pub(crate) fn statement_count(sql: &str, dialect: Dialect) -> usize {
    split(sql, dialect).len()
}

/// The text of a token, safely (a token's bounds are character boundaries).
fn text(sql: &str, start: usize, end: usize) -> &str {
    sql.get(start..end).unwrap_or_default()
}

/// The words of `sql` outside strings and comments, upper-cased, in order.
/// Quoted identifiers are words too (their content, without the quotes), so
/// that `"pg_sleep"(1)` names `PG_SLEEP`.
pub(crate) fn words(sql: &str, dialect: Dialect) -> Vec<String> {
    Lexer::new(sql, dialect)
        .filter_map(|token| match token.kind {
            Kind::Word => Some(text(sql, token.start, token.end).to_uppercase()),
            Kind::Quoted => {
                let close = match sql.as_bytes()[token.start] {
                    b'[' => b']',
                    quote => quote,
                };
                // An identifier left open runs to the end: no closing quote to drop.
                let closed = token.end >= token.start + 2 && sql.as_bytes()[token.end - 1] == close;
                let end = if closed { token.end - 1 } else { token.end };
                Some(text(sql, token.start + 1, end).to_uppercase())
            }
            Kind::Text | Kind::Comment | Kind::Semicolon | Kind::Punct => None,
        })
        .collect()
}

/// A hint for a statement written with another engine's placeholders: `?` on
/// PostgreSQL, `$1` on MySQL/MariaDB (SQLite reads both). Only placeholders
/// outside strings, comments and quoted names count.
pub(crate) fn placeholder_hint(sql: &str, dialect: Dialect) -> Option<&'static str> {
    let mut tokens = Lexer::new(sql, dialect);
    match dialect {
        Dialect::Postgres => tokens
            .any(|t| t.kind == Kind::Punct && text(sql, t.start, t.end) == "?")
            .then_some(
                "PostgreSQL numbers its placeholders: write $1, $2, … for the values of \
                 `params`, in order (? is the style of MySQL and SQLite).",
            ),
        Dialect::Mysql(_) => tokens
            .any(|t| {
                let word = text(sql, t.start, t.end);
                t.kind == Kind::Word
                    && word.len() > 1
                    && word.starts_with('$')
                    && word[1..].bytes().all(|b| b.is_ascii_digit())
            })
            .then_some(
                "MySQL and MariaDB mark each placeholder with ?: write ? for each value of \
                 `params`, in order ($1 is PostgreSQL's style).",
            ),
        Dialect::Sqlite => None,
    }
}

/// Up to `n` leading words of a statement (comments and opening parentheses
/// skipped), upper-cased; anything else ends them.
pub(crate) fn leading_words(statement: &str, dialect: Dialect, n: usize) -> Vec<String> {
    let mut words = Vec::with_capacity(n);
    for token in Lexer::new(statement, dialect) {
        if words.len() >= n {
            break;
        }
        match token.kind {
            Kind::Word => words.push(text(statement, token.start, token.end).to_uppercase()),
            Kind::Comment => {}
            Kind::Punct if words.is_empty() && statement.as_bytes()[token.start] == b'(' => {}
            Kind::Punct | Kind::Quoted | Kind::Text | Kind::Semicolon => break,
        }
    }
    words
}

/// The first word of a statement, after comments and opening parentheses,
/// upper-cased (empty when it does not start with a word).
pub(crate) fn first_word(statement: &str, dialect: Dialect) -> String {
    leading_words(statement, dialect, 1)
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// Whether a statement is only white space and comments.
fn is_blank(statement: &str, dialect: Dialect) -> bool {
    Lexer::new(statement, dialect).all(|token| token.kind == Kind::Comment)
}

#[cfg(test)]
mod tests;
