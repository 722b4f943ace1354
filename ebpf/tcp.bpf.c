// tcp.bpf.c: TCP connection lifecycle per cgroup (connects, accepts, failed connects, closes, srtt at
// close, retransmits), aggregated in kernel maps so user space reads counters, never per-event records.
//
// Compiled CO-RE by agent/build.rs against a vmlinux.h generated from the running kernel's BTF.
// Layouts of `struct agg_key`, `struct agg_val` and the `tcp_lost` indices are mirrored in
// agent/src/ebpf/raw.rs; change both together.

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

// vmlinux.h carries types, not #defines.
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

#define DIR_OUTBOUND 0
#define DIR_INBOUND 1

// Indices of the `tcp_lost` per-CPU array.
#define LOST_SOCK_UPDATE 0  // the per-socket map refused an insert
#define LOST_AGG_UPDATE 1   // the aggregate map is full (it is a plain hash so this is countable)
#define LOST_AGG_LOOKUP 2   // an aggregate vanished between insert and lookup (a concurrent drain)
#define UNTRACKED_SOCK 3    // close/retransmit on a socket opened before the programs were attached
#define LOST_SLOTS 4

#define MAX_SOCKETS 65536
#define MAX_AGGREGATES 16384

// One aggregate: a local container (cgroup v2 id) talking to one remote address. Outbound keys carry the
// remote (service) port, inbound keys the local (listening) port, so ephemeral ports never multiply keys.
// IPv4 addresses sit in the first 4 bytes of the 16. `gen` lets user space drain one generation while
// the kernel writes the next (see agent/src/ebpf/tcp.rs). Zeroed before filling: padding is hashed.
struct agg_key {
    __u64 cgroup_id;
    __u8 local_ip[16];
    __u8 remote_ip[16];
    __u16 port;
    __u8 direction;
    __u8 family;
    __u8 gen;
    __u8 pad[3];
};

struct agg_val {
    __u64 established;
    __u64 failed;
    __u64 retransmits;
    __u64 closed;
    __u64 rtt_us_sum;
    __u64 rtt_count;
};

// What is known about a socket from the moment it is opened: whose it is, which side it is, and from
// ESTABLISHED on, its aggregate key. The key is kept rather than rebuilt at close because by then the
// socket may have handed its port to a TIME_WAIT socket (skc_num reads 0). At SYN_SENT the local port is
// not chosen yet, so until ESTABLISHED the key is built from the socket when needed.
struct sock_info {
    struct agg_key key;
    __u64 cgroup_id;
    __u32 pid;
    __u8 direction;
    __u8 has_key;
    __u8 pad[2];
};

// LRU: a socket whose close was missed (programs attached mid-life, or a lost event) must not pin a slot.
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, MAX_SOCKETS);
    __type(key, __u64);
    __type(value, struct sock_info);
} tcp_socks SEC(".maps");

// A plain hash rather than an LRU: user space drains it every interval, and a full map must show up in
// `tcp_lost` instead of silently evicting counts that were not read yet.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MAX_AGGREGATES);
    __type(key, struct agg_key);
    __type(value, struct agg_val);
} tcp_aggs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, LOST_SLOTS);
    __type(key, __u32);
    __type(value, __u64);
} tcp_lost SEC(".maps");

// Slot 0: the generation new aggregates are written to; flipped by user space before each drain.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} tcp_gen SEC(".maps");

static __always_inline void count_lost(__u32 slot)
{
    __u64 *v = bpf_map_lookup_elem(&tcp_lost, &slot);
    if (v)
        *v += 1; // per-CPU: no atomics needed
}

// The cgroup v2 cgroup the socket was created in (inherited by accepted sockets from their listener).
// This is right in softirq, where the current task is unrelated to the socket. 0 if the kernel's
// sock_cgroup_data has no `cgroup` pointer (kernels before 5.15 packed it in a union).
static __always_inline __u64 sock_cgroup_id(const struct sock *sk)
{
    if (!bpf_core_field_exists(sk->sk_cgrp_data.cgroup))
        return 0;
    struct cgroup *cgroup = sk->sk_cgrp_data.cgroup;
    return cgroup ? cgroup->kn->id : 0;
}

