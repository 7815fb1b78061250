//! The connection's state and the envelope's retry rule, over an in-memory
//! stream whose other end plays the server byte for byte.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::conn::{PgConn, Session, State, TxStatus, WireError};
use super::envelope::{self, Attempt};
use super::types::Types;
use crate::db::budget::DecodeLimits;
use crate::db::execute::ExecRequest;
use crate::db::rows;

/// A backend message: tag, length, body.
fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u8(tag);
    out.put_i32(i32::try_from(body.len() + 4).unwrap_or(i32::MAX));
    out.put_slice(body);
    out.to_vec()
}

fn ready(status: u8) -> Vec<u8> {
    message(b'Z', &[status])
}

fn error(code: &str) -> Vec<u8> {
    let body = format!("SFATAL\0C{code}\0Mterminating connection\0\0");
    message(b'E', body.as_bytes())
}

/// A connection past start-up (its first flight answered by a
/// `ReadyForQuery`), and the server's end of its stream.
async fn connected() -> (PgConn, DuplexStream) {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let session = Session {
        max_row_bytes: 1024 * 1024,
        statement_timeout: Duration::from_secs(5),
    };
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, 5432));
    let mut conn = PgConn::new(Box::new(client), address, session);
    assert!(conn.flush().await.is_ok());
    assert!(server.write_all(&ready(b'I')).await.is_ok());
    read_to_ready(&mut conn).await;
    assert_eq!(conn.state(), State::Ready(TxStatus::Idle));
    (conn, server)
}

/// Sends one flight (ended by a `Sync`) and answers it with `answer`.
async fn flight(conn: &mut PgConn, server: &mut DuplexStream, answer: &[u8]) {
    conn.queue_sync();
    let sent = conn.flush().await;
    assert!(sent.is_ok());
    let mut request = vec![0u8; 5];
    let read = server.read_exact(&mut request).await;
    assert!(read.is_ok());
    let written = server.write_all(answer).await;
    assert!(written.is_ok());
}

async fn read_to_ready(conn: &mut PgConn) {
    loop {
        match conn.recv().await {
            Ok(postgres_protocol::message::backend::Message::ReadyForQuery(_)) => return,
            Ok(_) => {}
            Err(error) => panic!("the flight failed: {error}"),
        }
    }
}

#[tokio::test]
async fn only_a_connection_whose_last_ready_for_query_said_idle_is_reused() {
    for (status, reusable) in [(b'I', true), (b'T', false), (b'E', false)] {
        let (mut conn, mut server) = connected().await;
        flight(&mut conn, &mut server, &ready(status)).await;
        read_to_ready(&mut conn).await;
        assert_eq!(
            conn.is_reusable(),
            reusable,
            "status {}",
            char::from(status)
        );
    }
}

#[tokio::test]
async fn a_connection_waiting_for_its_ready_for_query_is_not_reused() {
    let (mut conn, mut server) = connected().await;
    flight(&mut conn, &mut server, &message(b'1', b"")).await;
    assert!(conn.recv().await.is_ok());
    assert_eq!(conn.state(), State::Busy { syncs: 1 });
    assert!(!conn.is_reusable());
}

#[tokio::test]
async fn a_ready_for_query_nobody_asked_for_puts_the_connection_out_of_step() {
    let (mut conn, mut server) = connected().await;
    flight(&mut conn, &mut server, &[ready(b'I'), ready(b'I')].concat()).await;
    read_to_ready(&mut conn).await;
    assert_eq!(conn.state(), State::Ready(TxStatus::Idle));
    assert!(!conn.is_reusable(), "a message is waiting unread");
    assert!(conn.recv().await.is_ok());
    assert_eq!(conn.state(), State::Broken);
    assert!(!conn.is_reusable());
}

#[tokio::test]
async fn a_frame_error_carries_its_facts_and_breaks_the_connection() {
    let (mut conn, mut server) = connected().await;
    let mut huge_row = vec![b'D'];
    huge_row.extend_from_slice(&i32::MAX.to_be_bytes());
    flight(&mut conn, &mut server, &huge_row).await;
    let failure = conn.recv().await.err();
    assert!(
        matches!(
            failure,
            Some(WireError::Frame(super::frame::FrameError::RowTooLarge {
                limit: 1_048_576,
                ..
            }))
        ),
        "{failure:?}"
    );
    assert_eq!(conn.state(), State::Broken);
}

fn request() -> ExecRequest {
    ExecRequest {
        sql: "SELECT 1".into(),
        params: Vec::new(),
        max_rows: 10,
        timeout: Duration::from_secs(5),
        bigint_as_string: false,
        tag: None,
    }
}

fn limits() -> DecodeLimits {
    DecodeLimits {
        row_bytes: 1024 * 1024,
        result_bytes: usize::MAX,
    }
}

/// Runs the envelope on a pooled connection whose server answers the flight
/// with `answer` and then closes.
async fn envelope_against(answer: Vec<u8>) -> Attempt<bool> {
    let (mut conn, mut server) = connected().await;
    let server = tokio::spawn(async move {
        let mut sent = vec![0u8; 256];
        let _ = server.read(&mut sent).await;
        let _ = server.write_all(&answer).await;
        drop(server);
    });
    let (mut sink, _header, _hangup) = rows::channel(limits());
    let attempt = envelope::run(&mut conn, &request(), &mut sink, &Types::default()).await;
    let _ = server.await;
    attempt
}

#[tokio::test]
async fn a_server_ending_the_session_before_the_flight_ran_is_retried() {
    for code in ["57P01", "57P02", "57P03"] {
        let attempt = envelope_against(error(code)).await;
        assert!(matches!(attempt, Attempt::Retry(_)), "{code}");
    }
}

#[tokio::test]
async fn a_connection_closed_before_any_answer_is_retried() {
    assert!(matches!(
        envelope_against(Vec::new()).await,
        Attempt::Retry(_)
    ));
}

#[tokio::test]
async fn a_connection_closed_after_the_first_answer_is_the_answer() {
    let parsed = [message(b'1', b""), message(b'2', b"")].concat();
    assert!(matches!(
        envelope_against(parsed).await,
        Attempt::Done(Err(_))
    ));
}
