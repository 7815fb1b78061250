//! Round trips to the database per request, counted as the client's flights
//! through a loopback proxy (see `common::proxy`), so that a regression shows up
//! without timing anything.

use serde_json::json;

use crate::common::proxy::{CountingProxy, Flight};
use crate::common::*;

/// MySQL commands by the byte that starts a command packet's payload.
const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_RESET_CONNECTION: u8 = 0x1f;

fn mysql_command(flight: &Flight) -> u8 {
    flight.bytes.get(4).copied().unwrap_or_default()
}

/// Waits (bounded) until the proxy has seen `count` flights since `mark`.
async fn settle(proxy: &CountingProxy, mark: usize, count: usize) -> Vec<Flight> {
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let flights = proxy.since(mark);
            if flights.len() >= count {
                return flights;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| proxy.since(mark))
}

#[tokio::test]
async fn postgres_connect_costs_the_handshake_and_one_check_and_execute_and_schema_one_round_trip()
{
    let proxy = CountingProxy::start(5432).await;
    let app = TestApp::spawn_with(|config| {
        config.pool_max_connections = 1;
        config.schema_cache_ttl_secs = 0;
    })
    .await;
    let mut body = pg_body("test");
    body["port"] = json!(proxy.port);
    let token = app.token_for(&body).await;
    // Start-up (trust authentication answers at once), then the check.
    assert_eq!(proxy.flights().len(), 2, "connect: {:?}", proxy.flights());

    // A statement costs one flight; a failed one also the cleanup the server
    // skipped with the rest of the flight, sent after the answer.
    for (sql, expected) in [
        ("SELECT 1", 1),
        ("SELECT g FROM generate_series(1, 5000) g", 1),
        ("SELECT * FROM no_such_table", 2),
    ] {
        let mark = proxy.flights().len();
        let _ = app.sql(&token, sql).await;
        let flights = settle(&proxy, mark, expected).await;
        assert_eq!(flights.len(), expected, "execute {sql}: {flights:?}");
        // Parse: tag, length, the unnamed statement's empty name, then the text.
        let parses = |flight: &Flight, text: &[u8]| {
            flight.bytes.starts_with(b"P") && flight.bytes[6..].starts_with(text)
        };
        assert!(
            parses(&flights[0], b"BEGIN READ ONLY\0"),
            "the flight opens with BEGIN READ ONLY: {:?}",
            flights[0]
        );
        if let Some(cleanup) = flights.get(1) {
            assert!(parses(cleanup, b"ROLLBACK\0"), "cleanup: {cleanup:?}");
        }
    }

    let mark = proxy.flights().len();
    let (status, _) = read(app.schema(&token, "").await).await;
    assert_eq!(status, 200);
    assert_eq!(
        proxy.since(mark).len(),
        1,
        "schema: {:?}",
        proxy.since(mark)
    );
}

#[tokio::test]
async fn mysql_connect_costs_the_handshake_and_one_check_and_execute_two_round_trips() {
    let proxy = CountingProxy::start(3306).await;
    let app = TestApp::spawn_with(|config| {
        config.pool_max_connections = 1;
        config.schema_cache_ttl_secs = 0;
    })
    .await;
    let mut body = mysql_body("test");
    body["port"] = json!(proxy.port);
    let token = app.token_for(&body).await;
    let connect: Vec<u8> = proxy.flights().iter().map(mysql_command).collect();
    // The handshake response, the check, and a goodbye that waits for nothing.
    assert_eq!(connect.len(), 3, "connect: {:?}", proxy.flights());
    assert_eq!(connect[1], COM_QUERY);
    assert_eq!(connect[2], COM_QUIT);

    // The first statement opens the pool's connection (handshake, setup, prepare,
    // execute, then the reset and setup); later ones reuse it.
    let (status, _) = app.sql(&token, "SELECT 1").await;
    assert_eq!(status, 200);
    let warm: Vec<u8> = settle(&proxy, 0, 9)
        .await
        .iter()
        .map(mysql_command)
        .collect();
    assert_eq!(
        warm[warm.len() - 2..],
        [COM_RESET_CONNECTION, COM_QUERY],
        "{warm:?}"
    );
    for sql in ["SELECT 1", "SELECT seq FROM seq_1_to_500"] {
        let mark = proxy.flights().len();
        let (status, _) = app.sql(&token, sql).await;
        assert_eq!(status, 200);
        // After the answer the pool resets the session, off the request's path.
        let flights = settle(&proxy, mark, 4).await;
        let commands: Vec<u8> = flights.iter().map(mysql_command).collect();
        assert_eq!(
            commands,
            [
                COM_STMT_PREPARE,
                COM_STMT_EXECUTE,
                COM_RESET_CONNECTION,
                COM_QUERY
            ],
            "{sql}: prepare and execute, then the reset and the setup"
        );
        assert!(
            flights
                .iter()
                .all(|f| f.connection == flights[0].connection),
            "one reused connection"
        );
    }

    let mark = proxy.flights().len();
    let (status, _) = read(app.schema(&token, "").await).await;
    assert_eq!(status, 200);
    let commands: Vec<u8> = settle(&proxy, mark, 3)
        .await
        .iter()
        .map(mysql_command)
        .collect();
    assert_eq!(
        commands,
        [COM_QUERY, COM_RESET_CONNECTION, COM_QUERY],
        "schema: one query"
    );
}

#[tokio::test]
async fn a_failed_postgres_statement_keeps_its_connection_for_the_next_request() {
    let app = TestApp::spawn_with(|config| config.pool_max_connections = 1).await;
    let token = app.token_for(&pg_body("test")).await;
    let pid = |answer: &serde_json::Value| answer["data"][0]["pid"].as_i64().expect("pid");
    let (status, before) = app.sql(&token, "SELECT pg_backend_pid() AS pid").await;
    assert_eq!(status, 200, "{before}");
    for failing in ["SELECT 1 / 0", "SELECT * FROM no_such_table", "SELEC 1"] {
        let (status, body) = app.sql(&token, failing).await;
        assert_eq!(status, 400, "{failing}: {body}");
        assert_eq!(body["success"], false, "{failing}: {body}");
        // The cleanup the server skipped ran in its own flight: the same session
        // answers (an aborted transaction left open would refuse every statement).
        let (status, after) = app.sql(&token, "SELECT pg_backend_pid() AS pid").await;
        assert_eq!(status, 200, "after {failing}: {after}");
        assert_eq!(
            pid(&after),
            pid(&before),
            "after {failing}: a new connection"
        );
    }
    let state = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = {} AND state = 'idle'",
        pid(&before)
    );
    assert_eq!(
        pg_admin_scalar(&state).await,
        1,
        "the pooled session is idle"
    );
}
