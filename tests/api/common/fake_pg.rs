//! A PostgreSQL server that misbehaves on purpose, scripted per test: the
//! stand-in for what a hostile server (or a broken proxy) can send. Ordinary
//! behaviour is always tested on the real PostgreSQL; this one only answers
//! start-up, then hands every flight (the client's messages up to a `Sync`) to
//! the script.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one flight, or at start-up.
#[derive(Clone)]
pub enum Reply {
    /// Sends these bytes, then waits for the next flight.
    Send(Vec<u8>),
    /// Sends these bytes, then closes the connection.
    SendAndClose(Vec<u8>),
    /// Never answers; the connection stays open.
    Silence,
    /// Sends these bytes, then never answers again.
    SendThenSilence(Vec<u8>),
    /// Sends the first bytes, then the second ones again and again until the
    /// client closes the connection (or a bounded total is reached).
    Flood(Vec<u8>, Vec<u8>),
}

/// Answers the flight `flight` (0: the first after start-up) of the
/// connection `connection` (0: the first accepted).
pub type Script = Arc<dyn Fn(usize, usize) -> Reply + Send + Sync>;

/// A listening fake server; stops when dropped.
pub struct FakePg {
    pub port: u16,
    /// Connections open now.
    pub open: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakePg {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The most a flood sends, so that a test can never run away.
const FLOOD_LIMIT: usize = 4 * 1024 * 1024 * 1024;

impl FakePg {
    /// A server whose start-up is `startup` (see [`good_startup`]) on every
    /// connection and whose flights `script` answers.
    pub async fn start(startup: Reply, script: Script) -> Self {
        Self::start_each(Arc::new(move |_| startup.clone()), script).await
    }

    /// A server whose start-up on connection `n` is `startup(n)`.
    pub async fn start_each(
        startup: Arc<dyn Fn(usize) -> Reply + Send + Sync>,
        script: Script,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let counter = AtomicUsize::new(0);
        let open = Arc::new(AtomicUsize::new(0));
        let gauge = Arc::clone(&open);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let index = counter.fetch_add(1, Ordering::SeqCst);
                let (startup, script) = (startup(index), Arc::clone(&script));
                let gauge = Arc::clone(&gauge);
                gauge.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    serve(stream, index, startup, script).await;
                    gauge.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self { port, open, task }
    }

    /// A server that starts sessions and answers every flight as a
    /// well-behaved PostgreSQL would a catalogue query of no rows.
    pub async fn well_behaved() -> Self {
        Self::start(
            Reply::Send(good_startup()),
            Arc::new(|_, _| Reply::Send(types_answer())),
        )
        .await
    }

    /// Connections open now.
    pub fn open_now(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// The body of `connect` for this server.
    pub fn connect_body(&self) -> serde_json::Value {
        serde_json::json!({
            "dbType": "postgresql", "host": "127.0.0.1", "port": self.port,
            "username": "hostile", "password": "x", "database": "hostile", "ssl": "disable"
        })
    }
}

async fn serve(mut stream: TcpStream, connection: usize, startup: Reply, script: Script) {
    // The start-up message: a length, then the body (an SSLRequest is refused
    // and followed by the real one).
    loop {
        let Ok(length) = stream.read_i32().await else {
            return;
        };
        let mut body = vec![0u8; usize::try_from(length).unwrap_or(8).saturating_sub(4)];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        if body.get(..4) == Some(&80_877_103_i32.to_be_bytes()) {
            if stream.write_all(b"N").await.is_err() {
                return;
            }
            continue;
        }
        break;
    }
    if !reply(&mut stream, startup).await {
        return;
    }
    let mut flight = 0;
    loop {
        // Messages up to a Sync.
        loop {
            let Ok(tag) = stream.read_u8().await else {
                return;
            };
            let Ok(length) = stream.read_i32().await else {
                return;
            };
            let mut body = vec![0u8; usize::try_from(length).unwrap_or(4).saturating_sub(4)];
            if stream.read_exact(&mut body).await.is_err() {
                return;
            }
            match tag {
                b'S' => break,
                // Terminate.
                b'X' => return,
                _ => {}
            }
        }
        if !reply(&mut stream, script(flight, connection)).await {
            return;
        }
        flight += 1;
    }
}

/// Sends a reply; `false` when the connection is over.
pub async fn reply(stream: &mut TcpStream, reply: Reply) -> bool {
    match reply {
        Reply::Send(bytes) => stream.write_all(&bytes).await.is_ok(),
        Reply::SendAndClose(bytes) => {
            let _ = stream.write_all(&bytes).await;
            false
        }
        Reply::Silence => {
            hold(stream).await;
            false
        }
        Reply::SendThenSilence(bytes) => {
            if stream.write_all(&bytes).await.is_ok() {
                hold(stream).await;
            }
            false
        }
        Reply::Flood(first, again) => {
            if stream.write_all(&first).await.is_err() {
                return false;
            }
            let mut sent = first.len();
            while sent < FLOOD_LIMIT && stream.write_all(&again).await.is_ok() {
                sent += again.len().max(1);
            }
            false
        }
    }
}

/// Holds the connection open, reading and ignoring, until the client closes it.
async fn hold(stream: &mut TcpStream) {
    let mut sink = [0u8; 1024];
    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
}

/// A backend message: tag, length, body.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(
        &i32::try_from(body.len() + 4)
            .unwrap_or(i32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(body);
    out
}

/// A message header with any length, for lengths that do not fit the body.
pub fn header(tag: u8, length: i32) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&length.to_be_bytes());
    out
}

pub fn ready() -> Vec<u8> {
    message(b'Z', b"I")
}

fn c_string(text: &str) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    out.push(0);
    out
}