// Fields are read by direct loads: in tp_btf programs `sk` is a typed kernel pointer, the loads are CO-RE
// relocated (vmlinux.h marks its structs preserve_access_index) and far cheaper than bpf_probe_read_kernel.
// Builds the aggregate key from the socket's current addresses. Returns 0 for families other than
// IPv4 and IPv6.
static __always_inline int fill_key(struct agg_key *key, const struct sock *sk, __u64 cgroup_id, __u8 direction)
{
    __u16 family = sk->__sk_common.skc_family;
    __builtin_memset(key, 0, sizeof(*key));
    key->cgroup_id = cgroup_id;
    key->direction = direction;
    key->family = (__u8)family;
    if (family == AF_INET) {
        __u32 saddr = sk->__sk_common.skc_rcv_saddr;
        __u32 daddr = sk->__sk_common.skc_daddr;
        __builtin_memcpy(key->local_ip, &saddr, 4);
        __builtin_memcpy(key->remote_ip, &daddr, 4);
    } else if (family == AF_INET6) {
        // Arrays must be copied with a probe read: the verifier rejects direct reads of them here.
        bpf_probe_read_kernel(key->local_ip, 16, &sk->__sk_common.skc_v6_rcv_saddr);
        bpf_probe_read_kernel(key->remote_ip, 16, &sk->__sk_common.skc_v6_daddr);
    } else {
        return 0;
    }
    if (direction == DIR_OUTBOUND)
        key->port = bpf_ntohs(sk->__sk_common.skc_dport);
    else
        key->port = sk->__sk_common.skc_num;
    return 1;
}

// The aggregate key of a tracked socket: the one stored when it established, or, before that (a
// failed connect, a SYN retransmit), built from the socket, whose tuple is complete by then.
static __always_inline int key_of(struct agg_key *key, const struct sock_info *info, const struct sock *sk)
{
    if (info->has_key) {
        *key = info->key;
        return 1;
    }
    return fill_key(key, sk, info->cgroup_id, info->direction);
}

// The aggregate for `key` in the current generation, created if missing.
static __always_inline struct agg_val *agg_for(struct agg_key key)
{
    __u32 zero = 0;
    __u32 *gen = bpf_map_lookup_elem(&tcp_gen, &zero);
    key.gen = gen ? (__u8)(*gen & 1) : 0;
    struct agg_val *val = bpf_map_lookup_elem(&tcp_aggs, &key);
    if (val)
        return val;
    struct agg_val empty = {};
    // NOEXIST: another CPU may have inserted the same key meanwhile; EEXIST is then fine.
    long err = bpf_map_update_elem(&tcp_aggs, &key, &empty, BPF_NOEXIST);
    if (err && err != -17 /* EEXIST */) {
        count_lost(LOST_AGG_UPDATE);
        return 0;
    }
    val = bpf_map_lookup_elem(&tcp_aggs, &key);
    if (!val)
        count_lost(LOST_AGG_LOOKUP);
    return val;
}

