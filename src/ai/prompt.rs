//! What the model is told: the dialect, the schema (compact, trimmed to a budget,
//! most relevant tables first) and the question. Nothing about the connection.

use crate::ai::Message;
use crate::db::introspect::Table;
use crate::db::params::Engine;

/// The dialect's name as the model knows it.
pub(crate) fn dialect(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgresql => "PostgreSQL",
        Engine::Mysql => "MySQL/MariaDB",
        Engine::Sqlite => "SQLite",
    }
}

/// The system and user messages for `question`.
pub(crate) fn messages(engine: Engine, schema: &str, question: &str) -> Vec<Message> {
    let dialect = dialect(engine);
    let system = format!(
        "You translate questions about a {dialect} database into SQL. Answer with exactly one \
         read-only {dialect} statement (SELECT or WITH … SELECT) and nothing else: no explanation, \
         no markdown, no second statement. Use only tables and columns from the schema, quoted \
         exactly as shown. Limit large results with LIMIT 100 unless the question asks for all rows."
    );
    let schema = if schema.trim().is_empty() {
        "(no schema given)"
    } else {
        schema
    };
    let user = format!("Schema:\n{schema}\n\nQuestion: {question}");
    vec![Message::new("system", system), Message::new("user", user)]
}

/// The conversation for a second try after the database refused `sql`.
pub(crate) fn retry(mut messages: Vec<Message>, sql: &str, database_error: &str) -> Vec<Message> {
    let database_error = without_accounts(database_error);
    messages.push(Message::new("assistant", sql));
    messages.push(Message::new(
        "user",
        format!(
            "The database rejected that statement with this error:\n{database_error}\n\
             Answer with one corrected read-only statement and nothing else."
        ),
    ));
    messages
}

