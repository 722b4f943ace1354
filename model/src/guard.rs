//! The egress guard: the last check on the exact bytes of a batch before they may leave the cluster.
//!
//! The guard fails closed. A batch passes only if every check below passes, in this order, and the
//! first failure is reported as a [`Rejection`]:
//!
//! 1. `too-large`: at most [`DEFAULT_MAX_BATCH_BYTES`] (configurable with [`EgressGuard::with_max_bytes`]).
//! 2. `not-utf8`, `not-json`: the bytes are UTF-8 text of one JSON document.
//! 3. Content rules over the JSON value, applied to every string value and every object key, so a
//!    leak is named for what it is even where the schema would also refuse it:
//!    - `number-array`: no array holds a number. Nothing in the model is a list of numbers; a
//!      metric series is.
//!    - `oversized-string`: no string over [`MAX_STRING_BYTES`] (values) or [`MAX_KEY_BYTES`] (keys).
//!      The longest valid string is a symptom id (921 bytes); the schema's per-field limits are
//!      tighter still (63 for label values, 253 per name segment of an id).
//!    - `series-string`: no string made only of two or more decimal numbers joined by separators
//!      (`0.93,0.95,0.97`, `1700000000:0.5`, `1-2-3-4`). Two or three integers joined by `-` or `_`
//!      (a date such as `2024-01-15`) are allowed; a fraction or a `,;:|` or blank separator is not.
//!    - `number-string`: no string that is a single number with a fraction, exponent or sign
//!      (`0.93`, `1e-3`, `-4`), nor an integer over [`MAX_PLAIN_INTEGER_DIGITS`] digits (a timestamp).
//!      Short integers stay allowed: `apps.kubernetes.io/pod-index: "0"` is a real label. So is
//!      `app.kubernetes.io/version: "1.25"`, which this rule refuses; producers drop such labels
//!      before building a batch with [`EgressGuard::check_label`], so one label costs itself, not
//!      the batch.
//!    - `encoded-blob`: no run of [`MIN_HEX_RUN`] or more hex digits (a digest, a key, a decimal
//!      dump), and no run of [`MIN_BASE64_RUN`] or more base64/base64url characters that mixes
//!      upper case, lower case and digits and changes character class at least every other
//!      character, as random encoded bytes do and words do not. Entity ids and names are lower
//!      case, so they are never taken for base64; `pod-template-hash` values (`7d4b9c8f5`) and UIDs
//!      are far below the hex run. A lower-case base32 text cannot be told from a Kubernetes name;
//!      the schema's length limits and the batch bound are what limit it.
//! 4. `schema`: the batch validates against `schema/egress-batch.schema.json`.
//! 5. `not-model`: the document deserializes into [`EgressBatch`], which rejects unknown fields.
//! 6. `not-canonical`: serializing that batch gives back exactly the input bytes. Whitespace, key
//!    order, escapes, number spellings and duplicate keys could otherwise carry data or hide a
//!    value from the checks above.
//!
//! Rejection details never quote the rejected content: they end up in the ledger and in reports.

use std::fmt;

use jsonschema::{PatternOptions, Validator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::egress::EgressBatch;
use crate::schema::EGRESS_BATCH_SCHEMA;

/// Default bound on one batch: a snapshot of a large cluster fits, a bulk export does not.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Longest string value anywhere in a batch (see the module documentation).
pub const MAX_STRING_BYTES: usize = 1024;
/// Longest object key: a label key (253-byte prefix, `/`, 63-byte name).
pub const MAX_KEY_BYTES: usize = 317;
/// Shortest run of hex digits taken for an encoded blob (an MD5 digest or a UUID without dashes).
pub const MIN_HEX_RUN: usize = 32;
/// Shortest run of base64 characters taken for an encoded blob (15 bytes of data).
pub const MIN_BASE64_RUN: usize = 20;
/// Longest plain integer a string may be; a 10-digit Unix timestamp already fills it.
pub const MAX_PLAIN_INTEGER_DIGITS: usize = 9;
/// Rejection details are cut to this many bytes.
const MAX_DETAIL_BYTES: usize = 240;

/// Which check refused a batch. The names are stable: they are written to the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectionRule {
    TooLarge,
    NotUtf8,
    NotJson,
    NumberArray,
    OversizedString,
    SeriesString,
    NumberString,
    EncodedBlob,
    Schema,
    NotModel,
    NotCanonical,
}

