//! `kubectl causely audit-permissions` against the real API server: a clean install audits clean,
//! the published baseline shows only improvements and documented additions, and each planted
//! change is found with its severity and the exit code CI gates on.

use anyhow::{Context, ensure};
use causely_tests::cluster::Cluster;
use causely_tests::plugin::{Run, expect, install};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const NS: &str = "causely";

fn findings(run: &Run) -> anyhow::Result<Vec<Value>> {
    let doc: Value = serde_json::from_str(&run.stdout).with_context(|| format!("not JSON: {}", run.stdout))?;
    Ok(doc["report"]["findings"].as_array().context("no findings array")?.clone())
}

fn has(findings: &[Value], rule: &str, severity: &str, text: &str) -> bool {
    findings.iter().any(|f| {
        f["rule"] == rule && f["severity"] == severity && f["message"].as_str().is_some_and(|m| m.contains(text))
    })
}

/// Audits the cluster as JSON and expects `code`.
fn audit(cluster: &Cluster, extra: &[&str], code: i32) -> anyhow::Result<Vec<Value>> {
    let mut args = vec!["audit-permissions", "-o", "json"];
    args.extend_from_slice(extra);
    findings(&expect(cluster, &args, code)?)
}

async fn reinstall_mediator(cluster: &Cluster, client: &Client) -> anyhow::Result<()> {
    Api::<Deployment>::namespaced(client.clone(), NS).delete("causely-mediator", &DeleteParams::default()).await?;
    install(cluster, &["--wait", "--timeout", "2m"], 0)?;
    Ok(())
}

