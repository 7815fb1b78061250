//! PostgreSQL catalogs (`pg_catalog`), every non-system schema: four static
//! queries sent in one flight and read in one snapshot.

use super::{Builder, ColumnInfo, ForeignKey, Index, SCHEMA_CAP, Table};
use crate::db::pg::{PgPool, TextRow};
use crate::db::sql_error::SqlError;

const TABLES: &str = r#"
SELECT n.nspname, c.relname, c.relkind::text,
       obj_description(c.oid, 'pg_class'), c.reltuples::float8
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
  AND ($1::text IS NULL OR n.nspname = $1)
ORDER BY 1, 2"#;

const COLUMNS: &str = r#"
SELECT n.nspname, c.relname, a.attname,
       format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), col_description(c.oid, a.attnum)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND ($1::text IS NULL OR n.nspname = $1)
ORDER BY 1, 2, a.attnum"#;

const CONSTRAINTS: &str = r#"
SELECT n.nspname, c.relname, con.conname, con.contype::text,
       to_json(ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord)),
       fn.nspname, fc.relname,
       to_json(ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord))
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.contype IN ('p', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND ($1::text IS NULL OR n.nspname = $1)
ORDER BY 1, 2, 3"#;

const INDEXES: &str = r#"
SELECT n.nspname, c.relname, ic.relname, i.indisunique, i.indisprimary,
       to_json(ARRAY(SELECT CASE WHEN k.num > 0 THEN a.attname::text
                         ELSE pg_get_indexdef(i.indexrelid, k.ord::int, true) END
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(num, ord)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
             WHERE k.ord <= i.indnkeyatts ORDER BY k.ord))
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND ($1::text IS NULL OR n.nspname = $1)
ORDER BY 1, 2, 3"#;

pub(super) async fn read(pool: &PgPool, schema: Option<&str>) -> Result<Vec<Table>, SqlError> {
    let filter = || vec![schema.map(str::to_owned)];
    let mut results = pool
        .catalog(
            &[
                (TABLES, filter()),
                (COLUMNS, filter()),
                (CONSTRAINTS, filter()),
                (INDEXES, filter()),
            ],
            SCHEMA_CAP,
        )
        .await?
        .into_iter();
    let mut next = || results.next().unwrap_or_default();
    let (tables, columns, constraints, indexes) = (next(), next(), next(), next());
    let mut builder = Builder::default();
    tables.iter().for_each(|row| builder.add(table(row)));
    for row in columns {
        if let Some(table) = builder.table(&row.string(0), &row.string(1)) {
            table.columns.push(ColumnInfo {
                name: row.string(2),
                data_type: row.string(3),
                nullable: row.bool(4),
                default: row.text(5),
                primary_key: false,
                comment: row.text(6),
            });
        }
    }
    for row in constraints {
        add_constraint(&mut builder, &row);
    }
    for row in indexes {
        if let Some(table) = builder.table(&row.string(0), &row.string(1)) {
            table.indexes.push(Index {
                name: row.string(2),
                unique: row.bool(3),
                primary: row.bool(4),
                columns: row.json(5),
            });
        }
    }
    Ok(builder.finish())
}

fn table(row: &TextRow) -> Table {
    let kind = match row.string(2).as_str() {
        "v" => "view",
        "m" => "materialized_view",
        "f" => "foreign_table",
        _ => "table",
    };
    let estimate = row.number::<f64>(4).unwrap_or(-1.0);
    Table {
        schema: row.string(0),
        name: row.string(1),
        kind: kind.to_owned(),
        comment: row.text(3),
        columns: Vec::new(),
        primary_key: Vec::new(),
        foreign_keys: Vec::new(),
        indexes: Vec::new(),
        row_estimate: (kind != "view" && estimate >= 0.0).then_some(estimate as i64),
    }
}

fn add_constraint(builder: &mut Builder, row: &TextRow) {
    let Some(table) = builder.table(&row.string(0), &row.string(1)) else {
        return;
    };
    let columns: Vec<String> = row.json(4);
    match (row.string(3).as_str(), row.text(5), row.text(6)) {
        ("p", _, _) => table.primary_key = columns,
        ("f", Some(referenced_schema), Some(referenced_table)) => {
            table.foreign_keys.push(ForeignKey {
                name: Some(row.string(2)),
                columns,
                referenced_schema,
                referenced_table,
                referenced_columns: row.json(7),
            });
        }
        _ => {}
    }
}
