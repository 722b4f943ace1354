//! The egress JSON Schema: the string grammars it enforces, and its generation from the wire types.
//!
//! `schema/egress-batch.schema.json` is generated from [`EgressBatch`] by schemars and checked in,
//! so that what may leave the cluster is published as a file a reviewer can read. A unit test fails
//! when the file and the types drift; `CAUSELY_WRITE_SCHEMA=1 cargo test -p causely-model schema`
//! rewrites it.
//!
//! Every pattern here is anchored and uses only syntax that ECMA-262 and Rust's `regex` agree on,
//! so that any validator reads the published schema the same way.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Value, json};

use crate::egress::{EgressBatch, SCHEMA_VERSION};

/// The schema as checked in; the egress guard compiles exactly this text.
pub const EGRESS_BATCH_SCHEMA: &str = include_str!("../schema/egress-batch.schema.json");

/// One Kubernetes object name segment of an entity id, as `id.rs` accepts it: 1 to 253 of
/// `[a-z0-9.-]`, starting and ending with a letter or digit.
const NAME: &str = "[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?";

/// The workload kinds an id may name, as `WorkloadKind::as_str` spells them.
const WORKLOAD_KINDS: &str = "deployment|replicaset|statefulset|daemonset|job|cronjob|replicationcontroller";

/// Longest entity id: `container/` plus three 253-character names and two slashes.
pub const MAX_ENTITY_ID_LEN: u32 = 10 + 3 * 253 + 2;

/// A detector rule id such as `agent.cpu.utilization` or `k8s.crashloop`: lowercase words joined
/// by `.`, `_` or `-`.
const RULE: &str = "[a-z0-9]+(?:[._-][a-z0-9]+)*";
pub const MAX_RULE_LEN: u32 = 128;

/// A signal name such as `container_cpu_utilization`: a lowercase identifier, dots allowed.
const SIGNAL: &str = "[a-z][a-z0-9_]*(?:\\.[a-z0-9_]+)*";
pub const MAX_SIGNAL_LEN: u32 = 128;

/// A cluster id is a DNS label (RFC 1123), like a namespace name.
const CLUSTER_ID: &str = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
pub const MAX_CLUSTER_ID_LEN: u32 = 63;

/// Longest symptom id: `<rule>:<entity id>:<started millis>` (see `SymptomId::of`).
pub const MAX_SYMPTOM_ID_LEN: u32 = MAX_RULE_LEN + 1 + MAX_ENTITY_ID_LEN + 1 + 20;

/// Label key: an optional DNS subdomain prefix and `/`, then a name of at most 63 characters of
/// `[A-Za-z0-9_.-]` that starts and ends alphanumeric (Kubernetes `IsQualifiedName`). The
/// prefix's own 253 limit is approximated by the total bound below.
const LABEL_KEY: &str = "(?:[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?(?:\\.[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)*/)?\
                         [A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?";
pub const MAX_LABEL_KEY_LEN: u32 = 253 + 1 + 63;

/// Label value: empty, or at most 63 characters of `[A-Za-z0-9_.-]` that start and end
/// alphanumeric (Kubernetes `IsValidLabelValue`).
const LABEL_VALUE: &str = "(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?";
pub const MAX_LABEL_VALUE_LEN: u32 = 63;

fn anchored(body: &str) -> String {
    format!("^(?:{body})$")
}

/// The pattern every entity id matches, and only entity ids (see `id.rs`).
pub fn entity_id_pattern() -> String {
    anchored(&format!(
        "node/{NAME}|ns/{NAME}|pod/{NAME}/{NAME}|container/{NAME}/{NAME}/{NAME}|svc/{NAME}/{NAME}\
         |workload/(?:{WORKLOAD_KINDS})/{NAME}/{NAME}"
    ))
}

pub fn rule_pattern() -> String {
    anchored(RULE)
}

pub fn signal_pattern() -> String {
    anchored(SIGNAL)
}

pub fn cluster_id_pattern() -> String {
    anchored(CLUSTER_ID)
}

pub fn symptom_id_pattern() -> String {
    let id = entity_id_pattern();
    let id = id.trim_start_matches('^').trim_end_matches('$');
    anchored(&format!("{RULE}:{id}:[0-9]{{1,20}}"))
}

fn string_schema(pattern: String, max_length: u32, description: &str) -> Schema {
    to_schema(json!({
        "type": "string",
        "description": description,
        "pattern": pattern,
        "maxLength": max_length,
    }))
}

fn to_schema(value: Value) -> Schema {
    match value {
        Value::Object(map) => Schema::from(map),
        // Only object literals reach here; `false` keeps a mistake fail-closed.
        _ => Schema::from(false),
    }
}

pub(crate) fn entity_id_schema() -> Schema {
    string_schema(
        entity_id_pattern(),
        MAX_ENTITY_ID_LEN,
        "An entity id: node/<name>, ns/<name>, pod/<ns>/<name>, container/<ns>/<pod>/<name>, svc/<ns>/<name> \
         or workload/<kind>/<ns>/<name>.",
    )
}