/// A database message without account names: MySQL writes `'user'@'host'` into
/// permission errors, and the model never learns who connects from where.
fn without_accounts(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("'@'") {
        let start = rest[..at].rfind('\'').unwrap_or(at);
        let end = rest[at + 3..]
            .find('\'')
            .map_or(rest.len(), |e| at + 3 + e + 1);
        out.push_str(&rest[..start]);
        out.push_str("'…'@'…'");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The schema as compact text, at most `budget` characters, the tables the
/// question most likely means first. Columns carry their types, primary keys are
/// marked, foreign keys point at what they reference.
pub(crate) fn render_schema(
    tables: &[Table],
    engine: Engine,
    question: &str,
    budget: usize,
) -> String {
    let words = question_words(question);
    let mut ranked: Vec<(usize, &Table)> =
        tables.iter().map(|t| (relevance(t, &words), t)).collect();
    ranked.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
    let mut out = String::new();
    let mut shown = 0;
    for (_, table) in &ranked {
        let text = render_table(table, engine);
        if !out.is_empty() && out.len() + text.len() > budget {
            break;
        }
        out.push_str(&text);
        shown += 1;
    }
    if shown < ranked.len() {
        out.push_str(&format!(
            "-- {} more tables not shown\n",
            ranked.len() - shown
        ));
    }
    out
}

/// Schema text a client sent (no token), cut to the budget at a line end.
pub(crate) fn trim_text(schema: &str, budget: usize) -> String {
    if schema.len() <= budget {
        return schema.to_owned();
    }
    let mut end = budget;
    while !schema.is_char_boundary(end) {
        end -= 1;
    }
    let cut = schema[..end].rfind('\n').unwrap_or(end);
    format!("{}\n-- (schema shortened)\n", &schema[..cut])
}

fn render_table(table: &Table, engine: Engine) -> String {
    let default_schema =
        matches!(table.schema.as_str(), "public" | "main") || engine == Engine::Mysql;
    let name = if default_schema {
        quote(&table.name, engine)
    } else {
        format!(
            "{}.{}",
            quote(&table.schema, engine),
            quote(&table.name, engine)
        )
    };
    let kind = if table.kind == "table" {
        String::new()
    } else {
        format!("{} ", table.kind)
    };
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|column| {
            let mut text = format!("{} {}", quote(&column.name, engine), column.data_type);
            if column.primary_key {
                text.push_str(" PK");
            }
            if let Some(fk) = table
                .foreign_keys
                .iter()
                .find(|fk| fk.columns.len() == 1 && fk.columns[0] == column.name)
            {
                text.push_str(&format!(
                    " -> {}({})",
                    quote(&fk.referenced_table, engine),
                    quote(&fk.referenced_columns[0], engine)
                ));
            }
            text
        })
        .collect();
    let mut text = format!("{kind}{name}({})\n", columns.join(", "));
    for fk in table.foreign_keys.iter().filter(|fk| fk.columns.len() > 1) {
        let list = |names: &[String]| {
            names
                .iter()
                .map(|n| quote(n, engine))
                .collect::<Vec<_>>()
                .join(", ")
        };
        text.push_str(&format!(
            "  FK ({}) -> {}({})\n",
            list(&fk.columns),
            quote(&fk.referenced_table, engine),
            list(&fk.referenced_columns)
        ));
    }
    text
}

/// An identifier as the dialect must write it.
fn quote(name: &str, engine: Engine) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match engine {
        Engine::Postgresql if plain && !name.bytes().any(|b| b.is_ascii_uppercase()) => {
            name.to_owned()
        }
        Engine::Sqlite | Engine::Mysql if plain => name.to_owned(),
        Engine::Mysql => format!("`{}`", name.replace('`', "``")),
        Engine::Postgresql | Engine::Sqlite => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

fn question_words(question: &str) -> Vec<String> {
    question
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| w.chars().count() >= 3)
        .map(|w| w.trim_end_matches('s').to_owned())
        .collect()
}

fn relevance(table: &Table, words: &[String]) -> usize {
    let name = table.name.to_lowercase();
    let name = name.trim_end_matches('s');
    words
        .iter()
        .map(|word| {
            let table_hit = name.contains(word.as_str()) || word.contains(name);
            let column_hits = table
                .columns
                .iter()
                .filter(|c| c.name.to_lowercase().contains(word.as_str()))
                .count();
            usize::from(table_hit) * 3 + column_hits
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::introspect::{ColumnInfo, ForeignKey};

    fn table(name: &str, columns: &[&str]) -> Table {
        Table {
            schema: "public".into(),
            name: name.into(),
            kind: "table".into(),
            comment: None,
            columns: columns
                .iter()
                .map(|c| ColumnInfo {
                    name: (*c).into(),
                    data_type: "integer".into(),
                    nullable: true,
                    default: None,
                    primary_key: *c == "id",
                    comment: None,
                })
                .collect(),
            primary_key: vec!["id".into()],
            foreign_keys: Vec::new(),
            indexes: Vec::new(),
            row_estimate: None,
        }
    }

    #[test]
    fn tables_keys_and_references_are_rendered() {
        let mut orders = table("orders", &["id", "customer_id"]);
        orders.foreign_keys.push(ForeignKey {
            name: None,
            columns: vec!["customer_id".into()],
            referenced_schema: "public".into(),
            referenced_table: "Customers".into(),
            referenced_columns: vec!["id".into()],
        });
        let text = render_schema(&[orders], Engine::Postgresql, "", 10_000);
        assert_eq!(
            text,
            "orders(id integer PK, customer_id integer -> \"Customers\"(id))\n"
        );
    }

    #[test]
    fn a_small_budget_keeps_the_tables_the_question_is_about() {
        let tables: Vec<Table> = (0..50)
            .map(|i| table(&format!("table_{i}"), &["id", "value"]))
            .chain([table("payments", &["id", "amount"])])
            .collect();
        let text = render_schema(
            &tables,
            Engine::Sqlite,
            "total payment amount per month",
            200,
        );
        assert!(text.starts_with("payments("), "{text}");
        assert!(text.len() < 260);
        assert!(text.contains("more tables not shown"));
    }

    #[test]
    fn retries_never_tell_the_model_who_connects_from_where() {
        let error = "SELECT command denied to user 'qg_secret'@'10.1.2.3' for table 'orders'";
        let messages = retry(Vec::new(), "SELECT 1", error);
        let text = &messages[1].content;
        assert!(
            !text.contains("qg_secret") && !text.contains("10.1.2.3"),
            "{text}"
        );
        assert!(text.contains("for table 'orders'"));
    }

    #[test]
    fn schema_text_is_cut_at_a_line_end() {
        let text = "a(x int)\nb(y int)\nc(z int)\n";
        assert_eq!(trim_text(text, 12), "a(x int)\n-- (schema shortened)\n");
        assert_eq!(trim_text(text, 1000), text);
    }
}
