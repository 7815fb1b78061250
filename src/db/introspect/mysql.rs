//! MySQL / MariaDB `information_schema`, the connected database only.

use sqlx::mysql::MySqlPool;

use super::{Builder, ColumnInfo, ForeignKey, Index, Table};

const TABLES: &str = "
SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, TABLE_COMMENT, CAST(TABLE_ROWS AS SIGNED)
FROM information_schema.TABLES
WHERE TABLE_SCHEMA = DATABASE() AND (? IS NULL OR TABLE_SCHEMA = ?)
ORDER BY TABLE_NAME";

const COLUMNS: &str = "
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, COLUMN_COMMENT
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = DATABASE()
ORDER BY TABLE_NAME, ORDINAL_POSITION";

const KEYS: &str = "
SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, tc.CONSTRAINT_TYPE, k.COLUMN_NAME,
       k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME
FROM information_schema.KEY_COLUMN_USAGE k
JOIN information_schema.TABLE_CONSTRAINTS tc
  ON tc.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND tc.TABLE_NAME = k.TABLE_NAME
 AND tc.CONSTRAINT_NAME = k.CONSTRAINT_NAME
WHERE k.TABLE_SCHEMA = DATABASE() AND tc.CONSTRAINT_TYPE IN ('PRIMARY KEY', 'FOREIGN KEY')
ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION";

const INDEXES: &str = "
SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, CAST(NON_UNIQUE AS SIGNED), COLUMN_NAME
FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = DATABASE()
ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX";

type TableRow = (String, String, String, Option<String>, Option<i64>);
type ColumnRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);
type KeyRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub(super) async fn read(
    pool: &MySqlPool,
    schema: Option<&str>,
) -> Result<Vec<Table>, sqlx::Error> {
    let tables: Vec<TableRow> = sqlx::query_as(TABLES)
        .bind(schema)
        .bind(schema)
        .fetch_all(pool)
        .await?;
    let columns: Vec<ColumnRow> = sqlx::query_as(COLUMNS).fetch_all(pool).await?;
    let keys: Vec<KeyRow> = sqlx::query_as(KEYS).fetch_all(pool).await?;
    let indexes: Vec<(String, String, String, i64, Option<String>)> =
        sqlx::query_as(INDEXES).fetch_all(pool).await?;

    let mut builder = Builder::default();
    for (schema, name, kind, comment, rows) in tables {
        let view = kind == "VIEW";
        builder.add(Table {
            schema,
            name,
            kind: if view { "view" } else { "table" }.to_owned(),
            comment: comment.filter(|c| !c.is_empty() && !view),
            columns: Vec::new(),
            primary_key: Vec::new(),
            foreign_keys: Vec::new(),
            indexes: Vec::new(),
            row_estimate: if view { None } else { rows },
        });
    }
    for (schema, table, name, data_type, nullable, default, comment) in columns {
        if let Some(table) = builder.table(&schema, &table) {
            table.columns.push(ColumnInfo {
                name,
                data_type,
                nullable: nullable == "YES",
                // MariaDB writes an absent default as the text NULL.
                default: default.filter(|d| d != "NULL"),
                primary_key: false,
                comment: comment.filter(|c| !c.is_empty()),
            });
        }
    }
    for (schema, table, name, kind, column, ref_schema, ref_table, ref_column) in keys {
        let Some(table) = builder.table(&schema, &table) else {
            continue;
        };
        if kind == "PRIMARY KEY" {
            table.primary_key.push(column);
            continue;
        }
        let (Some(referenced_schema), Some(referenced_table), Some(ref_column)) =
            (ref_schema, ref_table, ref_column)
        else {
            continue;
        };
        match table.foreign_keys.last_mut() {
            Some(fk) if fk.name.as_deref() == Some(name.as_str()) => {
                fk.columns.push(column);
                fk.referenced_columns.push(ref_column);
            }
            _ => table.foreign_keys.push(ForeignKey {
                name: Some(name),
                columns: vec![column],
                referenced_schema,
                referenced_table,
                referenced_columns: vec![ref_column],
            }),
        }
    }
    for (schema, table, name, non_unique, column) in indexes {
        let Some(table) = builder.table(&schema, &table) else {
            continue;
        };
        let column = column.unwrap_or_else(|| "(expression)".to_owned());
        match table.indexes.last_mut() {
            Some(index) if index.name == name => index.columns.push(column),
            _ => table.indexes.push(Index {
                primary: name == "PRIMARY",
                name,
                columns: vec![column],
                unique: non_unique == 0,
            }),
        }
    }
    Ok(builder.finish())
}
