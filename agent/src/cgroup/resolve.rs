//! Cgroup2 id to path: eBPF programs report `bpf_get_current_cgroup_id()`, the inode number of
//! the task's cgroup2 directory, and attribution needs the path.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Counters a resolver keeps so that `/metrics` can show how well attribution works.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResolveStats {
    pub hits: u64,
    pub misses: u64,
    pub scans: u64,
    /// Directories that vanished or could not be listed during a scan: cgroups come and go
    /// while we walk, so this is expected to be non-zero on a busy node.
    pub scan_errors: u64,
    /// Scans that stopped at the entry bound before covering the whole tree.
    pub truncated_scans: u64,
}

/// Maps cgroup2 ids to paths relative to the cgroup2 mount (`/kubepods.slice/...`).
///
/// The map is rebuilt by walking the mount on a miss, at most once per `min_rescan_ms`, so that
/// a stream of events from an unknown cgroup cannot turn into a stream of tree walks. Its size
/// is bounded by `max_entries`; a node with more cgroups than that loses attribution for the
/// ones the walk did not reach, and says so in `truncated_scans`.
#[derive(Debug)]
pub struct CgroupIdResolver {
    mount: PathBuf,
    max_entries: usize,
    max_depth: usize,
    min_rescan_ms: u64,
    last_scan_ms: Option<u64>,
    paths: HashMap<u64, String>,
    stats: ResolveStats,
}

impl CgroupIdResolver {
    /// Kubelet layouts are at most six levels deep below the mount (kind's systemd layout plus a
    /// container's own sub-cgroup); eight leaves room without walking arbitrarily deep trees.
    pub const DEFAULT_MAX_DEPTH: usize = 8;
    pub const DEFAULT_MAX_ENTRIES: usize = 65_536;
    pub const DEFAULT_MIN_RESCAN_MS: u64 = 1_000;

    pub fn new(mount: impl Into<PathBuf>) -> Self {
        Self::with_bounds(mount, Self::DEFAULT_MAX_ENTRIES, Self::DEFAULT_MAX_DEPTH, Self::DEFAULT_MIN_RESCAN_MS)
    }

    pub fn with_bounds(mount: impl Into<PathBuf>, max_entries: usize, max_depth: usize, min_rescan_ms: u64) -> Self {
        CgroupIdResolver {
            mount: mount.into(),
            max_entries,
            max_depth,
            min_rescan_ms,
            last_scan_ms: None,
            paths: HashMap::new(),
            stats: ResolveStats::default(),
        }
    }

    /// The path of cgroup `id`, rescanning the mount on a miss when the last scan is older than
    /// the rescan interval. `now_ms` is any monotonic clock in milliseconds.
    pub fn resolve(&mut self, id: u64, now_ms: u64) -> Option<&str> {
        if self.paths.contains_key(&id) {
            self.stats.hits += 1;
        } else {
            let due = self.last_scan_ms.is_none_or(|last| now_ms.saturating_sub(last) >= self.min_rescan_ms);
            if due {
                self.rescan(now_ms);
            }
            if self.paths.contains_key(&id) {
                self.stats.hits += 1;
            } else {
                self.stats.misses += 1;
            }
        }
        self.paths.get(&id).map(String::as_str)
    }

    pub fn stats(&self) -> ResolveStats {
        self.stats
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Rebuilds the map from scratch, so cgroups that were removed drop out and the map never
    /// holds more than one scan's worth of entries.
    pub fn rescan(&mut self, now_ms: u64) {
        self.last_scan_ms = Some(now_ms);
        self.stats.scans += 1;
        self.paths.clear();
        let mut stack: Vec<(PathBuf, String, usize)> = vec![(self.mount.clone(), String::from("/"), 0)];
        while let Some((dir, relative, depth)) = stack.pop() {
            if self.paths.len() >= self.max_entries {
                self.stats.truncated_scans += 1;
                return;
            }
            match fs::metadata(&dir) {
                Ok(meta) => {
                    self.paths.insert(meta.ino(), relative.clone());
                }
                Err(_) => {
                    self.stats.scan_errors += 1;
                    continue;
                }
            }
            if depth >= self.max_depth {
                continue;
            }
            let Ok(entries) = fs::read_dir(&dir) else {
                self.stats.scan_errors += 1;
                continue;
            };
            for entry in entries.flatten() {
                // Only real directories are cgroups; never follow a symlink out of the mount.
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let child = if relative == "/" { format!("/{name}") } else { format!("{relative}/{name}") };
                stack.push((entry.path(), child, depth + 1));
            }
        }
    }
}
