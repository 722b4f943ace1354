//! What the executor has run, by action id, so that no id runs twice, even across restarts:
//! `runs.jsonl` in the state directory, one line per step (started, finished, reported), each
//! written and synced before the step it records is taken further.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use causely_model::{ActionId, ActionResult, UnixMillis};
use serde::{Deserialize, Serialize};

const FILE_NAME: &str = "runs.jsonl";

/// One step of one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum RunRecord {
    /// About to call the API server: from here on the id never runs again.
    Started { id: ActionId, at: UnixMillis },
    /// Decided (applied, rejected or failed); not yet known to the mediator.
    Finished { result: ActionResult },
    /// The mediator has the result.
    Reported { id: ActionId },
}

/// Where one id stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Started and never finished: the executor stopped while running it.
    Started,
    Finished(ActionResult),
    Reported(ActionResult),
}

/// Every id's state: the pure part, rebuilt by applying the records in order.
#[derive(Debug, Clone, Default)]
pub struct RunBook {
    runs: BTreeMap<ActionId, RunState>,
}

impl RunBook {
    pub fn apply(&mut self, record: RunRecord) {
        match record {
            RunRecord::Started { id, .. } => {
                self.runs.entry(id).or_insert(RunState::Started);
            }
            RunRecord::Finished { result } => {
                // A finished id stays finished: a later refusal of the same id is not its result.
                if matches!(self.runs.get(&result.id), None | Some(RunState::Started)) {
                    self.runs.insert(result.id.clone(), RunState::Finished(result));
                }
            }
            RunRecord::Reported { id } => {
                if let Some(RunState::Finished(result)) = self.runs.get(&id) {
                    let result = result.clone();
                    self.runs.insert(id, RunState::Reported(result));
                }
            }
        }
    }

    pub fn get(&self, id: &ActionId) -> Option<&RunState> {
        self.runs.get(id)
    }

    /// Results the mediator has not acknowledged yet.
    pub fn unreported(&self) -> Vec<ActionResult> {
        self.runs
            .values()
            .filter_map(|s| match s {
                RunState::Finished(result) => Some(result.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

/// Why the run record could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct RunLogError {
    path: PathBuf,
    source: std::io::Error,
}

/// The book and its file.
#[derive(Debug)]
pub struct RunLog {
    book: RunBook,
    path: PathBuf,
    file: File,
}

impl RunLog {
    /// Replays `runs.jsonl` in `dir` (a torn last line from a crash is skipped).
    pub fn open(dir: &Path) -> Result<RunLog, RunLogError> {
        let path = dir.join(FILE_NAME);
        let err = |source| RunLogError { path: path.clone(), source };
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut book = RunBook::default();
        match File::open(&path) {
            Ok(file) => {
                for line in BufReader::new(file).lines() {
                    let line = line.map_err(err)?;
                    match serde_json::from_str::<RunRecord>(&line) {
                        Ok(record) => book.apply(record),
                        Err(e) => tracing::warn!(error = %e, "skipping an unreadable line of {FILE_NAME}"),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(err)?;
        // A torn last line must not glue itself to the next record.
        let len = file.metadata().map_err(err)?.len();
        if len > 0 && !ends_with_newline(&path).map_err(err)? {
            file.write_all(b"\n").map_err(err)?;
        }
        Ok(RunLog { book, path, file })
    }

    /// Writes and syncs the record, then applies it.
    pub fn record(&mut self, record: RunRecord) -> Result<(), RunLogError> {
        let mut line =
            serde_json::to_string(&record).map_err(|e| RunLogError { path: self.path.clone(), source: e.into() })?;
        line.push('\n');
        let err = |source| RunLogError { path: self.path.clone(), source };
        self.file.write_all(line.as_bytes()).map_err(err)?;
        self.file.sync_data().map_err(|source| RunLogError { path: self.path.clone(), source })?;
        self.book.apply(record);
        Ok(())
    }

    pub fn book(&self) -> &RunBook {
        &self.book
    }
}

fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use causely_model::ActionOutcome;

    fn id(s: &str) -> ActionId {
        ActionId(s.into())
    }

    fn result(s: &str, outcome: ActionOutcome) -> ActionResult {
        ActionResult { id: id(s), outcome, dry_run: false, finished: UnixMillis(2) }
    }

    #[test]
    fn an_id_moves_from_started_to_finished_to_reported() {
        let mut book = RunBook::default();
        book.apply(RunRecord::Started { id: id("a"), at: UnixMillis(1) });
        assert_eq!(book.get(&id("a")), Some(&RunState::Started));
        book.apply(RunRecord::Finished { result: result("a", ActionOutcome::Applied {}) });
        assert_eq!(book.unreported(), vec![result("a", ActionOutcome::Applied {})]);
        book.apply(RunRecord::Reported { id: id("a") });
        assert_eq!(book.get(&id("a")), Some(&RunState::Reported(result("a", ActionOutcome::Applied {}))));
        assert!(book.unreported().is_empty());
    }

    #[test]
    fn a_finished_result_is_never_replaced() {
        let mut book = RunBook::default();
        book.apply(RunRecord::Finished { result: result("a", ActionOutcome::Applied {}) });
        book.apply(RunRecord::Finished { result: result("a", ActionOutcome::Rejected { reason: "again".into() }) });
        book.apply(RunRecord::Started { id: id("a"), at: UnixMillis(3) });
        assert_eq!(book.get(&id("a")), Some(&RunState::Finished(result("a", ActionOutcome::Applied {}))));
    }

    #[test]
    fn a_reopened_log_remembers_every_id_and_skips_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = RunLog::open(dir.path()).unwrap();
            log.record(RunRecord::Started { id: id("a"), at: UnixMillis(1) }).unwrap();
            log.record(RunRecord::Finished { result: result("a", ActionOutcome::Applied {}) }).unwrap();
            log.record(RunRecord::Started { id: id("b"), at: UnixMillis(1) }).unwrap();
        }
        let path = dir.path().join(FILE_NAME);
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"step\":\"fini").unwrap();
        let mut log = RunLog::open(dir.path()).unwrap();
        assert_eq!(log.book().get(&id("a")), Some(&RunState::Finished(result("a", ActionOutcome::Applied {}))));
        assert_eq!(log.book().get(&id("b")), Some(&RunState::Started));
        log.record(RunRecord::Reported { id: id("a") }).unwrap();
        let log = RunLog::open(dir.path()).unwrap();
        assert!(matches!(log.book().get(&id("a")), Some(RunState::Reported(_))));
        assert_eq!(log.book().len(), 2);
    }
}
