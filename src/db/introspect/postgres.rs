//! PostgreSQL catalogs (`pg_catalog`), every non-system schema.

use sqlx::postgres::PgPool;

use super::{Builder, ColumnInfo, ForeignKey, Index, Table};

const TABLES: &str = r#"
SELECT n.nspname::text, c.relname::text, c.relkind::text,
       obj_description(c.oid, 'pg_class'), c.reltuples::float8
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
  AND ($1::text IS NULL OR n.nspname = $1)
ORDER BY 1, 2"#;

const COLUMNS: &str = r#"
SELECT n.nspname::text, c.relname::text, a.attname::text,
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
SELECT n.nspname::text, c.relname::text, con.conname::text, con.contype::text,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord),
       fn.nspname::text, fc.relname::text,
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord)
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
SELECT n.nspname::text, c.relname::text, ic.relname::text, i.indisunique, i.indisprimary,
       ARRAY(SELECT CASE WHEN k.num > 0 THEN a.attname::text
                         ELSE pg_get_indexdef(i.indexrelid, k.ord::int, true) END
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(num, ord)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
             WHERE k.ord <= i.indnkeyatts ORDER BY k.ord)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND ($1::text IS NULL OR n.nspname = $1)
ORDER BY 1, 2, 3"#;

type ColumnRow = (
    String,
    String,
    String,
    String,
    bool,
    Option<String>,
    Option<String>,
);
type ConstraintRow = (
    String,
    String,
    String,
    String,
    Vec<String>,
    Option<String>,
    Option<String>,
    Vec<String>,
);

pub(super) async fn read(pool: &PgPool, schema: Option<&str>) -> Result<Vec<Table>, sqlx::Error> {
    let tables: Vec<(String, String, String, Option<String>, f64)> =
        sqlx::query_as(TABLES).bind(schema).fetch_all(pool).await?;
    let columns: Vec<ColumnRow> = sqlx::query_as(COLUMNS).bind(schema).fetch_all(pool).await?;
    let constraints: Vec<ConstraintRow> = sqlx::query_as(CONSTRAINTS)
        .bind(schema)
        .fetch_all(pool)
        .await?;
    let indexes: Vec<(String, String, String, bool, bool, Vec<String>)> =
        sqlx::query_as(INDEXES).bind(schema).fetch_all(pool).await?;

    let mut builder = Builder::default();
    for (schema, name, kind, comment, estimate) in tables {
        let kind = match kind.as_str() {
            "v" => "view",
            "m" => "materialized_view",
            "f" => "foreign_table",
            _ => "table",
        };
        let row_estimate = (kind != "view" && estimate >= 0.0).then_some(estimate as i64);
        builder.add(Table {
            schema,
            name,
            kind: kind.to_owned(),
            comment,
            columns: Vec::new(),
            primary_key: Vec::new(),
            foreign_keys: Vec::new(),
            indexes: Vec::new(),
            row_estimate,
        });
    }
    for (schema, table, name, data_type, nullable, default, comment) in columns {
        if let Some(table) = builder.table(&schema, &table) {
            table.columns.push(ColumnInfo {
                name,
                data_type,
                nullable,
                default,
                primary_key: false,
                comment,
            });
        }
    }
    for (schema, table, name, kind, columns, ref_schema, ref_table, ref_columns) in constraints {
        let Some(table) = builder.table(&schema, &table) else {
            continue;
        };
        match (kind.as_str(), ref_schema, ref_table) {
            ("p", _, _) => table.primary_key = columns,
            ("f", Some(referenced_schema), Some(referenced_table)) => {
                table.foreign_keys.push(ForeignKey {
                    name: Some(name),
                    columns,
                    referenced_schema,
                    referenced_table,
                    referenced_columns: ref_columns,
                })
            }
            _ => {}
        }
    }
    for (schema, table, name, unique, primary, columns) in indexes {
        if let Some(table) = builder.table(&schema, &table) {
            table.indexes.push(Index {
                name,
                columns,
                unique,
                primary,
            });
        }
    }
    Ok(builder.finish())
}