impl RejectionRule {
    pub fn name(self) -> &'static str {
        match self {
            RejectionRule::TooLarge => "too-large",
            RejectionRule::NotUtf8 => "not-utf8",
            RejectionRule::NotJson => "not-json",
            RejectionRule::NumberArray => "number-array",
            RejectionRule::OversizedString => "oversized-string",
            RejectionRule::SeriesString => "series-string",
            RejectionRule::NumberString => "number-string",
            RejectionRule::EncodedBlob => "encoded-blob",
            RejectionRule::Schema => "schema",
            RejectionRule::NotModel => "not-model",
            RejectionRule::NotCanonical => "not-canonical",
        }
    }
}

impl fmt::Display for RejectionRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the guard refused a batch: the rule, where (a JSON pointer; empty for the whole document)
/// and what, without quoting the content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rejection {
    pub rule: RejectionRule,
    pub path: String,
    pub detail: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() { "the document" } else { self.path.as_str() };
        write!(f, "egress refused by rule {} at {}: {}", self.rule, path, self.detail)
    }
}

impl Rejection {
    fn new(rule: RejectionRule, path: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut detail = detail.into();
        if detail.len() > MAX_DETAIL_BYTES {
            let mut end = MAX_DETAIL_BYTES;
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            detail.truncate(end);
            detail.push_str("...");
        }
        Rejection { rule, path: path.into(), detail }
    }
}

/// The compiled egress schema plus the content rules; build it once and share it.
pub struct EgressGuard {
    schema: Validator,
    labels: Validator,
    max_bytes: usize,
}

impl fmt::Debug for EgressGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressGuard").field("max_bytes", &self.max_bytes).finish_non_exhaustive()
    }
}

impl Default for EgressGuard {
    fn default() -> Self {
        Self::new()
    }
}

fn compile(schema: &Value) -> Validator {
    // Rust's `regex` matches in linear time, so no pattern can be made to backtrack for long.
    jsonschema::options()
        .with_pattern_options(PatternOptions::regex())
        .build(schema)
        .expect("the embedded egress schema compiles; a unit test builds it")
}

impl EgressGuard {
    /// Compiles the embedded schema. It is part of this crate and covered by its tests, so a
    /// failure here is a build defect and panics rather than letting anything through.
    pub fn new() -> Self {
        let schema: Value = serde_json::from_str(EGRESS_BATCH_SCHEMA)
            .expect("the embedded egress schema is JSON; a unit test reads it");
        let labels = schema.pointer("/$defs/Entity/properties/labels").cloned().unwrap_or(Value::Bool(false));
        EgressGuard { schema: compile(&schema), labels: compile(&labels), max_bytes: DEFAULT_MAX_BATCH_BYTES }
    }

