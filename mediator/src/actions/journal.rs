//! The action queue on disk: `actions.jsonl` in the state directory, one line per submission or
//! result, written before the queue changes and replayed at start, so a restarted mediator still
//! knows every id it took and every result it was given.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use causely_model::api::ActionView;
use causely_model::{Action, ActionId, ActionResult, UnixMillis};
use serde::{Deserialize, Serialize};

use super::queue::{ActionQueue, QueueError, Reported};

const FILE_NAME: &str = "actions.jsonl";

/// How long finished and long-expired actions are remembered.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case", rename_all_fields = "camelCase", deny_unknown_fields)]
enum Record {
    Submitted { action: Action, at: UnixMillis },
    Result { result: ActionResult },
}

/// Why the queue could not take a submission or a result.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Refused(#[from] QueueError),
    #[error("writing {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The queue and the file that keeps it.
#[derive(Debug)]
pub struct ActionStore {
    queue: ActionQueue,
    path: PathBuf,
    file: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io { path: path.to_owned(), source }
}

impl ActionStore {
    /// Replays the journal in `dir` (a torn last line from a crash is skipped), forgets what is
    /// older than [`RETENTION`], and rewrites the file with what is left.
    pub fn open(dir: &Path, now: UnixMillis) -> Result<ActionStore, JournalError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(FILE_NAME);
        let mut queue = ActionQueue::default();
        match File::open(&path) {
            Ok(file) => {
                for line in BufReader::new(file).lines() {
                    let line = line.map_err(io(&path))?;
                    match serde_json::from_str::<Record>(&line) {
                        Ok(Record::Submitted { action, at }) => {
                            queue.restore(action, at);
                        }
                        Ok(Record::Result { result }) => {
                            let _ = queue.report(result);
                        }
                        Err(err) => tracing::warn!(error = %err, "skipping an unreadable line of {FILE_NAME}"),
                    }
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io(&path)(err)),
        }
        queue.prune(now, RETENTION);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        {
            let mut out = File::create(&tmp).map_err(io(&tmp))?;
            for (action, at, result) in queue.entries() {
                let mut text = line(&Record::Submitted { action: action.clone(), at })?;
                if let Some(result) = result {
                    text.push_str(&line(&Record::Result { result: result.clone() })?);
                }
                out.write_all(text.as_bytes()).map_err(io(&tmp))?;
            }
            out.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        let file = OpenOptions::new().append(true).open(&path).map_err(io(&path))?;
        Ok(ActionStore { queue, path, file })
    }

    fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        let text = line(record)?;
        self.file.write_all(text.as_bytes()).map_err(io(&self.path))?;
        self.file.sync_data().map_err(io(&self.path))
    }

    pub fn submit(&mut self, action: Action, now: UnixMillis) -> Result<ActionView, JournalError> {
        self.queue.check_submit(&action, now)?;
        self.append(&Record::Submitted { action: action.clone(), at: now })?;
        Ok(self.queue.submit(action, now)?)
    }

    pub fn report(&mut self, result: ActionResult) -> Result<Reported, JournalError> {
        if self.queue.check_report(&result)? == Reported::Repeated {
            return Ok(Reported::Repeated);
        }
        self.append(&Record::Result { result: result.clone() })?;
        Ok(self.queue.report(result)?)
    }

    pub fn pending(&self) -> Vec<Action> {
        self.queue.pending()
    }

    pub fn pending_count(&self) -> usize {
        self.queue.pending_count()
    }

    pub fn view(&self, id: &ActionId) -> Option<ActionView> {
        self.queue.view(id)
    }
}

fn line(record: &Record) -> Result<String, JournalError> {
    let mut text = serde_json::to_string(record)
        .map_err(|e| JournalError::Io { path: PathBuf::from(FILE_NAME), source: e.into() })?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use causely_model::api::ActionState;
    use causely_model::{ActionKind, ActionOutcome};

    fn action(id: &str) -> Action {
        Action {
            id: ActionId(id.into()),
            kind: ActionKind::Restart {},
            target: "workload/deployment/shop/web".parse().unwrap(),
            reason: "crash loop".into(),
            requester: "cli:alice".into(),
            expires: UnixMillis(10_000_000_000_000),
            dry_run: false,
        }
    }

    #[test]
    fn a_reopened_store_knows_every_id_and_result() {
        let dir = tempfile::tempdir().unwrap();
        let now = UnixMillis(1_000);
        {
            let mut store = ActionStore::open(dir.path(), now).unwrap();
            store.submit(action("a"), now).unwrap();
            store.submit(action("b"), now).unwrap();
            let result = ActionResult {
                id: ActionId("a".into()),
                outcome: ActionOutcome::Failed { reason: "forbidden".into() },
                dry_run: false,
                finished: UnixMillis(2_000),
            };
            store.report(result).unwrap();
        }
        // A crash mid-write leaves a torn line; it is skipped.
        let path = dir.path().join(FILE_NAME);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"record\":\"submi").unwrap();
        drop(file);

        let mut store = ActionStore::open(dir.path(), UnixMillis(3_000)).unwrap();
        assert_eq!(store.view(&ActionId("a".into())).unwrap().state, ActionState::Done);
        assert_eq!(store.pending(), vec![action("b")]);
        assert!(matches!(
            store.submit(action("a"), UnixMillis(3_000)),
            Err(JournalError::Refused(QueueError::Duplicate(_)))
        ));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
    }
}
