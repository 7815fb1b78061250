//! Statement boundaries and words, by each dialect's lexical rules (quotes,
//! comments, dollar quoting), not by keywords.
//!
//! Used where the engine itself cannot be asked first: counting statements before
//! SQLite prepares any of them, naming a second statement in an error, finding the
//! kind of a statement for the policy checks in [`crate::db::execute`]. It decides
//! nothing about read-only: the engines do that.

/// Lexical rules that differ between the engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `$tag$ … $tag$` dollar quoting and `E'…'` escape strings.
    Postgres,
    /// Backslash escapes in strings; `#` starts a comment.
    Mysql,
    /// `[ident]` quoting; backslash is an ordinary character.
    Sqlite,
}

impl Dialect {
    /// The dialect of an engine.
    pub(crate) fn of(engine: crate::db::params::Engine) -> Self {
        match engine {
            crate::db::params::Engine::Postgresql => Self::Postgres,
            crate::db::params::Engine::Mysql => Self::Mysql,
            crate::db::params::Engine::Sqlite => Self::Sqlite,
        }
    }
}

/// The statements in `sql`, without empty ones (a trailing `;` does not count).
pub(crate) fn split(sql: &str, dialect: Dialect) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        match skip_non_code(sql, i, dialect) {
            Some(next) => i = next,
            None if bytes[i] == b';' => {
                statements.push(&sql[start..i]);
                i += 1;
                start = i;
            }
            None => i += 1,
        }
    }
    statements.push(&sql[start..]);
    statements.into_iter().filter(|s| !is_blank(s)).collect()
}

/// Number of non-empty statements.
pub(crate) fn statement_count(sql: &str, dialect: Dialect) -> usize {
    split(sql, dialect).len()
}

/// If a string, quoted identifier or comment starts at byte `i`, the index just
/// past it.
fn skip_non_code(sql: &str, i: usize, dialect: Dialect) -> Option<usize> {
    let bytes = sql.as_bytes();
    let rest = &sql[i..];
    let to_line_end = || rest.find('\n').map_or(sql.len(), |p| i + p + 1);
    match bytes[i] {
        b'\'' if dialect == Dialect::Postgres && is_escape_string_start(bytes, i) => {
            Some(skip_quoted(bytes, i, b'\'', true))
        }
        quote @ (b'\'' | b'"' | b'`') => {
            let backslash = dialect == Dialect::Mysql && quote != b'`';
            Some(skip_quoted(bytes, i, quote, backslash))
        }
        b'[' if dialect == Dialect::Sqlite => Some(rest.find(']').map_or(sql.len(), |p| i + p + 1)),
        b'$' if dialect == Dialect::Postgres => dollar_quote_end(sql, i),
        b'-' if bytes.get(i + 1) == Some(&b'-') => Some(to_line_end()),
        b'#' if dialect == Dialect::Mysql => Some(to_line_end()),
        b'/' if bytes.get(i + 1) == Some(&b'*') => {
            Some(rest[2..].find("*/").map_or(sql.len(), |p| i + 2 + p + 2))
        }
        _ => None,
    }
}

/// `E'…'` (PostgreSQL's escape strings): the quote follows an `E` that starts a word.
fn is_escape_string_start(bytes: &[u8], quote: usize) -> bool {
    quote >= 1
        && matches!(bytes[quote - 1], b'e' | b'E')
        && (quote == 1 || !is_word_byte(bytes[quote - 2]))
}

/// The end of a dollar-quoted string starting at `i` (`$$…$$`, `$tag$…$tag$`), or
/// `None` when the `$` starts no such string (a parameter such as `$1`).
fn dollar_quote_end(sql: &str, i: usize) -> Option<usize> {
    let rest = &sql[i + 1..];
    let tag_len = rest.find('$')?;
    let tag = &rest[..tag_len];
    let valid_tag = tag.is_empty()
        || (tag.starts_with(|c: char| c.is_alphabetic() || c == '_')
            && tag.chars().all(|c| c.is_alphanumeric() || c == '_'));
    if !valid_tag || (i > 0 && is_word_byte(sql.as_bytes()[i - 1])) {
        return None;
    }
    let delimiter = &sql[i..i + tag_len + 2];
    let body = i + delimiter.len();
    Some(
        sql[body..]
            .find(delimiter)
            .map_or(sql.len(), |p| body + p + delimiter.len()),
    )
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// The words of `sql` outside strings, quoted identifiers and comments,
/// upper-cased, in order. Quoted identifiers are words too (their content, without
/// the quotes), so that `"pg_sleep"(1)` names `PG_SLEEP`.
pub(crate) fn words(sql: &str, dialect: Dialect) -> Vec<String> {
    let bytes = sql.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if let Some(next) = skip_non_code(sql, i, dialect) {
            let quoted_identifier = match bytes[i] {
                b'"' => dialect != Dialect::Mysql,
                b'`' => dialect != Dialect::Postgres,
                b'[' => true,
                _ => false,
            };
            if quoted_identifier {
                // An identifier left open runs to the end of the text: no closing
                // quote to drop (and the last byte may be inside a character).
                let close = if bytes[i] == b'[' { b']' } else { bytes[i] };
                let end = if next >= i + 2 && bytes[next - 1] == close {
                    next - 1
                } else {
                    next
                };
                if let Some(inner) = sql.get(i + 1..end) {
                    words.push(inner.to_uppercase());
                }
            }
            i = next;
        } else if is_word_byte(bytes[i]) {
            let start = i;
            while i < bytes.len() && is_word_byte(bytes[i]) {
                i += 1;
            }
            words.push(sql[start..i].to_uppercase());
        } else {
            i += 1;
        }
    }
    words
}

