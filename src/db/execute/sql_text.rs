//! Statement boundaries, by SQL's lexical rules (quotes, comments), not keywords.
//!
//! Used where the engine itself cannot be asked: sqlx's SQLite driver runs every
//! statement of a string, and MySQL reports a second statement only as a syntax
//! error. It decides nothing about read-only: the engines do that.

/// Lexical rules that differ between the engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `[ident]` quoting; backslash is an ordinary character.
    Sqlite,
    /// Backslash escapes in strings; `#` starts a comment.
    Mysql,
}

/// The statements in `sql`, without empty ones (a trailing `;` does not count).
pub fn split(sql: &str, dialect: Dialect) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => i = skip_quoted(bytes, i, quote, dialect),
            b'[' if dialect == Dialect::Sqlite => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b']')
                    .map_or(bytes.len(), |p| i + p + 1)
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1);
            }
            b'#' if dialect == Dialect::Mysql => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |p| i + 2 + p + 2);
            }
            b';' => {
                statements.push(&sql[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    statements.push(&sql[start..]);
    statements.into_iter().filter(|s| !is_blank(s)).collect()
}

/// Number of non-empty statements.
pub fn statement_count(sql: &str, dialect: Dialect) -> usize {
    split(sql, dialect).len()
}

/// Up to `n` leading words of a statement (comments skipped), upper-cased.
pub fn leading_words(statement: &str, n: usize) -> Vec<String> {
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
pub fn first_word(statement: &str) -> String {
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
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    (rest[..end].to_ascii_uppercase(), &rest[end..])
}

fn skip_quoted(bytes: &[u8], open: usize, quote: u8, dialect: Dialect) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        if bytes[i] == b'\\' && dialect == Dialect::Mysql && quote != b'`' {
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

    use Dialect::{Mysql, Sqlite};

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
    fn first_word_skips_comments() {
        assert_eq!(
            first_word("  /* hi */ -- x\n attach database 'x' as y"),
            "ATTACH"
        );
        assert_eq!(first_word("select 1"), "SELECT");
        assert_eq!(first_word("-- only a comment"), "");
    }

    #[test]
    fn words_hidden_in_comments_are_not_taken_for_the_next_word() {
        assert_eq!(
            leading_words("EXPLAIN /*QUERY*/ QUERY PLAN PRAGMA hard_heap_limit=1", 4),
            ["EXPLAIN", "QUERY", "PLAN", "PRAGMA"]
        );
        assert_eq!(
            leading_words("explain query /*plan*/ plan pragma x", 4),
            ["EXPLAIN", "QUERY", "PLAN", "PRAGMA"]
        );
    }

    #[test]
    fn leading_words_skip_comments() {
        assert_eq!(
            leading_words("explain /* x */ query plan pragma foo", 4),
            ["EXPLAIN", "QUERY", "PLAN", "PRAGMA"]
        );
        assert_eq!(leading_words("select", 3), ["SELECT"]);
    }

    #[test]
    fn blank_text_has_no_statement() {
        assert_eq!(statement_count("", Sqlite), 0);
        assert_eq!(statement_count(" ; ; -- c", Mysql), 0);
    }
}
