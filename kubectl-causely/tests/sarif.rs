//! The audit's SARIF output is valid SARIF 2.1.0 (checked against the published JSON Schema, kept
//! in tests/fixtures) and carries a rule per kind of finding and a location naming each object.

use std::path::Path;
use std::process::Command;

fn audit_sarif(args: &[&str]) -> serde_json::Value {
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-causely"))
        .args(["audit-permissions", "-o", "sarif", "--fail-on", "none", "--kubeconfig", "/nonexistent", "--from-file"])
        .arg(manifests.join("executor.yaml"))
        .args(args)
        .output()
        .expect("the plugin runs");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("SARIF is JSON")
}

fn schema() -> jsonschema::Validator {
    let text = include_str!("fixtures/sarif-schema-2.1.0.json");
    let schema: serde_json::Value = serde_json::from_str(text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema compiles")
}

#[test]
fn sarif_output_validates_against_the_sarif_2_1_0_schema() {
    let validator = schema();
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/default.yaml");
    for args in [vec!["--baseline", "seed"], vec!["--baseline", default.to_str().expect("utf-8")]] {
        let sarif = audit_sarif(&args);
        let errors: Vec<String> =
            validator.iter_errors(&sarif).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{args:?}: {errors:#?}");
        let results = sarif["runs"][0]["results"].as_array().expect("results");
        assert!(!results.is_empty(), "{args:?}: the executor release has findings");
    }
}

#[test]
fn each_result_points_at_its_rule_and_names_an_object() {
    let sarif = audit_sarif(&["--baseline", "seed"]);
    let run = &sarif["runs"][0];
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    let mut unique = rules.clone();
    unique.dedup();
    assert_eq!(rules, unique, "one rule per kind of finding");
    for result in run["results"].as_array().expect("results") {
        let index = result["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(rules[index], result["ruleId"]);
        let name = result["locations"][0]["logicalLocations"][0]["name"].as_str().expect("a location");
        assert!(!name.is_empty());
    }
    assert!(
        run["results"]
            .as_array()
            .expect("results")
            .iter()
            .any(|r| r["ruleId"] == "rbac.workload-write" && r["level"] == "error")
    );
    assert!(
        run["results"]
            .as_array()
            .expect("results")
            .iter()
            .any(|r| r["ruleId"] == "posture.scoped" && r["level"] == "note")
    );
}

#[test]
fn an_invalid_document_fails_the_schema() {
    // The validator does reject what is not SARIF, so the test above can fail.
    let not_sarif = serde_json::json!({"version": "2.1.0", "runs": [{"results": []}]});
    assert!(!schema().is_valid(&not_sarif));
}
