//! MySQL / MariaDB `information_schema`, the connected database only: four
//! static queries sent as one multi-statement query (one round trip).

use super::{Builder, ColumnInfo, ForeignKey, Index, SCHEMA_CAP, Table};
use crate::db::mysql::MyPool;
use crate::db::sql_error::SqlError;

const CATALOG: &str = "
SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, TABLE_COMMENT, CAST(TABLE_ROWS AS SIGNED)
FROM information_schema.TABLES
WHERE TABLE_SCHEMA = DATABASE()
ORDER BY TABLE_NAME;
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, COLUMN_COMMENT
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = DATABASE()
ORDER BY TABLE_NAME, ORDINAL_POSITION;
SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, tc.CONSTRAINT_TYPE, k.COLUMN_NAME,
       k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME
FROM information_schema.KEY_COLUMN_USAGE k
JOIN information_schema.TABLE_CONSTRAINTS tc
  ON tc.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND tc.TABLE_NAME = k.TABLE_NAME
 AND tc.CONSTRAINT_NAME = k.CONSTRAINT_NAME
WHERE k.TABLE_SCHEMA = DATABASE() AND tc.CONSTRAINT_TYPE IN ('PRIMARY KEY', 'FOREIGN KEY')
ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION;
SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, CAST(NON_UNIQUE AS SIGNED), COLUMN_NAME
FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = DATABASE()
ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX";

type Row = Vec<Option<String>>;

fn field(row: &Row, i: usize) -> Option<String> {
    row.get(i).cloned().flatten()
}

fn text(row: &Row, i: usize) -> String {
    field(row, i).unwrap_or_default()
}

pub(super) async fn read(pool: &MyPool, schema: Option<&str>) -> Result<Vec<Table>, SqlError> {
    let mut sets = pool.catalog(CATALOG, SCHEMA_CAP).await?.into_iter();
    let mut next = || sets.next().unwrap_or_default();
    let (tables, columns, keys, indexes) = (next(), next(), next(), next());
    let mut builder = Builder::default();
    for row in tables {
        // The connected database is the only schema; another filter finds nothing.
        if schema.is_some_and(|s| s != text(&row, 0)) {
            continue;
        }
        let view = text(&row, 2) == "VIEW";
        builder.add(Table {
            schema: text(&row, 0),
            name: text(&row, 1),
            kind: if view { "view" } else { "table" }.to_owned(),
            comment: field(&row, 3).filter(|c| !c.is_empty() && !view),
            columns: Vec::new(),
            primary_key: Vec::new(),
            foreign_keys: Vec::new(),
            indexes: Vec::new(),
            row_estimate: if view {
                None
            } else {
                field(&row, 4).and_then(|v| v.parse().ok())
            },
        });
    }
    for row in columns {
        if let Some(table) = builder.table(&text(&row, 0), &text(&row, 1)) {
            table.columns.push(ColumnInfo {
                name: text(&row, 2),
                data_type: text(&row, 3),
                nullable: text(&row, 4) == "YES",
                // MariaDB writes an absent default as the text NULL.
                default: field(&row, 5).filter(|d| d != "NULL"),
                primary_key: false,
                comment: field(&row, 6).filter(|c| !c.is_empty()),
            });
        }
    }
    keys.iter().for_each(|row| add_key(&mut builder, row));
    indexes.iter().for_each(|row| add_index(&mut builder, row));
    Ok(builder.finish())
}

fn add_key(builder: &mut Builder, row: &Row) {
    let Some(table) = builder.table(&text(row, 0), &text(row, 1)) else {
        return;
    };
    let (name, column) = (text(row, 2), text(row, 4));
    if text(row, 3) == "PRIMARY KEY" {
        table.primary_key.push(column);
        return;
    }
    let (Some(referenced_schema), Some(referenced_table), Some(referenced)) =
        (field(row, 5), field(row, 6), field(row, 7))
    else {
        return;
    };
    match table.foreign_keys.last_mut() {
        Some(fk) if fk.name.as_deref() == Some(name.as_str()) => {
            fk.columns.push(column);
            fk.referenced_columns.push(referenced);
        }
        _ => table.foreign_keys.push(ForeignKey {
            name: Some(name),
            columns: vec![column],
            referenced_schema,
            referenced_table,
            referenced_columns: vec![referenced],
        }),
    }
}

fn add_index(builder: &mut Builder, row: &Row) {
    let Some(table) = builder.table(&text(row, 0), &text(row, 1)) else {
        return;
    };
    let name = text(row, 2);
    let column = field(row, 4).unwrap_or_else(|| "(expression)".to_owned());
    match table.indexes.last_mut() {
        Some(index) if index.name == name => index.columns.push(column),
        _ => table.indexes.push(Index {
            primary: name == "PRIMARY",
            unique: text(row, 3) == "0",
            name,
            columns: vec![column],
        }),
    }
}
