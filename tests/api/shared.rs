//! Shared state through Redis: one rate limit for every instance, and real logout
//! (a disconnect revokes the token's whole refresh chain on every instance), with
//! the configured behaviour when Redis is down. Uses the local Redis on
//! 127.0.0.1:6379 under a key prefix of its own per test, and a private
//! redis-server child for the tests that stop Redis.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use querygate::config::{Config, FailMode};
use querygate::secret::Secret;
use reqwest::StatusCode;

use crate::common::*;

const LOCAL_REDIS: &str = "redis://127.0.0.1:6379";

/// A prefix no other test (or run) uses.
fn fresh_prefix() -> String {
    let unique: u64 = rand_u64();
    format!("qgtest:{unique:016x}:")
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}

fn with_redis(config: &mut Config, url: &str, prefix: &str) {
    config.redis_url = Some(Secret::new(url));
    config.redis_key_prefix = prefix.to_owned();
}

async fn instance(url: &str, prefix: &str, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    TestApp::spawn_with(move |config| {
        with_redis(config, &url, &prefix);
        adjust(config);
    })
    .await
}

#[tokio::test]
async fn two_instances_share_one_rate_limit() {
    let prefix = fresh_prefix();
    let limit = |config: &mut Config| {
        config.rate_limit_max_requests = 4;
        config.rate_limit_window_ms = 3_600_000;
    };
    let a = instance(LOCAL_REDIS, &prefix, limit).await;
    let b = instance(LOCAL_REDIS, &prefix, limit).await;
    for app in [&a, &b, &a, &b] {
        assert_eq!(app.status(None, false).await.status(), StatusCode::OK);
    }
    // Each instance served two: alone, each would allow two more.
    for app in [&a, &b] {
        let response = app.status(None, false).await;
        let retry_after = response.headers().get("retry-after").cloned();
        let (status, body) = read(response).await;
        assert_error(status, &body, 429, "rate_limited");
        assert!(retry_after.is_some(), "429 without Retry-After");
    }
}

#[tokio::test]
async fn a_token_disconnected_on_one_instance_is_refused_by_the_others_with_its_refreshed_tokens() {
    let prefix = fresh_prefix();
    let a = instance(LOCAL_REDIS, &prefix, |_| {}).await;
    let b = instance(LOCAL_REDIS, &prefix, |_| {}).await;
    let token = a.token_for(&sqlite_body("demo")).await;
    let (status, body) = read(a.refresh(&token).await).await;
    assert_eq!(status, 200, "{body}");
    let refreshed = body["token"].as_str().expect("token").to_owned();

    let (status, body) = read(a.disconnect(&token).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true);
    let until = body["revokedUntil"].as_str().expect("revokedUntil");
    assert!(
        chrono::DateTime::parse_from_rfc3339(until).is_ok(),
        "{until}"
    );

    for app in [&a, &b] {
        for token in [&token, &refreshed] {
            let (status, body) = read(app.status(Some(token), false).await).await;
            assert_error(status, &body, 401, "token_revoked");
            let (status, body) = app.sql(token, "SELECT 1").await;
            assert_error(status, &body, 401, "token_revoked");
            let (status, body) = read(app.refresh(token).await).await;
            assert_error(status, &body, 401, "token_revoked");
        }
    }
    // Another chain of the same user is untouched.
    let other = b.token_for(&sqlite_body("demo")).await;
    let (status, _) = b.sql(&other, "SELECT 1").await;
    assert_eq!(status, 200);

    drop((a, b));
    // New instances (a restart) read the same Redis: still revoked.
    let c = instance(LOCAL_REDIS, &prefix, |_| {}).await;
    let (status, body) = c.sql(&refreshed, "SELECT 1").await;
    assert_error(status, &body, 401, "token_revoked");
}

#[tokio::test]
async fn without_redis_disconnect_says_the_token_stays_valid() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&sqlite_body("demo")).await;
    let (status, body) = read(app.disconnect(&token).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], false);
    assert!(body.get("revokedUntil").is_none(), "{body}");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("stays valid until it expires"),
        "{message}"
    );
    let (status, _) = app.sql(&token, "SELECT 1").await;
    assert_eq!(status, 200);
}

/// A redis-server of this test's own on a free loopback port, stopped on drop.
struct PrivateRedis {
    child: Child,
    url: String,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = closed_port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/setup-test-dbs.sh installs it)");
        let up = tokio::time::timeout(Duration::from_secs(10), async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(up.is_ok(), "the private redis-server came up");
        Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn with_redis_stopped(mode: FailMode) -> (TestApp, String, PrivateRedis) {
    let mut redis = PrivateRedis::start().await;
    let app = instance(&redis.url, "qg:", |config| {
        config.revocation_fail_mode = mode;
        config.revocation_cache_ms = 0;
        config.rate_limit_max_requests = 1000;
    })
    .await;
    let token = app.token_for(&sqlite_body("demo")).await;
    let (status, _) = app.sql(&token, "SELECT 1").await;
    assert_eq!(status, 200, "served while Redis is up");
    redis.stop();
    (app, token, redis)
}

#[tokio::test]
async fn with_redis_stopped_fail_open_keeps_serving() {
    let (app, token, _redis) = with_redis_stopped(FailMode::Open).await;
    for _ in 0..3 {
        let (status, body) = app.sql(&token, "SELECT 1").await;
        assert_eq!(status, 200, "{body}");
    }
    // Connecting (rate limited, no token) still works on the local limiter.
    let _ = app.token_for(&sqlite_body("demo")).await;
    // A disconnect cannot revoke without Redis, and says so.
    let (status, body) = read(app.disconnect(&token).await).await;
    assert_error(status, &body, 503, "revocation_unavailable");
}

#[tokio::test]
async fn with_redis_stopped_fail_closed_refuses_token_requests_with_503() {
    let (app, token, _redis) = with_redis_stopped(FailMode::Closed).await;
    let response = app
        .post_json(
            "/api/database/execute",
            &serde_json::json!({"sql": "SELECT 1"}),
            Some(&token),
        )
        .await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, body) = read(response).await;
    assert_error(status, &body, 503, "revocation_unavailable");
    // Requests without a token do not depend on Redis.
    let _ = app.token_for(&sqlite_body("demo")).await;
    assert_eq!(app.get("/api/health", None).await.status(), StatusCode::OK);
}
