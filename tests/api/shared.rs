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

/// Sends `GET /api/database/status` to `a` and `b` in turn for `run`, as fast as
/// they answer; the number of requests they admitted.
async fn hammer(a: &TestApp, b: &TestApp, run: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + run;
    let mut admitted = 0;
    while tokio::time::Instant::now() < deadline {
        for app in [a, b] {
            if app.status(None, false).await.status() == StatusCode::OK {
                admitted += 1;
            }
        }
    }
    admitted
}

fn limit_40(config: &mut Config) {
    config.rate_limit_max_requests = 40;
    config.rate_limit_window_ms = 3_600_000;
}

#[tokio::test]
async fn two_instances_share_one_rate_limit_within_its_bounded_overshoot() {
    let prefix = fresh_prefix();
    let a = instance(LOCAL_REDIS, &prefix, limit_40).await;
    let b = instance(LOCAL_REDIS, &prefix, limit_40).await;
    // Both as fast as they can, from a fresh start: 40, plus at most two of the
    // other instance's advances (an eighth of the burst each) that this one had
    // not heard of yet.
    let admitted = hammer(&a, &b, Duration::from_secs(2)).await;
    assert!((40..=50).contains(&admitted), "{admitted} admitted");
    for app in [&a, &b] {
        let response = app.status(None, false).await;
        let retry_after = response.headers().get("retry-after").cloned();
        let (status, body) = read(response).await;
        assert_error(status, &body, 429, "rate_limited");
        assert!(retry_after.is_some(), "429 without Retry-After");
    }
}

#[tokio::test]
async fn a_restarted_or_flushed_store_never_hands_out_a_fresh_burst() {
    let mut redis = PrivateRedis::start().await;
    let a = instance(&redis.url, "qg:", limit_40).await;
    let b = instance(&redis.url, "qg:", limit_40).await;
    let mut admitted = hammer(&a, &b, Duration::from_secs(1)).await;
    // Both keep counting: a store that forgot changes nothing for them.
    redis.restart().await;
    admitted += hammer(&a, &b, Duration::from_secs(1)).await;
    redis.flush().await;
    admitted += hammer(&a, &b, Duration::from_secs(1)).await;
    assert!(
        (40..=50).contains(&admitted),
        "{admitted} admitted over a restart and a flush"
    );
    // An instance that starts right after a flush learns within 300 ms what
    // the others know: at most three of its advances (5 each) more.
    redis.flush().await;
    let c = instance(&redis.url, "qg:", limit_40).await;
    admitted += hammer(&a, &c, Duration::from_secs(2)).await;
    assert!(
        admitted <= 50 + 15,
        "{admitted} admitted with an instance started after the flush"
    );
}

#[tokio::test]
async fn no_request_waits_for_a_store_that_stopped_answering() {
    let redis = PrivateRedis::start().await;
    let app = instance(&redis.url, "qg:", |config| {
        config.rate_limit_max_requests = 1_000;
        config.redis_timeout_ms = 10_000;
    })
    .await;
    let token = app.token_for(&sqlite_body("demo")).await;
    eventually("the instance is subscribed", || async {
        app.get("/api/ready", None).await.status() == StatusCode::OK
    })
    .await;
    // Frozen: connections stay open and nothing is answered, the worst case for
    // a caller that waits (10 s here).
    redis.freeze();
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    for _ in 0..20 {
        let answer = quick
            .get(app.url("/api/database/status"))
            .bearer_auth(&token)
            .send()
            .await;
        assert!(
            answer.is_ok_and(|a| a.status() == StatusCode::OK),
            "a request waited for the frozen store"
        );
    }
    redis.thaw();
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

    assert_eq!(body["revokedIn"], "store");
    assert!(
        body["instancesNotified"].as_u64().is_some_and(|n| n >= 1),
        "{body}"
    );
    // Pushed to the other instance, which answers from memory.
    eventually("the other instance heard the revocation", || async {
        b.status(Some(&token), false).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;
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
    // New instances (a restart) read the same Redis once they are ready: still
    // revoked.
    let c = instance(LOCAL_REDIS, &prefix, |_| {}).await;
    eventually("the new instance read the revocations", || async {
        c.get("/api/ready", None).await.status() == StatusCode::OK
    })
    .await;
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
        Self::on(closed_port()).await
    }

    async fn on(port: u16) -> Self {
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

    /// Stops and starts it again on the same port, empty.
    async fn restart(&mut self) {
        self.stop();
        let port: u16 = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        *self = Self::on(port).await;
    }

    /// Forgets every key.
    async fn flush(&self) {
        let client = redis::Client::open(self.url.as_str()).expect("url");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("connection");
        let () = redis::cmd("FLUSHALL")
            .query_async(&mut connection)
            .await
            .expect("flush");
    }

    /// Stops the process without closing anything: connections stay open and
    /// nothing is answered.
    fn freeze(&self) {
        signal(&self.child, "-STOP");
    }

    fn thaw(&self) {
        signal(&self.child, "-CONT");
    }
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(signal)
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal}");
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
        config.rate_limit_max_requests = 1000;
    })
    .await;
    eventually("the instance read the revocations", || async {
        app.get("/api/ready", None).await.status() == StatusCode::OK
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
    // The broken subscription shows within a moment.
    eventually("token requests are refused", || async {
        app.sql(&token, "SELECT 1").await.0 == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
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

#[tokio::test]
async fn a_fresh_fail_closed_instance_is_ready_only_once_it_has_read_the_revocations() {
    let mut redis = PrivateRedis::start().await;
    redis.stop();
    let app = instance(&redis.url, "qg:", |config| {
        config.revocation_fail_mode = FailMode::Closed;
    })
    .await;
    let (status, body) = read(app.get("/api/ready", None).await).await;
    assert_error(status, &body, 503, "not_ready");
    redis.restart().await;
    eventually("ready once the store answers", || async {
        app.get("/api/ready", None).await.status() == StatusCode::OK
    })
    .await;
    // Ready means no request is refused for want of Redis.
    let token = app.token_for(&sqlite_body("demo")).await;
    for _ in 0..20 {
        let (status, body) = app.sql(&token, "SELECT 1").await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn revocations_reach_every_instance_again_after_the_store_comes_back() {
    let mut redis = PrivateRedis::start().await;
    let a = instance(&redis.url, "qg:", |_| {}).await;
    let b = instance(&redis.url, "qg:", |_| {}).await;
    for _ in 0..2 {
        redis.restart().await;
        let token = a.token_for(&sqlite_body("demo")).await;
        // The first disconnect after a return may meet the old connection; the
        // next one is on a new one.
        eventually("a disconnect is recorded again", || async {
            read(a.disconnect(&token).await).await.0 == StatusCode::OK
        })
        .await;
        eventually("the other instance heard it", || async {
            b.status(Some(&token), false).await.status() == StatusCode::UNAUTHORIZED
        })
        .await;
    }
}