pub(crate) fn symptom_id_schema() -> Schema {
    string_schema(symptom_id_pattern(), MAX_SYMPTOM_ID_LEN, "<rule>:<entity id>:<started, ms since the epoch>")
}

pub(crate) fn rule_schema(_: &mut SchemaGenerator) -> Schema {
    string_schema(rule_pattern(), MAX_RULE_LEN, "The detector rule that raised the symptom.")
}

pub(crate) fn signal_schema(_: &mut SchemaGenerator) -> Schema {
    string_schema(signal_pattern(), MAX_SIGNAL_LEN, "The name of the signal the rule watches.")
}

pub(crate) fn cluster_id_schema(_: &mut SchemaGenerator) -> Schema {
    string_schema(cluster_id_pattern(), MAX_CLUSTER_ID_LEN, "The cluster's id, a DNS label.")
}

pub(crate) fn schema_version_schema(_: &mut SchemaGenerator) -> Schema {
    to_schema(json!({ "type": "integer", "const": SCHEMA_VERSION }))
}

/// Labels are the one map on the wire: keys and values are held to Kubernetes' own grammar.
pub(crate) fn labels_schema(_: &mut SchemaGenerator) -> Schema {
    to_schema(json!({
        "type": "object",
        "propertyNames": { "pattern": anchored(LABEL_KEY), "maxLength": MAX_LABEL_KEY_LEN },
        "additionalProperties": { "type": "string", "pattern": anchored(LABEL_VALUE), "maxLength": MAX_LABEL_VALUE_LEN },
    }))
}

/// The egress schema freshly generated from the types.
pub fn egress_batch_schema() -> Value {
    schemars::schema_for!(EgressBatch).to_value()
}

/// The generated schema as the checked-in file holds it: pretty JSON and a final newline.
pub fn egress_batch_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&egress_batch_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// Makes `EntityId` usable with `#[derive(JsonSchema)]` on the types that contain it.
impl JsonSchema for crate::id::EntityId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EntityId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        entity_id_schema()
    }
}

