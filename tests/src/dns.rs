//! A tiny DNS server over UDP on a loopback address: answers A queries for the names it is given, with no
//! answer (NOERROR) for their other record types and NXDOMAIN for any other name. A real server speaking
//! the real protocol to the real resolver (glibc's, in the binaries under test); it exists because a test
//! must not depend on the machine's DNS. Port 53 (resolv.conf cannot name another): needs root.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct DnsServer {
    pub address: Ipv4Addr,
    queries: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl DnsServer {
    /// Starts a server on port 53 of a free 127.0.53.x address, answering `names` (lowercase, no trailing
    /// dot) with their addresses.
    pub fn start(names: &[(&str, Ipv4Addr)]) -> anyhow::Result<DnsServer> {
        let first = 20 + (std::process::id() % 200) as u8;
        let socket = (0..30u8)
            .map(|i| Ipv4Addr::new(127, 0, 53, first.wrapping_add(i).max(1)))
            .find_map(|ip| UdpSocket::bind(SocketAddr::from((ip, 53))).ok())
            .context("no 127.0.53.x:53 could be bound (port 53 needs root, and no DNS server may hold *:53)")?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let SocketAddr::V4(local) = socket.local_addr()? else { anyhow::bail!("bound to an IPv6 address") };
        let names: BTreeMap<String, Ipv4Addr> = names.iter().map(|(n, a)| (n.to_ascii_lowercase(), *a)).collect();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        std::thread::spawn({
            let (queries, stop) = (Arc::clone(&queries), Arc::clone(&stop));
            move || {
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, peer)) = socket.recv_from(&mut buf) else { continue };
                    if let Some((name, reply)) = answer(&buf[..len], &names) {
                        queries.lock().unwrap_or_else(|e| e.into_inner()).push(name);
                        let _ = socket.send_to(&reply, peer);
                    }
                }
            }
        });
        Ok(DnsServer { address: *local.ip(), queries, stop })
    }

    /// The names queried so far (every record type).
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The queried name and the reply to one query; None for what is not a standard query with one question.
pub fn answer(query: &[u8], names: &BTreeMap<String, Ipv4Addr>) -> Option<(String, Vec<u8>)> {
    const TYPE_A: u16 = 1;
    if query.len() < 12 || query[2] & 0x80 != 0 || u16::from_be_bytes([query[4], query[5]]) != 1 {
        return None;
    }
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let question = query.get(12..at + 4)?;
    let name = labels.join(".");
    let found = names.get(&name);
    // QR, RD copied from the query, RA; NXDOMAIN (3) for a name we do not serve.
    let flags: u16 = 0x8080 | (u16::from(query[2] & 0x01) << 8) | if found.is_some() { 0 } else { 3 };
    let answers: u16 = u16::from(found.is_some() && qtype == TYPE_A);
    let mut reply = Vec::with_capacity(question.len() + 32);
    reply.extend_from_slice(&query[..2]);
    reply.extend_from_slice(&flags.to_be_bytes());
    reply.extend_from_slice(&[0, 1]);
    reply.extend_from_slice(&answers.to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0]);
    reply.extend_from_slice(question);
    if let (Some(address), 1) = (found, answers) {
        // The name by pointer to the question (offset 12), type A, class IN, TTL 0, 4 bytes.
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        reply.extend_from_slice(&address.octets());
    }
    Some((name, reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }

    #[test]
    fn a_known_name_gets_its_address_and_an_unknown_one_nxdomain() {
        let names = BTreeMap::from([("web.test".to_owned(), Ipv4Addr::new(127, 0, 0, 1))]);
        let (name, reply) = answer(&query("Web.Test", 1), &names).unwrap();
        assert_eq!(name, "web.test");
        assert_eq!(&reply[..4], &[0xab, 0xcd, 0x81, 0x80]);
        assert_eq!(&reply[6..8], &[0, 1], "one answer");
        assert_eq!(&reply[reply.len() - 4..], &[127, 0, 0, 1]);
        let (_, aaaa) = answer(&query("web.test", 28), &names).unwrap();
        assert_eq!((&aaaa[2..4], &aaaa[6..8]), (&[0x81, 0x80][..], &[0, 0][..]), "NOERROR, no answer");
        let (_, unknown) = answer(&query("other.test", 1), &names).unwrap();
        assert_eq!(unknown[3] & 0x0f, 3, "NXDOMAIN");
    }
}
