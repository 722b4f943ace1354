//! The bounded on-disk buffer of sample batches kept while VictoriaMetrics is unreachable.
//!
//! Layout: one directory (in the agent's state dir) of segment files, each one encoded batch
//! named `<seq:020>-<samples>.prom`: the zero-padded seq orders them by name and by number, and
//! the sample count in the name lets a restarted agent account for what it holds without
//! reading every file. A segment is written to `<name>.tmp`, fsynced, renamed into place and the
//! directory fsynced, so a crash leaves either a whole segment or a stray `.tmp` that the next
//! start removes.
//!
//! The bound is on the bytes of all segments. A segment that does not fit evicts the oldest
//! segments first: recent samples are worth more to an investigation than old ones, and old ones
//! may already be past VictoriaMetrics' retention.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

const SUFFIX: &str = ".prom";
const TMP_SUFFIX: &str = ".tmp";

/// What the spool knows of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentMeta {
    pub seq: u64,
    pub samples: u64,
    pub bytes: u64,
}

impl SegmentMeta {
    pub fn file_name(&self) -> String {
        format!("{:020}-{}{SUFFIX}", self.seq, self.samples)
    }

    /// The seq and sample count of a segment's file name; `None` for anything else.
    pub fn parse_name(name: &str) -> Option<(u64, u64)> {
        let (seq, samples) = name.strip_suffix(SUFFIX)?.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if seq.len() != 20 || !digits(seq) || !digits(samples) {
            return None;
        }
        Some((seq.parse().ok()?, samples.parse().ok()?))
    }
}

/// Whether a new segment is stored, and which old ones make room for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendPlan {
    /// How many of the oldest segments to drop first.
    pub evict: usize,
    /// False when the segment alone is larger than the bound: it is dropped instead.
    pub store: bool,
}

/// The pure accounting of the spool: segments oldest first and their totals against the bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolIndex {
    segments: VecDeque<SegmentMeta>,
    max_bytes: u64,
    bytes: u64,
    samples: u64,
    next_seq: u64,
}

impl SpoolIndex {
    /// An index of `segments` in any order.
    pub fn new(mut segments: Vec<SegmentMeta>, max_bytes: u64) -> Self {
        segments.sort_by_key(|s| s.seq);
        let next_seq = segments.last().map_or(1, |s| s.seq + 1);
        SpoolIndex {
            bytes: segments.iter().map(|s| s.bytes).sum(),
            samples: segments.iter().map(|s| s.samples).sum(),
            segments: segments.into(),
            max_bytes,
            next_seq,
        }
    }

    pub fn plan_append(&self, bytes: u64) -> AppendPlan {
        if bytes > self.max_bytes {
            return AppendPlan { evict: 0, store: false };
        }
        let mut total = self.bytes;
        let mut evict = 0;
        for segment in &self.segments {
            if total + bytes <= self.max_bytes {
                break;
            }
            total -= segment.bytes;
            evict += 1;
        }
        AppendPlan { evict, store: true }
    }

    /// Records a stored segment under the next seq and returns its metadata.
    pub fn push(&mut self, samples: u64, bytes: u64) -> SegmentMeta {
        let meta = SegmentMeta { seq: self.next_seq, samples, bytes };
        self.next_seq += 1;
        self.bytes += bytes;
        self.samples += samples;
        self.segments.push_back(meta);
        meta
    }

    pub fn pop_oldest(&mut self) -> Option<SegmentMeta> {
        let meta = self.segments.pop_front()?;
        self.bytes -= meta.bytes;
        self.samples -= meta.samples;
        Some(meta)
    }

    pub fn oldest(&self) -> Option<SegmentMeta> {
        self.segments.front().copied()
    }

    pub fn segments(&self) -> impl Iterator<Item = &SegmentMeta> {
        self.segments.iter()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool directory {}: {source}", path.display())]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("spool segment {}: {source}", path.display())]
    Segment { path: PathBuf, source: std::io::Error },
}

/// What one append did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    pub stored: bool,
    /// Samples dropped to respect the bound: evicted old segments, or the new one if too large.
    pub dropped_samples: u64,
}

/// The spool on disk.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    index: SpoolIndex,
}

