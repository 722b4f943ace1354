//! The egress store: the durable, loss-free queue of accepted batches, the ledger, and the kept
//! payloads, all in one state directory.
//!
//! Layout:
//! ```text
//! <dir>/ledger.jsonl               the hash-chained ledger (causely_model::ledger), one entry per line;
//!                                  lines are never rewritten or removed, except a torn last line
//! <dir>/payloads/<seq:020>.json    the exact bytes of each accepted batch, kept until delivered and
//!                                  older than the retention, or until dropped at the disk bound
//! <dir>/delivered                  the highest seq the upstream acknowledged, in decimal
//! <dir>/needs-snapshot             present while the upstream has missed batches (see below)
//! <dir>/lock                       locked while a store has the directory open
//! ```
//!
//! **Accepting.** A batch must carry the next seq. Its serialization is checked by the egress guard;
//! a refusal is ledgered as `rejected` and consumes no seq. Otherwise the payload is written to a
//! temporary file, synced, renamed into place and the directory synced; then the `sent` line is
//! appended and synced. Only then is the batch accepted, and only accepted batches are delivered.
//!
//! **Disk bound.** Undelivered payloads may take at most `max_pending_bytes`. When a new batch would
//! exceed it, the oldest undelivered batches are dropped first: each gets a `dropped` ledger entry
//! and its payload is deleted. The batch being sent right now is never dropped, so `dropped` always
//! means "never acknowledged by the upstream". A single batch larger than the bound is still
//! accepted, so the bound can be exceeded by one batch. Because the upstream then misses changes,
//! the store sets [`EgressStore::needs_snapshot`] (kept on disk across restarts); the producer must
//! next send a full topology snapshot together with every open symptom, after which the upstream has
//! converged again. Accepting a snapshot batch clears the flag.
//!
//! **Crash recovery.** The process may be killed at any instant. On open: temporary files are
//! removed; a last ledger line without its newline is cut off (its append never completed, so the
//! batch was never reported accepted nor delivered); a payload with the seq after the last ledgered
//! one (written, not yet ledgered) is checked again by the guard and ledgered as `sent`, or removed
//! and ledgered as `rejected`; payloads of dropped or unknown seqs are removed; an undelivered batch
//! whose payload is gone is ledgered as `dropped`. The seq after the last `sent` entry is next, so
//! an accepted batch is never lost and a seq is never reused. A ledger whose chain does not verify
//! is refused: the store will not append to a record it cannot vouch for.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use causely_model::guard::{EgressGuard, Rejection, RejectionRule};
use causely_model::ledger::{FIRST_SEQ, LedgerEntry, LedgerRecord, LedgerWriter, sha256_hex};
use causely_model::{EgressBatch, TopologyPayload, UnixMillis};

const LEDGER: &str = "ledger.jsonl";
const PAYLOADS: &str = "payloads";
const DELIVERED: &str = "delivered";
const NEEDS_SNAPSHOT: &str = "needs-snapshot";
const LOCK: &str = "lock";
const TMP_SUFFIX: &str = ".tmp";
/// Every this many entries, the byte offset of a ledger line is remembered for paging.
const CHECKPOINT_EVERY: u64 = 256;

/// How much the store may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Bound on the bytes of undelivered payloads (see the module documentation).
    pub max_pending_bytes: u64,
    /// How long delivered payloads stay on disk for verification, counted from acceptance.
    pub retention: Duration,
}

/// A batch the store has made durable and will deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub seq: u64,
    pub bytes: u64,
}

/// Counters since the ledger began, and the queue as it stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreStats {
    pub accepted: u64,
    pub rejected: u64,
    pub dropped: u64,
    pub accepted_bytes: u64,
    /// Highest seq the upstream acknowledged; 0 before the first.
    pub delivered_seq: u64,
    pub pending_batches: u64,
    pub pending_bytes: u64,
    pub next_seq: u64,
    pub needs_snapshot: bool,
    /// Lines in the ledger.
    pub ledger_entries: u64,
}