/// Up to `n` leading words of a statement (comments skipped), upper-cased.
pub(crate) fn leading_words(statement: &str, n: usize) -> Vec<String> {
    let mut words = Vec::with_capacity(n);
    let mut rest = statement;
    while words.len() < n {
        let (word, after) = next_word(rest);
        if word.is_empty() {
            break;
        }
        words.push(word);
        rest = after;
    }
    words
}

/// The first word of a statement, after comments, upper-cased.
pub(crate) fn first_word(statement: &str) -> String {
    next_word(statement).0
}

/// The first word after comments and white space, upper-cased, and the text right
/// after it.
fn next_word(text: &str) -> (String, &str) {
    let mut rest = text.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else if let Some(after) = rest.strip_prefix('(') {
            // `(SELECT …)` is a query too.
            rest = after.trim_start();
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    (rest[..end].to_ascii_uppercase(), &rest[end..])
}

fn skip_quoted(bytes: &[u8], open: usize, quote: u8, backslash_escapes: bool) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        if bytes[i] == b'\\' && backslash_escapes {
            i += 2;
        } else if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

fn is_blank(statement: &str) -> bool {
    first_word(statement).is_empty() && {
        let mut rest = statement.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("--") {
                rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
            } else if let Some(after) = rest.strip_prefix("/*") {
                rest = after.split_once("*/").map_or("", |(_, r)| r).trim_start();
            } else {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Dialect::{Mysql, Postgres, Sqlite};

    #[test]
    fn one_statement_with_a_trailing_semicolon_is_one() {
        assert_eq!(statement_count("select 1;", Sqlite), 1);
        assert_eq!(statement_count("  select 1 ;  -- done\n", Sqlite), 1);
    }

    #[test]
    fn semicolons_in_strings_identifiers_and_comments_do_not_split() {
        let sql = "select 'a;b', \"c;d\", `e;f`, [g;h] -- ;x\n /* ; */";
        assert_eq!(statement_count(sql, Sqlite), 1);
        assert_eq!(statement_count("select 'it''s; fine'", Sqlite), 1);
        assert_eq!(statement_count(r"select 'a\';b'", Mysql), 1);
        assert_eq!(statement_count("select 1 # ; comment", Mysql), 1);
    }

    #[test]
    fn postgres_dollar_quotes_and_escape_strings_do_not_split() {
        assert_eq!(statement_count("select $$a;b$$, $t$c;$$;d$t$", Postgres), 1);
        assert_eq!(statement_count(r"select E'a\';b'", Postgres), 1);
        assert_eq!(statement_count("select $1; select 2", Postgres), 2);
        assert_eq!(statement_count(r"select 'a\'; select 2", Postgres), 2);
    }

    #[test]
    fn backslash_is_no_escape_in_sqlite() {
        assert_eq!(
            statement_count(r"select 'a\'; attach database 'x' as y", Sqlite),
            2
        );
    }

    #[test]
    fn a_second_statement_is_counted() {
        assert_eq!(statement_count("select 1; select 2", Sqlite), 2);
        assert_eq!(statement_count("select 1;delete from t;", Mysql), 2);
        assert_eq!(statement_count("select ';'; drop table x", Sqlite), 2);
    }

    #[test]
    fn first_word_skips_comments_and_parentheses() {
        assert_eq!(
            first_word("  /* hi */ -- x\n attach database 'x' as y"),
            "ATTACH"
        );
        assert_eq!(first_word("select 1"), "SELECT");
        assert_eq!(first_word("(select 1)"), "SELECT");
        assert_eq!(first_word("-- only a comment"), "");
    }

    #[test]
    fn words_hidden_in_comments_are_not_taken_for_the_next_word() {
        assert_eq!(
            leading_words("EXPLAIN /*QUERY*/ QUERY PLAN PRAGMA hard_heap_limit=1", 4),
            ["EXPLAIN", "QUERY", "PLAN", "PRAGMA"]
        );
    }

    #[test]
    fn an_identifier_left_open_before_a_multibyte_character_is_still_a_word() {
        assert_eq!(words("SELECT \"é", Postgres), ["SELECT", "É"]);
        assert_eq!(words("SELECT `pg_é", Mysql), ["SELECT", "PG_É"]);
        assert_eq!(words("SELECT [é", Sqlite), ["SELECT", "É"]);
        assert_eq!(words("SELECT \"ab\"", Postgres), ["SELECT", "AB"]);
    }

    #[test]
    fn words_include_quoted_identifiers_but_not_strings_or_comments() {
        assert_eq!(
            words(
                r#"select "pg_sleep"(1), 'pg_cancel' /* lo_export */ from t"#,
                Postgres
            ),
            ["SELECT", "PG_SLEEP", "1", "FROM", "T"]
        );
        assert_eq!(
            words("select `load_file`('x') # x", Mysql),
            ["SELECT", "LOAD_FILE"]
        );
    }

    #[test]
    fn words_inside_strings_and_comments_are_not_words() {
        assert_eq!(
            words(
                "select query_to_xml('select 1', true) -- 'no' drop",
                Postgres
            ),
            ["SELECT", "QUERY_TO_XML", "TRUE"]
        );
    }

    #[test]
    fn blank_text_has_no_statement() {
        assert_eq!(statement_count("", Sqlite), 0);
        assert_eq!(statement_count(" ; ; -- c", Mysql), 0);
    }
}
