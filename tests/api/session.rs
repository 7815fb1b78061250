//! status, refresh and disconnect over HTTP.

use crate::common::*;
use querygate::db::params::{ConnParams, Engine, SslMode};
use querygate::secret::Secret;
use serde_json::json;

/// A token for the demo database signed with the app's keys, as if issued at `at`.
fn token_issued_at(app: &TestApp, at: i64, orig: Option<i64>) -> String {
    let params = ConnParams {
        engine: Engine::Sqlite,
        host: String::new(),
        port: 0,
        username: String::new(),
        password: Secret::default(),
        database: "demo".into(),
        ssl: SslMode::Disable,
    };
    app.state
        .tokens
        .issue_at(
            &params,
            orig.map(|orig| querygate::token::Chain {
                orig,
                id: "test-chain".to_owned(),
            }),
            at,
        )
        .expect("issue")
        .token
        .expose()
        .to_owned()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn status_without_a_token_says_not_connected() {
    let app = TestApp::spawn().await;
    let (status, body) = read(app.status(None, false).await).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"connected": false}));
}

#[tokio::test]
async fn status_with_a_good_token_shows_the_connection_but_never_the_password() {
    let app = TestApp::spawn().await;
    let mut connect = pg_body("test");
    connect["username"] = json!(SECRET_USER);
    connect["password"] = json!(SECRET_PASSWORD);
    let token = app.token_for(&connect).await;
    let (status, body) = read(app.status(Some(&token), false).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["connected"], true);
    assert_eq!(body["dbType"], "postgresql");
    assert_eq!(body["host"], "127.0.0.1");
    assert_eq!(body["port"], 5432);
    assert_eq!(body["database"], "test");
    assert_eq!(body["username"], SECRET_USER);
    assert_eq!(body["ssl"], "disable");
    assert!(body.get("check").is_none());
    assert!(!body.to_string().contains(SECRET_PASSWORD));
}

#[tokio::test]
async fn status_check_pings_the_database() {
    let app = TestApp::spawn().await;
    for connect in [pg_body("test"), mysql_body("test"), sqlite_body("demo")] {
        let token = app.token_for(&connect).await;
        let (status, body) = read(app.status(Some(&token), true).await).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["check"]["ok"], true);
        assert!(body["check"]["serverVersion"].is_string());
        assert!(body["check"]["elapsedMs"].is_number());
    }
}

#[tokio::test]
async fn status_with_an_expired_token_is_token_expired() {
    let app = TestApp::spawn().await;
    let token = token_issued_at(&app, now() - 7200, None);
    let response = app.status(Some(&token), false).await;
    let challenge = response.headers().get("www-authenticate").cloned();
    let (status, body) = read(response).await;
    assert_error(status, &body, 401, "token_expired");
    assert_eq!(
        challenge.expect("challenge"),
        r#"Bearer realm="querygate", error="invalid_token", error_description="connect again""#
    );
}

#[tokio::test]
async fn status_with_a_garbage_token_is_token_invalid() {
    let app = TestApp::spawn().await;
    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        let (status, body) = read(app.status(Some(garbage), false).await).await;
        assert_error(status, &body, 401, "token_invalid");
    }
}

#[tokio::test]
async fn routes_that_need_a_token_answer_token_missing_without_one() {
    let app = TestApp::spawn().await;
    for path in ["/api/database/refresh", "/api/database/disconnect"] {
        let response = app
            .client
            .post(app.url(path))
            .send()
            .await
            .expect("request");
        let (status, body) = read(response).await;
        assert_error(status, &body, 401, "token_missing");
    }
}

#[tokio::test]
async fn refresh_returns_a_new_working_token_in_the_same_chain() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&sqlite_body("demo")).await;
    let (status, body) = read(app.refresh(&token).await).await;
    assert_eq!(status, 200, "{body}");
    let fresh = body["token"].as_str().expect("token");
    assert_ne!(fresh, token);
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["dbType"], "sqlite");
    let old = app.state.tokens.verify(&token).expect("old");
    let new = app.state.tokens.verify(fresh).expect("new");
    assert_eq!(
        new.claims.orig, old.claims.orig,
        "refresh keeps the chain start"
    );
    assert_ne!(new.claims.jti, old.claims.jti);
    assert_eq!(new.params, old.params);
    let (status, _) = read(app.status(Some(fresh), true).await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn refresh_never_extends_past_the_maximum_lifetime() {
    let app = TestApp::spawn().await;
    // A chain that started just under 24 hours ago has ten minutes left.
    let orig = now() - 86_400 + 600;
    let token = token_issued_at(&app, now() - 60, Some(orig));
    let (status, body) = read(app.refresh(&token).await).await;
    assert_eq!(status, 200, "{body}");
    let fresh = app
        .state
        .tokens
        .verify(body["token"].as_str().expect("token"))
        .expect("verify");
    assert_eq!(fresh.claims.exp, orig + 86_400);
    assert!(body["expiresIn"].as_i64().expect("expiresIn") <= 600);
}

#[tokio::test]
async fn refresh_of_an_expired_token_is_token_expired() {
    let app = TestApp::spawn().await;
    let token = token_issued_at(&app, now() - 7200, None);
    let (status, body) = read(app.refresh(&token).await).await;
    assert_error(status, &body, 401, "token_expired");
}

#[tokio::test]
async fn disconnect_closes_this_instances_pool() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    assert_eq!(app.state.db.pool_count().await, 1);
    let (status, body) = read(app.disconnect(&token).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["poolClosed"], true);
    assert_eq!(
        body["revoked"], false,
        "no REDIS_URL: nothing to revoke with"
    );
    assert_eq!(app.state.db.pool_count().await, 0);
    // The token itself is still valid: a later request opens a new pool.
    let (status, _) = read(app.status(Some(&token), true).await).await;
    assert_eq!(status, 200);
    assert_eq!(app.state.db.pool_count().await, 1);
}

#[tokio::test]
async fn status_gives_the_times_the_token_was_issued_with_on_every_request() {
    let app = TestApp::spawn().await;
    let (status, issued) = read(app.connect(&pg_body("test")).await).await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["token"].as_str().expect("token");
    // The first answer verifies the token; the second comes from the cache.
    for _ in 0..2 {
        let (status, body) = read(app.status(Some(token), false).await).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["expiresAt"], issued["expiresAt"]);
        assert_eq!(body["refreshableUntil"], issued["refreshableUntil"]);
        let issued_at = body["issuedAt"].as_str().expect("issuedAt");
        let expires_at = body["expiresAt"].as_str().expect("expiresAt");
        assert!(issued_at.ends_with('Z') && issued_at < expires_at, "{body}");
    }
}
