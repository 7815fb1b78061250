//! A MySQL server that misbehaves on purpose, lighter than `fake_pg`: it
//! scripts the greeting, the answer to the client's login, and the answer to
//! the first query (connect's `SELECT VERSION()`). Ordinary behaviour is always
//! tested on the real MariaDB.

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

pub use super::fake_pg::Reply;

/// The three answers of a connect.
#[derive(Clone)]
pub struct MyScript {
    pub greeting: Reply,
    pub login: Reply,
    pub query: Reply,
}

/// A listening fake server; stops when dropped.
pub struct FakeMysql {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeMysql {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeMysql {
    pub async fn start(script: MyScript) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, script.clone()));
            }
        });
        Self { port, task }
    }

    /// The body of `connect` for this server.
    pub fn connect_body(&self) -> serde_json::Value {
        serde_json::json!({
            "dbType": "mysql", "host": "127.0.0.1", "port": self.port,
            "username": "hostile", "password": "x", "database": "hostile", "ssl": "disable"
        })
    }
}

async fn serve(mut stream: TcpStream, script: MyScript) {
    if !super::fake_pg::reply(&mut stream, script.greeting).await {
        return;
    }
    if read_packet(&mut stream).await.is_none() {
        return;
    }
    if !super::fake_pg::reply(&mut stream, script.login).await {
        return;
    }
    if read_packet(&mut stream).await.is_none() {
        return;
    }
    let _ = super::fake_pg::reply(&mut stream, script.query).await;
}

async fn read_packet(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await.ok()?;
    let length =
        usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.ok()?;
    Some(body)
}

/// A packet: 3-byte little-endian length, sequence number, payload.
pub fn packet(sequence: u8, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let mut out = vec![length[0], length[1], length[2], sequence];
    out.extend_from_slice(payload);
    out
}

/// A protocol-10 greeting offering `mysql_native_password`, without TLS and
/// without `CLIENT_DEPRECATE_EOF` (results end with EOF packets).
pub fn greeting() -> Vec<u8> {
    let capabilities: u32 = 0x0000_0001 // LONG_PASSWORD
        | 0x0000_0004 // LONG_FLAG
        | 0x0000_0008 // CONNECT_WITH_DB
        | 0x0000_0200 // PROTOCOL_41
        | 0x0000_2000 // TRANSACTIONS
        | 0x0000_8000 // SECURE_CONNECTION
        | 0x0001_0000 // MULTI_STATEMENTS
        | 0x0002_0000 // MULTI_RESULTS
        | 0x0004_0000 // PS_MULTI_RESULTS
        | 0x0008_0000; // PLUGIN_AUTH
    let caps = capabilities.to_le_bytes();
    let mut payload = vec![10];
    payload.extend_from_slice(b"5.7.99-hostile\0");
    payload.extend_from_slice(&1_u32.to_le_bytes());
    payload.extend_from_slice(b"abcdefgh\0");
    payload.extend_from_slice(&caps[..2]);
    payload.push(0x21);
    payload.extend_from_slice(&2_u16.to_le_bytes());
    payload.extend_from_slice(&caps[2..]);
    payload.push(21);
    payload.extend_from_slice(&[0; 10]);
    payload.extend_from_slice(b"ijklmnopqrst\0");
    payload.extend_from_slice(b"mysql_native_password\0");
    packet(0, &payload)
}

/// The OK packet that accepts a login.
pub fn login_ok() -> Vec<u8> {
    packet(2, &[0, 0, 0, 2, 0, 0, 0])
}

/// A result set's head for one text column: column count, its definition,
/// and the EOF that ends the definitions (sequence numbers 1 to 3).
pub fn one_column_head() -> Vec<u8> {
    columns_head(1)
}

/// A result set's head for `count` text columns (sequence numbers 1 to
/// `count + 2`).
pub fn columns_head(count: u8) -> Vec<u8> {
    let lenenc = |text: &str| {
        let mut out = vec![u8::try_from(text.len()).unwrap_or(0)];
        out.extend_from_slice(text.as_bytes());
        out
    };
    let mut definition = Vec::new();
    for part in ["def", "", "", "", "v", ""] {
        definition.extend(lenenc(part));
    }
    definition.push(0x0c);
    definition.extend_from_slice(&0x21_u16.to_le_bytes());
    definition.extend_from_slice(&1024_u32.to_le_bytes());
    definition.push(0xfd);
    definition.extend_from_slice(&0_u16.to_le_bytes());
    definition.push(0);
    definition.extend_from_slice(&[0, 0]);
    let mut out = packet(1, &[count]);
    for index in 0..count {
        out.extend(packet(2 + index, &definition));
    }
    out.extend(packet(2 + count, &[0xfe, 0, 0, 2, 0]));
    out
}
