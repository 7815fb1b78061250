//! Opening a PostgreSQL connection: TCP to a checked address, TLS by `sslmode`
//! with the certificate verified against the host name, start-up and
//! authentication (trust, password, MD5, SCRAM-SHA-256).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::conn::{Io, PgConn, Session, WireError, message_name};
use super::errors::{DbErrorFields, connect_error};
use crate::db::error::DbError;
use crate::db::params::SslMode;
use crate::db::tls;
use crate::secret::Secret;

/// Where and as whom to connect: everything a pooled connection needs, fixed when
/// the pool is opened.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Addresses the host policy checked, tried in order.
    pub(crate) addresses: Vec<IpAddr>,
    pub(crate) port: u16,
    /// The host as the client gave it: SNI and certificate name.
    pub(crate) host: String,
    pub(crate) user: String,
    pub(crate) password: Secret,
    pub(crate) database: String,
    pub(crate) ssl: SslMode,
    /// Resolve + connect + authenticate, per address.
    pub(crate) timeout: Duration,
    /// What every connection of the pool shares.
    pub(crate) session: Session,
}

/// Connects to the first checked address that accepts. Only a refused connection
/// moves on to the next (a name may resolve to an IPv6 address the server does
/// not listen on); any other failure is the answer. Safe to drop: the half-open
/// connection is dropped with it.
pub(crate) async fn connect(target: &Target) -> Result<PgConn, DbError> {
    let mut last = DbError::HostNotFound;
    for address in target.addresses.iter().take(4) {
        let address = SocketAddr::new(*address, target.port);
        let attempt = tokio::time::timeout(target.timeout, connect_to(target, address)).await;
        match attempt.unwrap_or(Err(DbError::Timeout)) {
            Ok(conn) => return Ok(conn),
            Err(DbError::ConnectionRefused) => last = DbError::ConnectionRefused,
            Err(other) => return Err(other),
        }
    }
    Err(last)
}

async fn connect_to(target: &Target, address: SocketAddr) -> Result<PgConn, DbError> {
    let mut tcp = TcpStream::connect(address).await.map_err(|e| {
        tracing::debug!(error = %e, "PostgreSQL connection failed");
        DbError::from_io(&e)
    })?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = match tls::client_config(target.ssl) {
        None => Box::new(tcp),
        Some(config) => match negotiate_tls(&mut tcp).await? {
            true => {
                let name = tls::server_name(&target.host)
                    .ok_or_else(|| DbError::TlsFailed("not a valid TLS server name".into()))?;
                let stream = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| DbError::TlsFailed(e.to_string()))?;
                Box::new(stream)
            }
            false if target.ssl == SslMode::Prefer => Box::new(tcp),
            false => {
                return Err(DbError::TlsFailed("the server does not accept TLS".into()));
            }
        },
    };
    let mut conn = PgConn::new(io, address, target.session);
    startup(&mut conn, target)
        .await
        .map_err(|error| match error {
            Failure::Server(fields) => connect_error(&fields),
            Failure::Wire(WireError::Io(e)) => DbError::from_io(&e),
            Failure::Wire(WireError::Closed) => DbError::ConnectionRefused,
            Failure::Wire(_) | Failure::Unsupported => DbError::Protocol,
        })?;
    Ok(conn)
}

/// Asks for TLS; `true` when the server agrees.
async fn negotiate_tls(tcp: &mut TcpStream) -> Result<bool, DbError> {
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    tcp.write_all(&request)
        .await
        .map_err(|e| DbError::from_io(&e))?;
    let answer = tcp.read_u8().await.map_err(|e| DbError::from_io(&e))?;
    match answer {
        b'S' => Ok(true),
        b'N' => Ok(false),
        _ => Err(DbError::Protocol),
    }
}

enum Failure {
    Server(DbErrorFields),
    Wire(WireError),
    Unsupported,
}

impl From<WireError> for Failure {
    fn from(error: WireError) -> Self {
        Self::Wire(error)
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Self::Wire(WireError::Io(error))
    }
}

