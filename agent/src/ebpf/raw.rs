//! Decoding of the eBPF programs' map keys and values from raw bytes into plain Rust values.
//!
//! The maps are read as byte arrays rather than `#[repr(C)]` structs so no `unsafe impl Pod` is needed; the
//! layouts below mirror `struct agg_key` / `struct agg_val` and the `tcp_lost` slots in `ebpf/tcp.bpf.c`,
//! and `struct hist_key` / `struct hist` in `ebpf/sched.bpf.c`.
//! Integers are in host byte order (the kernel and the agent share a CPU); addresses in network order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use causely_model::Direction;

/// Size of `struct agg_key`: u64 cgroup, 16+16 address bytes, u16 port, u8 direction, family, gen, 3 pad.
pub const AGG_KEY_LEN: usize = 48;
/// Size of `struct agg_val`: six u64 counters.
pub const AGG_VAL_LEN: usize = 48;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const DIR_OUTBOUND: u8 = 0;
const DIR_INBOUND: u8 = 1;
// Offsets in `struct agg_key`.
const PORT_OFFSET: usize = 40;
const DIRECTION_OFFSET: usize = 42;
const FAMILY_OFFSET: usize = 43;
const GEN_OFFSET: usize = 44;

/// Slots of the `tcp_lost` per-CPU array that count updates the kernel side could not make.
pub const LOST_SLOTS: [u32; 3] = [0, 1, 2];
/// Slot counting events on sockets opened before the programs were attached (not lost, just unattributed).
pub const UNTRACKED_SLOT: u32 = 3;

/// Counters of one (cgroup, local address, remote address, direction) aggregate over one read interval.
///
/// Ports are aggregated away on the ephemeral side: an outbound aggregate has local port 0 and the remote
/// (service) port; an inbound aggregate has the local (listening) port and remote port 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionCounters {
    /// The cgroup v2 id (inode of the cgroup2 directory) the socket was created in; 0 if unknown.
    pub cgroup_id: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub direction: Direction,
    pub established: u64,
    /// Connects that went from SYN_SENT straight to CLOSE (refused, reset or timed out).
    pub failed: u64,
    pub retransmits: u64,
    pub closed: u64,
    /// Sum of the smoothed RTTs (microseconds) of the connections closed in the interval.
    pub rtt_us_sum: u64,
    /// Number of closed connections in `rtt_us_sum`.
    pub rtt_count: u64,
}

impl ConnectionCounters {
    /// Mean smoothed RTT at close, if any connection with an RTT closed.
    pub fn mean_rtt_us(&self) -> Option<u64> {
        self.rtt_us_sum.checked_div(self.rtt_count)
    }
}

/// Why a key from the map could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown address family {0} in an aggregate key")]
    Family(u8),
    #[error("unknown direction {0} in an aggregate key")]
    Direction(u8),
}

/// The generation bit of a raw key: user space drains one generation while the kernel writes the other.
pub fn key_generation(key: &[u8; AGG_KEY_LEN]) -> u8 {
    key[GEN_OFFSET] & 1
}

/// Decodes one aggregate map entry.
pub fn decode(key: &[u8; AGG_KEY_LEN], val: &[u8; AGG_VAL_LEN]) -> Result<ConnectionCounters, DecodeError> {
    let cgroup_id = u64_at(key, 0);
    let port = u16::from_ne_bytes([key[PORT_OFFSET], key[PORT_OFFSET + 1]]);
    let direction = match key[DIRECTION_OFFSET] {
        DIR_OUTBOUND => Direction::Outbound,
        DIR_INBOUND => Direction::Inbound,
        other => return Err(DecodeError::Direction(other)),
    };
    let local_ip = ip(key[FAMILY_OFFSET], &key[8..24])?;
    let remote_ip = ip(key[FAMILY_OFFSET], &key[24..40])?;
    let (local_port, remote_port) = match direction {
        Direction::Outbound => (0, port),
        Direction::Inbound => (port, 0),
    };
    Ok(ConnectionCounters {
        cgroup_id,
        local: SocketAddr::new(local_ip, local_port),
        remote: SocketAddr::new(remote_ip, remote_port),
        direction,
        established: u64_at(val, 0),
        failed: u64_at(val, 8),
        retransmits: u64_at(val, 16),
        closed: u64_at(val, 24),
        rtt_us_sum: u64_at(val, 32),
        rtt_count: u64_at(val, 40),
    })
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_ne_bytes(word)
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket talking IPv4) come out as IPv4.
fn ip(family: u8, bytes: &[u8]) -> Result<IpAddr, DecodeError> {
    match family {
        AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))),
        AF_INET6 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[..16]);
            Ok(IpAddr::V6(Ipv6Addr::from(octets)).to_canonical())
        }
        other => Err(DecodeError::Family(other)),
    }
}

