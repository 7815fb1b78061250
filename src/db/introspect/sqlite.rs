//! SQLite: `sqlite_schema` and the table-valued pragmas, schema `main`.

use sqlx::sqlite::SqlitePool;

use super::{Builder, ColumnInfo, ForeignKey, Index, Table};

const SCHEMA: &str = "main";

const TABLES: &str = "
SELECT name, type FROM sqlite_schema
WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
ORDER BY name";
const COLUMNS: &str =
    "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?) ORDER BY cid";
const FOREIGN_KEYS: &str =
    "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?) ORDER BY id, seq";
const INDEXES: &str = "SELECT name, \"unique\", origin FROM pragma_index_list(?) ORDER BY name";
const INDEX_COLUMNS: &str = "SELECT name FROM pragma_index_info(?) ORDER BY seqno";

pub(super) async fn read(
    pool: &SqlitePool,
    schema: Option<&str>,
) -> Result<Vec<Table>, sqlx::Error> {
    let mut builder = Builder::default();
    if schema.is_some_and(|s| s != SCHEMA) {
        return Ok(Vec::new());
    }
    let mut conn = pool.acquire().await?;
    let tables: Vec<(String, String)> = sqlx::query_as(TABLES).fetch_all(&mut *conn).await?;
    for (name, kind) in tables {
        let columns: Vec<(String, String, bool, Option<String>, i64)> = sqlx::query_as(COLUMNS)
            .bind(&name)
            .fetch_all(&mut *conn)
            .await?;
        let mut keyed: Vec<(i64, String)> = columns
            .iter()
            .filter(|c| c.4 > 0)
            .map(|c| (c.4, c.0.clone()))
            .collect();
        keyed.sort();
        let fk_rows: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(FOREIGN_KEYS)
            .bind(&name)
            .fetch_all(&mut *conn)
            .await?;
        let mut foreign_keys: Vec<(i64, ForeignKey)> = Vec::new();
        for (id, referenced_table, from, to) in fk_rows {
            let to = to.unwrap_or_default();
            match foreign_keys.last_mut() {
                Some((last, fk)) if *last == id => {
                    fk.columns.push(from);
                    fk.referenced_columns.push(to);
                }
                _ => foreign_keys.push((
                    id,
                    ForeignKey {
                        name: None,
                        columns: vec![from],
                        referenced_schema: SCHEMA.to_owned(),
                        referenced_table,
                        referenced_columns: vec![to],
                    },
                )),
            }
        }
        let index_rows: Vec<(String, bool, String)> = sqlx::query_as(INDEXES)
            .bind(&name)
            .fetch_all(&mut *conn)
            .await?;
        let mut indexes = Vec::new();
        for (index, unique, origin) in index_rows {
            let columns: Vec<(Option<String>,)> = sqlx::query_as(INDEX_COLUMNS)
                .bind(&index)
                .fetch_all(&mut *conn)
                .await?;
            let columns = columns
                .into_iter()
                .map(|(c,)| c.unwrap_or_else(|| "(expression)".to_owned()))
                .collect();
            indexes.push(Index {
                name: index,
                columns,
                unique,
                primary: origin == "pk",
            });
        }
        builder.add(Table {
            schema: SCHEMA.to_owned(),
            name,
            kind: kind.clone(),
            comment: None,
            columns: columns
                .into_iter()
                .map(|(name, data_type, not_null, default, _)| ColumnInfo {
                    name,
                    data_type,
                    nullable: !not_null,
                    default,
                    primary_key: false,
                    comment: None,
                })
                .collect(),
            primary_key: keyed.into_iter().map(|(_, name)| name).collect(),
            foreign_keys: foreign_keys.into_iter().map(|(_, fk)| fk).collect(),
            indexes,
            row_estimate: None,
        });
    }
    Ok(builder.finish())
}
