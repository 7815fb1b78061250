//! Type matrices: one value per common type of each engine, with its expected JSON.

use crate::common::*;
use serde_json::{Value, json};

/// Runs `sql` (one row) and returns the row as `{column: value}` plus the column types.
async fn one_row(app: &TestApp, token: &str, body: Value) -> (Value, Value) {
    let (status, answer) = read(app.execute(token, &body).await).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rowCount"], 1, "{answer}");
    let types: serde_json::Map<String, Value> = answer["columnTypes"]
        .as_array()
        .expect("types")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().expect("name").to_owned(),
                t["type"].clone(),
            )
        })
        .collect();
    (answer["data"][0].clone(), Value::Object(types))
}

fn assert_matrix(row: &Value, expected: &[(&str, Value)]) {
    for (column, value) in expected {
        assert_eq!(
            &row[*column], value,
            "column {column}: got {}",
            row[*column]
        );
    }
}

#[tokio::test]
async fn postgres_values_keep_their_meaning() {
    pg_fixture("postgres_types.sql").await;
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let sql = r#"SELECT 1::int2 AS int2, 2::int4 AS int4, 9007199254740993::int8 AS int8_big,
        1.5::float4 AS f4, 'NaN'::float8 AS f8_nan, '-Infinity'::float8 AS f8_ninf,
        12345678901234567890.123456789::numeric AS num, 'NaN'::numeric AS num_nan,
        true AS b, 'héllo ✓'::text AS t, 'abc'::varchar(5) AS vc, 'ab'::char(3) AS ch,
        DATE '2024-02-29' AS d, 'infinity'::date AS d_inf, TIME '13:45:06.5' AS tm,
        '13:45:06+02'::timetz AS ttz, TIMESTAMP '2024-02-29 13:45:06' AS ts,
        TIMESTAMPTZ '2024-02-29 13:45:06.25+02' AS tstz,
        INTERVAL '1 year 2 months 3 days 04:05:06.5' AS iv,
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u,
        '{"a": [1, 2]}'::json AS j, '{"b": null}'::jsonb AS jb, '\x0102ff'::bytea AS by,
        ARRAY[1, 2, NULL]::int4[] AS arr, ARRAY['x', 'y']::text[] AS tarr,
        ARRAY[[1, 2], [3, 4]] AS arr2d, ARRAY[]::int4[] AS arr_empty,
        'happy'::qg_types_fx.mood AS en, ARRAY['sad', 'happy']::qg_types_fx.mood[] AS enarr,
        '192.168.0.1'::inet AS ip, '10.0.0.0/8'::cidr AS net, B'101' AS bits,
        12.34::money AS m, 42::oid AS o, NULL::int4 AS nul, NULL::text AS nul_text"#;
    let (row, types) = one_row(&app, &token, json!({"sql": sql})).await;
    assert_matrix(
        &row,
        &[
            ("int2", json!(1)),
            ("int4", json!(2)),
            ("int8_big", json!(9007199254740993_i64)),
            ("f4", json!(1.5)),
            ("f8_nan", json!("NaN")),
            ("f8_ninf", json!("-Infinity")),
            ("num", json!("12345678901234567890.123456789")),
            ("num_nan", json!("NaN")),
            ("b", json!(true)),
            ("t", json!("héllo ✓")),
            ("vc", json!("abc")),
            ("ch", json!("ab ")),
            ("d", json!("2024-02-29")),
            ("d_inf", json!("infinity")),
            ("tm", json!("13:45:06.500")),
            ("ttz", json!("13:45:06+02:00")),
            ("ts", json!("2024-02-29T13:45:06")),
            ("tstz", json!("2024-02-29T11:45:06.250Z")),
            ("iv", json!("P1Y2M3DT4H5M6.5S")),
            ("u", json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
            ("j", json!({"a": [1, 2]})),
            ("jb", json!({"b": null})),
            ("by", json!("AQL/")),
            ("arr", json!([1, 2, null])),
            ("tarr", json!(["x", "y"])),
            ("arr2d", json!([[1, 2], [3, 4]])),
            ("arr_empty", json!([])),
            ("en", json!("happy")),
            ("enarr", json!(["sad", "happy"])),
            ("ip", json!("192.168.0.1")),
            ("net", json!("10.0.0.0/8")),
            ("bits", json!("101")),
            ("m", json!("12.34")),
            ("o", json!(42)),
            ("nul", Value::Null),
            ("nul_text", Value::Null),
        ],
    );
    assert_eq!(types["int4"], "int4");
    assert_eq!(types["tstz"], "timestamptz");
    assert_eq!(types["arr"], "int4[]");
    assert_eq!(types["en"], "qg_types_fx.mood");
}

#[tokio::test]
async fn postgres_bigint_as_string_turns_every_64_bit_column_into_strings() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let body = json!({"sql": "SELECT 9223372036854775807::int8 AS big, 1::int4 AS small", "bigintAsString": true});
    let (row, _) = one_row(&app, &token, body).await;
    assert_eq!(row["big"], "9223372036854775807");
    assert_eq!(row["small"], 1);
}

