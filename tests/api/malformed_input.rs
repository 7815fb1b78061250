//! Every kind of malformed request gets its code and status, never a 500.

use crate::common::*;
use serde_json::json;

async fn raw_connect(
    app: &TestApp,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let mut request = app.client.post(app.url("/api/database/connect")).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    read(request.send().await.expect("request")).await
}

#[tokio::test]
async fn malformed_json_is_invalid_json() {
    let app = TestApp::spawn().await;
    for body in [
        "{",
        "",
        "{\"dbType\": }",
        "not json",
        "{\"dbType\":\"sqlite\"} trailing",
    ] {
        let (status, answer) = raw_connect(&app, Some("application/json"), body.into()).await;
        assert_error(status, &answer, 400, "invalid_json");
    }
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_unsupported_media_type() {
    let app = TestApp::spawn().await;
    let body = br#"{"dbType":"sqlite","database":"demo"}"#.to_vec();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let (status, answer) = raw_connect(&app, content_type, body.clone()).await;
        assert_error(status, &answer, 415, "unsupported_media_type");
    }
    let (status, _) = raw_connect(&app, Some("application/json; charset=utf-8"), body).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn body_over_the_cap_is_payload_too_large() {
    let app = TestApp::spawn_with(|config| config.max_body_bytes = 1024).await;
    let big = json!({"dbType": "sqlite", "database": "demo", "pad": "x".repeat(4096)});
    let (status, answer) =
        raw_connect(&app, Some("application/json"), big.to_string().into()).await;
    assert_error(status, &answer, 413, "payload_too_large");
}

#[tokio::test]
async fn missing_and_out_of_range_fields_name_the_field() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"host": "h", "username": "u", "database": "d"}),
            "dbType",
        ),
        (
            json!({"dbType": "oracle", "host": "h", "username": "u", "database": "d"}),
            "dbType",
        ),
        (
            json!({"dbType": "postgresql", "username": "u", "database": "d"}),
            "host",
        ),
        (
            json!({"dbType": "postgresql", "host": "", "username": "u", "database": "d"}),
            "host",
        ),
        (
            json!({"dbType": "postgresql", "host": "h".repeat(256), "username": "u", "database": "d"}),
            "host",
        ),
        (
            json!({"dbType": "postgresql", "host": "/var/run/postgresql", "username": "u", "database": "d"}),
            "host",
        ),
        (
            json!({"dbType": "postgresql", "host": "h", "database": "d"}),
            "username",
        ),
        (
            json!({"dbType": "postgresql", "host": "h", "username": "u".repeat(256), "database": "d"}),
            "username",
        ),
        (
            json!({"dbType": "postgresql", "host": "h", "username": "u"}),
            "database",
        ),
        (
            json!({"dbType": "postgresql", "host": "h", "username": "u", "database": "d".repeat(256)}),
            "database",
        ),
        (
            json!({"dbType": "postgresql", "host": "h", "username": "u", "database": "d", "port": 0}),
            "port",
        ),
        (
            json!({"dbType": "postgresql", "host": "h", "username": "u", "database": "d", "port": 65536}),
            "port",
        ),
        (
            json!({"dbType": "postgresql", "host": "h", "username": "u", "database": "d", "port": -1}),
            "port",
        ),
        (
            json!({"dbType": "postgresql", "host": "h", "username": "u", "database": "d", "port": "http"}),
            "port",
        ),
        (
            json!({"dbType": "postgresql", "host": "h", "username": "u", "database": "d", "password": "p".repeat(256)}),
            "password",
        ),
        (
            json!({"dbType": "postgresql", "host": "h", "username": "u", "database": "d", "ssl": "sometimes"}),
            "ssl",
        ),
        (
            json!({"dbType": 5, "host": "h", "username": "u", "database": "d"}),
            "dbType",
        ),
        (
            json!({"dbType": "postgresql", "host": "h", "username": "u", "database": "d", "password": 12345}),
            "password",
        ),
        (json!({"dbType": "sqlite"}), "database"),
    ];
    for (body, field) in cases {
        let (status, answer) = read(app.connect(&body).await).await;
        assert_error(status, &answer, 400, "validation_failed");
        assert_eq!(
            answer["details"]["field"], field,
            "body {body} gave {answer}"
        );
    }
}

#[tokio::test]
async fn a_password_of_the_wrong_type_is_not_echoed() {
    let app = TestApp::spawn().await;
    let body = json!({"dbType": "postgresql", "host": "h", "username": "u", "database": "d", "password": 98765431});
    let (_, answer) = read(app.connect(&body).await).await;
    assert!(!answer.to_string().contains("98765431"), "{answer}");
}

