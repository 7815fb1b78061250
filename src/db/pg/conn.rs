//! One PostgreSQL connection speaking the wire protocol: messages from
//! `postgres-protocol`, framed by [`super::frame`], and what the connection is
//! doing as a [`State`].
//!
//! # Dropping a future half-way
//!
//! [`PgConn::flush`] and [`PgConn::recv`] may be dropped at any `.await`: the
//! state they leave says so (a flight that is not over is `Busy`, a write cut
//! short is `Broken`), and [`PgConn::is_reusable`] refuses such a connection, so
//! the pool closes it instead of handing it to the next request out of step.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::message::backend::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::frame::{self, FrameError};

/// A byte stream to the server: TCP, or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The transaction status of a `ReadyForQuery`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxStatus {
    /// `I`: outside a transaction block.
    Idle,
    /// `T`: inside one.
    InBlock,
    /// `E`: inside a failed one.
    Failed,
}

/// What the connection is doing, as far as the protocol goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// The server's last `ReadyForQuery` came, and nothing was sent since.
    Ready(TxStatus),
    /// A flight was sent: `syncs` `ReadyForQuery` messages are still to come.
    Busy {
        /// `ReadyForQuery` messages still to come.
        syncs: usize,
    },
    /// Closed, or out of step with the server: never used again.
    Broken,
}

/// Why talking to the server failed. Each variant carries its facts, so that no
/// caller needs to thread a limit through to word a message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// The socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// The bytes are not a message within the limits.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A message that has no place at this point of the exchange.
    #[error("{message} during {phase}")]
    Unexpected {
        /// The message's name.
        message: &'static str,
        /// What the connection was doing.
        phase: &'static str,
    },
    /// A row with another number of fields than its description announced.
    #[error("a row of {sent} fields for {described} columns")]
    Columns {
        /// Columns in the row description.
        described: usize,
        /// Fields in the row.
        sent: usize,
    },
    /// A field whose length points outside its row.
    #[error("a field outside its row")]
    Field,
    /// The server said it is ending this session (SQLSTATE class 57P0x) before
    /// anything of the flight ran.
    #[error("the server is ending the session ({code})")]
    Ending {
        /// The SQLSTATE.
        code: String,
    },
    /// One of querygate's own queries returned more than it reads.
    #[error("a catalogue answer over {limit} bytes")]
    CatalogTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

/// The name of a message, for errors and logs.
pub(crate) fn message_name(message: &Message) -> &'static str {
    match message {
        Message::DataRow(_) => "DataRow",
        Message::RowDescription(_) => "RowDescription",
        Message::CommandComplete(_) => "CommandComplete",
        Message::ReadyForQuery(_) => "ReadyForQuery",
        Message::ErrorResponse(_) => "ErrorResponse",
        Message::NoticeResponse(_) => "NoticeResponse",
        Message::ParameterStatus(_) => "ParameterStatus",
        Message::ParseComplete => "ParseComplete",
        Message::BindComplete => "BindComplete",
        Message::NoData => "NoData",
        Message::PortalSuspended => "PortalSuspended",
        Message::EmptyQueryResponse => "EmptyQueryResponse",
        Message::BackendKeyData(_) => "BackendKeyData",
        Message::CopyInResponse(_) => "CopyInResponse",
        Message::CopyOutResponse(_) => "CopyOutResponse",
        Message::CopyData(_) => "CopyData",
        Message::CopyDone => "CopyDone",
        Message::NotificationResponse(_) => "NotificationResponse",
        Message::ParameterDescription(_) => "ParameterDescription",
        Message::CloseComplete => "CloseComplete",
        _ => "an authentication message",
    }
}

/// What is fixed for every connection of a pool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Session {
    /// `MAX_ROW_BYTES`: the longest `DataRow` read.
    pub(crate) max_row_bytes: usize,
    /// The `statement_timeout` the session started with.
    pub(crate) statement_timeout: Duration,
}

/// A connection after start-up, ready for queries.
pub(crate) struct PgConn {
    io: Box<dyn Io>,
    read: BytesMut,
    /// Messages queued by the caller, sent together by [`PgConn::flush`].
    pub(crate) out: BytesMut,
    /// `Sync`s (and the start-up message) queued in `out`, not yet sent.
    queued_syncs: usize,
    state: State,
    /// Whether any byte came back since the last flush: until then a failure
    /// means the server ran nothing of the flight.
    answered: bool,
    pub(crate) session: Session,
    /// Process id and secret key, for cancel requests.
    pub(crate) backend_key: Option<(i32, i32)>,
    /// The address it was dialled at (cancel requests go there too).
    pub(crate) address: SocketAddr,
    /// `server_version` as the server reported it at start-up.
    pub(crate) server_version: String,
}

impl PgConn {
    /// A connection over `io` before start-up: the start-up message, once
    /// queued and sent, is answered up to a `ReadyForQuery` like a `Sync`.
    pub(crate) fn new(io: Box<dyn Io>, address: SocketAddr, session: Session) -> Self {
        Self {
            io,
            read: BytesMut::with_capacity(8 * 1024),
            out: BytesMut::with_capacity(1024),
            queued_syncs: 1,
            state: State::Ready(TxStatus::Idle),
            answered: false,
            session,
            backend_key: None,
            address,
            server_version: String::new(),
        }
    }