/// Log2 buckets of the run-queue latency histogram.
pub const HIST_SLOTS: usize = 32;
/// Size of `struct hist_key`: u64 cgroup, u32 generation, u32 pad.
pub const HIST_KEY_LEN: usize = 16;
/// Size of `struct hist`: the slots, then u64 count and u64 sum_ns.
pub const HIST_VAL_LEN: usize = HIST_SLOTS * 8 + 16;

/// Run-queue latency of the tasks of one cgroup over one read interval: how long they waited, runnable,
/// for a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunqueueLatency {
    /// The cgroup v2 id (inode of the cgroup2 directory).
    pub cgroup_id: u64,
    /// `buckets[i]` counts waits in [2^i, 2^(i+1)) microseconds; bucket 0 also holds waits under 1 us.
    pub buckets: [u64; HIST_SLOTS],
    pub count: u64,
    pub sum_ns: u64,
}

impl RunqueueLatency {
    /// Upper bound (exclusive, microseconds) of the bucket holding the q-quantile (0..=1), or None if empty.
    pub fn quantile_upper_us(&self, q: f64) -> Option<u64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(1u64 << (i + 1));
            }
        }
        None
    }
}

/// The generation of a raw histogram key.
pub fn hist_key_generation(key: &[u8; HIST_KEY_LEN]) -> u32 {
    u32::from_ne_bytes([key[8], key[9], key[10], key[11]]) & 1
}

