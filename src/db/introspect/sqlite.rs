//! SQLite: `sqlite_schema` and the table-valued pragmas, schema `main`.
//!
//! Three SQLite rules shape the answer: an `INTEGER PRIMARY KEY` column of a rowid
//! table is an alias of the rowid and can never be NULL (whatever its declaration
//! says); the key columns of a `WITHOUT ROWID` table are NOT NULL by rule; and a
//! view column computed by an expression has no declared type, so its `dataType`
//! is the empty string.

use rusqlite::Connection;

use super::{Builder, ColumnInfo, FIELD_BYTES, ForeignKey, Index, SCHEMA_CAP, Table, Tally};
use crate::db::sql_error::SqlError;
use crate::db::sqlite::LitePool;

const SCHEMA: &str = "main";

const TABLES: &str = "
SELECT name, type FROM sqlite_schema
WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
ORDER BY name";
const COLUMNS: &str =
    "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid";
const FOREIGN_KEYS: &str =
    "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq";
const INDEXES: &str = "SELECT name, \"unique\", origin FROM pragma_index_list(?1) ORDER BY name";
const INDEX_COLUMNS: &str = "SELECT name FROM pragma_index_info(?1) ORDER BY seqno";
const WITHOUT_ROWID: &str = "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1";

pub(super) async fn read(pool: &LitePool, schema: Option<&str>) -> Result<Vec<Table>, SqlError> {
    if schema.is_some_and(|s| s != SCHEMA) {
        return Ok(Vec::new());
    }
    pool.blocking(read_all).await?
}

/// Every table, within [`SCHEMA_CAP`]: each is counted as it is read, so the
/// read stops one table past the cap.
fn read_all(conn: &Connection) -> Result<Vec<Table>, SqlError> {
    let fail = |e: rusqlite::Error| super::sqlite_error(&e);
    let mut builder = Builder::default();
    let mut tally = Tally::new(SCHEMA_CAP);
    let tables: Vec<(String, String)> = conn
        .prepare(TABLES)
        .and_then(|mut s| {
            s.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(fail)?;
    for (name, kind) in tables {
        let table = table(conn, name, kind).map_err(fail)?;
        let rows = 1 + table.columns.len() + table.indexes.len() + table.foreign_keys.len();
        let bytes = serde_json::to_vec(&table).map_or(0, |json| json.len());
        tally.add(rows, bytes.saturating_add(rows * FIELD_BYTES))?;
        builder.add(table);
    }
    Ok(builder.finish())
}

fn table(conn: &Connection, name: String, kind: String) -> Result<Table, rusqlite::Error> {
    let mut columns: Vec<(ColumnInfo, i64)> = conn
        .prepare(COLUMNS)?
        .query_map([&name], |row| {
            Ok((
                ColumnInfo {
                    name: row.get(0)?,
                    data_type: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    nullable: !row.get::<_, bool>(2)?,
                    default: row.get(3)?,
                    primary_key: false,
                    comment: None,
                },
                row.get(4)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let indexes = indexes(conn, &name)?;
    let mut keyed: Vec<(i64, String)> = columns
        .iter()
        .filter(|(_, pk)| *pk > 0)
        .map(|(c, pk)| (*pk, c.name.clone()))
        .collect();
    keyed.sort();
    let without_rowid = kind == "table"
        && conn
            .query_row(WITHOUT_ROWID, [&name], |row| row.get::<_, bool>(0))
            .unwrap_or(false);
    // The rowid alias: the only key column, declared exactly INTEGER, of a rowid
    // table whose key needs no index of its own.
    let alias = match keyed.as_slice() {
        [(_, key)] if kind == "table" && !without_rowid && !indexes.iter().any(|i| i.primary) => {
            Some(key.clone())
        }
        _ => None,
    };
    for (column, pk) in &mut columns {
        let is_alias = alias.as_deref() == Some(column.name.as_str())
            && column.data_type.eq_ignore_ascii_case("INTEGER");
        if is_alias || (without_rowid && *pk > 0) {
            column.nullable = false;
        }
    }
    Ok(Table {
        schema: SCHEMA.to_owned(),
        foreign_keys: foreign_keys(conn, &name)?,
        name,
        kind,
        comment: None,
        columns: columns.into_iter().map(|(c, _)| c).collect(),
        primary_key: keyed.into_iter().map(|(_, name)| name).collect(),
        indexes,
        row_estimate: None,
    })
}

fn foreign_keys(conn: &Connection, table: &str) -> Result<Vec<ForeignKey>, rusqlite::Error> {
    let rows: Vec<(i64, String, String, Option<String>)> = conn
        .prepare(FOREIGN_KEYS)?
        .query_map([table], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut keys: Vec<(i64, ForeignKey)> = Vec::new();
    for (id, referenced_table, from, to) in rows {
        let to = to.unwrap_or_default();
        match keys.last_mut() {
            Some((last, fk)) if *last == id => {
                fk.columns.push(from);
                fk.referenced_columns.push(to);
            }
            _ => keys.push((
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
    Ok(keys.into_iter().map(|(_, fk)| fk).collect())
}

fn indexes(conn: &Connection, table: &str) -> Result<Vec<Index>, rusqlite::Error> {
    let rows: Vec<(String, bool, String)> = conn
        .prepare(INDEXES)?
        .query_map([table], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut indexes = Vec::with_capacity(rows.len());
    for (name, unique, origin) in rows {
        let columns = conn
            .prepare(INDEX_COLUMNS)?
            .query_map([&name], |row| row.get::<_, Option<String>>(0))?
            .map(|c| c.map(|c| c.unwrap_or_else(|| "(expression)".to_owned())))
            .collect::<Result<_, _>>()?;
        indexes.push(Index {
            name,
            columns,
            unique,
            primary: origin == "pk",
        });
    }
    Ok(indexes)
}
