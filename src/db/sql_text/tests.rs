//! The readers' rules, one engine at a time, then random text.

use super::*;

const PG: Dialect = Dialect::Postgres;
const MY: Dialect = Dialect::Mysql(MysqlModes {
    ansi_quotes: false,
    no_backslash_escapes: false,
});
const LITE: Dialect = Dialect::Sqlite;

fn has(sql: &str, dialect: Dialect, word: &str) -> bool {
    words(sql, dialect).iter().any(|w| w == word)
}

#[test]
fn another_engines_placeholders_get_a_hint_outside_strings_and_comments() {
    assert!(placeholder_hint("SELECT * FROM t WHERE id = ?", PG).is_some());
    assert!(placeholder_hint("SELECT * FROM t WHERE id = $1", PG).is_none());
    assert!(placeholder_hint("SELECT '?' -- ?\n, \"?\" FROM t", PG).is_none());
    assert!(placeholder_hint("SELECT * FROM t WHERE id = $1", MY).is_some());
    assert!(placeholder_hint("SELECT * FROM t WHERE id = ?", MY).is_none());
    assert!(placeholder_hint("SELECT '$1', `$1`, $x FROM t", MY).is_none());
    assert!(placeholder_hint("SELECT ?, $1", LITE).is_none());
}

#[test]
fn one_statement_with_a_trailing_semicolon_is_one() {
    assert_eq!(statement_count("select 1;", LITE), 1);
    assert_eq!(statement_count("  select 1 ;  -- done\n", LITE), 1);
}

#[test]
fn semicolons_in_strings_identifiers_and_comments_do_not_split() {
    let sql = "select 'a;b', \"c;d\", `e;f`, [g;h] -- ;x\n /* ; */";
    assert_eq!(statement_count(sql, LITE), 1);
    assert_eq!(statement_count("select 'it''s; fine'", LITE), 1);
    assert_eq!(statement_count(r"select 'a\';b'", MY), 1);
    assert_eq!(statement_count("select 1 # ; comment", MY), 1);
}

#[test]
fn postgres_dollar_quotes_and_escape_strings_do_not_split() {
    assert_eq!(statement_count("select $$a;b$$, $t$c;$$;d$t$", PG), 1);
    assert_eq!(statement_count(r"select E'a\';b'", PG), 1);
    assert_eq!(statement_count("select $1; select 2", PG), 2);
    assert_eq!(statement_count(r"select 'a\'; select 2", PG), 2);
}

#[test]
fn backslash_is_no_escape_in_sqlite() {
    assert_eq!(
        statement_count(r"select 'a\'; attach database 'x' as y", LITE),
        2
    );
}

#[test]
fn a_second_statement_is_counted() {
    assert_eq!(statement_count("select 1; select 2", LITE), 2);
    assert_eq!(statement_count("select 1;delete from t;", MY), 2);
    assert_eq!(statement_count("select ';'; drop table x", LITE), 2);
}

#[test]
fn first_word_skips_comments_and_parentheses() {
    assert_eq!(
        first_word("  /* hi */ -- x\n attach database 'x' as y", LITE),
        "ATTACH"
    );
    assert_eq!(first_word("select 1", PG), "SELECT");
    assert_eq!(first_word("(select 1)", PG), "SELECT");
    assert_eq!(first_word("-- only a comment", PG), "");
    assert_eq!(first_word("# mysql comment\nSHOW TABLES", MY), "SHOW");
}

#[test]
fn words_hidden_in_comments_are_not_taken_for_the_next_word() {
    assert_eq!(
        leading_words(
            "EXPLAIN /*QUERY*/ QUERY PLAN PRAGMA hard_heap_limit=1",
            LITE,
            4
        ),
        ["EXPLAIN", "QUERY", "PLAN", "PRAGMA"]
    );
}

#[test]
fn an_identifier_left_open_before_a_multibyte_character_is_still_a_word() {
    assert_eq!(words("SELECT \"é", PG), ["SELECT", "É"]);
    assert_eq!(words("SELECT `pg_é", MY), ["SELECT", "PG_É"]);
    assert_eq!(words("SELECT [é", LITE), ["SELECT", "É"]);
    assert_eq!(words("SELECT \"ab\"", PG), ["SELECT", "AB"]);
}

