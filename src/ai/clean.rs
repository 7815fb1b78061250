//! Cleaning a model's answer into one SQL statement, and the cheap lexical check
//! that comes before the database's own.

use crate::db::params::Engine;
use crate::db::sql_text::{self, Dialect};

/// Statement kinds a generated query may start with. Only a first filter: the
/// database decides (it plans or runs the statement read-only).
const READ_STARTS: [&str; 8] = [
    "SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN", "DESCRIBE", "DESC",
];

/// Words that start a SQL statement of any kind: text after a `;` that starts
/// with one is a second statement, not prose.
const STATEMENT_STARTS: [&str; 30] = [
    "SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN", "DESCRIBE", "DESC", "INSERT", "UPDATE",
    "DELETE", "MERGE", "REPLACE", "DROP", "CREATE", "ALTER", "TRUNCATE", "RENAME", "GRANT",
    "REVOKE", "CALL", "EXEC", "DO", "SET", "BEGIN", "COMMIT", "COPY", "ATTACH", "PRAGMA", "VACUUM",
];

/// The SQL in a model's answer: the first fenced block if there is one, else the
/// text from the first statement keyword on; trailing prose and a trailing `;`
/// removed. A second statement is kept, so that the check refuses it.
pub(crate) fn extract_sql(answer: &str, engine: Engine) -> String {
    let dialect = Dialect::of(engine);
    let body = fenced(answer).unwrap_or_else(|| from_first_statement(answer, dialect));
    let statements = sql_text::split(&body, dialect);
    let Some(first) = statements.first() else {
        return String::new();
    };
    if statements.len() > 1 {
        let second = sql_text::first_word(statements[1], dialect);
        if STATEMENT_STARTS.contains(&second.as_str()) {
            return body.trim().trim_end_matches(';').trim().to_owned();
        }
    }
    // Without a statement end, prose after a blank line is not SQL.
    let first = if statements.len() == 1 && !body.trim_end().ends_with(';') {
        first.split("\n\n").next().unwrap_or_default()
    } else {
        first
    };
    first.trim().trim_end_matches(';').trim().to_owned()
}

/// Whether `sql` is one statement of a read kind.
pub(crate) fn looks_read_only(sql: &str, engine: Engine) -> bool {
    let dialect = Dialect::of(engine);
    let statements = sql_text::split(sql, dialect);
    statements.len() == 1
        && READ_STARTS.contains(&sql_text::first_word(statements[0], dialect).as_str())
}

fn fenced(answer: &str) -> Option<String> {
    let start = answer.find("```")?;
    let after = &answer[start + 3..];
    // Skip the info string (`sql`, `postgresql`, …) up to the end of the line.
    let body_start = after.find('\n').map_or(0, |i| i + 1);
    let body = &after[body_start..];
    let end = body.find("```").unwrap_or(body.len());
    Some(body[..end].to_owned())
}

/// From the first line that starts with a statement keyword; failing that, from
/// the first statement keyword anywhere ("Sure! SELECT …").
fn from_first_statement(answer: &str, dialect: Dialect) -> String {
    let is_start = |word: &str| STATEMENT_STARTS.contains(&word);
    let mut offset = 0;
    for line in answer.split_inclusive('\n') {
        if is_start(&sql_text::first_word(line, dialect)) {
            return answer[offset..].to_owned();
        }
        offset += line.len();
    }
    let upper = answer.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    let earliest = STATEMENT_STARTS
        .iter()
        .filter_map(|word| {
            upper.match_indices(word).map(|(i, _)| i).find(|&i| {
                let before = i.checked_sub(1).map(|j| bytes[j]);
                let after = bytes.get(i + word.len()).copied();
                !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
        })
        .min();
    earliest.map_or_else(|| answer.to_owned(), |i| answer[i..].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_answers_are_unwrapped() {
        let answer = "Here you go:\n```sql\nSELECT * FROM t;\n```\nThis lists everything.";
        assert_eq!(extract_sql(answer, Engine::Postgresql), "SELECT * FROM t");
    }

    #[test]
    fn chatty_answers_lose_their_prose() {
        let answer = "Sure! The query is:\nSELECT name FROM customers ORDER BY credit DESC LIMIT 5;\nIt returns the top five.";
        assert_eq!(
            extract_sql(answer, Engine::Mysql),
            "SELECT name FROM customers ORDER BY credit DESC LIMIT 5"
        );
        let no_semicolon = "SELECT 1\n\nThis selects one.";
        assert_eq!(extract_sql(no_semicolon, Engine::Sqlite), "SELECT 1");
    }

    #[test]
    fn a_second_statement_is_kept_for_the_check_to_refuse() {
        let sql = extract_sql("SELECT 1; DROP TABLE t", Engine::Mysql);
        assert_eq!(sql, "SELECT 1; DROP TABLE t");
        assert!(!looks_read_only(&sql, Engine::Mysql));
        assert_eq!(
            extract_sql("Sure! SELECT 2 AS two;\nThis returns two.", Engine::Sqlite),
            "SELECT 2 AS two"
        );
    }

    #[test]
    fn semicolons_inside_strings_are_kept() {
        assert_eq!(
            extract_sql("SELECT 'a;b' AS x;", Engine::Sqlite),
            "SELECT 'a;b' AS x"
        );
    }

    #[test]
    fn only_single_read_statements_pass_the_lexical_check() {
        assert!(looks_read_only("SELECT 1", Engine::Postgresql));
        assert!(looks_read_only(
            "with x as (select 1) select * from x",
            Engine::Postgresql
        ));
        assert!(!looks_read_only("DELETE FROM t", Engine::Postgresql));
        assert!(!looks_read_only("SELECT 1; DROP TABLE t", Engine::Mysql));
        assert!(!looks_read_only("", Engine::Sqlite));
    }
}
