//! Pooled connections that died while idle are replaced on use, without a ping
//! before every request: the request is sent again on a new connection only when
//! nothing of the client's statement can have run, so a statement never runs twice.

use std::time::Duration;

use serde_json::json;

use crate::common::proxy::CountingProxy;
use crate::common::*;

#[tokio::test]
async fn a_postgres_connection_terminated_while_idle_is_replaced_transparently() {
    let app = TestApp::spawn_with(|config| config.pool_max_connections = 1).await;
    let token = app.token_for(&pg_body("test")).await;
    let (_, answer) = app.sql(&token, "SELECT pg_backend_pid() AS pid").await;
    let first = answer["data"][0]["pid"].as_i64().expect("pid");

    let terminated = pg_admin_scalar(&format!(
        "SELECT count(*) FROM (SELECT pg_terminate_backend({first})) t"
    ))
    .await;
    assert_eq!(terminated, 1);
    let gone = format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {first}");
    eventually("the terminated backend is gone", || async {
        pg_admin_scalar(&gone).await == 0
    })
    .await;

    let (status, answer) = app.sql(&token, "SELECT pg_backend_pid() AS pid").await;
    assert_eq!(status, 200, "{answer}");
    let second = answer["data"][0]["pid"].as_i64().expect("pid");
    assert_ne!(first, second, "a new connection answered");
}

#[tokio::test]
async fn a_mariadb_connection_killed_while_idle_is_replaced_transparently() {
    let app = TestApp::spawn_with(|config| config.pool_max_connections = 1).await;
    let token = app.token_for(&mysql_body("test")).await;
    let (_, answer) = app.sql(&token, "SELECT CONNECTION_ID() AS id").await;
    let first = answer["data"][0]["id"].as_i64().expect("id");

    mysql_admin_execute(&format!("KILL CONNECTION {first}")).await;
    let gone = format!("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {first}");
    eventually("the killed session is gone", || async {
        mysql_admin_scalar(&gone).await == 0
    })
    .await;

    let (status, answer) = app.sql(&token, "SELECT CONNECTION_ID() AS id").await;
    assert_eq!(status, 200, "{answer}");
    let second = answer["data"][0]["id"].as_i64().expect("id");
    assert_ne!(first, second, "a new connection answered");
}

/// Sends `sql` through a counting proxy, kills the session while the statement
/// runs, and returns the answer's error code and how many flights carried `marker`.
async fn kill_while_running(engine: &str, sql: &str, marker: &str) -> (String, usize) {
    let (port, mut body) = match engine {
        "postgres" => (5432, pg_body("test")),
        _ => (3306, mysql_body("test")),
    };
    let proxy = CountingProxy::start(port).await;
    let app = TestApp::spawn_with(|config| config.pool_max_connections = 1).await;
    body["port"] = json!(proxy.port);
    let token = app.token_for(&body).await;

    let running = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/api/database/execute");
        let body = json!({ "sql": sql, "timeoutMs": 60_000 });
        async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("request");
            read(response).await
        }
    });
    let (find, kill): (String, fn(i64) -> String) = match engine {
        "postgres" => (
            format!(
                "SELECT coalesce(max(pid), 0)::bigint FROM pg_stat_activity \
                 WHERE query LIKE '%{marker}%' AND state = 'active' AND pid <> pg_backend_pid()"
            ),
            |id| format!("SELECT pg_terminate_backend({id})"),
        ),
        _ => (
            format!(
                "SELECT COALESCE(MAX(ID), 0) FROM information_schema.PROCESSLIST \
                 WHERE INFO LIKE '%{marker}%' AND ID <> CONNECTION_ID()"
            ),
            |id| format!("KILL CONNECTION {id}"),
        ),
    };
    let session = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let id = if engine == "postgres" {
                pg_admin_scalar(&find).await
            } else {
                mysql_admin_scalar(&find).await
            };
            if id != 0 {
                return id;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the statement was seen running");
    if engine == "postgres" {
        pg_admin_execute("test", &kill(session)).await;
    } else {
        mysql_admin_execute(&kill(session)).await;
    }
    let (status, answer) = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("answered")
        .expect("joined");
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{answer}"
    );
    assert!(status != 500, "{answer}");
    let carried = proxy
        .flights()
        .iter()
        .filter(|flight| contains(&flight.bytes, marker.as_bytes()))
        .count();
    let code = answer["code"].as_str().unwrap_or_default().to_owned();
    (code, carried)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test]
async fn a_postgres_statement_whose_session_dies_while_it_runs_is_not_run_again() {
    let (code, carried) = kill_while_running(
        "postgres",
        "SELECT pg_sleep(30) AS qg_once_pg",
        "qg_once_pg",
    )
    .await;
    assert_eq!(carried, 1, "the statement was sent once");
    assert_eq!(
        code, "db_connection_refused",
        "the database went away under the statement"
    );
}

#[tokio::test]
async fn a_mariadb_statement_whose_session_dies_while_it_runs_is_not_run_again() {
    let (code, carried) =
        kill_while_running("mysql", "SELECT SLEEP(30) AS qg_once_my", "qg_once_my").await;
    assert_eq!(carried, 1, "the statement was prepared once");
    assert_eq!(
        code, "db_connection_refused",
        "the database went away under the statement"
    );
}