#[test]
fn words_include_quoted_identifiers_but_not_strings_or_comments() {
    assert_eq!(
        words(
            r#"select "pg_sleep"(1), 'pg_cancel' /* lo_export */ from t"#,
            PG
        ),
        ["SELECT", "PG_SLEEP", "1", "FROM", "T"]
    );
    assert_eq!(
        words("select `load_file`('x') # x", MY),
        ["SELECT", "LOAD_FILE"]
    );
}

#[test]
fn postgres_block_comments_nest() {
    // The comment closes after `'*/`: the call is code (a reader that does not
    // nest sees a string from `'` instead).
    let sql = "SELECT /* /* */ '*/ pg_read_file('/etc/hostname') --'";
    assert!(has(sql, PG, "PG_READ_FILE"), "after both levels close");
    let sql = "SELECT /* /* */ pg_read_file('/etc/hostname') */ 1";
    assert!(!has(sql, PG, "PG_READ_FILE"), "inside the outer level");
    // `/*/` opens one level; `*/*` closes none.
    assert!(has("SELECT 2 /*/ 1 */ , pg_ls_dir('.')", PG, "PG_LS_DIR"));
    // The other engines do not nest.
    assert!(has("SELECT /* /* */ load_file('x')", MY, "LOAD_FILE"));
}

#[test]
fn postgres_dash_comments_end_at_a_carriage_return() {
    let sql = "SELECT 1 AS a -- c\r, pg_read_file('/etc/hostname') AS b";
    assert!(has(sql, PG, "PG_READ_FILE"));
    // MySQL and SQLite comments run to the line feed only.
    assert!(!has("SELECT 1 -- c\r, load_file('x')", MY, "LOAD_FILE"));
}

#[test]
fn postgres_dollar_signs_continue_names_and_quote_only_where_a_name_cannot_be() {
    let sql = "SELECT 1 AS x$$$, pg_read_file('/etc/hostname') AS y$$";
    assert!(has(sql, PG, "PG_READ_FILE"), "x$$$ and y$$ are names");
    let sql = "SELECT $€$ ' $€$, pg_read_file('/etc/hostname') --'";
    assert!(has(sql, PG, "PG_READ_FILE"), "€ may be part of a tag");
    assert!(
        !has("SELECT $A$ x $a$ pg_ls_dir $A$", PG, "PG_LS_DIR"),
        "tags are case-sensitive"
    );
    assert!(
        has("SELECT $1, pg_ls_dir('.')", PG, "PG_LS_DIR"),
        "$1 is a parameter"
    );
}

#[test]
fn postgres_escape_strings_take_backslashes_and_standard_strings_do_not() {
    assert!(has(
        r"SELECT 'a\', pg_read_file('x') --'",
        PG,
        "PG_READ_FILE"
    ));
    assert!(!has(
        r"SELECT E'a\', pg_read_file(x) --'",
        PG,
        "PG_READ_FILE"
    ));
    // A word ending in e before a quote is a typed literal, not an E-string.
    assert!(has(r"SELECT date'\', pg_ls_dir('.') --'", PG, "PG_LS_DIR"));
    // Backticks are not quotes in PostgreSQL: what they enclose is seen.
    assert!(has("SELECT `pg_ls_dir`", PG, "PG_LS_DIR"));
}

#[test]
fn mysql_double_dash_is_a_comment_only_before_white_space() {
    assert!(has(
        "SELECT 1--1, LOAD_FILE('/etc/hostname')",
        MY,
        "LOAD_FILE"
    ));
    assert!(has("SELECT 1--1 INTO OUTFILE '/tmp/x'", MY, "OUTFILE"));
    assert!(!has("SELECT 1-- 1, LOAD_FILE('x')", MY, "LOAD_FILE"));
    assert!(!has("SELECT 1--\t1, LOAD_FILE('x')", MY, "LOAD_FILE"));
    assert!(!has("SELECT 1--\u{1}, LOAD_FILE('x')", MY, "LOAD_FILE"));
    assert!(has("SELECT 1--\u{a0}, LOAD_FILE('x')", MY, "LOAD_FILE"));
    assert_eq!(statement_count("SELECT 1--", MY), 1);
}

