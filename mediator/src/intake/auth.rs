//! Authenticates agents by their projected ServiceAccount tokens, verified locally against the
//! API server's published issuer keys.
//!
//! The seed's mediator ClusterRole has no `tokenreviews`, so instead of asking the API server
//! about every token the mediator fetches the issuer's public keys (`/openid/v1/jwks`, readable by
//! every ServiceAccount through the default `system:service-account-issuer-discovery` binding)
//! and checks signature, issuer, audience, subject and expiry itself. No RBAC is added. A token
//! signed by a key it does not know triggers one refresh of the key set (rate-limited), which
//! follows key rotation.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::ServiceAccountRef;

/// Why a request was not authenticated; the text goes back to the caller in the 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("token is not a signed JWT: {0}")]
    Malformed(String),
    #[error("token signed by an unknown key")]
    UnknownKey,
    #[error("token rejected: {0}")]
    Invalid(String),
    #[error("token is bound to node {token_node}, report claims node {report_node}")]
    WrongNode { token_node: String, report_node: String },
    #[error("issuer keys unavailable: {0}")]
    KeysUnavailable(String),
}

/// Who sent a report, as the token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentIdentity {
    /// The node the token's pod is bound to, when the token is bound to a pod.
    pub node: Option<String>,
    pub pod: Option<String>,
}

impl AgentIdentity {
    /// A pod-bound token may only report for its own node.
    pub fn check_node(&self, report_node: &str) -> Result<(), AuthError> {
        match &self.node {
            Some(node) if node != report_node => {
                Err(AuthError::WrongNode { token_node: node.clone(), report_node: report_node.into() })
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(rename = "kubernetes.io", default)]
    kubernetes: Option<KubernetesClaims>,
}

#[derive(Debug, Deserialize)]
struct KubernetesClaims {
    #[serde(default)]
    node: Option<NamedRef>,
    #[serde(default)]
    pod: Option<NamedRef>,
}

#[derive(Debug, Deserialize)]
struct NamedRef {
    name: String,
}

/// What a valid token must say.
#[derive(Debug, Clone)]
pub struct Expectations {
    pub issuer: String,
    pub audience: String,
    pub subject: String,
}

impl Expectations {
    pub fn new(issuer: String, audience: &str, account: &ServiceAccountRef) -> Self {
        Expectations { issuer, audience: audience.into(), subject: account.subject() }
    }
}

/// Checks one token against a key set: the pure part of authentication.
pub fn verify(token: &str, keys: &JwkSet, expect: &Expectations) -> Result<AgentIdentity, AuthError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256 | Algorithm::RS384 | Algorithm::RS512) {
        return Err(AuthError::Invalid(format!("algorithm {:?} not accepted", header.alg)));
    }
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => None,
    }
    .ok_or(AuthError::UnknownKey)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| AuthError::KeysUnavailable(e.to_string()))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[&expect.issuer]);
    validation.set_audience(&[&expect.audience]);
    validation.sub = Some(expect.subject.clone());
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 30;
    let data =
        jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| AuthError::Invalid(e.to_string()))?;
    let k8s = data.claims.kubernetes;
    Ok(AgentIdentity {
        node: k8s.as_ref().and_then(|k| k.node.as_ref()).map(|n| n.name.clone()),
        pod: k8s.as_ref().and_then(|k| k.pod.as_ref()).map(|p| p.name.clone()),
    })
}

/// Fetches the issuer and its keys from the API server.
#[derive(Clone)]
pub struct IssuerSource {
    client: kube::Client,
}

impl std::fmt::Debug for IssuerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuerSource")
    }
}

#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
}

impl IssuerSource {
    pub fn new(client: kube::Client) -> Self {
        IssuerSource { client }
    }

    async fn get(&self, path: &str) -> Result<String, AuthError> {
        let request =
            http::Request::get(path).body(Vec::new()).map_err(|e| AuthError::KeysUnavailable(e.to_string()))?;
        self.client.request_text(request).await.map_err(|e| AuthError::KeysUnavailable(format!("GET {path}: {e}")))
    }

