//! The pool cache: keyed by every parameter, bounded, closing what it evicts,
//! never blocking one connection on another, and recovering from dead connections.

use std::sync::atomic::Ordering;

use crate::common::fake_pg::FakePg;
use crate::common::*;
use querygate::db::DbPool;
use serde_json::json;

fn params_of(app: &TestApp, token: &str) -> querygate::db::params::ConnParams {
    app.state
        .tokens
        .verify(token)
        .expect("token")
        .params
        .clone()
}

#[tokio::test]
async fn different_passwords_never_share_a_pool() {
    let app = TestApp::spawn().await;
    // Trust authentication accepts both passwords: only the cache key tells them apart.
    let mut first = pg_body("test");
    first["password"] = json!("first-password");
    let mut second = pg_body("test");
    second["password"] = json!("second-password");
    let a = app.token_for(&first).await;
    let b = app.token_for(&second).await;
    assert_eq!(app.state.db.pool_count().await, 2);
    let again = app.token_for(&first).await;
    assert_eq!(
        app.state.db.pool_count().await,
        2,
        "the same parameters reuse their pool"
    );
    let (pool_a, _) = app
        .state
        .db
        .pool(&params_of(&app, &a))
        .await
        .expect("pool a");
    let (pool_b, _) = app
        .state
        .db
        .pool(&params_of(&app, &b))
        .await
        .expect("pool b");
    let (pool_again, fresh) = app
        .state
        .db
        .pool(&params_of(&app, &again))
        .await
        .expect("pool");
    assert!(!fresh);
    assert!(matches!(pool_a.pool, DbPool::Postgres(_)));
    assert!(!pool_a.pool.same(&pool_b.pool));
    assert!(pool_a.pool.same(&pool_again.pool));
}

#[tokio::test]
async fn forty_credential_sets_never_hold_more_than_pool_max_pools_pools_connections() {
    let fake = FakePg::well_behaved().await;
    let app = TestApp::spawn_with(|config| config.pool_max_pools = 8).await;
    // Sample the server's open connections while 40 distinct users connect at once.
    let open = std::sync::Arc::clone(&fake.open);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = std::sync::Arc::clone(&done);
        tokio::spawn(async move {
            let mut peak = 0;
            while !done.load(Ordering::SeqCst) {
                peak = peak.max(open.load(Ordering::SeqCst));
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            peak
        })
    };
    let connects = (0..40).map(|i| {
        let mut body = fake.connect_body();
        body["username"] = json!(format!("user{i}"));
        let app = &app;
        async move { app.connect(&body).await.status() }
    });
    let statuses = futures_util::future::join_all(connects).await;
    done.store(true, Ordering::SeqCst);
    let peak = sampler.await.expect("sampler");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(
        peak <= 8,
        "{peak} connections were open at once for 8 pools"
    );
    assert!(fake.open_now() <= 8, "{} left open", fake.open_now());
    assert_eq!(app.state.db.pool_count().await, 8);
}

#[tokio::test]
async fn an_evicted_pool_closes_its_idle_connections_at_once() {
    let fake = FakePg::well_behaved().await;
    let app = TestApp::spawn_with(|config| config.pool_max_pools = 1).await;
    let _ = app.token_for(&fake.connect_body()).await;
    assert_eq!(fake.open_now(), 1);
    // A second pool takes the only place: the first one's connection closes.
    let _ = app.token_for(&sqlite_body("demo")).await;
    eventually("the evicted pool's connection closed", || async {
        fake.open_now() == 0
    })
    .await;
}

#[tokio::test]
async fn opening_one_connection_never_blocks_another() {
    let app = TestApp::spawn_with(|config| config.db_connect_timeout_ms = 3_000).await;
    let silent = silent_server().await;
    let mut stuck = pg_body("test");
    stuck["port"] = json!(silent);
    let client = app.client.clone();
    let url = app.url("/api/database/connect");
    let slow = tokio::spawn(async move { client.post(url).json(&stuck).send().await });
    tokio::task::yield_now().await;
    let (status, body) = read(app.connect(&sqlite_body("demo")).await).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !slow.is_finished(),
        "the fast connect finished while the slow one still waits"
    );
    let slow = slow.await.expect("join").expect("response");
    assert_eq!(slow.status(), 504);
}

#[tokio::test]
async fn terminated_backends_are_replaced_without_a_restart() {
    ensure_databases();
    if pg_admin_scalar("SELECT count(*) FROM pg_database WHERE datname = 'qg_pool_fx'").await == 0 {
        pg_admin_execute("postgres", "CREATE DATABASE qg_pool_fx").await;
    }
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("qg_pool_fx")).await;
    let (status, _) = app.sql(&token, "SELECT 1").await;
    assert_eq!(status, 200);
    let killed = pg_admin_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'qg_pool_fx' AND application_name = 'querygate') t",
    )
    .await;
    assert!(killed >= 1, "the pool had a live backend to terminate");
    let (status, body) = app.sql(&token, "SELECT 2 AS two").await;
    assert_eq!(status, 200, "the next request works: {body}");
    assert_eq!(body["data"], json!([{"two": 2}]));
}

#[tokio::test]
async fn a_client_hanging_up_never_leaves_a_transaction_open_in_the_pool() {
    ensure_databases();
    if pg_admin_scalar("SELECT count(*) FROM pg_database WHERE datname = 'qg_cancel_fx'").await == 0
    {
        pg_admin_execute("postgres", "CREATE DATABASE qg_cancel_fx").await;
    }
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("qg_cancel_fx")).await;
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(200))
        .build()
        .expect("client");
    let hung_up = impatient
        .post(app.url("/api/database/execute"))
        .bearer_auth(&token)
        .json(&json!({"sql": "SELECT pg_sleep(1) /* qg-cancel-marker */"}))
        .send()
        .await;
    assert!(hung_up.is_err(), "the client gave up before the answer");
    // Wait, bounded, for the statement to finish on the server.
    let finished = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'qg_cancel_fx' AND query LIKE '%qg-cancel-marker%' AND state = 'active'";
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while pg_admin_scalar(finished).await > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the statement finished");
    // The request's task ends with ROLLBACK right after the statement: wait for
    // that moment, bounded; a connection left in a transaction never gets there.
    let in_transaction = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'qg_cancel_fx' AND state LIKE 'idle in transaction%'";
    let settled = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while pg_admin_scalar(in_transaction).await > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "a pooled connection was left inside a transaction"
    );
    let (status, _) = app.sql(&token, "SELECT 1").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_database_that_goes_away_mid_request_is_db_connection_refused_and_then_works_again() {
    ensure_databases();
    let app = TestApp::spawn().await;
    let token = app.token_for(&pg_body("test")).await;
    let client = app.client.clone();
    let url = app.url("/api/database/execute");
    let bearer = token.clone();
    let running = tokio::spawn(async move {
        let response = client
            .post(url)
            .bearer_auth(bearer)
            .json(&json!({"sql": "SELECT pg_sleep(10) /* qg-gone-marker */"}))
            .send()
            .await
            .expect("request");
        read(response).await
    });
    let marker = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%qg-gone-marker%' AND pid <> pg_backend_pid()";
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while pg_admin_scalar(marker).await == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the statement started");
    let killed = pg_admin_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%qg-gone-marker%' AND pid <> pg_backend_pid()) t",
    )
    .await;
    assert_eq!(killed, 1);
    let (status, body) = running.await.expect("join");
    assert_error(status, &body, 502, "db_connection_refused");
    let (status, body) = app.sql(&token, "SELECT 1 AS back").await;
    assert_eq!(status, 200, "the next request works: {body}");
}