static __always_inline void remember(const struct sock *sk, __u64 cgroup_id, __u32 pid, __u8 direction,
                                     const struct agg_key *key)
{
    __u64 sk_key = (__u64)sk;
    struct sock_info info = {};
    info.cgroup_id = cgroup_id;
    info.pid = pid;
    info.direction = direction;
    if (key) {
        info.key = *key;
        info.has_key = 1;
    }
    if (bpf_map_update_elem(&tcp_socks, &sk_key, &info, BPF_ANY))
        count_lost(LOST_SOCK_UPDATE);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcp_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
    // Most transitions (FIN_WAIT*, CLOSE_WAIT, LAST_ACK, LISTEN) carry nothing we count: leave before
    // touching the socket, which keeps the mean cost per event low.
    if (newstate != TCP_CLOSE && newstate != TCP_SYN_SENT && newstate != TCP_ESTABLISHED)
        return 0;
    if (sk->sk_protocol != IPPROTO_TCP)
        return 0;
    __u64 sk_key = (__u64)sk;

    if (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) {
        // connect(2), in the connecting task's context: the only moment its pid is at hand.
        __u64 cgroup_id = sock_cgroup_id(sk);
        if (!cgroup_id)
            cgroup_id = bpf_get_current_cgroup_id();
        remember(sk, cgroup_id, bpf_get_current_pid_tgid() >> 32, DIR_OUTBOUND, 0);
        return 0;
    }

    if (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_SENT) {
        // Usually in softirq (the SYN-ACK arrived): use what connect(2) recorded.
        struct sock_info *info = bpf_map_lookup_elem(&tcp_socks, &sk_key);
        __u64 cgroup_id = 0;
        __u32 pid = 0;
        if (info) {
            cgroup_id = info->cgroup_id;
            pid = info->pid;
        } else {
            count_lost(UNTRACKED_SOCK);
            cgroup_id = sock_cgroup_id(sk);
        }
        struct agg_key key;
        if (!fill_key(&key, sk, cgroup_id, DIR_OUTBOUND))
            return 0;
        remember(sk, cgroup_id, pid, DIR_OUTBOUND, &key);
        struct agg_val *val = agg_for(key);
        if (val)
            __sync_fetch_and_add(&val->established, 1);
        return 0;
    }

    if (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_RECV) {
        // The accepted child socket, in softirq: no meaningful current task, so no pid; the cgroup comes
        // from the socket, which inherited it from the listener.
        __u64 cgroup_id = sock_cgroup_id(sk);
        struct agg_key key;
        if (!fill_key(&key, sk, cgroup_id, DIR_INBOUND))
            return 0;
        remember(sk, cgroup_id, 0, DIR_INBOUND, &key);
        struct agg_val *val = agg_for(key);
        if (val)
            __sync_fetch_and_add(&val->established, 1);
        return 0;
    }

    if (newstate == TCP_CLOSE) {
        struct sock_info *info = bpf_map_lookup_elem(&tcp_socks, &sk_key);
        if (!info) {
            // Accept-queue children that never established, or sockets older than the programs.
            if (oldstate != TCP_SYN_RECV && oldstate != TCP_LISTEN)
                count_lost(UNTRACKED_SOCK);
            return 0;
        }
        // Copy out before deleting: the value pointer dies with the element.
        struct agg_key key;
        if (!key_of(&key, info, sk))
            return 0;
        bpf_map_delete_elem(&tcp_socks, &sk_key);
        struct agg_val *val = agg_for(key);
        if (!val)
            return 0;
        if (oldstate == TCP_SYN_SENT) {
            __sync_fetch_and_add(&val->failed, 1);
            return 0;
        }
        __sync_fetch_and_add(&val->closed, 1);
        // srtt_us holds 8 x the smoothed RTT in microseconds.
        __u32 srtt = BPF_CORE_READ((struct tcp_sock *)sk, srtt_us) >> 3;
        if (srtt) {
            __sync_fetch_and_add(&val->rtt_us_sum, srtt);
            __sync_fetch_and_add(&val->rtt_count, 1);
        }
    }
    return 0;
}

// Runs in softirq (retransmit timer) as often as in process context: attributed through the socket,
// never through the current task.
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit, const struct sock *sk)
{
    __u64 sk_key = (__u64)sk;
    struct sock_info *info = bpf_map_lookup_elem(&tcp_socks, &sk_key);
    if (!info) {
        count_lost(UNTRACKED_SOCK);
        return 0;
    }
    struct agg_key key;
    if (!key_of(&key, info, sk))
        return 0;
    struct agg_val *val = agg_for(key);
    if (val)
        __sync_fetch_and_add(&val->retransmits, 1);
    return 0;
}