/// One ledger entry with the exact line it was read from, so a reader can check the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerLine {
    pub entry: LedgerEntry,
    pub line: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{} is in use by another egress store", path.display())]
    Locked { path: PathBuf },
    #[error("{} line {line}: {detail}", path.display())]
    Corrupt { path: PathBuf, line: u64, detail: String },
    #[error("seq {seq} cannot be marked delivered: the oldest undelivered batch is {oldest:?}")]
    OutOfOrder { seq: u64, oldest: Option<u64> },
    #[error("cannot encode a ledger entry: {0}")]
    Encode(#[from] serde_json::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("batch carries seq {found}, the next seq is {expected}")]
    WrongSeq { expected: u64, found: u64 },
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("cannot encode the batch: {0}")]
    Encode(serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

#[derive(Debug, Clone, Copy)]
struct Queued {
    seq: u64,
    bytes: u64,
    time: UnixMillis,
}

/// The durable egress queue, ledger and kept payloads in one directory; see the module docs.
#[derive(Debug)]
pub struct EgressStore {
    dir: PathBuf,
    limits: StoreLimits,
    _lock: File,
    ledger: File,
    ledger_len: u64,
    /// Offset of entry `k * CHECKPOINT_EVERY` at position `k`.
    checkpoints: Vec<u64>,
    writer: LedgerWriter,
    next_seq: u64,
    delivered: u64,
    /// Undelivered batches, oldest first.
    pending: VecDeque<Queued>,
    pending_bytes: u64,
    /// Delivered batches whose payload is still on disk, oldest first.
    kept: VecDeque<Queued>,
    /// The batch handed out by `next_pending` and not yet acknowledged.
    in_flight: Option<u64>,
    needs_snapshot: bool,
    accepted: u64,
    rejected: u64,
    dropped: u64,
    accepted_bytes: u64,
}

fn payload_name(seq: u64) -> String {
    format!("{seq:020}.json")
}

fn now_millis() -> UnixMillis {
    UnixMillis(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(path)(e)),
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` so that it is either absent or complete, even across a crash.
fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(io_error(path)(e));
    }
    sync_dir(dir)
}

/// Seqs of the payload files in `dir`, after removing temporary files.
fn scan_payloads(dir: &Path) -> Result<BTreeSet<u64>, StoreError> {
    let mut seqs = BTreeSet::new();
    for item in fs::read_dir(dir).map_err(io_error(dir))? {
        let path = item.map_err(io_error(dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.ends_with(TMP_SUFFIX) {
            remove_if_present(&path)?;
        } else if let Some(seq) = name.strip_suffix(".json").and_then(|s| s.parse::<u64>().ok()) {
            seqs.insert(seq);
        } else {
            tracing::warn!(path = %path.display(), "unexpected file in the egress payload directory; left alone");
        }
    }
    Ok(seqs)
}

impl EgressStore {
    /// Opens (creating if needed) the store in `dir` and recovers from any crash; `guard` re-checks
    /// a payload that was written but not yet ledgered.
    pub fn open(dir: &Path, limits: StoreLimits, guard: &EgressGuard) -> Result<Self, StoreError> {
        let payload_dir = dir.join(PAYLOADS);
        fs::create_dir_all(&payload_dir).map_err(io_error(&payload_dir))?;
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Locked { path: dir.to_owned() }),
            Err(fs::TryLockError::Error(e)) => return Err(io_error(&lock_path)(e)),
        }
        remove_if_present(&dir.join(format!("{DELIVERED}{TMP_SUFFIX}")))?;
        let on_disk = scan_payloads(&payload_dir)?;

        let delivered_path = dir.join(DELIVERED);
        let delivered = match fs::read_to_string(&delivered_path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|e| StoreError::Corrupt {
                path: delivered_path.clone(),
                line: 0,
                detail: format!("not a seq: {e}"),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_error(&delivered_path)(e)),
        };

        let ledger_path = dir.join(LEDGER);
        let mut ledger = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&ledger_path)
            .map_err(io_error(&ledger_path))?;
        let replay = Replay::read(&mut ledger, &ledger_path, delivered, &on_disk)?;
        if replay.torn_tail {
            tracing::warn!(path = %ledger_path.display(), "cutting off a ledger line whose append did not complete");
            ledger.set_len(replay.len).and_then(|()| ledger.sync_all()).map_err(io_error(&ledger_path))?;
        }
        if delivered > replay.last_seq {
            return Err(StoreError::Corrupt {
                path: delivered_path,
                line: 0,
                detail: format!("delivered seq {delivered} is beyond the last ledgered seq {}", replay.last_seq),
            });
        }

        let mut store = EgressStore {
            dir: dir.to_owned(),
            limits,
            _lock: lock,
            ledger,
            ledger_len: replay.len,
            checkpoints: replay.checkpoints,
            writer: LedgerWriter::resume(replay.entries, replay.last_line.as_deref()),
            next_seq: replay.last_seq + 1,
            delivered,
            pending: VecDeque::new(),
            pending_bytes: 0,
            kept: replay.kept.into_values().collect(),
            in_flight: None,
            needs_snapshot: dir.join(NEEDS_SNAPSHOT).exists(),
            accepted: replay.accepted,
            rejected: replay.rejected,
            dropped: replay.dropped,
            accepted_bytes: replay.accepted_bytes,
        };
        for queued in replay.pending.into_values() {
            store.pending_bytes += queued.bytes;
            store.pending.push_back(queued);
        }
        store.recover_payloads(&on_disk, guard)?;
        Ok(store)
    }

    /// Reconciles the payload files with the ledger (see "Crash recovery" in the module docs).
    fn recover_payloads(&mut self, on_disk: &BTreeSet<u64>, guard: &EgressGuard) -> Result<(), StoreError> {
        let last_seq = self.next_seq - 1;
        let known: BTreeSet<u64> = self.pending.iter().chain(&self.kept).map(|q| q.seq).collect();
        for &seq in on_disk {
            if seq == self.next_seq {
                self.ledger_unledgered_payload(seq, guard)?;
            } else if !known.contains(&seq) {
                if seq > last_seq {
                    tracing::warn!(seq, "removing a payload that was never ledgered and is not next in sequence");
                }
                remove_if_present(&self.payload_path(seq))?;
            }
        }
        let missing: Vec<u64> = self.pending.iter().map(|q| q.seq).filter(|seq| !on_disk.contains(seq)).collect();
        for seq in missing {
            self.drop_pending(seq, now_millis(), "payload file missing when the store opened".into())?;
        }
        sync_dir(&self.dir.join(PAYLOADS))
    }

    /// A payload written just before a crash: ledger it if the guard still accepts it.
    fn ledger_unledgered_payload(&mut self, seq: u64, guard: &EgressGuard) -> Result<(), StoreError> {
        let path = self.payload_path(seq);
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        let time = fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or_else(now_millis, |d| UnixMillis(d.as_millis() as u64));
        let size = bytes.len() as u64;
        let sha256 = sha256_hex(&bytes);
        let checked = guard.check(&bytes).and_then(|batch| {
            if batch.seq == seq {
                Ok(batch)
            } else {
                Err(Rejection {
                    rule: RejectionRule::NotModel,
                    path: "/seq".into(),
                    detail: format!("payload file of seq {seq} carries seq {}", batch.seq),
                })
            }
        });
        match checked {
            Ok(batch) => {
                tracing::info!(seq, "ledgering a payload written just before the last stop");
                self.append(time, LedgerRecord::Sent { seq, bytes: size, sha256 })?;
                self.record_accepted(Queued { seq, bytes: size, time }, &batch.topology);
            }
            Err(rejection) => {
                tracing::warn!(seq, %rejection, "removing an unledgered payload the guard refuses");
                let Rejection { rule, path: at, detail } = rejection;
                self.append(time, LedgerRecord::Rejected { bytes: size, sha256, rule, path: at, detail })?;
                self.rejected += 1;
                remove_if_present(&path)?;
            }
        }
        Ok(())
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// True after batches were dropped: the next batch should be a full snapshot with all open
    /// symptoms.
    /// Continues the cluster's stream at `seq` after another replica sent the seqs up to it
    /// (recorded in the ledger as `Resumed`); a `seq` at or below our own next seq changes nothing.
    /// Returns the next seq.
    pub fn resume_at(&mut self, seq: u64, holder: &str, now: UnixMillis) -> Result<u64, StoreError> {
        if seq > self.next_seq {
            self.append(now, LedgerRecord::Resumed { seq, holder: holder.to_owned() })?;
            self.next_seq = seq;
        }
        Ok(self.next_seq)
    }

    pub fn needs_snapshot(&self) -> bool {
        self.needs_snapshot
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.dir.join(LEDGER)
    }

    fn payload_path(&self, seq: u64) -> PathBuf {
        self.dir.join(PAYLOADS).join(payload_name(seq))
    }

    /// Checks `batch` with the guard and, if it passes, makes it durable for delivery.
    pub fn accept(
        &mut self,
        batch: &EgressBatch,
        guard: &EgressGuard,
        now: UnixMillis,
    ) -> Result<Accepted, AcceptError> {
        if batch.seq != self.next_seq {
            return Err(AcceptError::WrongSeq { expected: self.next_seq, found: batch.seq });
        }
        let bytes = serde_json::to_vec(batch).map_err(AcceptError::Encode)?;
        let size = bytes.len() as u64;
        let sha256 = sha256_hex(&bytes);
        if let Err(rejection) = guard.check(&bytes) {
            let record = LedgerRecord::Rejected {
                bytes: size,
                sha256,
                rule: rejection.rule,
                path: rejection.path.clone(),
                detail: rejection.detail.clone(),
            };
            self.append(now, record)?;
            self.rejected += 1;
            return Err(AcceptError::Rejected(rejection));
        }
        self.make_room(size, now)?;
        let seq = batch.seq;
        let path = self.payload_path(seq);
        write_durably(&self.dir.join(PAYLOADS), &path, &bytes)?;
        if let Err(e) = self.append(now, LedgerRecord::Sent { seq, bytes: size, sha256 }) {
            // Not accepted after all; a leftover file would be ledgered by the next open, which is
            // also correct, so a failed removal only costs that.
            let _ = fs::remove_file(&path);
            return Err(e.into());
        }
        self.record_accepted(Queued { seq, bytes: size, time: now }, &batch.topology);
        if let Err(e) = self.expire(now) {
            tracing::warn!(error = %e, "could not delete expired egress payloads");
        }
        Ok(Accepted { seq, bytes: size })
    }

    fn record_accepted(&mut self, queued: Queued, topology: &TopologyPayload) {
        self.accepted += 1;
        self.accepted_bytes += queued.bytes;
        self.pending_bytes += queued.bytes;
        self.pending.push_back(queued);
        self.next_seq = queued.seq + 1;
        if matches!(topology, TopologyPayload::Snapshot { .. }) && self.needs_snapshot {
            match remove_if_present(&self.dir.join(NEEDS_SNAPSHOT)).and_then(|()| sync_dir(&self.dir)) {
                Ok(()) => self.needs_snapshot = false,
                // The flag stays set: one more snapshot than needed is harmless.
                Err(e) => tracing::warn!(error = %e, "could not clear the needs-snapshot flag"),
            }
        }
    }

    /// Drops the oldest undelivered batches until `incoming` more bytes fit under the bound.
    fn make_room(&mut self, incoming: u64, now: UnixMillis) -> Result<(), StoreError> {
        let max = self.limits.max_pending_bytes;
        while self.pending_bytes + incoming > max {
            let Some(victim) = self.pending.iter().find(|q| Some(q.seq) != self.in_flight).map(|q| q.seq) else {
                break;
            };
            let reason =
                format!("disk bound: {} undelivered bytes plus {incoming} new would exceed {max}", self.pending_bytes);
            self.drop_pending(victim, now, reason)?;
        }
        Ok(())
    }

    fn drop_pending(&mut self, seq: u64, now: UnixMillis, reason: String) -> Result<(), StoreError> {
        // The flag goes to disk first: a crash after the drop must still ask for a snapshot.
        if !self.needs_snapshot {
            write_durably(&self.dir, &self.dir.join(NEEDS_SNAPSHOT), b"")?;
            self.needs_snapshot = true;
        }
        tracing::warn!(seq, %reason, "dropping an undelivered egress batch");
        self.append(now, LedgerRecord::Dropped { seq, reason })?;
        self.dropped += 1;
        if let Some(q) = self.pending.iter().position(|q| q.seq == seq).and_then(|at| self.pending.remove(at)) {
            self.pending_bytes -= q.bytes;
        }
        remove_if_present(&self.payload_path(seq))
    }

    /// Appends one ledger entry and syncs it; on failure the file is cut back to where it was.
    fn append(&mut self, time: UnixMillis, record: LedgerRecord) -> Result<(), StoreError> {
        let entry = self.writer.next_entry(time, record);
        let mut line = entry.to_line()?;
        line.push(b'\n');
        let path = self.dir.join(LEDGER);
        if let Err(e) = self.ledger.write_all(&line).and_then(|()| self.ledger.sync_data()) {
            let _ = self.ledger.set_len(self.ledger_len);
            return Err(io_error(&path)(e));
        }
        if entry.index.is_multiple_of(CHECKPOINT_EVERY) {
            self.checkpoints.push(self.ledger_len);
        }
        self.ledger_len += line.len() as u64;
        self.writer.commit(&line[..line.len() - 1]);
        Ok(())
    }

    /// The oldest undelivered batch, which is then in flight: the disk bound will not drop it.
    pub fn next_pending(&mut self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        while let Some(front) = self.pending.front().copied() {
            let path = self.payload_path(front.seq);
            match fs::read(&path) {
                Ok(bytes) => {
                    self.in_flight = Some(front.seq);
                    return Ok(Some((front.seq, bytes)));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.drop_pending(front.seq, now_millis(), "payload file missing".into())?;
                }
                Err(e) => return Err(io_error(&path)(e)),
            }
        }
        self.in_flight = None;
        Ok(None)
    }

    /// Records that the upstream acknowledged `seq`, which must be the oldest undelivered batch.
    /// Acknowledging an already delivered seq again is a no-op.
    pub fn mark_delivered(&mut self, seq: u64) -> Result<(), StoreError> {
        if seq <= self.delivered {
            return Ok(());
        }
        let oldest = self.pending.front().copied();
        let Some(queued) = oldest.filter(|q| q.seq == seq) else {
            return Err(StoreError::OutOfOrder { seq, oldest: oldest.map(|q| q.seq) });
        };
        write_durably(&self.dir, &self.dir.join(DELIVERED), seq.to_string().as_bytes())?;
        self.pending.pop_front();
        self.pending_bytes -= queued.bytes;
        self.kept.push_back(queued);
        self.delivered = seq;
        self.in_flight = None;
        Ok(())
    }

    /// Deletes delivered payloads accepted at least `retention` before `now`; returns how many.
    pub fn expire(&mut self, now: UnixMillis) -> Result<usize, StoreError> {
        let retention = self.limits.retention.as_millis() as u64;
        let mut removed = 0;
        while let Some(front) = self.kept.front().copied() {
            if now.saturating_since(front.time) < retention {
                break;
            }
            remove_if_present(&self.payload_path(front.seq))?;
            self.kept.pop_front();
            removed += 1;
        }
        Ok(removed)
    }

    /// The kept payload of `seq`, if it is still on disk.
    pub fn payload(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.payload_path(seq);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    /// Up to `limit` ledger entries starting at index `from_index`, with their exact lines.
    pub fn ledger_entries(&self, from_index: u64, limit: usize) -> Result<Vec<LedgerLine>, StoreError> {
        let path = self.dir.join(LEDGER);
        let total = self.writer.next_index();
        if from_index >= total || limit == 0 {
            return Ok(Vec::new());
        }
        let checkpoint = (from_index / CHECKPOINT_EVERY) as usize;
        let Some(&offset) = self.checkpoints.get(checkpoint) else {
            return Ok(Vec::new());
        };
        let mut file = File::open(&path).map_err(io_error(&path))?;
        file.seek(SeekFrom::Start(offset)).map_err(io_error(&path))?;
        let mut reader = BufReader::new(file.take(self.ledger_len - offset));
        let mut index = checkpoint as u64 * CHECKPOINT_EVERY;
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while out.len() < limit && index < total {
            buf.clear();
            if reader.read_until(b'\n', &mut buf).map_err(io_error(&path))? == 0 {
                break;
            }
            if index >= from_index {
                let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
                let entry = LedgerEntry::parse(line).map_err(|e| StoreError::Corrupt {
                    path: path.clone(),
                    line: index,
                    detail: e.to_string(),
                })?;
                out.push(LedgerLine { entry, line: String::from_utf8_lossy(line).into_owned() });
            }
            index += 1;
        }
        Ok(out)
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            accepted: self.accepted,
            rejected: self.rejected,
            dropped: self.dropped,
            accepted_bytes: self.accepted_bytes,
            delivered_seq: self.delivered,
            pending_batches: self.pending.len() as u64,
            pending_bytes: self.pending_bytes,
            next_seq: self.next_seq,
            needs_snapshot: self.needs_snapshot,
            ledger_entries: self.writer.next_index(),
        }
    }
}

/// What reading the ledger at open time found.
struct Replay {
    entries: u64,
    len: u64,
    torn_tail: bool,
    last_line: Option<Vec<u8>>,
    checkpoints: Vec<u64>,
    last_seq: u64,
    pending: BTreeMap<u64, Queued>,
    kept: BTreeMap<u64, Queued>,
    accepted: u64,
    rejected: u64,
    dropped: u64,
    accepted_bytes: u64,
}

impl Replay {
    /// Streams the ledger, checking the chain, and rebuilds the queue: sent and not dropped
    /// batches above `delivered` are pending; those at or below it with a payload on disk are kept.
    fn read(file: &mut File, path: &Path, delivered: u64, on_disk: &BTreeSet<u64>) -> Result<Replay, StoreError> {
        let mut replay = Replay {
            entries: 0,
            len: 0,
            torn_tail: false,
            last_line: None,
            checkpoints: Vec::new(),
            last_seq: FIRST_SEQ - 1,
            pending: BTreeMap::new(),
            kept: BTreeMap::new(),
            accepted: 0,
            rejected: 0,
            dropped: 0,
            accepted_bytes: 0,
        };
        file.seek(SeekFrom::Start(0)).map_err(io_error(path))?;
        let mut reader = BufReader::new(file);
        let mut check = LedgerWriter::default();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let read = reader.read_until(b'\n', &mut buf).map_err(io_error(path))?;
            if read == 0 {
                break;
            }
            let Some(line) = buf.strip_suffix(b"\n") else {
                replay.torn_tail = true;
                break;
            };
            let line_number = replay.entries;
            let corrupt = |detail: String| StoreError::Corrupt { path: path.to_owned(), line: line_number, detail };
            let entry = LedgerEntry::parse(line).map_err(|e| corrupt(e.to_string()))?;
            let expected = check.next_entry(entry.time, entry.record.clone());
            if entry.index != expected.index || entry.prev != expected.prev {
                return Err(corrupt(format!(
                    "entry {} does not continue the chain (expected index {}, prev {})",
                    entry.index, expected.index, expected.prev
                )));
            }
            check.commit(line);
            if entry.index.is_multiple_of(CHECKPOINT_EVERY) {
                replay.checkpoints.push(replay.len);
            }
            replay.len += read as u64;
            replay.entries += 1;
            match entry.record {
                LedgerRecord::Sent { seq, bytes, .. } => {
                    if seq != replay.last_seq + 1 {
                        return Err(corrupt(format!("seq {seq} follows seq {}", replay.last_seq)));
                    }
                    replay.last_seq = seq;
                    replay.accepted += 1;
                    replay.accepted_bytes += bytes;
                    let queued = Queued { seq, bytes, time: entry.time };
                    if seq > delivered {
                        replay.pending.insert(seq, queued);
                    } else if on_disk.contains(&seq) {
                        replay.kept.insert(seq, queued);
                    }
                }
                LedgerRecord::Rejected { .. } => replay.rejected += 1,
                LedgerRecord::Resumed { seq, .. } => replay.last_seq = replay.last_seq.max(seq.saturating_sub(1)),
                LedgerRecord::Dropped { seq, .. } => {
                    replay.dropped += 1;
                    replay.pending.remove(&seq);
                    replay.kept.remove(&seq);
                }
            }
            replay.last_line = Some(line.to_vec());
        }
        Ok(replay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causely_model::ledger::verify;
    use causely_model::{Edge, Entity, EntityId, Relation, SCHEMA_VERSION};

    const GENEROUS: StoreLimits = StoreLimits { max_pending_bytes: 1 << 30, retention: Duration::from_secs(3600) };

    fn batch(seq: u64) -> EgressBatch {
        let pod = EntityId::pod("shop", format!("web-{seq}"));
        EgressBatch {
            cluster_id: "prod-eu-1".into(),
            seq,
            time: UnixMillis(seq * 1_000),
            schema_version: SCHEMA_VERSION,
            topology: TopologyPayload::Delta {
                added_entities: vec![Entity::new(pod.clone()).with_label("app", "web")],
                removed_entities: vec![],
                added_edges: vec![Edge::new(pod, Relation::RunsOn {}, EntityId::node("n1"))],
                removed_edges: vec![],
            },
            symptoms: vec![],
        }
    }

    fn snapshot(seq: u64) -> EgressBatch {
        EgressBatch { topology: TopologyPayload::Snapshot { entities: vec![], edges: vec![] }, ..batch(seq) }
    }

    fn size_of(batch: &EgressBatch) -> u64 {
        serde_json::to_vec(batch).unwrap().len() as u64
    }

    struct Fixture {
        dir: tempfile::TempDir,
        guard: EgressGuard,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture { dir: tempfile::tempdir().unwrap(), guard: EgressGuard::new() }
        }

        fn open(&self, limits: StoreLimits) -> EgressStore {
            EgressStore::open(self.dir.path(), limits, &self.guard).unwrap()
        }

        fn accept(&self, store: &mut EgressStore, seqs: std::ops::RangeInclusive<u64>) {
            for seq in seqs {
                store.accept(&batch(seq), &self.guard, UnixMillis(seq * 1_000)).unwrap();
            }
        }

        fn ledger(&self) -> Vec<u8> {
            fs::read(self.dir.path().join(LEDGER)).unwrap()
        }

        fn verify(&self) -> causely_model::Verification {
            let payloads = self.dir.path().join(PAYLOADS);
            verify(&self.ledger(), |seq| fs::read(payloads.join(payload_name(seq))).ok(), &self.guard)
        }

        fn assert_verifies(&self) -> causely_model::ledger::Summary {
            let verification = self.verify();
            assert!(verification.is_clean(), "{:?}", verification.violations);
            verification.summary
        }

        fn payload_files(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(self.dir.path().join(PAYLOADS))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        }
    }

    #[test]
    fn accepted_batches_are_delivered_in_order_and_the_ledger_verifies() {
        let fx = Fixture::new();
        let mut store = fx.open(GENEROUS);
        assert_eq!(store.next_seq(), 1);
        let accepted = store.accept(&batch(1), &fx.guard, UnixMillis(1)).unwrap();
        assert_eq!(accepted, Accepted { seq: 1, bytes: size_of(&batch(1)) });
        fx.accept(&mut store, 2..=3);
        let (seq, bytes) = store.next_pending().unwrap().unwrap();
        assert_eq!((seq, bytes.clone()), (1, serde_json::to_vec(&batch(1)).unwrap()));
        assert!(matches!(store.mark_delivered(2), Err(StoreError::OutOfOrder { seq: 2, oldest: Some(1) })));
        store.mark_delivered(1).unwrap();
        store.mark_delivered(1).unwrap();
        assert_eq!(store.next_pending().unwrap().unwrap().0, 2);
        let stats = store.stats();
        assert_eq!((stats.accepted, stats.delivered_seq, stats.pending_batches, stats.next_seq), (3, 1, 2, 4));
        assert_eq!(stats.pending_bytes, size_of(&batch(2)) + size_of(&batch(3)));
        assert_eq!(store.payload(1).unwrap(), Some(bytes));
        let summary = fx.assert_verifies();
        assert_eq!((summary.sent, summary.payloads_checked), (3, 3));
    }

    #[test]
    fn a_batch_out_of_sequence_is_refused_without_a_ledger_entry() {
        let fx = Fixture::new();
        let mut store = fx.open(GENEROUS);
        assert!(matches!(
            store.accept(&batch(2), &fx.guard, UnixMillis(1)),
            Err(AcceptError::WrongSeq { expected: 1, found: 2 })
        ));
        assert!(fx.ledger().is_empty());
    }

    #[test]
    fn a_rejected_batch_is_ledgered_consumes_no_seq_and_writes_no_payload() {
        let fx = Fixture::new();
        let mut store = fx.open(GENEROUS);
        fx.accept(&mut store, 1..=1);
        let mut leaky = batch(2);
        if let TopologyPayload::Delta { added_entities, .. } = &mut leaky.topology {
            added_entities[0].labels.insert("cpu".into(), "0.93".into());
        }
        let err = store.accept(&leaky, &fx.guard, UnixMillis(5)).unwrap_err();
        assert!(matches!(&err, AcceptError::Rejected(r) if r.rule == RejectionRule::NumberString), "{err}");
        assert_eq!(store.next_seq(), 2);
        assert_eq!(fx.payload_files(), vec![payload_name(1)]);
        let stats = store.stats();
        assert_eq!((stats.accepted, stats.rejected, stats.pending_batches), (1, 1, 1));
        store.accept(&batch(2), &fx.guard, UnixMillis(6)).unwrap();
        let lines = store.ledger_entries(0, 10).unwrap();
        assert!(matches!(&lines[1].entry.record, LedgerRecord::Rejected { rule: RejectionRule::NumberString, .. }));
        let summary = fx.assert_verifies();
        assert_eq!((summary.sent, summary.rejected), (2, 1));
    }

    #[test]
    fn delivered_payloads_expire_after_the_retention_but_their_ledger_lines_stay() {
        let fx = Fixture::new();
        let limits = StoreLimits { retention: Duration::from_secs(10), ..GENEROUS };
        let mut store = fx.open(limits);
        fx.accept(&mut store, 1..=3);
        for seq in 1..=2 {
            store.next_pending().unwrap();
            store.mark_delivered(seq).unwrap();
        }
        // Seq 1 was accepted at 1 s and seq 2 at 2 s: at 11.5 s only seq 1 is old enough.
        assert_eq!(store.expire(UnixMillis(11_500)).unwrap(), 1);
        assert_eq!(fx.payload_files(), vec![payload_name(2), payload_name(3)]);
        // Undelivered batches never expire.
        assert_eq!(store.expire(UnixMillis(1_000_000)).unwrap(), 1);
        assert_eq!(fx.payload_files(), vec![payload_name(3)]);
        let summary = fx.assert_verifies();
        assert_eq!((summary.sent, summary.payloads_checked, summary.payloads_not_kept), (3, 1, 2));
        drop(store);
        // Expiry also runs when a batch is accepted, and kept payloads survive a restart.
        let mut store = fx.open(limits);
        store.next_pending().unwrap();
        store.mark_delivered(3).unwrap();
        store.accept(&batch(4), &fx.guard, UnixMillis(3_000 + 10_000)).unwrap();
        assert_eq!(fx.payload_files(), vec![payload_name(4)]);
    }

    #[test]
    fn at_the_disk_bound_the_oldest_undelivered_batches_are_dropped_and_a_snapshot_is_requested() {
        let fx = Fixture::new();
        let one = size_of(&batch(1));
        let limits = StoreLimits { max_pending_bytes: 3 * one, ..GENEROUS };
        let mut store = fx.open(limits);
        fx.accept(&mut store, 1..=3);
        assert!(!store.needs_snapshot());
        fx.accept(&mut store, 4..=5);
        let stats = store.stats();
        assert_eq!((stats.accepted, stats.dropped, stats.pending_batches), (5, 2, 3));
        assert!(stats.pending_bytes <= 3 * one);
        assert!(store.needs_snapshot());
        assert_eq!(fx.payload_files(), vec![payload_name(3), payload_name(4), payload_name(5)]);
        assert_eq!(store.next_pending().unwrap().unwrap().0, 3);
        let dropped: Vec<u64> = store
            .ledger_entries(0, 100)
            .unwrap()
            .into_iter()
            .filter_map(|l| match l.entry.record {
                LedgerRecord::Dropped { seq, .. } => Some(seq),
                _ => None,
            })
            .collect();
        assert_eq!(dropped, vec![1, 2]);
        let summary = fx.assert_verifies();
        assert_eq!((summary.sent, summary.dropped), (5, 2));
        // The request outlives a restart, and a snapshot answers it.
        drop(store);
        let mut store = fx.open(limits);
        assert!(store.needs_snapshot());
        store.accept(&snapshot(6), &fx.guard, UnixMillis(6_000)).unwrap();
        assert!(!store.needs_snapshot());
        drop(store);
        assert!(!fx.open(limits).needs_snapshot());
    }

    #[test]
    fn the_batch_in_flight_is_not_dropped_at_the_disk_bound() {
        let fx = Fixture::new();
        let one = size_of(&batch(1));
        let mut store = fx.open(StoreLimits { max_pending_bytes: 2 * one, ..GENEROUS });
        fx.accept(&mut store, 1..=2);
        assert_eq!(store.next_pending().unwrap().unwrap().0, 1);
        fx.accept(&mut store, 3..=3);
        assert_eq!(fx.payload_files(), vec![payload_name(1), payload_name(3)]);
        store.mark_delivered(1).unwrap();
        assert_eq!(store.next_pending().unwrap().unwrap().0, 3);
        fx.assert_verifies();
    }

    #[test]
    fn a_reopened_store_continues_the_sequence_and_the_queue() {
        let fx = Fixture::new();
        let mut store = fx.open(GENEROUS);
        fx.accept(&mut store, 1..=3);
        store.next_pending().unwrap();
        store.mark_delivered(1).unwrap();
        drop(store);
        let mut store = fx.open(GENEROUS);
        assert_eq!(store.next_seq(), 4);
        assert_eq!(store.stats().delivered_seq, 1);
        assert_eq!(store.next_pending().unwrap().unwrap().0, 2);
        fx.accept(&mut store, 4..=4);
        assert_eq!(store.stats().accepted, 4);
        fx.assert_verifies();
    }

    #[test]
    fn a_second_store_on_the_same_directory_is_refused() {
        let fx = Fixture::new();
        let _store = fx.open(GENEROUS);
        assert!(matches!(EgressStore::open(fx.dir.path(), GENEROUS, &fx.guard), Err(StoreError::Locked { .. })));
    }

    #[test]
    fn a_torn_last_ledger_line_is_cut_off_on_open() {
        let fx = Fixture::new();
        let mut store = fx.open(GENEROUS);
        fx.accept(&mut store, 1..=2);
        drop(store);
        let clean = fx.ledger();
        let mut file = OpenOptions::new().append(true).open(fx.dir.path().join(LEDGER)).unwrap();
        file.write_all(br#"{"index":2,"time":3000,"prev":"ab"#).unwrap();
        drop(file);
        assert!(fx.verify().summary.unterminated_tail);
        let mut store = fx.open(GENEROUS);
        assert_eq!(fx.ledger(), clean);
        assert_eq!(store.next_seq(), 3);
        fx.accept(&mut store, 3..=3);
        assert_eq!(fx.assert_verifies().sent, 3);
    }

    #[test]
    fn a_payload_whose_ledger_line_was_torn_is_ledgered_again_on_open() {
        let fx = Fixture::new();
        let mut store = fx.open(GENEROUS);
        fx.accept(&mut store, 1..=3);
        drop(store);
        // The crash hit while seq 3's line was being appended: the payload is complete, the line is not.
        let ledger = fx.ledger();
        let last_start = ledger[..ledger.len() - 1].iter().rposition(|&b| b == b'\n').unwrap() + 1;
        fs::write(fx.dir.path().join(LEDGER), &ledger[..last_start + 20]).unwrap();
        let mut store = fx.open(GENEROUS);
        assert_eq!(store.next_seq(), 4);
        assert_eq!(store.payload(3).unwrap(), Some(serde_json::to_vec(&batch(3)).unwrap()));
        assert_eq!(store.next_pending().unwrap().unwrap().0, 1);
        fx.accept(&mut store, 4..=4);
        let summary = fx.assert_verifies();
        assert_eq!((summary.sent, summary.payloads_checked), (4, 4));
    }

    #[test]
    fn an_unledgered_payload_is_ledgered_if_the_guard_accepts_it_and_removed_if_not() {
        let fx = Fixture::new();
        let mut store = fx.open(GENEROUS);
        fx.accept(&mut store, 1..=1);
        drop(store);
        let dir = fx.dir.path().join(PAYLOADS);
        fs::write(dir.join(payload_name(2)), serde_json::to_vec(&batch(2)).unwrap()).unwrap();
        let store = fx.open(GENEROUS);
        assert_eq!(store.next_seq(), 3);
        assert_eq!(store.stats().pending_batches, 2);
        drop(store);
        let mut leaky = serde_json::to_value(batch(3)).unwrap();
        leaky["samples"] = serde_json::json!([0.93, 0.95]);
        fs::write(dir.join(payload_name(3)), serde_json::to_vec(&leaky).unwrap()).unwrap();
        // Not next in sequence: never written by this store.
        fs::write(dir.join(payload_name(9)), serde_json::to_vec(&batch(9)).unwrap()).unwrap();
        let store = fx.open(GENEROUS);
        assert_eq!(store.next_seq(), 3);
        let stats = store.stats();
        assert_eq!((stats.accepted, stats.rejected), (2, 1));
        assert_eq!(fx.payload_files(), vec![payload_name(1), payload_name(2)]);
        let summary = fx.assert_verifies();
        assert_eq!((summary.sent, summary.rejected), (2, 1));
    }

    #[test]
    fn stray_temporary_files_are_removed_on_open() {
        let fx = Fixture::new();
        let mut store = fx.open(GENEROUS);
        fx.accept(&mut store, 1..=1);
        store.next_pending().unwrap();
        store.mark_delivered(1).unwrap();
        drop(store);
        let dir = fx.dir.path();
        fs::write(dir.join(PAYLOADS).join(format!("{}{TMP_SUFFIX}", payload_name(2))), b"{\"half").unwrap();
        fs::write(dir.join(format!("{DELIVERED}{TMP_SUFFIX}")), b"2").unwrap();
        let store = fx.open(GENEROUS);
        assert_eq!(store.next_seq(), 2);
        assert_eq!(store.stats().delivered_seq, 1);
        assert_eq!(fx.payload_files(), vec![payload_name(1)]);
        assert!(!dir.join(format!("{DELIVERED}{TMP_SUFFIX}")).exists());
    }

    #[test]
    fn an_undelivered_batch_whose_payload_vanished_is_ledgered_as_dropped() {
        let fx = Fixture::new();
        let mut store = fx.open(GENEROUS);
        fx.accept(&mut store, 1..=2);
        drop(store);
        fs::remove_file(fx.dir.path().join(PAYLOADS).join(payload_name(1))).unwrap();
        let mut store = fx.open(GENEROUS);
        assert_eq!(store.stats().dropped, 1);
        assert!(store.needs_snapshot());
        assert_eq!(store.next_pending().unwrap().unwrap().0, 2);
        fx.assert_verifies();
    }

    #[test]
    fn a_ledger_with_a_broken_chain_is_refused() {
        let fx = Fixture::new();
        let mut store = fx.open(GENEROUS);
        fx.accept(&mut store, 1..=3);
        drop(store);
        let text = String::from_utf8(fx.ledger()).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.remove(1);
        fs::write(fx.dir.path().join(LEDGER), lines.join("\n") + "\n").unwrap();
        assert!(matches!(
            EgressStore::open(fx.dir.path(), GENEROUS, &fx.guard),
            Err(StoreError::Corrupt { line: 1, .. })
        ));
    }

    #[test]
    fn ledger_entries_page_through_the_exact_lines() {
        let fx = Fixture::new();
        let mut store = fx.open(GENEROUS);
        let count = CHECKPOINT_EVERY * 2 + 10;
        fx.accept(&mut store, 1..=count);
        let all = fx.ledger();
        let text = String::from_utf8(all).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (from, limit) in [(0, 3), (255, 3), (256, 1), (300, 5), (count - 2, 10)] {
            let page = store.ledger_entries(from, limit).unwrap();
            let expected = &lines[from as usize..(from as usize + limit).min(count as usize)];
            assert_eq!(page.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(), expected, "from {from}");
            assert!(page.iter().zip(from..).all(|(l, i)| l.entry.index == i));
        }
        assert!(store.ledger_entries(count, 5).unwrap().is_empty());
        drop(store);
        // Checkpoints rebuilt from the file give the same pages.
        let store = fx.open(GENEROUS);
        assert_eq!(store.ledger_entries(300, 1).unwrap()[0].line, lines[300]);
    }
}