    /// Sets the bound on one batch's size in bytes.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Checks the exact bytes that would leave and returns the batch they encode.
    pub fn check(&self, bytes: &[u8]) -> Result<EgressBatch, Rejection> {
        use RejectionRule::*;
        if bytes.len() > self.max_bytes {
            return Err(Rejection::new(
                TooLarge,
                "",
                format!("{} bytes exceed the bound of {} bytes", bytes.len(), self.max_bytes),
            ));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Rejection::new(NotUtf8, "", format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Rejection::new(NotJson, "", format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column()))
        })?;
        check_value(&value, &mut String::new())?;
        if let Some(error) = self.schema.iter_errors(&value).next() {
            return Err(Rejection::new(Schema, error.instance_path().as_str(), error.masked().to_string()));
        }
        let batch: EgressBatch = serde_json::from_str(text).map_err(|e| Rejection::new(NotModel, "", e.to_string()))?;
        let canonical = serde_json::to_vec(&batch).map_err(|e| Rejection::new(NotModel, "", e.to_string()))?;
        if canonical != bytes {
            let at = canonical.iter().zip(bytes).position(|(a, b)| a != b).unwrap_or(canonical.len().min(bytes.len()));
            return Err(Rejection::new(
                NotCanonical,
                "",
                format!(
                    "differs from the batch's own encoding at byte {at} (whitespace, key order, escapes, \
                     number spelling or a repeated key)"
                ),
            ));
        }
        Ok(batch)
    }

    /// Whether one label may leave, by the same rules as a whole batch. Producers call this to
    /// leave out a label rather than have the guard refuse the batch that carries it.
    pub fn check_label(&self, key: &str, value: &str) -> Result<(), Rejection> {
        let path = format!("/labels/{}", escape_pointer(key));
        check_string(key, MAX_KEY_BYTES).map_err(|(rule, detail)| Rejection::new(rule, path.as_str(), detail))?;
        check_string(value, MAX_STRING_BYTES).map_err(|(rule, detail)| Rejection::new(rule, path.as_str(), detail))?;
        let mut map = serde_json::Map::new();
        map.insert(key.to_owned(), Value::String(value.to_owned()));
        if let Some(error) = self.labels.iter_errors(&Value::Object(map)).next() {
            return Err(Rejection::new(RejectionRule::Schema, path, error.masked().to_string()));
        }
        Ok(())
    }
}

fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Applies the content rules to every array, key and string below `value`; `path` is its pointer.
fn check_value(value: &Value, path: &mut String) -> Result<(), Rejection> {
    match value {
        Value::Array(items) => {
            if let Some(i) = items.iter().position(Value::is_number) {
                return Err(Rejection::new(
                    RejectionRule::NumberArray,
                    path.as_str(),
                    format!("array of {} items holds a number (item {i})", items.len()),
                ));
            }
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                check_value(item, path)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                path.push('/');
                path.push_str(&escape_pointer(key));
                check_string(key, MAX_KEY_BYTES)
                    .map_err(|(rule, detail)| Rejection::new(rule, path.as_str(), format!("key {detail}")))?;
                check_value(item, path)?;
                path.truncate(len);
            }
        }
        Value::String(text) => {
            check_string(text, MAX_STRING_BYTES)
                .map_err(|(rule, detail)| Rejection::new(rule, path.as_str(), detail))?;
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

fn check_string(text: &str, max: usize) -> Result<(), (RejectionRule, String)> {
    if text.len() > max {
        return Err((RejectionRule::OversizedString, format!("string of {} bytes exceeds {max}", text.len())));
    }
    if let Some(count) = series_length(text) {
        return Err((RejectionRule::SeriesString, format!("string is a series of {count} numbers")));
    }
    if looks_like_number(text) {
        return Err((RejectionRule::NumberString, format!("string of {} bytes is a number", text.len())));
    }
    if let Some(what) = encoded_blob(text) {
        return Err((RejectionRule::EncodedBlob, what));
    }
    Ok(())
}

/// `digits` or `digits.digits`.
fn is_decimal(token: &str) -> bool {
    let (int, frac) = token.split_once('.').unwrap_or((token, "1"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// The number of values when `text` is a series of numbers, as the module documentation defines it.
fn series_length(text: &str) -> Option<usize> {
    let strong = |c: char| matches!(c, ',' | ';' | ':' | '|') || c.is_whitespace();
    let separator = |c: char| strong(c) || matches!(c, '/' | '_' | '-');
    let mut count = 0;
    let mut fraction = false;
    for token in text.split(separator).filter(|t| !t.is_empty()) {
        if !is_decimal(token) {
            return None;
        }
        count += 1;
        fraction |= token.contains('.');
    }
    (count >= 2 && (fraction || count >= 4 || text.contains(strong))).then_some(count)
}

/// A single number other than a short plain integer.
fn looks_like_number(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let signed = unsigned.len() != text.len();
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let has_digits = !int.is_empty() || frac.is_some_and(|f| !f.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if !(has_digits && digits(int) && frac.is_none_or(digits) && exponent_ok) {
        return false;
    }
    let plain = !signed && frac.is_none() && exponent.is_none();
    !plain || int.len() > MAX_PLAIN_INTEGER_DIGITS
}

/// Maximal runs of characters for which `keep` holds.
fn runs(text: &str, keep: impl Fn(char) -> bool + Copy) -> impl Iterator<Item = &str> {
    text.split(move |c: char| !keep(c)).filter(|run| !run.is_empty())
}

/// Describes the first run in `text` that looks like encoded bytes, if any.
fn encoded_blob(text: &str) -> Option<String> {
    if let Some(run) = runs(text, |c| c.is_ascii_hexdigit()).find(|run| run.len() >= MIN_HEX_RUN) {
        return Some(format!("hex-like run of {} characters", run.len()));
    }
    let base64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '_' | '-' | '=');
    runs(text, base64)
        .find(|run| looks_like_base64(run))
        .map(|run| format!("base64-like run of {} characters", run.len()))
}

fn looks_like_base64(run: &str) -> bool {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Upper,
        Lower,
        Digit,
        Other,
    }
    let class = |b: u8| match b {
        b'A'..=b'Z' => Class::Upper,
        b'a'..=b'z' => Class::Lower,
        b'0'..=b'9' => Class::Digit,
        _ => Class::Other,
    };
    let bytes = run.as_bytes();
    if bytes.len() < MIN_BASE64_RUN {
        return false;
    }
    let has = |c: Class| bytes.iter().any(|&b| class(b) == c);
    if !(has(Class::Upper) && has(Class::Lower) && has(Class::Digit)) {
        return false;
    }
    let changes = bytes.windows(2).filter(|w| class(w[0]) != class(w[1])).count();
    // Random base64 changes class at about 65 % of positions; words, even CamelCase ones, far less.
    changes * 2 >= bytes.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::{Edge, Protocol, Relation};
    use crate::egress::{SCHEMA_VERSION, TopologyPayload};
    use crate::entity::Entity;
    use crate::id::{EntityId, WorkloadKind};
    use crate::symptom::{Severity, Symptom, SymptomChange, SymptomId, SymptomKind};
    use crate::time::UnixMillis;
    use serde_json::json;

    fn guard() -> EgressGuard {
        EgressGuard::new()
    }

    fn cpu_symptom() -> Symptom {
        crate::symptom::tests::cpu_symptom_at("container/shop/web-7d4b9c8f5-x2x9k/nginx", 1_700_000_000_000)
    }

    /// A snapshot shaped like a real namespace: workloads, pods, containers, services, labels.
    fn snapshot(pods: usize) -> EgressBatch {
        let mut entities = vec![Entity::new(EntityId::node("ip-10-0-0-1.ec2.internal"))];
        let mut edges = Vec::new();
        let deploy = EntityId::workload(WorkloadKind::Deployment, "shop", "web");
        let svc = EntityId::service("shop", "web");
        entities.push(Entity::new(deploy.clone()).with_label("app.kubernetes.io/name", "web"));
        entities.push(Entity::new(svc.clone()).with_label("app", "web"));
        for i in 0..pods {
            let pod = EntityId::pod("shop", format!("web-7d4b9c8f5-{i:05}"));
            let container: EntityId = format!("container/shop/web-7d4b9c8f5-{i:05}/nginx").parse().unwrap();
            entities.push(
                Entity::new(pod.clone())
                    .with_label("app", "web")
                    .with_label("pod-template-hash", "7d4b9c8f5")
                    .with_label("apps.kubernetes.io/pod-index", i.to_string())
                    .with_label("batch.kubernetes.io/controller-uid", "0d6f6c1e-4a1b-4b36-9d1c-2f0a7c1e9b11")
                    .with_label("app.kubernetes.io/version", "v1.16.0")
                    .with_label("team", "ThisIsMyVeryLongTeamName")
                    .with_label("owner", "My_Service-Name_v2-Production"),
            );
            entities.push(Entity::new(container.clone()));
            edges.push(Edge::new(pod.clone(), Relation::RunsOn {}, EntityId::node("ip-10-0-0-1.ec2.internal")));
            edges.push(Edge::new(container, Relation::RunsOn {}, pod.clone()));
            edges.push(Edge::new(pod.clone(), Relation::OwnedBy {}, deploy.clone()));
            edges.push(Edge::new(svc.clone(), Relation::Selects {}, pod));
        }
        edges.push(Edge::new(
            deploy,
            Relation::Calls { port: 5432, protocol: Protocol::Tcp },
            EntityId::service("db", "postgres"),
        ));
        EgressBatch {
            cluster_id: "prod-eu-1".into(),
            seq: 1,
            time: UnixMillis(1_700_000_000_000),
            schema_version: SCHEMA_VERSION,
            topology: TopologyPayload::Snapshot { entities, edges },
            symptoms: vec![SymptomChange::Opened { symptom: cpu_symptom() }],
        }
    }

    fn delta() -> EgressBatch {
        EgressBatch {
            seq: 2,
            topology: TopologyPayload::Delta {
                added_entities: vec![Entity::new(EntityId::pod("shop", "web-1")).with_label("app", "web")],
                removed_entities: vec![EntityId::pod("shop", "web-0")],
                added_edges: vec![Edge::new(EntityId::pod("shop", "web-1"), Relation::RunsOn {}, EntityId::node("n1"))],
                removed_edges: vec![],
            },
            symptoms: vec![SymptomChange::Resolved { id: cpu_symptom().id, resolved: UnixMillis(1_700_000_060_000) }],
            ..snapshot(0)
        }
    }

    fn bytes(batch: &EgressBatch) -> Vec<u8> {
        serde_json::to_vec(batch).unwrap()
    }

    fn value_bytes(value: &Value) -> Vec<u8> {
        serde_json::to_vec(value).unwrap()
    }

    fn rejected(bytes: &[u8]) -> Rejection {
        match guard().check(bytes) {
            Ok(batch) => panic!("accepted a batch that should be refused: seq {}", batch.seq),
            Err(rejection) => rejection,
        }
    }

    #[test]
    fn a_large_snapshot_with_labels_symptoms_and_every_edge_kind_is_accepted() {
        let batch = snapshot(500);
        assert_eq!(guard().check(&bytes(&batch)), Ok(batch));
    }

    #[test]
    fn a_delta_and_a_resolved_symptom_are_accepted() {
        let batch = delta();
        assert_eq!(guard().check(&bytes(&batch)), Ok(batch));
        let mut resolved = cpu_symptom();
        resolved.resolved = Some(UnixMillis(1_700_000_100_000));
        resolved.threshold = None;
        let batch = EgressBatch { symptoms: vec![SymptomChange::Opened { symptom: resolved }], ..delta() };
        assert_eq!(guard().check(&bytes(&batch)), Ok(batch));
    }

    #[test]
    fn a_metric_series_in_an_array_is_refused_as_a_number_array() {
        let mut value = serde_json::to_value(delta()).unwrap();
        value["topology"]["removedEntities"] = json!([0.93, 0.95, 0.97]);
        let rejection = rejected(&value_bytes(&value));
        assert_eq!(rejection.rule, RejectionRule::NumberArray);
        assert_eq!(rejection.path, "/topology/removedEntities");
    }

    #[test]
    fn a_metric_series_spelled_as_a_string_is_refused() {
        for series in ["0.93,0.95,0.97", "1700000000:0.5", "0.93 0.95", "1700000000:5,1700000060:7", "10-20-30-40"] {
            let batch = EgressBatch { cluster_id: series.into(), ..delta() };
            let rejection = rejected(&bytes(&batch));
            assert_eq!(rejection.rule, RejectionRule::SeriesString, "{series}: {rejection}");
            assert_eq!(rejection.path, "/clusterId");
            assert!(!rejection.to_string().contains(series), "the detail quotes the leak: {rejection}");
        }
    }

    #[test]
    fn a_metric_series_in_an_extra_field_is_refused() {
        let mut value = serde_json::to_value(delta()).unwrap();
        value["topology"]["cpu"] = json!("0.93,0.95,0.97");
        let rejection = rejected(&value_bytes(&value));
        assert_eq!(rejection.rule, RejectionRule::SeriesString);
        assert_eq!(rejection.path, "/topology/cpu");
        // Data that no content rule recognises is still outside the schema.
        value["topology"]["cpu"] = json!("high");
        let rejection = rejected(&value_bytes(&value));
        assert_eq!(rejection.rule, RejectionRule::Schema);
        assert_eq!(rejection.path, "/topology");
        let mut value = serde_json::to_value(delta()).unwrap();
        value["samples"] = json!([[1_700_000_000, 0.5]]);
        assert_eq!(rejected(&value_bytes(&value)).rule, RejectionRule::NumberArray);
    }

    #[test]
    fn a_number_array_inside_labels_is_refused() {
        let mut value = serde_json::to_value(delta()).unwrap();
        value["topology"]["addedEntities"][0]["labels"]["cpu"] = json!([0.93, 0.95]);
        let rejection = rejected(&value_bytes(&value));
        assert_eq!(rejection.rule, RejectionRule::NumberArray);
        assert_eq!(rejection.path, "/topology/addedEntities/0/labels/cpu");
    }

    #[test]
    fn a_measurement_in_a_label_value_is_refused() {
        for (value, rule) in [
            ("0.93", RejectionRule::NumberString),
            ("1e-3", RejectionRule::NumberString),
            ("1700000000123", RejectionRule::NumberString),
            ("0.93_0.95", RejectionRule::SeriesString),
        ] {
            let batch = EgressBatch {
                topology: TopologyPayload::Delta {
                    added_entities: vec![Entity::new(EntityId::node("n1")).with_label("cpu", value)],
                    removed_entities: vec![],
                    added_edges: vec![],
                    removed_edges: vec![],
                },
                ..delta()
            };
            let rejection = rejected(&bytes(&batch));
            assert_eq!(rejection.rule, rule, "{value}");
            assert_eq!(rejection.path, "/topology/addedEntities/0/labels/cpu");
        }
    }

    #[test]
    fn a_base64_or_hex_blob_is_refused() {
        // {"values":[0.93,0.95,0.97]} in base64, and a SHA-256 digest in hex.
        for blob in
            ["eyJ2YWx1ZXMiOlswLjkzLDAuOTUsMC45N119", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
        {
            let batch = EgressBatch {
                topology: TopologyPayload::Delta {
                    added_entities: vec![
                        Entity::new(EntityId::node("n1")).with_label("note", &blob[..blob.len().min(63)]),
                    ],
                    removed_entities: vec![],
                    added_edges: vec![],
                    removed_edges: vec![],
                },
                ..delta()
            };
            let rejection = rejected(&bytes(&batch));
            assert_eq!(rejection.rule, RejectionRule::EncodedBlob, "{blob}: {rejection}");
        }
        let name = format!("pod/shop/job-{}", "3f2a9c7e1d5b4a6f8e0c2b1d3a5f7e9c");
        let batch = EgressBatch {
            topology: TopologyPayload::Delta {
                added_entities: vec![],
                removed_entities: vec![name.parse().unwrap()],
                added_edges: vec![],
                removed_edges: vec![],
            },
            ..delta()
        };
        assert_eq!(rejected(&bytes(&batch)).rule, RejectionRule::EncodedBlob);
    }

    #[test]
    fn an_oversized_string_is_refused() {
        let mut value = serde_json::to_value(delta()).unwrap();
        value["topology"]["addedEntities"][0]["labels"]["app"] = json!("web-".repeat(300));
        let rejection = rejected(&value_bytes(&value));
        assert_eq!(rejection.rule, RejectionRule::OversizedString);
        assert!(rejection.detail.contains("1200 bytes"), "{rejection}");
        // Within the global bound, the schema's label limit still applies.
        value["topology"]["addedEntities"][0]["labels"]["app"] = json!("web-".repeat(20));
        assert_eq!(rejected(&value_bytes(&value)).rule, RejectionRule::Schema);
        let mut value = serde_json::to_value(delta()).unwrap();
        value["topology"]["addedEntities"][0]["labels"]["k".repeat(400)] = json!("v");
        assert_eq!(rejected(&value_bytes(&value)).rule, RejectionRule::OversizedString);
    }

    #[test]
    fn a_batch_over_the_size_bound_is_refused_before_it_is_parsed() {
        let batch = snapshot(50);
        let encoded = bytes(&batch);
        let small = EgressGuard::new().with_max_bytes(encoded.len() - 1);
        assert_eq!(small.check(&encoded).unwrap_err().rule, RejectionRule::TooLarge);
        assert!(EgressGuard::new().with_max_bytes(encoded.len()).check(&encoded).is_ok());
        let mut garbage = vec![b'['; DEFAULT_MAX_BATCH_BYTES + 1];
        garbage[0] = 0xff;
        assert_eq!(rejected(&garbage).rule, RejectionRule::TooLarge);
    }

    #[test]
    fn bytes_that_are_not_utf8_json_are_refused() {
        assert_eq!(rejected(b"{\"clusterId\":\"\xff\"}").rule, RejectionRule::NotUtf8);
        assert_eq!(rejected(b"{\"clusterId\":").rule, RejectionRule::NotJson);
        assert_eq!(rejected(b"").rule, RejectionRule::NotJson);
    }

    #[test]
    fn a_non_canonical_encoding_is_refused() {
        let canonical = bytes(&delta());
        let text = String::from_utf8(canonical.clone()).unwrap();
        let spaced = text.replacen(",", " ,", 1);
        assert_eq!(rejected(spaced.as_bytes()).rule, RejectionRule::NotCanonical);
        let escaped = text.replacen("prod-eu-1", "prod-\\u0065u-1", 1);
        assert_eq!(rejected(escaped.as_bytes()).rule, RejectionRule::NotCanonical);
        let reordered =
            text.replacen("{\"clusterId\":\"prod-eu-1\",\"seq\":2,", "{\"seq\":2,\"clusterId\":\"prod-eu-1\",", 1);
        assert_ne!(reordered, text);
        assert_eq!(rejected(reordered.as_bytes()).rule, RejectionRule::NotCanonical);
        let exponent = text.replacen("\"seq\":2,", "\"seq\":2e0,", 1);
        assert_ne!(exponent, text);
        assert_ne!(guard().check(exponent.as_bytes()), Ok(delta()));
    }

    #[test]
    fn a_repeated_key_cannot_hide_a_value() {
        let text = String::from_utf8(bytes(&delta())).unwrap();
        let hidden = text.replacen(
            "\"labels\":{\"app\":\"web\"}",
            "\"labels\":{\"app\":\"eyJ2YWx1ZXMiOlswLjkzXX0\",\"app\":\"web\"}",
            1,
        );
        assert_ne!(hidden, text);
        assert_eq!(rejected(hidden.as_bytes()).rule, RejectionRule::NotCanonical);
        let twice = text.replacen("\"seq\":2,", "\"seq\":2,\"seq\":2,", 1);
        assert_ne!(twice, text);
        assert!(guard().check(twice.as_bytes()).is_err());
    }

    #[test]
    fn null_where_a_field_may_be_absent_is_refused() {
        let mut value = serde_json::to_value(snapshot(1)).unwrap();
        value["symptoms"][0]["symptom"]["resolved"] = Value::Null;
        assert_eq!(rejected(&value_bytes(&value)).rule, RejectionRule::Schema);
    }

    #[test]
    fn ordinary_kubernetes_names_and_labels_are_not_taken_for_leaks() {
        for text in [
            "7d4b9c8f5",
            "web-7d4b9c8f5-x2x9k",
            "container/kube-system/coredns-5d78c9869d-abcde/coredns",
            "workload/replicationcontroller/observability/opentelemetry-collector-agent",
            "0d6f6c1e-4a1b-4b36-9d1c-2f0a7c1e9b11",
            "ip-10-0-0-1.ec2.internal",
            "10.0.0.1",
            "v1.16.0",
            "1.16.0",
            "2024-01-15",
            "0",
            "123456789",
            "ThisIsMyVeryLongApplicationName",
            "My_Service-Name_v2-Production",
            "HTTPServerV2Controller",
            "app.kubernetes.io/name",
            "agent.cpu.utilization:container/shop/web-1/nginx:1700000000000",
            "sha256-abc",
        ] {
            assert_eq!(check_string(text, MAX_STRING_BYTES), Ok(()), "{text}");
        }
    }

    #[test]
    fn producers_can_test_one_label_before_building_a_batch() {
        let guard = guard();
        assert_eq!(guard.check_label("app.kubernetes.io/name", "web"), Ok(()));
        assert_eq!(
            guard.check_label("app.kubernetes.io/version", "1.25").unwrap_err().rule,
            RejectionRule::NumberString
        );
        assert_eq!(guard.check_label("app", "a b").unwrap_err().rule, RejectionRule::Schema);
        assert_eq!(guard.check_label("app", "x".repeat(64).as_str()).unwrap_err().rule, RejectionRule::Schema);
    }

    #[test]
    fn a_rejection_prints_as_one_line_naming_rule_and_place() {
        let rejection =
            Rejection::new(RejectionRule::NumberArray, "/topology/edges", "array of 3 items holds a number");
        assert_eq!(
            rejection.to_string(),
            "egress refused by rule number-array at /topology/edges: array of 3 items holds a number"
        );
        assert_eq!(serde_json::to_value(RejectionRule::NotCanonical).unwrap(), json!("not-canonical"));
        let long = Rejection::new(RejectionRule::Schema, "", "x".repeat(1000));
        assert!(long.detail.len() < 300 && !long.to_string().contains('\n'));
    }

    /// Cheap property check: batches built from a deterministic mix of parts all pass, and each
    /// stays refused once any one of its strings is replaced by a series.
    #[test]
    fn generated_valid_batches_pass_and_each_planted_series_is_caught() {
        let names = ["a", "web", "db-0", "kube-system", "ip-10-0-0-7.internal", "x1"];
        let guard = guard();
        for seed in 0..60usize {
            let pick = |k: usize| names[(seed * 7 + k * 3) % names.len()];
            let pod = EntityId::pod(pick(0), format!("{}-{seed}", pick(1)));
            let entity = Entity::new(pod.clone()).with_label(pick(2), pick(3));
            let symptom = Symptom {
                id: SymptomId::of("k8s.crashloop", &pod, UnixMillis(seed as u64)),
                kind: SymptomKind::ALL[seed % SymptomKind::ALL.len()],
                entity: pod.clone(),
                severity: Severity::Low,
                rule: "k8s.crashloop".into(),
                threshold: None,
                started: UnixMillis(seed as u64),
                resolved: None,
            };
            let batch = EgressBatch {
                seq: seed as u64 + 1,
                topology: TopologyPayload::Delta {
                    added_entities: vec![entity],
                    removed_entities: vec![],
                    added_edges: vec![Edge::new(pod, Relation::RunsOn {}, EntityId::node(pick(4)))],
                    removed_edges: vec![],
                },
                symptoms: vec![SymptomChange::Opened { symptom }],
                ..delta()
            };
            let encoded = bytes(&batch);
            assert_eq!(guard.check(&encoded), Ok(batch), "seed {seed}");
            let text = String::from_utf8(encoded).unwrap();
            let target = format!("\"{}\"", pick(3));
            let planted = text.replacen(&target, "\"0.91,0.92\"", 1);
            assert_ne!(planted, text);
            assert!(guard.check(planted.as_bytes()).is_err(), "seed {seed}: {planted}");
        }
    }
}