    pub async fn issuer(&self) -> Result<String, AuthError> {
        let text = self.get("/.well-known/openid-configuration").await?;
        let discovery: Discovery =
            serde_json::from_str(&text).map_err(|e| AuthError::KeysUnavailable(format!("discovery document: {e}")))?;
        Ok(discovery.issuer)
    }

    pub async fn keys(&self) -> Result<JwkSet, AuthError> {
        let text = self.get("/openid/v1/jwks").await?;
        serde_json::from_str(&text).map_err(|e| AuthError::KeysUnavailable(format!("key set: {e}")))
    }
}

/// Verifies tokens with cached issuer keys, refreshing them when a token names an unknown key.
#[derive(Debug)]
pub struct TokenVerifier {
    source: IssuerSource,
    audience: String,
    account: ServiceAccountRef,
    cache: RwLock<Option<Cached>>,
    refresh: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Debug, Clone)]
struct Cached {
    expect: Expectations,
    keys: JwkSet,
}

/// At most one key refresh per interval, so a stream of forged tokens cannot hammer the API server.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

impl TokenVerifier {
    pub fn new(source: IssuerSource, audience: &str, account: ServiceAccountRef) -> Self {
        TokenVerifier {
            source,
            audience: audience.into(),
            account,
            cache: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(None),
        }
    }

    /// Verifies the value of an `Authorization` header.
    pub async fn verify_header(&self, header: Option<&str>) -> Result<AgentIdentity, AuthError> {
        let token = header
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        if let Some(cached) = self.cached() {
            match verify(token, &cached.keys, &cached.expect) {
                Err(AuthError::UnknownKey) => {}
                other => return other,
            }
        }
        let cached = self.reload().await?;
        verify(token, &cached.keys, &cached.expect)
    }

    fn cached(&self) -> Option<Cached> {
        self.cache.read().ok().and_then(|c| c.clone())
    }

    async fn reload(&self) -> Result<Cached, AuthError> {
        let mut last = self.refresh.lock().await;
        if let (Some(at), Some(cached)) = (*last, self.cached())
            && at.elapsed() < MIN_REFRESH_INTERVAL
        {
            return Ok(cached);
        }
        let issuer = self.source.issuer().await?;
        let keys = self.source.keys().await?;
        let cached = Cached { expect: Expectations::new(issuer, &self.audience, &self.account), keys };
        *last = Some(Instant::now());
        if let Ok(mut slot) = self.cache.write() {
            *slot = Some(cached.clone());
        }
        Ok(cached)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expectations() -> Expectations {
        Expectations {
            issuer: "https://kubernetes.default.svc".into(),
            audience: "causely-mediator".into(),
            subject: "system:serviceaccount:causely:causely-agent".into(),
        }
    }

    #[test]
    fn garbage_is_reported_as_not_a_jwt() {
        let err = verify("not-a-token", &JwkSet { keys: vec![] }, &expectations()).unwrap_err();
        assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        // {"alg":"none"} . {"sub":...} . (no signature)
        let token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
        let err = verify(token, &JwkSet { keys: vec![] }, &expectations()).unwrap_err();
        assert!(matches!(err, AuthError::Malformed(_) | AuthError::Invalid(_)), "{err:?}");
    }

    #[test]
    fn a_token_bound_to_another_node_cannot_report_for_this_one() {
        let id = AgentIdentity { node: Some("n1".into()), pod: Some("agent-x".into()) };
        assert!(id.check_node("n1").is_ok());
        assert_eq!(
            id.check_node("n2").unwrap_err(),
            AuthError::WrongNode { token_node: "n1".into(), report_node: "n2".into() }
        );
        assert!(AgentIdentity { node: None, pod: None }.check_node("n2").is_ok());
    }
}
