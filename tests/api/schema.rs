//! `GET /api/database/schema` on fixture databases of every engine: exact output.
#![expect(
    clippy::needless_pass_by_value,
    reason = "the json! builders read better taking values"
)]

use crate::common::*;
use serde_json::{Value, json};

fn column(
    name: &str,
    data_type: &str,
    nullable: bool,
    default: Value,
    pk: bool,
    comment: Value,
) -> Value {
    json!({"name": name, "dataType": data_type, "nullable": nullable, "default": default,
           "primaryKey": pk, "comment": comment})
}

/// The fixture's structure as every engine should report it, with the engine's
/// own type names, schema name, constraint names, comments and index sets.
struct Expected {
    schema: &'static str,
    int: &'static str,
    text: &'static str,
    varchar: &'static str,
}

fn fk(name: Value, columns: &[&str], schema: &str, table: &str, referenced: &[&str]) -> Value {
    json!({"name": name, "columns": columns, "referencedSchema": schema,
           "referencedTable": table, "referencedColumns": referenced})
}

async fn fetch(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let (status, body) = read(app.schema(token, query).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    body["tables"].as_array().expect("tables").clone()
}

fn by_name<'a>(tables: &'a [Value], name: &str) -> &'a Value {
    tables
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no table {name}: {tables:?}"))
}

fn check_common(tables: &[Value], e: &Expected) {
    let names: Vec<&str> = tables.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(
        names,
        ["Big \"Quoted\" View", "Customers", "orders", "shipments"],
        "ordered by name, exact"
    );
    for table in tables {
        assert_eq!(table["schema"], e.schema);
    }
    let view = by_name(tables, "Big \"Quoted\" View");
    assert_eq!(view["type"], "view");
    assert_eq!(view["rowEstimate"], Value::Null);
    let view_columns: Vec<&str> = view["columns"]
        .as_array()
        .expect("cols")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(view_columns, ["Id", "Full Name"]);

    let orders = by_name(tables, "orders");
    assert_eq!(orders["type"], "table");
    assert_eq!(orders["primaryKey"], json!(["order_id", "line_no"]));
    assert_eq!(orders["columns"][0]["primaryKey"], true);
    assert_eq!(orders["columns"][1]["primaryKey"], true);
    assert_eq!(orders["columns"][2]["primaryKey"], false);
    assert_eq!(orders["columns"][2]["dataType"], e.int);

    let shipments = by_name(tables, "shipments");
    let fks = shipments["foreignKeys"].as_array().expect("fks");
    assert_eq!(fks.len(), 2, "{fks:?}");
    let composite = fks
        .iter()
        .find(|f| f["columns"].as_array().is_some_and(|c| c.len() == 2))
        .expect("composite");
    assert_eq!(composite["columns"], json!(["order_id", "line_no"]));
    assert_eq!(composite["referencedTable"], "orders");
    assert_eq!(
        composite["referencedColumns"],
        json!(["order_id", "line_no"])
    );
    assert_eq!(composite["referencedSchema"], e.schema);
    let own = fks
        .iter()
        .find(|f| f["columns"] == json!(["parent_id"]))
        .expect("self reference");
    assert_eq!(own["referencedTable"], "shipments");
    assert_eq!(own["referencedColumns"], json!(["id"]));

    let customers = by_name(tables, "Customers");
    let columns = customers["columns"].as_array().expect("columns");
    let names: Vec<&str> = columns.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(
        names,
        ["Id", "Full Name", "email", "région"],
        "ordinal order, exact spelling"
    );
    assert_eq!(columns[1]["nullable"], false);
    assert_eq!(columns[1]["dataType"], e.text);
    assert_eq!(columns[2]["nullable"], true);
    assert_eq!(columns[2]["dataType"], e.varchar);
    assert_eq!(customers["primaryKey"], json!(["Id"]));
    let unique = customers["indexes"]
        .as_array()
        .expect("indexes")
        .iter()
        .find(|i| i["name"] == "customers_email_uq")
        .expect("unique index");
    assert_eq!(unique["unique"], true);
    assert_eq!(unique["columns"], json!(["email"]));
    assert_eq!(unique["primary"], false);
}