pub fn complete(tag: &str) -> Vec<u8> {
    message(b'C', &c_string(tag))
}

pub fn notice(text: &str) -> Vec<u8> {
    let body = [
        c_string("SNOTICE"),
        c_string("C00000"),
        c_string(&format!("M{text}")),
        vec![0],
    ]
    .concat();
    message(b'N', &body)
}

pub fn error(code: &str, text: &str) -> Vec<u8> {
    let body = [
        c_string("SERROR"),
        c_string(&format!("C{code}")),
        c_string(&format!("M{text}")),
        vec![0],
    ]
    .concat();
    message(b'E', &body)
}

pub fn parameter_status(name: &str, value: &str) -> Vec<u8> {
    message(b'S', &[c_string(name), c_string(value)].concat())
}

/// The answers a real server gives at start-up with trust authentication.
pub fn good_startup() -> Vec<u8> {
    [
        message(b'R', &0_i32.to_be_bytes()),
        parameter_status("server_version", "15.99 (hostile)"),
        message(b'K', &[7_i32.to_be_bytes(), 11_i32.to_be_bytes()].concat()),
        ready(),
    ]
    .concat()
}

/// A row description of `columns` (name, type OID), every column binary.
pub fn row_description(columns: &[(&str, u32)]) -> Vec<u8> {
    let mut body = i16::try_from(columns.len())
        .unwrap_or(i16::MAX)
        .to_be_bytes()
        .to_vec();
    for (name, oid) in columns {
        body.extend(c_string(name));
        body.extend_from_slice(&0_i32.to_be_bytes());
        body.extend_from_slice(&0_i16.to_be_bytes());
        body.extend_from_slice(&oid.to_be_bytes());
        body.extend_from_slice(&(-1_i16).to_be_bytes());
        body.extend_from_slice(&(-1_i32).to_be_bytes());
        body.extend_from_slice(&1_i16.to_be_bytes());
    }
    message(b'T', &body)
}

/// A data row of `fields` (`None`: NULL).
pub fn data_row(fields: &[Option<&[u8]>]) -> Vec<u8> {
    let mut body = i16::try_from(fields.len())
        .unwrap_or(i16::MAX)
        .to_be_bytes()
        .to_vec();
    for field in fields {
        match field {
            None => body.extend_from_slice(&(-1_i32).to_be_bytes()),
            Some(bytes) => {
                body.extend_from_slice(
                    &i32::try_from(bytes.len()).unwrap_or(i32::MAX).to_be_bytes(),
                );
                body.extend_from_slice(bytes);
            }
        }
    }
    message(b'D', &body)
}

/// The answer to connect's catalogue query: no user-defined types.
pub fn types_answer() -> Vec<u8> {
    [
        message(b'1', b""),
        message(b'2', b""),
        complete("SELECT 0"),
        ready(),
    ]
    .concat()
}

/// The read-only envelope's answers around `statement` (the statement's own
/// ParseComplete, BindComplete and what follows them).
pub fn envelope(statement: &[u8]) -> Vec<u8> {
    let command = |tag: &str| [message(b'1', b""), message(b'2', b""), complete(tag)].concat();
    [
        command("BEGIN"),
        message(b'1', b""),
        message(b'2', b""),
        statement.to_vec(),
        command("ROLLBACK"),
        command("DISCARD ALL"),
        ready(),
    ]
    .concat()
}

/// Connect's flight (the first connection's first) answered normally, every
/// other one by `then`.
pub fn after_connect(
    then: impl Fn() -> Reply + Send + Sync + 'static,
) -> impl Fn(usize, usize) -> Reply + Send + Sync + 'static {
    move |flight, connection| {
        if flight == 0 && connection == 0 {
            Reply::Send(types_answer())
        } else {
            then()
        }
    }
}
