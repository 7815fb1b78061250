//! `POST /api/generate-sql` and the demo endpoints, with the real client talking
//! over HTTP to a scripted OpenAI-compatible server.

use crate::common::fake_model::{FakeModel, Reply, reply};
use crate::common::*;
use serde_json::{Value, json};

const MODEL_KEY: &str = "sk-test-model-key";

async fn app_with(model: &FakeModel) -> TestApp {
    let base_url = model.base_url.clone();
    TestApp::spawn_with(move |config| {
        config.openai_base_url = Some(base_url);
        config.openai_api_key = Some(querygate::secret::Secret::new(MODEL_KEY));
        config.openai_timeout_ms = 1_000;
    })
    .await
}

async fn generate(
    app: &TestApp,
    body: &Value,
    token: Option<&str>,
) -> (reqwest::StatusCode, Value) {
    read(app.post_json("/api/generate-sql", body, token).await).await
}

fn secret_pg() -> Value {
    json!({"dbType": "postgresql", "host": "127.0.0.1", "port": 5432, "username": SECRET_USER,
           "password": SECRET_PASSWORD, "database": "test", "ssl": "disable"})
}

fn prompt_text(model: &FakeModel, index: usize) -> String {
    model.received()[index].body["messages"].to_string()
}

#[tokio::test]
async fn prompt_holds_dialect_tables_and_keys_and_nothing_secret() {
    pg_fixture("postgres_ai.sql").await;
    let model = FakeModel::start(vec![reply("SELECT name FROM qg_ai_fx.customers")]).await;
    let app = app_with(&model).await;
    let token = app.token_for(&secret_pg()).await;
    let (status, body) = generate(
        &app,
        &json!({"userQuery": "names of customers with orders"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let received = model.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body["model"], "gpt-4.1-mini");
    assert_eq!(
        received[0].authorization.as_deref(),
        Some(format!("Bearer {MODEL_KEY}").as_str())
    );
    let prompt = prompt_text(&model, 0);
    for expected in [
        "PostgreSQL",
        "qg_ai_fx.customers(",
        "id integer PK",
        "customer_id integer -> customers(id)",
        "names of customers",
    ] {
        assert!(
            prompt.contains(expected),
            "prompt lacks {expected}: {prompt}"
        );
    }
    let whole_request = received[0].body.to_string();
    for secret in [
        "127.0.0.1",
        "5432",
        SECRET_USER,
        SECRET_PASSWORD,
        token.as_str(),
    ] {
        assert!(!whole_request.contains(secret), "the model saw {secret}");
    }
}

#[tokio::test]
async fn fenced_and_chatty_answers_are_cleaned() {
    let model = FakeModel::start(vec![
        reply("Here it is:\n```sql\nSELECT 1 AS one;\n```\nThat selects one."),
        reply("Sure! SELECT 2 AS two;\nThis returns two."),
    ])
    .await;
    let app = app_with(&model).await;
    let body = json!({"userQuery": "one", "dbType": "sqlite", "schema": "t(a int)"});
    let (status, answer) = generate(&app, &body, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["sql"], "SELECT 1 AS one");
    assert_eq!(answer["dbType"], "sqlite");
    assert_eq!(answer["originalQuery"], "one");
    assert_eq!(answer["model"], "gpt-4.1-mini");
    assert_eq!(answer["retried"], false);
    assert!(
        chrono::DateTime::parse_from_rfc3339(answer["generatedAt"].as_str().expect("at")).is_ok()
    );
    assert!(prompt_text(&model, 0).contains("t(a int)"));
    let (_, answer) = generate(&app, &body, None).await;
    assert_eq!(answer["sql"], "SELECT 2 AS two");
}

#[tokio::test]
async fn write_statements_are_refused_as_unsafe() {
    let model = FakeModel::start(vec![
        reply("DELETE FROM customers"),
        reply("SELECT 1; DROP TABLE t"),
    ])
    .await;
    let app = app_with(&model).await;
    let body = json!({"userQuery": "remove everyone", "dbType": "mysql"});
    for expected in ["DELETE FROM customers", "SELECT 1; DROP TABLE t"] {
        let (status, answer) = generate(&app, &body, None).await;
        assert_error(status, &answer, 422, "ai_unsafe_sql");
        assert_eq!(answer["details"]["sql"], expected);
    }
}

#[tokio::test]
async fn a_writable_cte_is_caught_by_the_databases_plan() {
    pg_fixture("postgres_ai.sql").await;
    let model = FakeModel::start(vec![reply(
        "WITH gone AS (DELETE FROM qg_ai_fx.orders RETURNING *) SELECT count(*) FROM gone",
    )])
    .await;
    let app = app_with(&model).await;
    let token = app.token_for(&pg_body("test")).await;
    let (status, answer) =
        generate(&app, &json!({"userQuery": "delete orders"}), Some(&token)).await;
    assert_error(status, &answer, 422, "ai_unsafe_sql");
    assert_eq!(
        pg_admin_scalar("SELECT count(*) FROM qg_ai_fx.orders").await,
        2
    );
}

#[tokio::test]
async fn a_bad_first_answer_is_retried_with_the_database_error() {
    pg_fixture("postgres_ai.sql").await;
    let model = FakeModel::start(vec![
        reply("SELECT nam FROM qg_ai_fx.customers"),
        reply("SELECT name FROM qg_ai_fx.customers ORDER BY id"),
    ])
    .await;
    let app = app_with(&model).await;
    let token = app.token_for(&pg_body("test")).await;
    let body = json!({"userQuery": "customer names", "execute": true});
    let (status, answer) = generate(&app, &body, Some(&token)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["retried"], true);
    assert_eq!(
        answer["sql"],
        "SELECT name FROM qg_ai_fx.customers ORDER BY id"
    );
    assert_eq!(
        answer["result"]["data"],
        json!([{"name": "Ada"}, {"name": "Grace"}])
    );
    let second = prompt_text(&model, 1);
    assert!(
        second.contains("column \\\"nam\\\" does not exist"),
        "{second}"
    );
}

#[tokio::test]
async fn two_bad_answers_return_the_database_error_with_the_sql() {
    let model = FakeModel::start(vec![
        reply("SELECT nope FROM customers"),
        reply("SELECT still_nope FROM customers"),
    ])
    .await;
    let app = app_with(&model).await;
    let token = app.token_for(&sqlite_body("demo")).await;
    let (status, answer) = generate(
        &app,
        &json!({"userQuery": "x", "execute": true}),
        Some(&token),
    )
    .await;
    assert_error(status, &answer, 400, "sql_column_not_found");
    assert_eq!(answer["details"]["sql"], "SELECT still_nope FROM customers");
}

#[tokio::test]
async fn upstream_failures_map_to_their_codes_without_their_text() {
    let secret_text = "upstream-internal-detail-4242";
    let cases = [
        (
            Reply::Raw(401, secret_text.into(), None),
            502,
            "ai_auth_failed",
        ),
        (
            Reply::Raw(403, secret_text.into(), None),
            502,
            "ai_auth_failed",
        ),
        (
            Reply::Raw(429, secret_text.into(), Some(7)),
            429,
            "ai_rate_limited",
        ),
        (
            Reply::Raw(
                429,
                format!(r#"{{"error":{{"code":"insufficient_quota","message":"{secret_text}"}}}}"#),
                None,
            ),
            402,
            "ai_quota_exceeded",
        ),
        (
            Reply::Raw(402, secret_text.into(), None),
            402,
            "ai_quota_exceeded",
        ),
        (
            Reply::Raw(500, secret_text.into(), None),
            502,
            "ai_upstream_error",
        ),
        (
            Reply::Raw(200, format!("not json {secret_text}"), None),
            502,
            "ai_upstream_error",
        ),
    ];
    let model = FakeModel::start(cases.iter().map(|c| c.0.clone()).collect()).await;
    let app = app_with(&model).await;
    let body = json!({"userQuery": "anything", "dbType": "postgresql"});
    for (_, status_code, code) in cases {
        let response = app.post_json("/api/generate-sql", &body, None).await;
        let retry_after = response.headers().get("retry-after").cloned();
        let (status, answer) = read(response).await;
        assert_error(status, &answer, status_code, code);
        assert!(
            !answer.to_string().contains(secret_text),
            "upstream text leaked: {answer}"
        );
        if code == "ai_rate_limited" {
            assert_eq!(retry_after.expect("retry-after"), "7");
        }
    }
}

#[tokio::test]
async fn a_model_that_never_answers_times_out_in_the_configured_time() {
    let model = FakeModel::start(vec![Reply::Hang]).await;
    let app = app_with(&model).await;
    let started = std::time::Instant::now();
    let (status, answer) =
        generate(&app, &json!({"userQuery": "x", "dbType": "sqlite"}), None).await;
    assert_error(status, &answer, 504, "ai_timeout");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= std::time::Duration::from_millis(900)
            && elapsed < std::time::Duration::from_secs(5),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn execute_true_returns_real_rows_from_every_engine() {
    pg_fixture("postgres_ai.sql").await;
    let model = FakeModel::start(vec![
        reply("SELECT name FROM qg_ai_fx.customers WHERE id = 1"),
        reply("SELECT 40 + 2 AS answer"),
        reply("SELECT count(*) AS offices FROM offices"),
    ])
    .await;
    let app = app_with(&model).await;
    let expected = [
        json!([{"name": "Ada"}]),
        json!([{"answer": 42}]),
        json!([{"offices": 7}]),
    ];
    for (connect, rows) in [pg_body("test"), mysql_body("test"), sqlite_body("demo")]
        .iter()
        .zip(expected)
    {
        let token = app.token_for(connect).await;
        let (status, answer) = generate(
            &app,
            &json!({"userQuery": "q", "execute": true}),
            Some(&token),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["result"]["data"], rows);
        assert_eq!(answer["result"]["success"], true);
    }
    assert!(prompt_text(&model, 1).contains("MySQL"));
    assert!(prompt_text(&model, 2).contains("SQLite"));
}

#[tokio::test]
async fn empty_model_settings_count_as_unset() {
    // An env file with `OPENAI_API_KEY=` and `OPENAI_BASE_URL=` configures nothing.
    let app = TestApp::spawn_with(|config| {
        config.openai_api_key = Some(querygate::secret::Secret::new(""));
        config.openai_base_url = Some(String::new());
    })
    .await;
    let (status, answer) =
        generate(&app, &json!({"userQuery": "x", "dbType": "sqlite"}), None).await;
    assert_error(status, &answer, 503, "ai_not_configured");
}

#[tokio::test]
async fn without_a_model_the_answer_is_ai_not_configured() {
    let app = TestApp::spawn().await;
    let (status, answer) =
        generate(&app, &json!({"userQuery": "x", "dbType": "sqlite"}), None).await;
    assert_error(status, &answer, 503, "ai_not_configured");
    assert!(
        answer["error"]
            .as_str()
            .expect("message")
            .contains("OPENAI_API_KEY")
    );
    let (status, answer) = read(
        app.post_json(
            "/api/demo/query",
            &json!({"query": "how many offices"}),
            None,
        )
        .await,
    )
    .await;
    assert_error(status, &answer, 503, "ai_not_configured");
}

#[tokio::test]
async fn invalid_generate_requests_name_the_field() {
    let model = FakeModel::start(vec![]).await;
    let app = app_with(&model).await;
    for (body, field) in [
        (json!({"dbType": "sqlite"}), "userQuery"),
        (json!({"userQuery": "   ", "dbType": "sqlite"}), "userQuery"),
        (
            json!({"userQuery": "x".repeat(2001), "dbType": "sqlite"}),
            "userQuery",
        ),
        (json!({"userQuery": "x"}), "dbType"),
        (json!({"userQuery": "x", "dbType": "oracle"}), "dbType"),
        (
            json!({"userQuery": "x", "dbType": "sqlite", "execute": true}),
            "execute",
        ),
    ] {
        let (status, answer) = generate(&app, &body, None).await;
        assert_error(status, &answer, 400, "validation_failed");
        assert_eq!(answer["details"]["field"], field, "{body}");
    }
    assert!(
        model.received().is_empty(),
        "invalid requests never reach the model"
    );
}

#[tokio::test]
async fn demo_schema_needs_no_token() {
    let app = TestApp::spawn().await;
    let (status, body) = read(app.get("/api/demo/schema", None).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"], "demo");
    assert_eq!(body["dbType"], "sqlite");
    assert!(
        body["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .any(|t| t["name"] == "customers")
    );
}

#[tokio::test]
async fn demo_query_answers_in_the_replaced_apps_shape() {
    let model = FakeModel::start(vec![reply(
        "```sql\nSELECT city FROM offices ORDER BY city LIMIT 2\n```",
    )])
    .await;
    let app = app_with(&model).await;
    let (status, body) = read(
        app.post_json(
            "/api/demo/query",
            &json!({"query": "two office cities"}),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(
        body["sql"],
        "SELECT city FROM offices ORDER BY city LIMIT 2"
    );
    assert_eq!(body["originalQuery"], "two office cities");
    assert_eq!(body["columns"], json!(["city"]));
    assert_eq!(body["rowCount"], 2);
    assert_eq!(body["data"].as_array().expect("data").len(), 2);
    assert!(body["executedAt"].is_string());
    assert!(prompt_text(&model, 0).contains("offices("));
}
