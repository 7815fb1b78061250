//! One PostgreSQL connection speaking the wire protocol (messages from
//! `postgres-protocol`), with the framing guard that keeps memory bounded.
//!
//! Every message header is read before its body: a `DataRow` longer than the
//! row limit, or any other message longer than [`MAX_OTHER_MESSAGE`], ends the
//! connection before a byte of it is buffered. That is what bounds the memory of a
//! `SELECT repeat('x', 300000000)`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::message::backend::{self, DATA_ROW_TAG, Message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest message other than a row: row descriptions of 1,600 columns,
/// long error messages and notices fit with room to spare.
const MAX_OTHER_MESSAGE: usize = 4 * 1024 * 1024;

/// A byte stream to the server: TCP, or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Why talking to the server failed.
#[derive(Debug)]
pub(crate) enum WireError {
    /// The socket failed or closed.
    Io(std::io::Error),
    /// A row longer than the limit was announced; it was not read.
    RowTooLarge,
    /// The server sent something that is not the protocol.
    Protocol(&'static str),
}

impl From<std::io::Error> for WireError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

/// A connection after start-up, ready for queries.
pub(crate) struct PgConn {
    io: Box<dyn Io>,
    read: BytesMut,
    /// Messages queued by the caller, sent together by [`PgConn::flush`].
    pub(crate) out: BytesMut,
    max_row_bytes: usize,
    /// Bytes received since the last [`PgConn::flush`]: zero means the server
    /// has acknowledged nothing of what was sent last.
    received: usize,
    /// `ReadyForQuery` messages still to come for what was queued: a connection
    /// whose request was abandoned half-way is never reused.
    awaiting_ready: usize,
    broken: bool,
    /// Process id and secret key, for cancel requests.
    pub(crate) backend_key: Option<(i32, i32)>,
    /// The address it was dialled at (cancel requests go there too).
    pub(crate) address: SocketAddr,
    /// `server_version` as the server reported it at start-up.
    pub(crate) server_version: String,
    /// The `statement_timeout` the session started with.
    pub(crate) session_timeout: Duration,
}

impl PgConn {
    pub(crate) fn new(io: Box<dyn Io>, address: SocketAddr, max_row_bytes: usize) -> Self {
        Self {
            io,
            read: BytesMut::with_capacity(8 * 1024),
            out: BytesMut::with_capacity(1024),
            max_row_bytes,
            received: 0,
            awaiting_ready: 0,
            broken: false,
            backend_key: None,
            address,
            server_version: String::new(),
            session_timeout: Duration::ZERO,
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
        self.awaiting_ready += 1;
    }

    /// Sends the queued messages in one write.
    pub(crate) async fn flush(&mut self) -> Result<(), WireError> {
        self.received = 0;
        let result = async {
            self.io.write_all(&self.out).await?;
            self.io.flush().await
        }
        .await;
        self.out.clear();
        result.map_err(|error| {
            self.broken = true;
            WireError::Io(error)
        })
    }

    /// The next message, read under the framing guard.
    pub(crate) async fn recv(&mut self) -> Result<Message, WireError> {
        loop {
            if let Some(header) = backend::Header::parse(&self.read).map_err(|_| self.fail())? {
                let length = usize::try_from(header.len()).unwrap_or(usize::MAX);
                let limit = if header.tag() == DATA_ROW_TAG {
                    self.max_row_bytes.saturating_add(64)
                } else {
                    MAX_OTHER_MESSAGE
                };
                if length > limit {
                    self.broken = true;
                    return Err(if header.tag() == DATA_ROW_TAG {
                        WireError::RowTooLarge
                    } else {
                        WireError::Protocol("message too long")
                    });
                }
                match Message::parse(&mut self.read) {
                    Ok(Some(message)) => {
                        if matches!(message, Message::ReadyForQuery(_)) {
                            self.awaiting_ready = self.awaiting_ready.saturating_sub(1);
                        }
                        return Ok(message);
                    }
                    Ok(None) => {}
                    Err(_) => return Err(self.fail()),
                }
            }
            let read = self.io.read_buf(&mut self.read).await.map_err(|error| {
                self.broken = true;
                WireError::Io(error)
            })?;
            if read == 0 {
                self.broken = true;
                return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.received += read;
        }
    }

    fn fail(&mut self) -> WireError {
        self.broken = true;
        WireError::Protocol("malformed message")
    }

    /// Whether anything came back since the last flush.
    pub(crate) fn acknowledged(&self) -> bool {
        self.received > 0 || !self.read.is_empty()
    }

    /// Whether the connection is out of step with the server or closed.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    /// Marks the connection unusable (it is closed instead of pooled).
    pub(crate) fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Whether the connection may serve another request: not broken, nothing
    /// unread, and — checked without a round trip — the server has not closed it
    /// or sent anything while it was idle (a terminated backend sends an error
    /// and closes).
    pub(crate) fn is_reusable(&mut self) -> bool {
        if self.broken || self.awaiting_ready > 0 || !self.read.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        let mut buffer = tokio::io::ReadBuf::new(&mut probe);
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(&mut self.io).poll_read(&mut context, &mut buffer) {
            std::task::Poll::Pending => true,
            std::task::Poll::Ready(_) => {
                self.broken = true;
                false
            }
        }
    }
}