#[tokio::test]
async fn postgres_schema_is_reported_exactly() {
    pg_fixture("postgres_schema.sql").await;
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let tables = fetch(&app, &token, "?schema=qg_schema_fx").await;
    check_common(
        &tables,
        &Expected {
            schema: "qg_schema_fx",
            int: "integer",
            text: "text",
            varchar: "character varying(120)",
        },
    );
    let customers = by_name(&tables, "Customers");
    assert_eq!(customers["comment"], "People who buy");
    assert_eq!(
        customers["columns"],
        json!([
            column("Id", "integer", false, Value::Null, true, Value::Null),
            column(
                "Full Name",
                "text",
                false,
                Value::Null,
                false,
                json!("Given and family name")
            ),
            column(
                "email",
                "character varying(120)",
                true,
                Value::Null,
                false,
                Value::Null
            ),
            column(
                "région",
                "text",
                true,
                json!("'nord'::text"),
                false,
                Value::Null
            ),
        ])
    );
    let orders = by_name(&tables, "orders");
    assert_eq!(
        orders["foreignKeys"],
        json!([fk(
            json!("orders_customer_fk"),
            &["customer_id"],
            "qg_schema_fx",
            "Customers",
            &["Id"]
        )])
    );
    let shipments = by_name(&tables, "shipments");
    assert_eq!(
        shipments["foreignKeys"],
        json!([
            fk(
                json!("shipments_line_fk"),
                &["order_id", "line_no"],
                "qg_schema_fx",
                "orders",
                &["order_id", "line_no"]
            ),
            fk(
                json!("shipments_parent_fk"),
                &["parent_id"],
                "qg_schema_fx",
                "shipments",
                &["id"]
            ),
        ])
    );
    assert_eq!(
        customers["indexes"],
        json!([
            {"name": "Customers_pkey", "columns": ["Id"], "unique": true, "primary": true},
            {"name": "customers_email_uq", "columns": ["email"], "unique": true, "primary": false},
        ])
    );
}

#[tokio::test]
async fn postgres_schema_without_filter_lists_every_user_schema_but_no_system_one() {
    pg_fixture("postgres_schema.sql").await;
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let tables = fetch(&app, &token, "").await;
    assert!(tables.iter().any(|t| t["schema"] == "qg_schema_fx"));
    assert!(
        !tables
            .iter()
            .any(|t| t["schema"] == "pg_catalog" || t["schema"] == "information_schema")
    );
}

#[tokio::test]
async fn mysql_schema_is_reported_exactly() {
    mysql_fixture("mysql_schema.sql").await;
    let app = TestApp::spawn().await;
    let token = app.token_for(&mysql_body("qg_schema_fx")).await;
    let tables = fetch(&app, &token, "").await;
    check_common(
        &tables,
        &Expected {
            schema: "qg_schema_fx",
            int: "int(11)",
            text: "varchar(100)",
            varchar: "varchar(120)",
        },
    );
    let customers = by_name(&tables, "Customers");
    assert_eq!(customers["comment"], "People who buy");
    assert_eq!(customers["columns"][1]["comment"], "Given and family name");
    assert_eq!(customers["columns"][3]["default"], "'nord'");
    let shipments = by_name(&tables, "shipments");
    assert_eq!(
        shipments["foreignKeys"],
        json!([
            fk(
                json!("shipments_line_fk"),
                &["order_id", "line_no"],
                "qg_schema_fx",
                "orders",
                &["order_id", "line_no"]
            ),
            fk(
                json!("shipments_parent_fk"),
                &["parent_id"],
                "qg_schema_fx",
                "shipments",
                &["id"]
            ),
        ])
    );
}

#[tokio::test]
async fn sqlite_schema_is_reported_exactly() {
    let app = TestApp::spawn().await;
    app.sqlite_fixture("schema_fx", "sqlite_schema.sql").await;
    let token = app.token_for(&sqlite_body("schema_fx")).await;
    let tables = fetch(&app, &token, "").await;
    check_common(
        &tables,
        &Expected {
            schema: "main",
            int: "INTEGER",
            text: "TEXT",
            varchar: "VARCHAR(120)",
        },
    );
    let customers = by_name(&tables, "Customers");
    assert_eq!(customers["columns"][3]["default"], "'nord'");
    let orders = by_name(&tables, "orders");
    assert_eq!(
        orders["foreignKeys"],
        json!([fk(
            Value::Null,
            &["customer_id"],
            "main",
            "Customers",
            &["Id"]
        )])
    );
}

