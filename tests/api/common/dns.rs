//! A scripted DNS server on loopback for the tests: it answers A queries for the
//! names it is given, in order (the last answer repeats), and counts the queries
//! it receives. A real protocol peer for querygate's resolver, like the model
//! server in `fake_model`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

/// Answers per name, in order.
pub struct DnsServer {
    pub address: SocketAddr,
    queries: Arc<Mutex<HashMap<String, usize>>>,
}

impl DnsServer {
    /// Serves `answers`: each name's successive A answers.
    pub async fn start(answers: HashMap<String, Vec<Ipv4Addr>>) -> Self {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = socket.local_addr().expect("address");
        let queries: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let counts = Arc::clone(&queries);
        tokio::spawn(async move {
            let mut buffer = [0u8; 512];
            while let Ok((length, peer)) = socket.recv_from(&mut buffer).await {
                let Some((name, qtype, question_end)) = parse_question(&buffer[..length]) else {
                    continue;
                };
                let answer = (qtype == 1).then(|| {
                    let mut counts = counts.lock().expect("counts");
                    let seen = counts.entry(name.clone()).or_insert(0);
                    let list = answers.get(&name);
                    let address = list
                        .and_then(|l| l.get(*seen).or_else(|| l.last()))
                        .copied();
                    *seen += 1;
                    address
                });
                let reply = reply(
                    &buffer[..question_end],
                    answer.flatten(),
                    answers.contains_key(&name),
                );
                let _ = socket.send_to(&reply, peer).await;
            }
        });
        Self { address, queries }
    }

    /// A queries received for `name`.
    pub fn a_queries(&self, name: &str) -> usize {
        self.queries
            .lock()
            .expect("counts")
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

/// The question's name (lower case, no trailing dot), type, and where it ends.
fn parse_question(packet: &[u8]) -> Option<(String, u16, usize)> {
    let mut labels = Vec::new();
    let mut i = 12;
    loop {
        let length = usize::from(*packet.get(i)?);
        i += 1;
        if length == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(packet.get(i..i + length)?).to_ascii_lowercase());
        i += length;
    }
    let qtype = u16::from_be_bytes([*packet.get(i)?, *packet.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

/// A response echoing the question, with one A record (TTL 0) when there is an
/// answer; NXDOMAIN for names it does not know.
fn reply(query: &[u8], answer: Option<Ipv4Addr>, known: bool) -> Vec<u8> {
    let mut out = query.to_vec();
    out[2] = 0x84 | (query[2] & 0x01); // response, authoritative, keep RD
    out[3] = if known { 0x00 } else { 0x03 };
    out[6..8].copy_from_slice(&u16::from(answer.is_some()).to_be_bytes());
    out[8..12].fill(0);
    if let Some(address) = answer {
        out.extend_from_slice(&[0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01]);
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&address.octets());
    }
    out
}
