//! A loopback TCP proxy that counts a client's *flights*: the bursts of bytes a
//! client sends before it waits for the server. The server's answers are held
//! back a little (`HOLD`), so that messages a client pipelines always arrive
//! before anything the server says, and a flight that starts after the client
//! received an answer is a new round trip. Counting flights tells round trips
//! without timing anything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long the server's bytes are held before the client gets them.
const HOLD: Duration = Duration::from_millis(20);

/// One flight: which connection sent it, and its first bytes (up to 4 KiB).
#[derive(Debug, Clone)]
pub struct Flight {
    pub connection: usize,
    pub bytes: Vec<u8>,
}

/// The proxy; it runs until the test ends.
pub struct CountingProxy {
    pub port: u16,
    flights: Arc<Mutex<Vec<Flight>>>,
}

impl CountingProxy {
    /// A proxy on 127.0.0.1 in front of `target_port` on 127.0.0.1.
    pub async fn start(target_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let flights: Arc<Mutex<Vec<Flight>>> = Arc::default();
        let record = Arc::clone(&flights);
        tokio::spawn(async move {
            let mut connection = 0;
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)).await else {
                    continue;
                };
                connection += 1;
                tokio::spawn(relay(client, server, connection, Arc::clone(&record)));
            }
        });
        Self { port, flights }
    }

    /// Every flight so far.
    pub fn flights(&self) -> Vec<Flight> {
        self.flights.lock().expect("flights").clone()
    }

    /// Flights sent since `mark` (a count taken with `flights().len()`).
    pub fn since(&self, mark: usize) -> Vec<Flight> {
        self.flights().split_off(mark)
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    connection: usize,
    flights: Arc<Mutex<Vec<Flight>>>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Set when the client has been given server bytes since its last flight.
    let answered = Arc::new(AtomicBool::new(true));
    let heard = Arc::clone(&answered);
    let upstream = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(read) = client_read.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            if answered.swap(false, Ordering::SeqCst) {
                let bytes = buffer[..read.min(4096)].to_vec();
                flights
                    .lock()
                    .expect("flights")
                    .push(Flight { connection, bytes });
            }
            if server_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(read) = server_read.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            tokio::time::sleep(HOLD).await;
            // Marked before the client can see the bytes, hence before it can
            // answer them.
            heard.store(true, Ordering::SeqCst);
            if client_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}