#[tokio::test]
async fn a_body_that_is_not_an_object_fails_validation() {
    let app = TestApp::spawn().await;
    for body in [json!([1, 2]), json!("text"), json!(null)] {
        let (status, answer) = read(app.connect(&body).await).await;
        assert_error(status, &answer, 400, "validation_failed");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let app = TestApp::spawn().await;
    let (status, body) = read(app.get("/api/nope", None).await).await;
    assert_error(status, &body, 404, "not_found");
    let response = app
        .client
        .delete(app.url("/api/database/connect"))
        .send()
        .await
        .expect("request");
    let (status, body) = read(response).await;
    assert_error(status, &body, 405, "method_not_allowed");
}

#[tokio::test]
async fn bad_query_parameters_are_validation_failures() {
    let app = TestApp::spawn().await;
    let (status, body) = read(app.get("/api/database/status?check=maybe", None).await).await;
    assert_error(status, &body, 400, "validation_failed");
}

#[tokio::test]
async fn authorization_headers_of_every_shape_never_cause_a_500() {
    let app = TestApp::spawn().await;
    let long = format!("Bearer {}", "a".repeat(10_000));
    for value in [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "bearer x.y.z",
        "Bearer a b c",
        long.as_str(),
    ] {
        let response = app
            .client
            .post(app.url("/api/database/refresh"))
            .header("authorization", value)
            .send()
            .await
            .expect("request");
        let (status, body) = read(response).await;
        assert_eq!(status, 401, "{value:.20}: {body}");
        assert!(["token_missing", "token_invalid"].contains(&body["code"].as_str().unwrap_or("")));
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_a_given_one() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/api/health"))
        .header("x-request-id", "client-chosen-id")
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["x-request-id"], "client-chosen-id");
    let (status, body) = read(app.get("/health", None).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let app = TestApp::spawn_with(|config| {
        config.rate_limit_max_requests = 2;
        config.rate_limit_window_ms = 60_000;
    })
    .await;
    for _ in 0..2 {
        assert_eq!(app.get("/api/database/status", None).await.status(), 200);
    }
    let response = app.get("/api/database/status", None).await;
    // Health and readiness are never limited: a load balancer must see the truth.
    for path in ["/api/health", "/health", "/api/ready"] {
        assert_eq!(app.get(path, None).await.status(), 200, "{path}");
    }
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    let (status, body) = read(response).await;
    assert_error(status, &body, 429, "rate_limited");
    assert!((1..=30).contains(&retry_after), "{retry_after}");
}

/// Every route that reads a token, with the body it needs.
fn token_routes() -> Vec<(reqwest::Method, &'static str, Option<serde_json::Value>)> {
    use reqwest::Method;
    vec![
        (Method::GET, "/api/database/status", None),
        (Method::GET, "/api/database/schema", None),
        (
            Method::POST,
            "/api/database/execute",
            Some(json!({"sql": "select 1"})),
        ),
        (Method::POST, "/api/database/refresh", None),
        (Method::POST, "/api/database/disconnect", None),
        (
            Method::POST,
            "/api/generate-sql",
            Some(json!({"userQuery": "how many?", "dbType": "sqlite"})),
        ),
    ]
}

#[tokio::test]
async fn an_authorization_header_that_is_not_a_bearer_token_is_token_invalid_on_every_route() {
    let app = TestApp::spawn().await;
    for (method, path, body) in token_routes() {
        for header in [
            "Basic dXNlcjpwYXNz",
            "Bearer ",
            "Bearer",
            "Token abc",
            "bearer not.a.jwt",
        ] {
            let mut request = app
                .client
                .request(method.clone(), app.url(path))
                .header("authorization", header);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.expect("request");
            let challenge = response.headers()["www-authenticate"]
                .to_str()
                .expect("ascii")
                .to_owned();
            let (status, answer) = read(response).await;
            assert_error(status, &answer, 401, "token_invalid");
            assert!(
                challenge.contains(r#"error="invalid_token""#),
                "{path} {header}: {challenge}"
            );
        }
    }
}

#[tokio::test]
async fn without_any_token_the_challenge_names_no_error() {
    let app = TestApp::spawn().await;
    for (method, path, body) in token_routes() {
        let mut request = app.client.request(method.clone(), app.url(path));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().expect("ascii").to_owned());
        let (status, answer) = read(response).await;
        match path {
            // Optional token: no token is an anonymous request.
            "/api/database/status" => assert_eq!(answer, json!({"connected": false})),
            "/api/generate-sql" => assert_error(status, &answer, 503, "ai_not_configured"),
            _ => {
                assert_error(status, &answer, 401, "token_missing");
                assert_eq!(
                    challenge.as_deref(),
                    Some(r#"Bearer realm="querygate""#),
                    "{path}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let mut responses = vec![
        app.get("/api/health", None).await,
        app.get("/openapi.yaml", None).await,
        app.get("/no/such/route", None).await,
        app.get("/api/database/schema", None).await,
        app.connect(&json!({"dbType": "sqlite", "database": "demo"}))
            .await,
    ];
    responses.push(
        app.client
            .post(app.url("/api/database/connect"))
            .send()
            .await
            .expect("request"),
    );
    for response in responses {
        let headers = response.headers();
        let url = response.url().path().to_owned();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{url}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{url}");
        let csp = headers["content-security-policy"].to_str().expect("ascii");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{url}: {csp}"
        );
        assert!(
            !headers.contains_key("strict-transport-security"),
            "no HSTS in development: {url}"
        );
    }
    let production = TestApp::spawn_with(|config| {
        config.environment = querygate::config::Environment::Production
    })
    .await;
    let response = production.get("/api/health", None).await;
    assert!(
        response.headers()["strict-transport-security"]
            .to_str()
            .expect("ascii")
            .starts_with("max-age=")
    );
}

#[tokio::test]
async fn an_empty_body_is_called_empty() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/api/database/connect"))
        .header("content-type", "application/json")
        .send()
        .await
        .expect("request");
    let (status, answer) = read(response).await;
    assert_error(status, &answer, 400, "invalid_json");
    assert!(
        answer["error"].as_str().expect("message").contains("empty"),
        "{answer}"
    );
}

#[tokio::test]
async fn sql_that_ends_inside_a_quoted_identifier_is_a_client_error_on_every_engine() {
    // Found by schemathesis: an identifier left open before a multi-byte character
    // made the lexer cut the text inside the character (a 500).
    let app = TestApp::spawn().await;
    for (connect, sql) in [
        (pg_body("test"), "SELECT \"é"),
        (mysql_body("test"), "SELECT `é"),
        (sqlite_body("demo"), "SELECT [é"),
    ] {
        let token = app.token_for(&connect).await;
        let (status, body) = app.sql(&token, sql).await;
        assert!(status.is_client_error(), "{connect}: {status} {body}");
        assert_eq!(body["success"], false, "{body}");
    }
}