/// Decodes one histogram map entry.
pub fn decode_hist(key: &[u8; HIST_KEY_LEN], val: &[u8; HIST_VAL_LEN]) -> RunqueueLatency {
    let mut buckets = [0u64; HIST_SLOTS];
    for (i, bucket) in buckets.iter_mut().enumerate() {
        *bucket = u64_at(val, i * 8);
    }
    RunqueueLatency {
        cgroup_id: u64_at(key, 0),
        buckets,
        count: u64_at(val, HIST_SLOTS * 8),
        sum_ns: u64_at(val, HIST_SLOTS * 8 + 8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Key {
        cgroup: u64,
        local: [u8; 16],
        remote: [u8; 16],
        port: u16,
        direction: u8,
        family: u8,
        generation: u8,
    }

    /// Lays a key out the way `struct agg_key` is laid out by clang for the BPF target.
    fn encode_key(k: &Key) -> [u8; AGG_KEY_LEN] {
        let mut b = [0u8; AGG_KEY_LEN];
        b[0..8].copy_from_slice(&k.cgroup.to_ne_bytes());
        b[8..24].copy_from_slice(&k.local);
        b[24..40].copy_from_slice(&k.remote);
        b[40..42].copy_from_slice(&k.port.to_ne_bytes());
        b[42] = k.direction;
        b[43] = k.family;
        b[44] = k.generation;
        b
    }

    fn encode_val(counters: [u64; 6]) -> [u8; AGG_VAL_LEN] {
        let mut b = [0u8; AGG_VAL_LEN];
        for (i, c) in counters.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&c.to_ne_bytes());
        }
        b
    }

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&a);
        b
    }

    #[test]
    fn an_outbound_ipv4_key_carries_the_remote_port_only() {
        let key = Key {
            cgroup: 4242,
            local: v4([10, 244, 1, 5]),
            remote: v4([10, 96, 0, 20]),
            port: 5432,
            direction: 0,
            family: 2,
            generation: 1,
        };
        let c = decode(&encode_key(&key), &encode_val([12, 1, 3, 10, 5000, 10])).unwrap();
        assert_eq!(c.cgroup_id, 4242);
        assert_eq!(c.local, "10.244.1.5:0".parse().unwrap());
        assert_eq!(c.remote, "10.96.0.20:5432".parse().unwrap());
        assert_eq!(c.direction, Direction::Outbound);
        assert_eq!((c.established, c.failed, c.retransmits, c.closed), (12, 1, 3, 10));
        assert_eq!(c.mean_rtt_us(), Some(500));
        assert_eq!(key_generation(&encode_key(&key)), 1);
    }

    #[test]
    fn an_inbound_key_carries_the_local_port_only() {
        let key = Key {
            cgroup: 1,
            local: v4([127, 0, 0, 1]),
            remote: v4([127, 0, 0, 1]),
            port: 8080,
            direction: 1,
            family: 2,
            generation: 0,
        };
        let c = decode(&encode_key(&key), &encode_val([1, 0, 0, 0, 0, 0])).unwrap();
        assert_eq!(c.direction, Direction::Inbound);
        assert_eq!(c.local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.remote, "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.mean_rtt_us(), None);
        assert_eq!(key_generation(&encode_key(&key)), 0);
    }

    #[test]
    fn ipv6_keys_decode_and_ipv4_mapped_addresses_become_ipv4() {
        let local: Ipv6Addr = "fd00::1".parse().unwrap();
        let mapped: Ipv6Addr = "::ffff:10.0.0.7".parse().unwrap();
        let key = Key {
            cgroup: 9,
            local: local.octets(),
            remote: mapped.octets(),
            port: 443,
            direction: 0,
            family: 10,
            generation: 0,
        };
        let c = decode(&encode_key(&key), &encode_val([0; 6])).unwrap();
        assert_eq!(c.local.ip(), IpAddr::V6(local));
        assert_eq!(c.remote, "10.0.0.7:443".parse().unwrap());
    }

    #[test]
    fn unknown_families_and_directions_are_errors() {
        let mut key =
            Key { cgroup: 0, local: [0; 16], remote: [0; 16], port: 1, direction: 0, family: 1, generation: 0 };
        assert_eq!(decode(&encode_key(&key), &encode_val([0; 6])), Err(DecodeError::Family(1)));
        key.family = 2;
        key.direction = 7;
        assert_eq!(decode(&encode_key(&key), &encode_val([0; 6])), Err(DecodeError::Direction(7)));
    }

    #[test]
    fn a_histogram_decodes_and_gives_bucket_bounds_for_quantiles() {
        let mut key = [0u8; HIST_KEY_LEN];
        key[0..8].copy_from_slice(&77u64.to_ne_bytes());
        key[8..12].copy_from_slice(&1u32.to_ne_bytes());
        let mut val = [0u8; HIST_VAL_LEN];
        // 90 waits in bucket 3 ([8, 16) us), 10 in bucket 10 ([1024, 2048) us).
        val[3 * 8..4 * 8].copy_from_slice(&90u64.to_ne_bytes());
        val[10 * 8..11 * 8].copy_from_slice(&10u64.to_ne_bytes());
        val[HIST_SLOTS * 8..HIST_SLOTS * 8 + 8].copy_from_slice(&100u64.to_ne_bytes());
        val[HIST_SLOTS * 8 + 8..].copy_from_slice(&123_456u64.to_ne_bytes());
        let h = decode_hist(&key, &val);
        assert_eq!(hist_key_generation(&key), 1);
        assert_eq!((h.cgroup_id, h.count, h.sum_ns), (77, 100, 123_456));
        assert_eq!(h.buckets[3], 90);
        assert_eq!(h.quantile_upper_us(0.5), Some(16));
        assert_eq!(h.quantile_upper_us(0.99), Some(2048));
        let empty = RunqueueLatency { cgroup_id: 1, buckets: [0; HIST_SLOTS], count: 0, sum_ns: 0 };
        assert_eq!(empty.quantile_upper_us(0.5), None);
    }
}
