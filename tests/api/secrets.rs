//! Passwords, tokens and keys never reach logs, error messages or `--help`.

use crate::common::process::ServerProcess;
use crate::common::*;
use serde_json::json;

const KEY_SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[tokio::test]
async fn debug_logs_of_a_whole_session_hold_no_password_token_or_key() {
    let sqlite = tempfile::tempdir().expect("tmp");
    let keys = tempfile::tempdir().expect("tmp");
    let server = ServerProcess::start(
        sqlite.path(),
        keys.path(),
        &[
            ("QUERYGATE_KEYS", KEY_A),
            ("QUERYGATE_INSTANCE", "qg-logs-7"),
        ],
    );
    let client = reqwest::Client::new();
    let mut tokens = Vec::new();
    for password in [SECRET_PASSWORD, "wrong-password-31337"] {
        let body = json!({"dbType": "postgresql", "host": "127.0.0.1", "username": SECRET_USER,
                          "password": password, "database": "test", "ssl": "disable"});
        let response = client
            .post(server.url("/api/database/connect"))
            .json(&body)
            .send()
            .await
            .expect("connect");
        let answer: serde_json::Value = response.json().await.expect("json");
        if let Some(token) = answer["token"].as_str() {
            tokens.push(token.to_owned());
        }
    }
    assert_eq!(tokens.len(), 1, "the right password connects");
    let token = &tokens[0];
    for path in [
        "/api/database/status?check=true",
        "/api/database/refresh",
        "/api/database/disconnect",
    ] {
        let request = if path.contains("status") {
            client.get(server.url(path))
        } else {
            client.post(server.url(path))
        };
        let response = request.bearer_auth(token).send().await.expect("request");
        assert!(response.status().is_success(), "{path}");
    }
    let logs = server.stop();
    assert!(logs.contains("connected"), "the logs were captured: {logs}");
    assert!(
        logs.contains("instance=qg-logs-7") || logs.contains(r#""instance":"qg-logs-7""#),
        "request logs name the instance: {logs}"
    );
    for secret in [
        SECRET_PASSWORD,
        "wrong-password-31337",
        token.as_str(),
        KEY_SECRET,
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
    // Also no piece of the token that identifies it (its signature).
    let signature = token.rsplit('.').next().expect("signature");
    assert!(!logs.contains(signature));
}

#[tokio::test]
async fn slow_statements_are_logged_by_fingerprint_and_duration_only_on_every_engine() {
    let sqlite = tempfile::tempdir().expect("tmp");
    let keys = tempfile::tempdir().expect("tmp");
    // Every statement counts as slow, and the most verbose logs are on.
    let server = ServerProcess::start(
        sqlite.path(),
        keys.path(),
        &[
            ("QUERYGATE_KEYS", KEY_A),
            ("SLOW_STATEMENT_MS", "0"),
            ("RUST_LOG", "trace"),
        ],
    );
    let client = reqwest::Client::new();
    let cases = [
        (
            pg_body("test"),
            "SELECT pg_sleep(0.2), 'alice@example.com' AS who, $1::text AS p",
        ),
        (
            mysql_body("test"),
            "SELECT SLEEP(0.2) AS s, 'alice@example.com' AS who, ? AS p",
        ),
        (
            sqlite_body("demo"),
            "SELECT 'alice@example.com' AS who, ?1 AS p, count(*) FROM customers",
        ),
    ];
    for (connect, sql) in cases {
        let token = server.token_for(&connect).await;
        let response = client
            .post(server.url("/api/database/execute"))
            .bearer_auth(&token)
            .json(&json!({"sql": sql, "params": ["param-secret-4242"]}))
            .send()
            .await
            .expect("execute");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["data"][0]["who"], "alice@example.com", "{body}");
    }
    let logs = server.stop();
    let slow: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("slow statement"))
        .collect();
    assert_eq!(slow.len(), 3, "one slow statement per engine: {logs}");
    for line in slow {
        assert!(
            line.contains("fingerprint") && line.contains("elapsed_ms"),
            "{line}"
        );
    }
    for leaked in [
        "alice@example.com",
        "param-secret-4242",
        "pg_sleep",
        "SLEEP(",
        "customers",
    ] {
        assert!(!logs.contains(leaked), "{leaked} reached the logs");
    }
}

#[test]
fn help_never_shows_the_values_of_secret_variables() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_querygate"))
        .args(["serve", "--help"])
        .env("QUERYGATE_KEYS", KEY_A)
        .env("OPENAI_API_KEY", "sk-test-do-not-print")
        .env(
            "REDIS_URL",
            "redis://:redis-pass-do-not-print@127.0.0.1:6379",
        )
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("QUERYGATE_KEYS"), "{help}");
    assert!(help.contains("TOKEN_TTL"));
    assert!(!help.contains(KEY_SECRET));
    assert!(!help.contains("sk-test-do-not-print"));
    assert!(!help.contains("redis-pass-do-not-print"));
}

#[tokio::test]
async fn configuration_debug_output_redacts_secrets() {
    let mut config = querygate::Config::defaults();
    config.keys = Some(querygate::secret::Secret::new(KEY_A));
    config.openai_api_key = Some(querygate::secret::Secret::new("sk-test-do-not-print"));
    config.redis_url = Some(querygate::secret::Secret::new(
        "rediss://qg:redis-pass-do-not-print@cache.internal:6380",
    ));
    let debug = format!("{config:?}");
    assert!(!debug.contains(KEY_SECRET));
    assert!(!debug.contains("sk-test-do-not-print"));
    assert!(!debug.contains("redis-pass-do-not-print"));
    let shared = querygate::shared::Shared::from_config(&config)
        .expect("a valid URL")
        .expect("configured");
    assert!(!format!("{shared:?}").contains("redis-pass-do-not-print"));
}
