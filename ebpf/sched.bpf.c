// sched.bpf.c: run-queue latency per cgroup (time from a task becoming runnable to it running), as a log2
// histogram of microseconds per cgroup v2 id, so user space reads histograms, never per-event records.
//
// Compiled CO-RE by agent/build.rs. The layouts of `struct hist_key`, `struct hist` and the `sched_lost`
// slots are mirrored in agent/src/ebpf/raw.rs; change both together.

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define TASK_RUNNING 0
#define HIST_SLOTS 32
#define MAX_CGROUPS 4096

// Indices of the `sched_lost` per-CPU array (same meaning as in tcp.bpf.c).
#define LOST_HIST_UPDATE 1
#define LOST_HIST_LOOKUP 2
#define LOST_SLOTS 4

// `gen` as in tcp.bpf.c: user space drains one generation while the kernel writes the other.
struct hist_key {
    __u64 cgroup_id;
    __u32 gen;
    __u32 pad;
};

// slots[i] counts latencies in [2^i, 2^(i+1)) microseconds; slot 0 also takes everything under 1 us.
struct hist {
    __u64 slots[HIST_SLOTS];
    __u64 count;
    __u64 sum_ns;
};

// When each task became runnable, in task-local storage: no pid-keyed hash to size, no eviction, freed with
// the task, and much cheaper per event than an LRU hash update on every wakeup.
struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, __u64);
} sched_start SEC(".maps");

// A plain hash so a full map shows up in `sched_lost` instead of silently evicting unread counts.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MAX_CGROUPS);
    __type(key, struct hist_key);
    __type(value, struct hist);
} sched_hists SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, LOST_SLOTS);
    __type(key, __u32);
    __type(value, __u64);
} sched_lost SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} sched_gen SEC(".maps");

static __always_inline void count_lost(__u32 slot)
{
    __u64 *v = bpf_map_lookup_elem(&sched_lost, &slot);
    if (v)
        *v += 1;
}

static __always_inline void enqueued(struct task_struct *p)
{
    if (!p->pid) // the idle task
        return;
    __u64 *start = bpf_task_storage_get(&sched_start, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (start)
        *start = bpf_ktime_get_ns();
}

static __always_inline __u32 log2_slot(__u64 us)
{
    // floor(log2(us)) by halving the search five times, without a loop or data-dependent branches;
    // 0 for 0 and 1, capped at the last slot.
    __u32 r = 0, shift;
    shift = (us > 0xFFFFFFFFULL) << 5; us >>= shift; r |= shift;
    shift = (us > 0xFFFF) << 4; us >>= shift; r |= shift;
    shift = (us > 0xFF) << 3; us >>= shift; r |= shift;
    shift = (us > 0xF) << 2; us >>= shift; r |= shift;
    shift = (us > 0x3) << 1; us >>= shift; r |= shift;
    r |= (__u32)(us >> 1);
    r = r < HIST_SLOTS ? r : HIST_SLOTS - 1;
    // A no-op after the cap (HIST_SLOTS is a power of two) that the compiler must keep, so the
    // verifier sees the bound on the register actually used as the index.
    barrier_var(r);
    return r & (HIST_SLOTS - 1);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *p)
{
    enqueued(p);
    return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *p)
{
    enqueued(p);
    return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
    // A preempted task goes straight back to the run queue without a wakeup.
    if (prev->__state == TASK_RUNNING)
        enqueued(prev);

    if (!next->pid)
        return 0;
    __u64 *start = bpf_task_storage_get(&sched_start, next, 0, 0);
    if (!start || !*start)
        return 0;
    __u64 delta = bpf_ktime_get_ns() - *start;
    *start = 0; // consumed: the next wait starts at the next wakeup

    struct hist_key key = {};
    // The task's cgroup on the v2 (default) hierarchy: the id bpf_get_current_cgroup_id() would give it.
    key.cgroup_id = next->cgroups->dfl_cgrp->kn->id;
    __u32 zero = 0;
    __u32 *gen = bpf_map_lookup_elem(&sched_gen, &zero);
    key.gen = gen ? (*gen & 1) : 0;

    struct hist *h = bpf_map_lookup_elem(&sched_hists, &key);
    if (!h) {
        static const struct hist empty = {};
        long err = bpf_map_update_elem(&sched_hists, &key, &empty, BPF_NOEXIST);
        if (err && err != -17 /* EEXIST */) {
            count_lost(LOST_HIST_UPDATE);
            return 0;
        }
        h = bpf_map_lookup_elem(&sched_hists, &key);
        if (!h) {
            count_lost(LOST_HIST_LOOKUP);
            return 0;
        }
    }
    __u32 slot = log2_slot(delta / 1000);
    if (slot < HIST_SLOTS)
        __sync_fetch_and_add(&h->slots[slot], 1);
    __sync_fetch_and_add(&h->count, 1);
    __sync_fetch_and_add(&h->sum_ns, delta);
    return 0;
}
