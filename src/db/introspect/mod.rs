//! Reading a database's structure: tables and views, columns, keys, indexes.
//!
//! Every catalog query is static text with bind parameters. Identifiers come back
//! exactly as the catalog stores them. PostgreSQL and MySQL send their catalogue
//! queries in one round trip; SQLite reads a local file.

mod mysql;
mod postgres;
mod sqlite;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::db::DbPool;
use crate::db::sql_error::SqlError;

/// What querygate reads of one of its own catalogue queries at most: past it,
/// the request fails with a clear error and the rest is not read, so a
/// catalogue (or a server posing as one) cannot fill the instance's memory.
/// The caller bounds the time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CatalogCap {
    /// Rows of all the queries of one read.
    pub rows: usize,
    /// Bytes of those rows in memory: each field's text and bookkeeping.
    pub bytes: usize,
}

/// What one field of a catalogue row costs in memory besides its text.
pub(crate) const FIELD_BYTES: usize = std::mem::size_of::<Option<String>>();

/// What one catalogue read has taken so far, against its cap.
#[derive(Debug)]
pub(crate) struct Tally {
    cap: CatalogCap,
    rows: usize,
    bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_refuses_past_either_cap_with_the_byte_limit() {
        let mut tally = Tally::new(CatalogCap {
            rows: 2,
            bytes: 100,
        });
        assert!(tally.add(1, 60).is_ok());
        assert!(tally.add(1, 60).is_err(), "bytes over the cap");
        let mut tally = Tally::new(CatalogCap {
            rows: 2,
            bytes: 100,
        });
        assert!(tally.add(2, 10).is_ok());
        let error = tally
            .add(1, 0)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("100 bytes") && error.contains("?schema="),
            "{error}"
        );
    }
}

impl Tally {
    pub(crate) fn new(cap: CatalogCap) -> Self {
        Self {
            cap,
            rows: 0,
            bytes: 0,
        }
    }

    /// Counts `rows` rows of `bytes` in all, before they are kept; the error
    /// once the read is over its cap.
    pub(crate) fn add(&mut self, rows: usize, bytes: usize) -> Result<(), SqlError> {
        self.rows = self.rows.saturating_add(rows);
        self.bytes = self.bytes.saturating_add(bytes);
        if self.rows > self.cap.rows || self.bytes > self.cap.bytes {
            return Err(SqlError::catalog_too_large(self.cap.bytes));
        }
        Ok(())
    }
}

/// A schema read: every table, column, key and index of the database.
pub(crate) const SCHEMA_CAP: CatalogCap = CatalogCap {
    rows: 250_000,
    bytes: 32 * 1024 * 1024,
};

/// The user-defined types read at connect (their query stops at 20,000).
pub(crate) const TYPES_CAP: CatalogCap = CatalogCap {
    rows: 20_000,
    bytes: 4 * 1024 * 1024,
};

/// One table or view.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Table {
    /// PostgreSQL schema, MySQL database, or `main` for SQLite.
    pub schema: String,
    /// The name as stored.
    pub name: String,
    /// `table`, `view`, `materialized_view` or `foreign_table`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The table's comment.
    pub comment: Option<String>,
    /// Columns in ordinal order.
    pub columns: Vec<ColumnInfo>,
    /// Primary key columns in key order (empty when there is none).
    pub primary_key: Vec<String>,
    /// Foreign keys, composite ones as lists.
    pub foreign_keys: Vec<ForeignKey>,
    /// Indexes.
    pub indexes: Vec<Index>,
    /// The planner's row estimate, when the engine keeps one.
    pub row_estimate: Option<i64>,
}

/// One column.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ColumnInfo {
    /// The name as stored.
    pub name: String,
    /// The declared type.
    pub data_type: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// The default expression.
    pub default: Option<String>,
    /// Part of the primary key.
    pub primary_key: bool,
    /// The column's comment.
    pub comment: Option<String>,
}

/// A foreign key.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ForeignKey {
    /// The constraint's name (SQLite keeps none).
    pub name: Option<String>,
    /// Referencing columns, in order.
    pub columns: Vec<String>,
    /// Schema of the referenced table.
    pub referenced_schema: String,
    /// The referenced table.
    pub referenced_table: String,
    /// Referenced columns, in the same order.
    pub referenced_columns: Vec<String>,
}

/// An index.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Index {
    /// The index's name.
    pub name: String,
    /// Key columns (or expressions) in order.
    pub columns: Vec<String>,
    /// Whether it enforces uniqueness.
    pub unique: bool,
    /// Whether it backs the primary key.
    pub primary: bool,
}

/// Reads every user table and view, optionally of one schema.
pub(crate) async fn read(pool: &DbPool, schema: Option<&str>) -> Result<Vec<Table>, SqlError> {
    match pool {
        DbPool::Postgres(pool) => postgres::read(pool, schema).await,
        DbPool::Mysql(pool) => mysql::read(pool, schema).await,
        DbPool::Sqlite(pool) => sqlite::read(pool, schema).await,
    }
}

/// A failure of SQLite's catalogue.
fn sqlite_error(error: &rusqlite::Error) -> SqlError {
    crate::db::sqlite::statement_error(error, "", usize::MAX)
}

/// Tables keyed by (schema, name) while they are being assembled.
#[derive(Default)]
struct Builder {
    tables: BTreeMap<(String, String), Table>,
}

impl Builder {
    fn table(&mut self, schema: &str, name: &str) -> Option<&mut Table> {
        self.tables.get_mut(&(schema.to_owned(), name.to_owned()))
    }

    fn add(&mut self, table: Table) {
        self.tables
            .insert((table.schema.clone(), table.name.clone()), table);
    }

    /// Marks primary-key columns and returns the tables in (schema, name) order.
    fn finish(self) -> Vec<Table> {
        self.tables
            .into_values()
            .map(|mut table| {
                for column in &mut table.columns {
                    column.primary_key = table.primary_key.contains(&column.name);
                }
                table
            })
            .collect()
    }
}