    /// Queues Parse, Bind and Execute of `sql` through the unnamed statement and
    /// portal, with text parameters and text results, and no `Sync`.
    pub(crate) fn queue_text_statement(
        &mut self,
        sql: &str,
        params: &[Option<String>],
    ) -> std::io::Result<()> {
        use postgres_protocol::message::frontend;
        let out = &mut self.out;
        frontend::parse("", sql, params.iter().map(|_| 25), out)?;
        frontend::bind(
            "",
            "",
            [0],
            params.iter(),
            |value, buf| match value {
                Some(text) => {
                    buf.extend_from_slice(text.as_bytes());
                    Ok(postgres_protocol::IsNull::No)
                }
                None => Ok(postgres_protocol::IsNull::Yes),
            },
            [0],
            out,
        )
        .map_err(|_| std::io::Error::other("bind"))?;
        frontend::execute("", 0, out)
    }

    /// Queues a `Sync`, which ends an extended-protocol exchange.
    pub(crate) fn queue_sync(&mut self) {
        postgres_protocol::message::frontend::sync(&mut self.out);
        self.queued_syncs += 1;
    }

    /// Sends the queued messages in one write. Dropped half-way, the connection
    /// is `Broken` (part of a flight may have gone out).
    pub(crate) async fn flush(&mut self) -> Result<(), WireError> {
        let syncs = std::mem::take(&mut self.queued_syncs);
        let sending = match self.state {
            State::Broken => return Err(WireError::Closed),
            State::Busy { syncs: pending } => State::Busy {
                syncs: pending + syncs,
            },
            State::Ready(_) => State::Busy { syncs },
        };
        self.answered = false;
        self.state = State::Broken;
        let result = async {
            self.io.write_all(&self.out).await?;
            self.io.flush().await
        }
        .await;
        self.out.clear();
        result?;
        self.state = sending;
        Ok(())
    }

    /// The next message. Safe to drop half-way: bytes already read stay in the
    /// buffer, and the state stays `Busy` until the flight's last
    /// `ReadyForQuery`.
    pub(crate) async fn recv(&mut self) -> Result<Message, WireError> {
        loop {
            match frame::next(&mut self.read, self.session.max_row_bytes) {
                Ok(Some(message)) => {
                    self.observe(&message);
                    return Ok(message);
                }
                Ok(None) => {}
                Err(error) => {
                    self.state = State::Broken;
                    return Err(error.into());
                }
            }
            if let Ok(Some(wanted)) = frame::wanted(&self.read, self.session.max_row_bytes) {
                self.read.reserve(wanted.saturating_sub(self.read.len()));
            }
            let read = match self.io.read_buf(&mut self.read).await {
                Ok(0) => Err(WireError::Closed),
                Ok(read) => Ok(read),
                Err(error) => Err(WireError::Io(error)),
            };
            if let Err(error) = read {
                self.state = State::Broken;
                return Err(error);
            }
            self.answered = true;
        }
    }

    /// Follows the flight: a `ReadyForQuery` ends one `Sync`'s share of it.
    fn observe(&mut self, message: &Message) {
        let Message::ReadyForQuery(body) = message else {
            return;
        };
        let status = match body.status() {
            b'I' => TxStatus::Idle,
            b'T' => TxStatus::InBlock,
            _ => TxStatus::Failed,
        };
        self.state = match self.state {
            State::Busy { syncs } if syncs > 1 => State::Busy { syncs: syncs - 1 },
            State::Busy { .. } => State::Ready(status),
            // A ReadyForQuery nobody asked for: out of step.
            State::Ready(_) | State::Broken => State::Broken,
        };
    }

    /// What the connection is doing.
    #[cfg(test)]
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// Whether anything of the last flight came back.
    pub(crate) fn answered(&self) -> bool {
        self.answered || !self.read.is_empty()
    }

    /// Whether the connection is out of step with the server or closed.
    pub(crate) fn is_broken(&self) -> bool {
        self.state == State::Broken
    }

    /// Marks the connection unusable (it is closed instead of pooled).
    pub(crate) fn mark_broken(&mut self) {
        self.state = State::Broken;
    }

    /// Whether the connection may serve another request: its last
    /// `ReadyForQuery` said idle (`I`, outside any transaction), nothing is
    /// queued or unread, and — checked without a round trip — the server has not
    /// closed it or sent anything since (a terminated backend sends an error and
    /// closes).
    pub(crate) fn is_reusable(&mut self) -> bool {
        if self.state != State::Ready(TxStatus::Idle)
            || !self.read.is_empty()
            || !self.out.is_empty()
            || self.queued_syncs > 0
        {
            return false;
        }
        let mut probe = [0u8; 1];
        let mut buffer = tokio::io::ReadBuf::new(&mut probe);
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(&mut self.io).poll_read(&mut context, &mut buffer) {
            std::task::Poll::Pending => true,
            std::task::Poll::Ready(_) => {
                self.state = State::Broken;
                false
            }
        }
    }
}