#[tokio::test]
async fn audit_finds_each_planted_change_with_its_severity() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    expect(&cluster, &["uninstall", "--purge"], 0)?;
    install(&cluster, &["--wait", "--timeout", "2m"], 0)?;

    // Clean against this release; against the published permissions only what is documented.
    let clean = audit(&cluster, &[], 0)?;
    ensure!(clean.is_empty(), "a clean install has findings: {clean:#?}");
    let same = expect(&cluster, &["rbac-diff", "installed", "release"], 0)?;
    ensure!(same.stdout.ends_with("no differences\n"), "{}", same.stdout);
    let seed = audit(&cluster, &["--baseline", "seed"], 0)?;
    ensure!(seed.iter().all(|f| f["kind"] == "improvement" || f["kind"] == "addition"), "{seed:#?}");
    ensure!(seed.iter().any(|f| f["kind"] == "improvement" && f["component"] == "agent"), "{seed:#?}");
    ensure!(seed.iter().any(|f| f["kind"] == "addition" && f["component"] == "mediator"), "{seed:#?}");

    // Someone else's binding gives the mediator's ServiceAccount `get secrets`.
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    roles.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "e2e-secret-reader"}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}))?).await?;
    bindings.create(&PostParams::default(), &serde_json::from_value(json!({
        "metadata": {"name": "e2e-secret-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "e2e-secret-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "causely-mediator", "namespace": NS}]
    }))?).await?;
    let found = audit(&cluster, &[], 1);
    let drift = expect(&cluster, &["rbac-diff"], 1);
    bindings.delete("e2e-secret-reader", &DeleteParams::default()).await?;
    let drift = drift?;
    ensure!(drift.stdout.contains("mediator\n  - get on secrets\n"), "{}", drift.stdout);
    roles.delete("e2e-secret-reader", &DeleteParams::default()).await?;
    let found = found?;
    ensure!(has(&found, "rbac.secrets-read", "high", "get secrets"), "{found:#?}");
    ensure!(has(&found, "drift.extra", "high", "get secrets"), "{found:#?}");
    ensure!(
        found.iter().any(|f| f["object"].as_str().is_some_and(|o| o.contains("ClusterRoleBinding/e2e-secret-reader"))),
        "{found:#?}"
    );

    // An aggregated ClusterRole someone else binds to the agent: its rules come from the roles
    // its selector matches, filled in by the controller-manager.
    roles.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "e2e-aggregated"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"e2e-aggregate": "yes"}}]}}))?).await?;
    roles.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "e2e-part", "labels": {"e2e-aggregate": "yes"}}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]}))?).await?;
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "e2e-aggregated"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "e2e-aggregated"},
                "subjects": [{"kind": "ServiceAccount", "name": "causely-agent", "namespace": NS}]
            }))?,
        )
        .await?;
    let aggregated =
        causely_tests::poll::until("the aggregated rule is audited", std::time::Duration::from_secs(60), || async {
            let found = audit(&cluster, &["--fail-on", "none"], 0)?;
            Ok(has(&found, "drift.extra", "medium", "list configmaps").then_some(()))
        })
        .await;
    bindings.delete("e2e-aggregated", &DeleteParams::default()).await?;
    roles.delete("e2e-aggregated", &DeleteParams::default()).await?;
    roles.delete("e2e-part", &DeleteParams::default()).await?;
    aggregated?;

    // A wildcard verb on the agent's role; then a permission the agent needs taken away.
    let agent_rules = roles.get("causely-agent").await?.rules.unwrap_or_default();
    let widened = json!({"rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["*"]}, agent_rules[1]]});
    roles.patch("causely-agent", &PatchParams::default(), &Patch::Merge(&widened)).await?;
    let found = audit(&cluster, &[], 1)?;
    ensure!(has(&found, "rbac.wildcard", "high", "verbs [\"*\"]"), "{found:#?}");
    ensure!(has(&found, "drift.extra", "medium", "delete services"), "{found:#?}");
    let narrowed = json!({"rules": [{"apiGroups": [""], "resources": ["services", "nodes/metrics"], "verbs": ["get", "watch", "list"]}, agent_rules[1]]});
    roles.patch("causely-agent", &PatchParams::default(), &Patch::Merge(&narrowed)).await?;
    let found = audit(&cluster, &[], 0)?;
    ensure!(has(&found, "drift.missing", "medium", "list nodes"), "{found:#?}");
    install(&cluster, &[], 0)?;

    // The mediator made privileged, then given a hostPath.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let privileged = json!({"spec": {"template": {"spec": {"containers": [{"name": "mediator", "securityContext": {"privileged": true, "allowPrivilegeEscalation": true}}]}}}});
    deployments.patch("causely-mediator", &PatchParams::default(), &Patch::Strategic(&privileged)).await?;
    let found = audit(&cluster, &[], 1)?;
    ensure!(has(&found, "pod.privileged", "critical", "container mediator: privileged"), "{found:#?}");
    reinstall_mediator(&cluster, &client).await?;
    let host_path =
        json!({"spec": {"template": {"spec": {"volumes": [{"name": "host", "hostPath": {"path": "/etc"}}]}}}});
    deployments.patch("causely-mediator", &PatchParams::default(), &Patch::Strategic(&host_path)).await?;
    let found = audit(&cluster, &[], 1)?;
    ensure!(has(&found, "pod.host-path", "high", "host path /etc"), "{found:#?}");
    reinstall_mediator(&cluster, &client).await?;
    ensure!(audit(&cluster, &[], 0)?.is_empty(), "not clean again after the reverts");

    // The executor bound to cluster-admin (the published posture) is a critical finding.
    install(&cluster, &["--executor", "--executor-rbac", "cluster-admin"], 0)?;
    let found = audit(&cluster, &[], 1)?;
    ensure!(has(&found, "rbac.cluster-admin", "critical", "cluster-admin"), "{found:#?}");
    let table = expect(&cluster, &["audit-permissions", "--fail-on", "none"], 0)?;
    ensure!(
        table.stdout.contains("ClusterRoleBinding/causely-executor -> ClusterRole/cluster-admin"),
        "{}",
        table.stdout
    );
    let markdown = expect(&cluster, &["audit-permissions", "-o", "markdown", "--fail-on", "critical"], 1)?;
    ensure!(markdown.stdout.contains("| critical | executor | risk |"), "{}", markdown.stdout);

    expect(&cluster, &["uninstall", "--purge"], 0)?;
    Ok(())
}

#[tokio::test]
async fn rendered_yaml_is_audited_without_a_cluster_and_bad_input_is_exit_2() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    let manifests = causely_tests::workspace::repo_root().join("manifests");
    let default = manifests.join("default.yaml").to_string_lossy().into_owned();
    let executor = manifests.join("executor.yaml").to_string_lossy().into_owned();
    let offline = |args: &[&str], code: i32| {
        let mut all = vec!["audit-permissions", "--kubeconfig", "/nonexistent"];
        all.extend_from_slice(args);
        expect(&cluster, &all, code)
    };
    let clean = findings(&offline(&["--from-file", &default, "-o", "json"], 0)?)?;
    ensure!(clean.is_empty(), "{clean:#?}");
    // Judged against the default release, the executor's release adds a component with risks.
    let found = findings(&offline(&["--from-file", &executor, "--baseline", &default, "-o", "json"], 1)?)?;
    ensure!(has(&found, "rbac.workload-write", "high", "patch apps/deployments"), "{found:#?}");

    let dir = std::env::temp_dir().join(format!("causely-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let not_yaml = dir.join("broken.yaml");
    std::fs::write(&not_yaml, "kind: [unclosed\n")?;
    for (args, reason) in [
        (vec!["--from-file", "/nonexistent/release.yaml"], "cannot read /nonexistent/release.yaml"),
        (vec!["--from-file", not_yaml.to_str().unwrap_or_default()], "is not YAML"),
        (vec!["--from-file", &default, "--baseline", "/nonexistent/base.yaml"], "cannot read /nonexistent/base.yaml"),
    ] {
        let out = offline(&args, 2)?;
        ensure!(out.stderr.trim().lines().count() == 1 && out.stderr.contains(reason), "{args:?}: {}", out.stderr);
    }

    // A caller who may not list RBAC objects.
    let nobody =
        cluster.service_account_kubeconfig(&client, "default", &format!("e2e-auditor-{}", std::process::id())).await?;
    let path = dir.join("nobody.kubeconfig");
    std::fs::write(&path, serde_json::to_string(&nobody)?)?;
    let out = expect(&cluster, &["audit-permissions", "--kubeconfig", path.to_str().unwrap_or_default()], 2)?;
    ensure!(out.stderr.trim().lines().count() == 1 && out.stderr.contains("forbidden"), "{}", out.stderr);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