#[tokio::test]
async fn mysql_values_keep_their_meaning() {
    mysql_fixture("mysql_types.sql").await;
    let app = TestApp::spawn().await;
    let token = app.token_for(&mysql_body("qg_types_fx")).await;
    let (row, types) = one_row(
        &app,
        &token,
        json!({"sql": "SELECT * FROM types WHERE row_id = 1"}),
    )
    .await;
    assert_matrix(
        &row,
        &[
            ("ti", json!(-1)),
            ("si", json!(2)),
            ("mi", json!(3)),
            ("i", json!(4)),
            ("bi", json!(9007199254740993_i64)),
            ("ubi", json!(18446744073709551615_u64)),
            ("f", json!(1.5)),
            ("d", json!(2.25)),
            ("de", json!("12345678901234567890.0123456789")),
            ("b", json!(true)),
            ("dt", json!("2024-02-29")),
            ("tm", json!("-838:59:59")),
            ("dtt", json!("2024-02-29T13:45:06.123")),
            ("ts", json!("2024-02-29T13:45:06Z")),
            ("y", json!(2024)),
            ("c", json!("ab")),
            ("vc", json!("héllo")),
            ("tx", json!("text")),
            ("bin", json!("AQL/")),
            ("bl", json!("AA==")),
            ("bt", json!(682)),
            ("en", json!("b")),
            ("st", json!("x,z")),
        ],
    );
    // MariaDB stores JSON as LONGTEXT and says so on the wire: the text comes back.
    assert!(
        row["js"] == json!({"a": 1}) || row["js"] == json!("{\"a\": 1}"),
        "{}",
        row["js"]
    );
    assert_eq!(types["bi"], "bigint");
    assert_eq!(types["ubi"], "bigint unsigned");
    let (nulls, _) = one_row(
        &app,
        &token,
        json!({"sql": "SELECT * FROM types WHERE row_id = 2"}),
    )
    .await;
    for (column, value) in nulls.as_object().expect("row") {
        if column != "row_id" {
            assert_eq!(value, &Value::Null, "{column}");
        }
    }
    let (zero, _) = one_row(
        &app,
        &token,
        json!({"sql": "SELECT dt, dtt FROM types WHERE row_id = 3"}),
    )
    .await;
    assert_eq!(
        zero,
        json!({"dt": null, "dtt": null}),
        "zero dates are no dates"
    );
    let body = json!({"sql": "SELECT bi, ubi FROM types WHERE row_id = 1", "bigintAsString": true});
    let (row, _) = one_row(&app, &token, body).await;
    assert_eq!(row["bi"], "9007199254740993");
    assert_eq!(row["ubi"], "18446744073709551615");
}

#[tokio::test]
async fn sqlite_values_keep_their_meaning() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&sqlite_body("demo")).await;
    let sql = "SELECT 9007199254740993 AS big, 1.5 AS r, 9e999 AS inf, 'héllo' AS t, x'0102ff' AS bl, NULL AS n";
    let (row, _) = one_row(&app, &token, json!({"sql": sql})).await;
    assert_matrix(
        &row,
        &[
            ("big", json!(9007199254740993_i64)),
            ("r", json!(1.5)),
            ("inf", json!("Infinity")),
            ("t", json!("héllo")),
            ("bl", json!("AQL/")),
            ("n", Value::Null),
        ],
    );
    let (row, _) = one_row(
        &app,
        &token,
        json!({"sql": "SELECT 42 AS big", "bigintAsString": true}),
    )
    .await;
    assert_eq!(row["big"], "42");
}

#[tokio::test]
async fn postgres_numerics_of_any_weight_come_back_exactly() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let (row, _) = one_row(&app, &token, json!({"sql": "SELECT 1e50000::numeric AS n"})).await;
    let text = row["n"].as_str().expect("a numeric is a string");
    assert_eq!(text.len(), 50_001, "PostgreSQL prints 1 and 50,000 zeros");
    assert!(text.starts_with('1') && text[1..].bytes().all(|b| b == b'0'));
    let (row, _) = one_row(
        &app,
        &token,
        json!({"sql": "SELECT (1e-300 + 1)::numeric(400, 350) AS n"}),
    )
    .await;
    let expected = format!("1.{}1{}", "0".repeat(299), "0".repeat(50));
    assert_eq!(row["n"], json!(expected));
}

#[tokio::test]
async fn postgres_json_deeper_than_serde_default_comes_back_as_json() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let sql = "SELECT (repeat('[', 200) || repeat(']', 200))::jsonb AS j, \
               (repeat('{\"a\":', 300) || '1' || repeat('}', 300))::json AS o";
    let response = app.execute(&token, &json!({"sql": sql})).await;
    assert_eq!(response.status(), 200);
    // Deeper than serde_json reads by default: this client lifts its limit.
    let text = response.text().await.expect("body");
    let mut reader = serde_json::Deserializer::from_str(&text);
    reader.disable_recursion_limit();
    let answer: Value = serde::Deserialize::deserialize(&mut reader).expect("JSON");
    let row = &answer["data"][0];
    let mut depth = 0;
    let mut value = &row["j"];
    while let Some(inner) = value.as_array() {
        depth += 1;
        value = inner.first().unwrap_or(&Value::Null);
    }
    assert_eq!(depth, 200, "{}", row["j"]);
    assert!(row["o"].is_object(), "{}", row["o"]);
    // Deeper than querygate decodes: a clear error that says how to get the text.
    let (status, body) = read(
        app.execute(
            &token,
            &json!({"sql": "SELECT (repeat('[', 5000) || repeat(']', 5000))::jsonb AS j"}),
        )
        .await,
    )
    .await;
    assert_error(status, &body, 400, "sql_error");
    let message = body["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.contains("512 levels") && message.contains("::text"),
        "{body}"
    );
}