#[tokio::test]
async fn demo_schema_has_the_sales_tables_keys_and_view() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&sqlite_body("demo")).await;
    let tables = fetch(&app, &token, "").await;
    for name in [
        "customers",
        "employees",
        "offices",
        "orderdetails",
        "orders",
        "payments",
        "productlines",
        "products",
    ] {
        assert_eq!(by_name(&tables, name)["type"], "table");
    }
    assert!(tables.iter().any(|t| t["type"] == "view"));
    let details = by_name(&tables, "orderdetails");
    assert_eq!(details["primaryKey"].as_array().expect("pk").len(), 2);
    assert!(!details["foreignKeys"].as_array().expect("fks").is_empty());
}

#[tokio::test]
async fn schema_answers_with_an_etag_and_304_when_unchanged() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&sqlite_body("demo")).await;
    let response = app.schema(&token, "").await;
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_owned();
    let again = app
        .client
        .get(app.url("/api/database/schema"))
        .bearer_auth(&token)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("request");
    assert_eq!(again.status(), 304);
    assert!(again.headers().contains_key("x-request-id"));
    let other = app
        .client
        .get(app.url("/api/database/schema"))
        .bearer_auth(&token)
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .expect("request");
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn schema_needs_a_token() {
    let app = TestApp::spawn().await;
    let (status, body) = read(app.get("/api/database/schema", None).await).await;
    assert_error(status, &body, 401, "token_missing");
}

#[tokio::test]
async fn schema_cache_is_short_lived_and_no_cache_reads_the_catalog_now() {
    pg_fixture("postgres_schema.sql").await;
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    pg_admin_execute(
        "test",
        "DROP SCHEMA IF EXISTS qg_cache_fx CASCADE; CREATE SCHEMA qg_cache_fx; CREATE TABLE qg_cache_fx.first (a int)",
    )
    .await;
    let names = |tables: Vec<Value>| {
        tables
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(fetch(&app, &token, "?schema=qg_cache_fx").await),
        ["first"]
    );
    pg_admin_execute("test", "CREATE TABLE qg_cache_fx.second (b int)").await;
    assert_eq!(
        names(fetch(&app, &token, "?schema=qg_cache_fx").await),
        ["first"],
        "served from the cache"
    );
    let response = app
        .client
        .get(app.url("/api/database/schema?schema=qg_cache_fx"))
        .bearer_auth(&token)
        .header("cache-control", "no-cache")
        .send()
        .await
        .expect("request");
    let (_, body) = read(response).await;
    assert_eq!(
        names(body["tables"].as_array().expect("tables").clone()),
        ["first", "second"]
    );
}

#[tokio::test]
async fn sqlite_rowid_aliases_and_without_rowid_keys_are_not_nullable_and_computed_view_columns_have_no_type()
 {
    let app = TestApp::spawn().await;
    app.sqlite_fixture("rowid_fx", "sqlite_rowid.sql").await;
    let token = app.token_for(&sqlite_body("rowid_fx")).await;
    let tables = fetch(&app, &token, "").await;
    let column = |table: &str, name: &str| {
        by_name(&tables, table)["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .expect("column")
    };
    // INTEGER PRIMARY KEY is the rowid: never NULL.
    assert_eq!(column("alias", "id")["nullable"], false);
    // INT PRIMARY KEY is not an alias, and SQLite lets it hold NULL.
    assert_eq!(column("not_alias", "id")["nullable"], true);
    // A WITHOUT ROWID table's key is NOT NULL by rule.
    assert_eq!(column("without_rowid", "code")["nullable"], false);
    assert_eq!(column("without_rowid", "name")["nullable"], true);
    // A view column keeps its table column's declared type; an expression has none.
    assert_eq!(column("computed", "id")["dataType"], "INTEGER");
    assert_eq!(column("computed", "name")["dataType"], "TEXT");
    assert_eq!(column("computed", "doubled")["dataType"], "");
    assert_eq!(column("computed", "shout")["dataType"], "");
}