impl JsonSchema for crate::symptom::SymptomId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SymptomId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        symptom_id_schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::EntityId;

    fn validator(schema: Value) -> jsonschema::Validator {
        jsonschema::options().with_pattern_options(jsonschema::PatternOptions::regex()).build(&schema).unwrap()
    }

    fn checked_in() -> Value {
        serde_json::from_str(EGRESS_BATCH_SCHEMA).unwrap()
    }

    #[test]
    fn the_checked_in_schema_is_the_one_generated_from_the_types() {
        let fresh = egress_batch_schema_text();
        if std::env::var_os("CAUSELY_WRITE_SCHEMA").is_some() {
            // The constant was compiled from the old file; the next run checks the new one.
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/egress-batch.schema.json");
            std::fs::write(path, &fresh).unwrap();
            return;
        }
        assert!(
            fresh == EGRESS_BATCH_SCHEMA,
            "model/schema/egress-batch.schema.json is stale; regenerate it with \
             `CAUSELY_WRITE_SCHEMA=1 cargo test -p causely-model schema` and review the diff"
        );
    }

    /// Walks every subschema, whatever keyword holds it.
    fn subschemas<'a>(value: &'a Value, path: String, out: &mut Vec<(String, &'a serde_json::Map<String, Value>)>) {
        match value {
            Value::Object(map) => {
                out.push((path.clone(), map));
                for (key, child) in map {
                    // `const` and `enum` hold instance values, not schemas.
                    if key != "const" && key != "enum" {
                        subschemas(child, format!("{path}/{key}"), out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    subschemas(child, format!("{path}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_object_in_the_schema_forbids_additional_properties() {
        let schema = checked_in();
        let mut all = Vec::new();
        subschemas(&schema, String::new(), &mut all);
        let mut objects = 0;
        for (path, map) in all {
            let is_object = map.get("type") == Some(&json!("object")) || map.contains_key("properties");
            if !is_object {
                continue;
            }
            objects += 1;
            match map.get("additionalProperties") {
                Some(Value::Bool(false)) => {}
                // The labels map: open keys, but each key and value is held to Kubernetes' grammar.
                Some(Value::Object(values)) => {
                    assert!(!map.contains_key("properties"), "{path} mixes fixed and open properties");
                    assert!(values.contains_key("maxLength") && values.contains_key("pattern"), "{path}");
                    let names = map.get("propertyNames").and_then(Value::as_object);
                    assert!(names.is_some_and(|n| n.contains_key("maxLength") && n.contains_key("pattern")), "{path}");
                }
                other => panic!("object schema at {path} has additionalProperties {other:?}"),
            }
        }
        // Batch, two topology variants, entity, labels, edge, four relations, threshold, symptom,
        // two symptom changes.
        assert!(objects >= 14, "only {objects} object schemas found; did the walk miss the definitions?");
    }

    #[test]
    fn every_string_in_the_schema_is_bounded() {
        let schema = checked_in();
        let mut all = Vec::new();
        subschemas(&schema, String::new(), &mut all);
        for (path, map) in all {
            if map.get("type") == Some(&json!("string")) && !map.contains_key("enum") && !map.contains_key("const") {
                assert!(map.contains_key("maxLength") && map.contains_key("pattern"), "unbounded string at {path}");
            }
        }
    }

    #[test]
    fn the_schema_version_is_a_constant() {
        let schema = checked_in();
        assert_eq!(schema["properties"]["schemaVersion"]["const"], json!(SCHEMA_VERSION));
    }

    /// A small deterministic generator, so the comparison covers strings nobody thought to list.
    fn candidate_ids() -> Vec<String> {
        let prefixes =
            ["node/", "ns/", "pod/", "container/", "svc/", "workload/deployment/", "workload/job/", "x/", ""];
        let pieces = ["a", "web-1", "-a", "a-", "A", "a.b", "a..b", "0", "é", "", "a b", "a_b", ".", "z9"];
        let mut out = Vec::new();
        for prefix in prefixes {
            for a in pieces {
                out.push(format!("{prefix}{a}"));
                for b in pieces {
                    out.push(format!("{prefix}{a}/{b}"));
                    for c in ["ok", "-", ""] {
                        out.push(format!("{prefix}{a}/{b}/{c}"));
                    }
                }
            }
        }
        for len in [252, 253, 254] {
            let name = "a".repeat(len);
            out.push(format!("node/{name}"));
            out.push(format!("container/{name}/{name}/{name}"));
        }
        out.push("workload/pod/a/b".into());
        out.push("workload/deployment/a".into());
        out
    }

    #[test]
    fn the_entity_id_pattern_accepts_exactly_what_the_id_parser_accepts() {
        let validator = validator(entity_id_schema().to_value());
        let mut valid = 0;
        for text in candidate_ids() {
            let parsed = text.parse::<EntityId>().is_ok();
            let matches = validator.is_valid(&json!(text));
            assert_eq!(matches, parsed, "schema and parser disagree on {text:?}");
            valid += usize::from(parsed);
        }
        assert!(valid > 50, "the generator produced only {valid} valid ids");
        let longest = format!("container/{0}/{0}/{0}", "a".repeat(253));
        assert_eq!(longest.len(), MAX_ENTITY_ID_LEN as usize);
    }

    #[test]
    fn symptom_ids_built_the_usual_way_match_their_pattern() {
        let validator = validator(symptom_id_schema().to_value());
        let id = crate::symptom::SymptomId::of(
            "agent.cpu.utilization",
            &EntityId::pod("shop", "web-1"),
            crate::UnixMillis(5),
        );
        assert!(validator.is_valid(&json!(id.0)));
        for bad in ["agent.cpu:pod/shop/web-1:", "Agent:pod/a/b:1", "r:pod/a/b:1:2", "r:pod/a/b:0.93"] {
            assert!(!validator.is_valid(&json!(bad)), "{bad}");
        }
    }

    #[test]
    fn label_keys_and_values_follow_kubernetes_rules() {
        let validator = validator(labels_schema(&mut SchemaGenerator::default()).to_value());
        for (key, value) in [
            ("app", "web"),
            ("app.kubernetes.io/name", "web"),
            ("pod-template-hash", "7d4b9c8f5"),
            ("Tier_2", "Front.End-1"),
            ("empty", ""),
        ] {
            assert!(validator.is_valid(&json!({ key: value })), "{key}={value}");
        }
        let long_value = "a".repeat(64);
        let long_name = "a".repeat(64);
        for (key, value) in [
            ("app", long_value.as_str()),
            (long_name.as_str(), "x"),
            ("app", "-web"),
            ("app", "a,b"),
            ("UPPER.example/x", "y"),
            ("/x", "y"),
            ("a/b/c", "y"),
            ("app", "0.93 0.95"),
        ] {
            assert!(!validator.is_valid(&json!({ key: value })), "{key}={value}");
        }
    }

    #[test]
    fn rules_signals_and_cluster_ids_have_a_grammar() {
        let rule = validator(rule_schema(&mut SchemaGenerator::default()).to_value());
        assert!(rule.is_valid(&json!("agent.cpu.utilization")) && rule.is_valid(&json!("rbac.cluster-admin")));
        assert!(!rule.is_valid(&json!("a..b")) && !rule.is_valid(&json!("0.93,0.95")));
        assert!(!rule.is_valid(&json!("r".repeat(129))));
        let signal = validator(signal_schema(&mut SchemaGenerator::default()).to_value());
        assert!(signal.is_valid(&json!("container_cpu_utilization")));
        assert!(!signal.is_valid(&json!("1700000000:0.5")));
        let cluster = validator(cluster_id_schema(&mut SchemaGenerator::default()).to_value());
        assert!(cluster.is_valid(&json!("prod-eu-1")));
        assert!(!cluster.is_valid(&json!("Prod")) && !cluster.is_valid(&json!("a".repeat(64))));
    }
}
