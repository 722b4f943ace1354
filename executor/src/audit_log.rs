//! The executor's audit log: `audit.jsonl` in its state directory, one JSON line per decision
//! (what was asked, by whom and why, what was decided, and whether the Event was recorded).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use causely_model::{Action, ActionOutcome, ActionResult};
use serde::{Deserialize, Serialize};

const FILE_NAME: &str = "audit.jsonl";

/// One decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditLine {
    pub action: Action,
    pub result: ActionResult,
    /// `recorded`, or why the Event could not be.
    pub event: String,
}

impl AuditLine {
    pub fn new(action: &Action, result: &ActionResult, event: Result<(), String>) -> Self {
        AuditLine {
            action: action.clone(),
            result: result.clone(),
            event: match event {
                Ok(()) => "recorded".to_owned(),
                Err(err) => format!("not recorded: {err}"),
            },
        }
    }

    pub fn applied(&self) -> bool {
        matches!(self.result.outcome, ActionOutcome::Applied {})
    }
}

/// Why the audit log could not be written.
#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {source}")]
pub struct AuditError {
    path: PathBuf,
    source: std::io::Error,
}

/// The open audit log.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
}

impl AuditLog {
    pub fn open(dir: &Path) -> Result<AuditLog, AuditError> {
        let path = dir.join(FILE_NAME);
        let file = std::fs::create_dir_all(dir)
            .and_then(|()| OpenOptions::new().create(true).append(true).open(&path))
            .map_err(|source| AuditError { path: path.clone(), source })?;
        Ok(AuditLog { path, file })
    }

    /// Appends one line and syncs it.
    pub fn append(&mut self, line: &AuditLine) -> Result<(), AuditError> {
        let err = |source| AuditError { path: self.path.clone(), source };
        let mut text = serde_json::to_string(line).map_err(|e| err(e.into()))?;
        text.push('\n');
        self.file.write_all(text.as_bytes()).map_err(|source| AuditError { path: self.path.clone(), source })?;
        self.file.sync_data().map_err(|source| AuditError { path: self.path.clone(), source })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causely_model::{ActionId, ActionKind, UnixMillis};

    #[test]
    fn each_decision_is_one_json_line_that_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let action = Action {
            id: ActionId("a-1".into()),
            kind: ActionKind::Scale { replicas: 3 },
            target: "workload/deployment/shop/web".parse().unwrap(),
            reason: "load".into(),
            requester: "cli:alice".into(),
            expires: UnixMillis(10),
            dry_run: false,
        };
        let result = ActionResult {
            id: action.id.clone(),
            outcome: ActionOutcome::Rejected { reason: "out of bounds".into() },
            dry_run: false,
            finished: UnixMillis(5),
        };
        let mut log = AuditLog::open(dir.path()).unwrap();
        log.append(&AuditLine::new(&action, &result, Ok(()))).unwrap();
        log.append(&AuditLine::new(&action, &result, Err("403 Forbidden".into()))).unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<AuditLine> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].event, "recorded");
        assert_eq!(lines[1].event, "not recorded: 403 Forbidden");
        assert_eq!(lines[0].result, result);
        assert!(!lines[0].applied());
    }
}