impl Spool {
    /// Opens (creating) `dir`, removes stray temporary files and indexes the segments found.
    /// Files that are not segments are left alone and not counted.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        let dir_err = |source| SpoolError::Dir { path: dir.to_path_buf(), source };
        fs::create_dir_all(dir).map_err(dir_err)?;
        let mut segments = Vec::new();
        for entry in fs::read_dir(dir).map_err(dir_err)? {
            let entry = entry.map_err(dir_err)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(TMP_SUFFIX) {
                // A write that a crash interrupted; its batch was never counted as buffered.
                let path = entry.path();
                fs::remove_file(&path).map_err(|source| SpoolError::Segment { path, source })?;
                continue;
            }
            let Some((seq, samples)) = SegmentMeta::parse_name(name) else {
                tracing::warn!(file = name, dir = %dir.display(), "ignoring a file that is not a spool segment");
                continue;
            };
            let path = entry.path();
            let bytes = entry.metadata().map_err(|source| SpoolError::Segment { path, source })?.len();
            segments.push(SegmentMeta { seq, samples, bytes });
        }
        Ok(Spool { dir: dir.to_path_buf(), index: SpoolIndex::new(segments, max_bytes) })
    }

    pub fn index(&self) -> &SpoolIndex {
        &self.index
    }

    fn path(&self, meta: &SegmentMeta) -> PathBuf {
        self.dir.join(meta.file_name())
    }

    /// Stores one encoded batch durably, evicting the oldest segments if the bound requires it.
    pub fn append(&mut self, text: &[u8], samples: u64) -> Result<AppendOutcome, SpoolError> {
        let plan = self.index.plan_append(text.len() as u64);
        let mut outcome = AppendOutcome::default();
        if !plan.store {
            outcome.dropped_samples = samples;
            return Ok(outcome);
        }
        for _ in 0..plan.evict {
            if let Some(meta) = self.remove_oldest()? {
                outcome.dropped_samples += meta.samples;
            }
        }
        let meta = SegmentMeta { seq: self.index.next_seq, samples, bytes: text.len() as u64 };
        let path = self.path(&meta);
        let tmp = self.dir.join(format!("{}{TMP_SUFFIX}", meta.file_name()));
        let seg_err = |source| SpoolError::Segment { path: tmp.clone(), source };
        let mut file = File::create(&tmp).map_err(seg_err)?;
        file.write_all(text).map_err(seg_err)?;
        file.sync_all().map_err(seg_err)?;
        fs::rename(&tmp, &path).map_err(seg_err)?;
        self.sync_dir()?;
        self.index.push(samples, meta.bytes);
        outcome.stored = true;
        Ok(outcome)
    }

    /// The oldest segment and its bytes.
    pub fn read_oldest(&self) -> Option<(SegmentMeta, Result<Vec<u8>, SpoolError>)> {
        let meta = self.index.oldest()?;
        let path = self.path(&meta);
        Some((meta, fs::read(&path).map_err(|source| SpoolError::Segment { path, source })))
    }

    /// Removes the oldest segment (sent, or evicted).
    pub fn remove_oldest(&mut self) -> Result<Option<SegmentMeta>, SpoolError> {
        let Some(meta) = self.index.oldest() else { return Ok(None) };
        let path = self.path(&meta);
        match fs::remove_file(&path) {
            Ok(()) => {}
            // Already gone (removed by hand): the index just catches up.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(SpoolError::Segment { path, source }),
        }
        self.index.pop_oldest();
        Ok(Some(meta))
    }

    fn sync_dir(&self) -> Result<(), SpoolError> {
        // The rename is durable only once the directory entry is.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| SpoolError::Dir { path: self.dir.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(seq: u64, samples: u64, bytes: u64) -> SegmentMeta {
        SegmentMeta { seq, samples, bytes }
    }

    #[test]
    fn segment_names_sort_by_seq_and_carry_the_sample_count() {
        let names: Vec<String> = [meta(9, 3, 0), meta(10, 12, 0)].iter().map(SegmentMeta::file_name).collect();
        assert_eq!(names, ["00000000000000000009-3.prom", "00000000000000000010-12.prom"]);
        assert!(names[0] < names[1]);
        assert_eq!(SegmentMeta::parse_name(&names[1]), Some((10, 12)));
    }

    #[test]
    fn names_that_are_not_segments_do_not_parse() {
        for name in ["9-3.prom", "00000000000000000009-3.prom.tmp", "00000000000000000009-.prom", "x.prom", "notes.txt"]
        {
            assert_eq!(SegmentMeta::parse_name(name), None, "{name}");
        }
        assert_eq!(SegmentMeta::parse_name("0000000000000000000a-3.prom"), None);
    }

    #[test]
    fn an_index_orders_segments_by_seq_and_continues_after_the_last() {
        let mut index = SpoolIndex::new(vec![meta(7, 2, 20), meta(3, 1, 10)], 1000);
        assert_eq!(index.segments().map(|s| s.seq).collect::<Vec<_>>(), [3, 7]);
        assert_eq!((index.samples(), index.bytes()), (3, 30));
        assert_eq!(index.push(5, 50).seq, 8);
        assert_eq!(index.pop_oldest(), Some(meta(3, 1, 10)));
        assert_eq!((index.samples(), index.bytes()), (7, 70));
        assert_eq!(SpoolIndex::new(vec![], 1).push(1, 1).seq, 1);
    }

    #[test]
    fn a_segment_that_fits_evicts_nothing() {
        let index = SpoolIndex::new(vec![meta(1, 1, 40), meta(2, 1, 40)], 100);
        assert_eq!(index.plan_append(20), AppendPlan { evict: 0, store: true });
    }

    #[test]
    fn a_segment_that_does_not_fit_evicts_just_enough_of_the_oldest() {
        let index = SpoolIndex::new(vec![meta(1, 1, 40), meta(2, 1, 40), meta(3, 1, 10)], 100);
        assert_eq!(index.plan_append(21), AppendPlan { evict: 1, store: true });
        assert_eq!(index.plan_append(60), AppendPlan { evict: 2, store: true });
        assert_eq!(index.plan_append(100), AppendPlan { evict: 3, store: true });
    }

    #[test]
    fn a_segment_larger_than_the_bound_is_dropped_and_evicts_nothing() {
        let index = SpoolIndex::new(vec![meta(1, 1, 40)], 100);
        assert_eq!(index.plan_append(101), AppendPlan { evict: 0, store: false });
    }

    #[test]
    fn appended_segments_survive_a_reopen_and_stray_temporary_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1000).unwrap();
        spool.append(b"a 1 1\n", 1).unwrap();
        spool.append(b"b 1 1\nb 2 2\n", 2).unwrap();
        fs::write(dir.path().join("00000000000000000003-1.prom.tmp"), b"torn").unwrap();
        fs::write(dir.path().join("README"), b"not a segment").unwrap();
        drop(spool);

        let mut spool = Spool::open(dir.path(), 1000).unwrap();
        assert!(!dir.path().join("00000000000000000003-1.prom.tmp").exists());
        assert!(dir.path().join("README").exists());
        assert_eq!((spool.index().samples(), spool.index().bytes()), (3, 18));
        let (first, text) = spool.read_oldest().unwrap();
        assert_eq!((first.seq, text.unwrap()), (1, b"a 1 1\n".to_vec()));
        spool.remove_oldest().unwrap();
        let (second, text) = spool.read_oldest().unwrap();
        assert_eq!((second.seq, second.samples, text.unwrap()), (2, 2, b"b 1 1\nb 2 2\n".to_vec()));
        assert_eq!(spool.append(b"c 1 1\n", 1).unwrap(), AppendOutcome { stored: true, dropped_samples: 0 });
        assert_eq!(spool.index().oldest().map(|m| m.seq), Some(2));
        assert_eq!(spool.index().segments().last().map(|m| m.seq), Some(3));
    }

    #[test]
    fn appending_past_the_bound_deletes_the_oldest_files_and_reports_their_samples() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 12).unwrap();
        spool.append(b"1111", 4).unwrap();
        spool.append(b"2222", 5).unwrap();
        spool.append(b"3333", 6).unwrap();
        let outcome = spool.append(b"44444444", 7).unwrap();
        assert_eq!(outcome, AppendOutcome { stored: true, dropped_samples: 9 });
        let mut files: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        files.sort();
        assert_eq!(files, ["00000000000000000003-6.prom", "00000000000000000004-7.prom"]);
        let too_big = spool.append(b"5555555555555", 8).unwrap();
        assert_eq!(too_big, AppendOutcome { stored: false, dropped_samples: 8 });
        assert_eq!(spool.index().samples(), 13);
    }
}
