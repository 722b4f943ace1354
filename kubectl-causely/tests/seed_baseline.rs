//! `permissions/seed.yaml` says exactly what the published security model says: the agent's and
//! the mediator's ClusterRole rules, the executor's cluster-admin, and each pod posture.

use kubectl_causely::baseline::{Baseline, Component, Rule};
use serde::Deserialize;

const SEED_TEXT: &str = include_str!("fixtures/security-model.txt");

#[derive(Deserialize)]
struct Rules {
    rules: Vec<Rule>,
}

/// The `rules:` blocks of the ClusterRoles printed in the security model, in order of appearance.
/// A block runs from `rules:` to the first line of prose (neither indented, blank, nor a list item).
fn published_rule_blocks() -> Vec<Vec<Rule>> {
    let lines: Vec<&str> = SEED_TEXT.lines().collect();
    let mut blocks = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "rules:" {
            continue;
        }
        let body: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || l.starts_with(' ') || l.starts_with('-') || l.starts_with("verbs"))
            .copied()
            .collect();
        let yaml = format!("rules:\n{}", body.join("\n"));
        let parsed: Rules =
            serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("published rules parse: {e}\n{yaml}"));
        blocks.push(parsed.rules);
    }
    blocks
}

/// The paragraph of the security model under a section heading, up to the next heading.
fn section(heading: &str) -> String {
    let start = SEED_TEXT.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("no section {heading}"));
    let rest = &SEED_TEXT[start + heading.len() + 2..];
    let headings = ["\nAgents\n", "\nMediator\n", "\nExecutor\n", "\nVictoria Metrics\n"];
    let end = headings.iter().filter_map(|h| rest.find(h)).min().unwrap_or(rest.len());
    rest[..end].to_owned()
}

#[test]
fn the_agent_and_mediator_rules_equal_the_published_cluster_roles() {
    let seed = Baseline::seed().unwrap();
    let blocks = published_rule_blocks();
    assert_eq!(blocks.len(), 2, "the security model prints two ClusterRoles");
    assert_eq!(seed.component(Component::Agent).rules, blocks[0]);
    assert_eq!(seed.component(Component::Mediator).rules, blocks[1]);
    assert!(section("Agents").contains("rules:") && section("Mediator").contains("rules:"));
}

#[test]
fn the_executor_is_optional_and_bound_to_cluster_admin() {
    let seed = Baseline::seed().unwrap();
    let text = section("Executor");
    assert!(text.contains("granted the cluster-admin role"), "{text}");
    assert!(text.contains("optional component"), "{text}");
    let executor = seed.component(Component::Executor);
    assert_eq!(executor.cluster_role_ref.as_deref(), Some("cluster-admin"));
    assert!(executor.optional && executor.rules.is_empty());
}

#[test]
fn only_the_agent_is_published_as_privileged_root_with_the_host_filesystem() {
    let seed = Baseline::seed().unwrap();
    let agents = section("Agents");
    assert!(agents.contains("securityContext.privileged=true"));
    assert!(agents.contains("uses root as user"));
    assert!(agents.contains("mounts the host filesystem"));
    let agent = &seed.component(Component::Agent).pod;
    assert!(agent.privileged && agent.run_as_root && agent.host_filesystem);
    // "all components operate with minimal privileges ... unless stated otherwise"
    assert!(
        SEED_TEXT.contains(
            "non-root user status, absence of privilege (securityContext.privileged=false), no hostPath mounts"
        )
    );
    for component in [Component::Mediator, Component::Executor, Component::VictoriaMetrics] {
        let pod = &seed.component(component).pod;
        assert!(!pod.privileged && !pod.run_as_root && !pod.host_filesystem, "{component}");
    }
}

#[test]
fn victoria_metrics_has_no_kubernetes_api_access() {
    let seed = Baseline::seed().unwrap();
    let vm = seed.component(Component::VictoriaMetrics);
    assert!(vm.rules.is_empty() && vm.cluster_role_ref.is_none());
    assert!(!section("Victoria Metrics").contains("rules:"));
}