async fn startup(conn: &mut PgConn, target: &Target) -> Result<(), Failure> {
    let statement_timeout = timeout_ms(target.session.statement_timeout).to_string();
    frontend::startup_message(
        [
            ("user", target.user.as_str()),
            ("database", target.database.as_str()),
            ("application_name", "querygate"),
            ("client_encoding", "UTF8"),
            // Every transaction of the session defaults to read-only, so even one
            // that the envelope failed to begin could not write; `DISCARD ALL`
            // resets to this value.
            ("default_transaction_read_only", "on"),
            // The server's default statement limit, so that the envelope sets one
            // only for a request that asks for another; `DISCARD ALL` resets to it.
            ("statement_timeout", statement_timeout.as_str()),
            // A backslash in '…' is an ordinary character, as the policy's reader
            // assumes ([`crate::db::sql_text`]); a role or database default of
            // `off` would otherwise let `'\''` hide a call from it.
            ("standard_conforming_strings", "on"),
        ],
        &mut conn.out,
    )?;
    conn.flush().await?;
    authenticate(conn, target).await?;
    loop {
        match conn.recv().await? {
            Message::ParameterStatus(body) => {
                if body.name()? == "server_version" {
                    conn.server_version = body.value()?.to_owned();
                }
            }
            Message::BackendKeyData(body) => {
                conn.backend_key = Some((body.process_id(), body.secret_key()));
            }
            Message::ReadyForQuery(_) => return Ok(()),
            Message::ErrorResponse(body) => {
                return Err(Failure::Server(DbErrorFields::parse(body.fields())));
            }
            Message::NoticeResponse(_) => {}
            other => {
                return Err(Failure::Wire(WireError::Unexpected {
                    message: message_name(&other),
                    phase: "start-up",
                }));
            }
        }
    }
}

/// Answers the server's authentication requests until it says OK. The password
/// is sent only when asked for, and never in the clear unless the server asks
/// for exactly that (as libpq does).
async fn authenticate(conn: &mut PgConn, target: &Target) -> Result<(), Failure> {
    let password = target.password.expose().as_bytes();
    let mut scram: Option<sasl::ScramSha256> = None;
    loop {
        match conn.recv().await? {
            Message::AuthenticationOk => return Ok(()),
            Message::AuthenticationCleartextPassword => {
                frontend::password_message(password, &mut conn.out)?;
            }
            Message::AuthenticationMd5Password(body) => {
                let hash = md5_hash(target.user.as_bytes(), password, body.salt());
                frontend::password_message(hash.as_bytes(), &mut conn.out)?;
            }
            Message::AuthenticationSasl(body) => {
                let mut mechanisms = body.mechanisms();
                let mut offered = false;
                while let Some(mechanism) = mechanisms.next()? {
                    offered |= mechanism == sasl::SCRAM_SHA_256;
                }
                if !offered {
                    return Err(Failure::Unsupported);
                }
                let state = sasl::ScramSha256::new(password, sasl::ChannelBinding::unsupported());
                frontend::sasl_initial_response(
                    sasl::SCRAM_SHA_256,
                    state.message(),
                    &mut conn.out,
                )?;
                scram = Some(state);
            }
            Message::AuthenticationSaslContinue(body) => {
                let state = scram.as_mut().ok_or(Failure::Unsupported)?;
                state.update(body.data())?;
                frontend::sasl_response(state.message(), &mut conn.out)?;
            }
            Message::AuthenticationSaslFinal(body) => {
                let state = scram.as_mut().ok_or(Failure::Unsupported)?;
                state.finish(body.data())?;
                continue;
            }
            Message::ErrorResponse(body) => {
                return Err(Failure::Server(DbErrorFields::parse(body.fields())));
            }
            Message::NoticeResponse(_) => continue,
            _ => return Err(Failure::Unsupported),
        }
        conn.flush().await?;
    }
}

/// Asks the server to cancel what the connection at `address` with `key` runs,
/// over a connection of its own (best effort, bounded in time). Safe to drop.
pub(crate) async fn cancel(address: SocketAddr, key: (i32, i32)) {
    let attempt = async {
        let mut tcp = TcpStream::connect(address).await?;
        let mut request = BytesMut::new();
        frontend::cancel_request(key.0, key.1, &mut request);
        tcp.write_all(&request).await?;
        // The server closes the connection once it has read the request.
        let mut sink = [0u8; 1];
        let _ = tcp.read(&mut sink).await;
        Ok::<_, std::io::Error>(())
    };
    if tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .is_err()
    {
        tracing::debug!("PostgreSQL cancel request timed out");
    }
}

/// A limit in whole milliseconds, at least one (zero would mean none).
pub(crate) fn timeout_ms(limit: Duration) -> u64 {
    u64::try_from(limit.as_millis()).unwrap_or(u64::MAX).max(1)
}
