//! The executor's side of the mediator's action queue: pull the pending actions and report each
//! result, authenticated by the projected ServiceAccount token (re-read every time, since the
//! kubelet rotates it).

use std::path::PathBuf;
use std::time::Duration;

use causely_model::api::ActionList;
use causely_model::{Action, ActionResult};
use reqwest::header::{AUTHORIZATION, HeaderValue};

/// Why the mediator gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("reading the token {path}: {source}")]
    Token { path: PathBuf, source: std::io::Error },
    #[error("the token file {0} holds no usable token")]
    BadToken(PathBuf),
    #[error("the mediator at {url} could not be reached: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the mediator answered {status} to {what}: {body}")]
    Status { what: String, status: u16, body: String },
}

/// How the mediator took a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledged {
    /// Recorded (or it already had this very result).
    Yes,
    /// It will never take it: it does not know the id (it lost its queue) or holds another
    /// result. Retrying cannot help; the result stays in the audit log.
    Never,
}

/// A client of one mediator.
#[derive(Debug, Clone)]
pub struct MediatorClient {
    base: String,
    token_file: Option<PathBuf>,
    http: reqwest::Client,
}

impl MediatorClient {
    pub fn new(base: &str, token_file: Option<PathBuf>, timeout: Duration) -> Result<Self, PullError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| PullError::Unreachable { url: base.to_owned(), detail: causely_runtime::with_causes(&e) })?;
        Ok(MediatorClient { base: base.trim_end_matches('/').to_owned(), token_file, http })
    }

    async fn bearer(&self) -> Result<Option<HeaderValue>, PullError> {
        let Some(path) = &self.token_file else { return Ok(None) };
        let text =
            tokio::fs::read_to_string(path).await.map_err(|source| PullError::Token { path: path.clone(), source })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(PullError::BadToken(path.clone()));
        }
        let mut value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| PullError::BadToken(path.clone()))?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    fn unreachable(&self, err: &reqwest::Error) -> PullError {
        PullError::Unreachable { url: self.base.clone(), detail: causely_runtime::with_causes(err) }
    }

    /// The actions waiting for the executor, oldest first.
    pub async fn pending(&self) -> Result<Vec<Action>, PullError> {
        let mut request = self.http.get(format!("{}/v1/actions?state=pending", self.base));
        if let Some(token) = self.bearer().await? {
            request = request.header(AUTHORIZATION, token);
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        if status != 200 {
            let body = String::from_utf8_lossy(&body).chars().take(300).collect();
            return Err(PullError::Status { what: "GET /v1/actions?state=pending".into(), status, body });
        }
        let list: ActionList = serde_json::from_slice(&body).map_err(|e| PullError::Status {
            what: "GET /v1/actions?state=pending".into(),
            status,
            body: format!("not an action list: {e}"),
        })?;
        Ok(list.actions)
    }

    /// Reports one result.
    pub async fn report(&self, result: &ActionResult) -> Result<Acknowledged, PullError> {
        let what = format!("POST /v1/actions/{}/result", result.id);
        let mut request = self.http.post(format!("{}/v1/actions/{}/result", self.base, result.id)).json(result);
        if let Some(token) = self.bearer().await? {
            request = request.header(AUTHORIZATION, token);
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(Acknowledged::Yes),
            404 | 409 => Ok(Acknowledged::Never),
            _ => {
                let body = response.text().await.unwrap_or_default().chars().take(300).collect();
                Err(PullError::Status { what, status, body })
            }
        }
    }
}