#[test]
fn mysql_quoting_follows_the_servers_modes() {
    let ansi = Dialect::Mysql(MysqlModes {
        ansi_quotes: true,
        no_backslash_escapes: false,
    });
    let plain = Dialect::Mysql(MysqlModes {
        ansi_quotes: false,
        no_backslash_escapes: true,
    });
    assert!(has(r#"SELECT "load_file"('x')"#, ansi, "LOAD_FILE"));
    assert!(!has(r#"SELECT "load_file"('x')"#, MY, "LOAD_FILE"));
    let sql = r"SELECT 'a\', LOAD_FILE('/etc/hostname'), 'b\'";
    assert!(has(sql, plain, "LOAD_FILE"));
    assert!(!has(sql, MY, "LOAD_FILE"));
    let sql = r#"SELECT 1 AS "a\", LOAD_FILE('/etc/hostname') AS "b\""#;
    assert!(has(sql, ansi, "LOAD_FILE"));
    assert_eq!(
        MysqlModes::from_sql_mode("PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,NO_BACKSLASH_ESCAPES"),
        MysqlModes {
            ansi_quotes: true,
            no_backslash_escapes: true
        }
    );
}

#[test]
fn non_ascii_text_anywhere_never_cuts_a_character() {
    for sql in [
        "Xë",
        "$ë",
        "__main__ë񿯩𕐱,ÓÖ¾VÛl",
        "SELECT 1 AS café",
        "'é\\",
        "E'\\é",
        "$é$x",
        "-é",
        "#é",
    ] {
        for dialect in [PG, MY, LITE] {
            let _ = (
                split(sql, dialect),
                words(sql, dialect),
                first_word(sql, dialect),
            );
        }
    }
}

#[test]
fn blank_text_has_no_statement() {
    assert_eq!(statement_count("", LITE), 0);
    assert_eq!(statement_count(" ; ; -- c", MY), 0);
    assert_eq!(statement_count("/* a */ ;", PG), 0);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn dialect() -> impl Strategy<Value = Dialect> {
        prop_oneof![
            Just(PG),
            Just(MY),
            Just(LITE),
            any::<(bool, bool)>().prop_map(|(a, n)| Dialect::Mysql(MysqlModes {
                ansi_quotes: a,
                no_backslash_escapes: n
            })),
        ]
    }

    /// Text made of the pieces that open and close strings and comments.
    fn tricky() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("'"),
                Just("''"),
                Just("\""),
                Just("`"),
                Just("["),
                Just("]"),
                Just("\\"),
                Just("/*"),
                Just("*/"),
                Just("--"),
                Just("#"),
                Just("$$"),
                Just("$t$"),
                Just("$€$"),
                Just("E'"),
                Just("\n"),
                Just("\r"),
                Just(";"),
                Just(" "),
                Just("x"),
                Just("1"),
                Just("é"),
                Just("pg_ls_dir"),
            ],
            0..40,
        )
        .prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        /// Any Unicode text: the reader never panics, its tokens follow one
        /// another, and every token starts and ends on a character boundary.
        #[test]
        fn random_unicode_is_read_without_panic(sql in "\\PC{0,80}", dialect in dialect()) {
            check_tokens(&sql, dialect)?;
        }

        #[test]
        fn strings_and_comments_made_of_tricky_pieces_are_read_whole(
            sql in tricky(),
            dialect in dialect(),
        ) {
            check_tokens(&sql, dialect)?;
        }
    }

    fn check_tokens(sql: &str, dialect: Dialect) -> Result<(), TestCaseError> {
        let mut last = 0;
        for token in Lexer::new(sql, dialect) {
            prop_assert!(token.start >= last && token.end > token.start);
            prop_assert!(sql.is_char_boundary(token.start) && sql.is_char_boundary(token.end));
            prop_assert!(
                sql[last..token.start]
                    .bytes()
                    .all(|b| b.is_ascii_whitespace())
            );
            last = token.end;
        }
        prop_assert!(sql[last..].bytes().all(|b| b.is_ascii_whitespace()));
        let _ = (split(sql, dialect), words(sql, dialect));
        Ok(())
    }
}
