//! `kubectl causely install / status / check / upgrade / uninstall` against the real API server:
//! everything rendered is applied and runs, the published ClusterRoles land verbatim, re-install
//! changes nothing, upgrade keeps recorded settings, prunes and reports RBAC changes, uninstall
//! leaves only the kept claims, and bad input changes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use causely_tests::cluster::{Cluster, api_for};
use causely_tests::plugin::{expect, install, run};
use causely_tests::poll;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Pod, PodSpec};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use kubectl_causely::baseline::{Baseline, Component, Rule};
use serde_json::json;

const NS: &str = "causely";

/// Installs share cluster-scoped names (ClusterRoles, bindings): one install test at a time.
static INSTALLS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const CONVERGE: Duration = Duration::from_secs(120);

/// Every object of a rendered release (`install --dry-run -o json`), with its resourceVersion now.
async fn live_versions(client: &Client, items: &[serde_json::Value]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        let kind = item["kind"].as_str().context("kind")?;
        let name = item["metadata"]["name"].as_str().context("name")?;
        let object = api_for(client, item).get(name).await.with_context(|| format!("{kind}/{name} was not created"))?;
        out.insert(format!("{kind}/{name}"), object.metadata.resource_version.unwrap_or_default());
    }
    Ok(out)
}

fn rendered_items(cluster: &Cluster, args: &[&str]) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut all = vec!["install", "--dry-run", "-o", "json"];
    all.extend_from_slice(args);
    let out = expect(cluster, &all, 0)?;
    let list: serde_json::Value = serde_json::from_str(&out.stdout)?;
    Ok(list["items"].as_array().context("items")?.clone())
}

async fn remove_any_previous_install(cluster: &Cluster, client: &Client) -> anyhow::Result<()> {
    expect(cluster, &["uninstall", "--purge"], 0)?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    poll::until("the causely namespace is gone", CONVERGE, || async {
        Ok(namespaces.get_opt(NS).await?.is_none().then_some(()))
    })
    .await
}

/// Pod templates are admitted under Pod Security "restricted" (server-side dry run in a namespace
/// that enforces it), except the agent's, which needs host access.
async fn check_restricted_admission(client: &Client, templates: Vec<(&str, PodSpec)>) -> anyhow::Result<()> {
    let ns = format!("e2e-restricted-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let labels = json!({"pod-security.kubernetes.io/enforce": "restricted"});
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns, "labels": labels}}))?)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let dry = PostParams { dry_run: true, ..PostParams::default() };
    let judge = async {
        for (name, mut spec) in templates {
            // The components' ServiceAccounts do not exist in this namespace; admission of the
            // pod's security settings is what is being tested.
            spec.service_account_name = None;
            spec.service_account = None;
            // A StatefulSet adds its claim templates' volumes to each pod; stand in for them.
            let mounts: Vec<String> =
                spec.containers.iter().flat_map(|c| c.volume_mounts.iter().flatten().map(|m| m.name.clone())).collect();
            let volumes = spec.volumes.get_or_insert_with(Vec::new);
            for name in mounts {
                if !volumes.iter().any(|v| v.name == name) {
                    volumes.push(serde_json::from_value(json!({"name": name, "emptyDir": {}}))?);
                }
            }
            let pod = Pod {
                metadata: kube::api::ObjectMeta { name: Some(name.to_owned()), ..Default::default() },
                spec: Some(spec),
                status: None,
            };
            let admitted = poll::until(&format!("{name} is judged by admission"), CONVERGE, || async {
                match pods.create(&dry, &pod).await {
                    Ok(_) => Ok(Some(Ok(()))),
                    Err(kube::Error::Api(e)) if e.message.contains("violates PodSecurity") => Ok(Some(Err(e.message))),
                    Err(e) => Err(e.into()), // e.g. the default ServiceAccount not created yet
                }
            })
            .await?;
            let expect_admitted = name != "agent";
            ensure!(
                admitted.is_ok() == expect_admitted,
                "{name}: admitted={} under restricted ({admitted:?})",
                admitted.is_ok()
            );
        }
        Ok(())
    };
    let result: anyhow::Result<()> = judge.await;
    namespaces.delete(&ns, &Default::default()).await?;
    result
}

#[tokio::test]
async fn install_check_upgrade_and_uninstall_against_the_api_server() -> anyhow::Result<()> {
    let _one_at_a_time = INSTALLS.lock().await;
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    remove_any_previous_install(&cluster, &client).await?;

    // With the registry the install pulls from: --pre runs the agent's image on the real node.
    let pre = expect(&cluster, &["check", "--pre", "--registry", cluster.registry.as_str()], 0)?;
    ensure!(pre.stdout.contains("√ can create and update all"), "{}", pre.stdout);

    // Install with the executor and wait for the rollout.
    install(&cluster, &["--executor", "--wait", "--timeout", "2m"], 0)?;
    let items = rendered_items(&cluster, &["--executor"])?;
    let versions = live_versions(&client, &items).await?;
    ensure!(versions.len() == items.len());

    let nodes = causely_tests::cluster::node_names(&client).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let agents = pods.list(&ListParams::default().labels("app.kubernetes.io/name=agent")).await?;
    let on: std::collections::BTreeSet<String> = agents
        .items
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    ensure!(on == nodes, "agent pods Running on {on:?}, nodes {nodes:?}");

    // The published ClusterRoles (permissions/seed.yaml, itself checked against the published
    // text), verbatim.
    let seed = Baseline::seed()?;
    for component in [Component::Agent, Component::Mediator] {
        let role = Api::<ClusterRole>::all(client.clone()).get(&format!("causely-{component}")).await?;
        let published: Vec<_> = seed.component(component).rules.iter().map(Rule::to_policy_rule).collect();
        ensure!(role.rules.unwrap_or_default() == published, "{component}: live rules differ from the published ones");
    }

    // Mediator, executor and VictoriaMetrics pods pass "restricted"; the agent does not need to.
    let spec_of =
        |v: Option<k8s_openapi::api::core::v1::PodTemplateSpec>| v.and_then(|t| t.spec).context("no pod template");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let templates = vec![
        ("mediator", spec_of(deployments.get("causely-mediator").await?.spec.map(|s| s.template))?),
        ("executor", spec_of(deployments.get("causely-executor").await?.spec.map(|s| s.template))?),
        (
            "victoria-metrics",
            spec_of(
                Api::<StatefulSet>::namespaced(client.clone(), NS)
                    .get("causely-victoria-metrics")
                    .await?
                    .spec
                    .map(|s| s.template),
            )?,
        ),
        (
            "agent",
            spec_of(
                Api::<DaemonSet>::namespaced(client.clone(), NS).get("causely-agent").await?.spec.map(|s| s.template),
            )?,
        ),
    ];
    check_restricted_admission(&client, templates).await?;

    // Re-installing with the same settings changes nothing.
    let again = install(&cluster, &["--executor"], 0)?;
    ensure!(!again.stdout.contains(" applied"), "re-install applied something:\n{}", again.stdout);
    ensure!(live_versions(&client, &items).await? == versions, "a resourceVersion moved on re-install");

    expect(&cluster, &["status"], 0)?;
    let check = expect(&cluster, &["check", "-o", "json"], 0)?;
    let doc: serde_json::Value = serde_json::from_str(&check.stdout)?;
    ensure!(doc["success"] == json!(true));

    // Someone widens the mediator's ClusterRole: check fails and names the extra grant.
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let widen = json!({"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]});
    let mut role = roles.get("causely-mediator").await?;
    role.rules.get_or_insert_with(Vec::new).push(serde_json::from_value(widen["rules"][0].clone())?);
    roles.replace("causely-mediator", &PostParams::default(), &role).await?;
    let drift = expect(&cluster, &["check"], 1)?;
    ensure!(
        drift.stdout.contains("ClusterRole causely-mediator differs from the release: +secrets:get"),
        "{}",
        drift.stdout
    );

    upgrade_from_an_older_release(&cluster, &client).await?;

    // Uninstall: nothing labelled part-of=causely is left but the kept claims.
    expect(&cluster, &["uninstall"], 0)?;
    let left = labelled_objects(&client, &items).await?;
    ensure!(left.is_empty(), "left after uninstall: {left:?}");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    let kept = claims.list(&ListParams::default().labels("app.kubernetes.io/part-of=causely")).await?;
    ensure!(kept.items.len() == 2, "expected the mediator's and VictoriaMetrics' claims to be kept");
    expect(&cluster, &["uninstall"], 0)?;
    expect(&cluster, &["uninstall", "--purge"], 0)?;
    ensure!(claims.list(&ListParams::default().labels("app.kubernetes.io/part-of=causely")).await?.items.is_empty());
    Ok(())
}

/// Objects of the release that still exist and still carry part-of=causely.
async fn labelled_objects(client: &Client, items: &[serde_json::Value]) -> anyhow::Result<Vec<String>> {
    let mut left = Vec::new();
    for item in items {
        let kind = item["kind"].as_str().unwrap_or_default();
        let name = item["metadata"]["name"].as_str().unwrap_or_default();
        if kind == "PersistentVolumeClaim" {
            continue;
        }
        if let Some(object) = api_for(client, item).get_opt(name).await? {
            let labels = object.metadata.labels.unwrap_or_default();
            if labels.get("app.kubernetes.io/part-of").map(String::as_str) == Some("causely") {
                left.push(format!("{kind}/{name}"));
            }
        }
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    left.extend(
        pods.list(&ListParams::default().labels("app.kubernetes.io/part-of=causely"))
            .await?
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name),
    );
    Ok(left)
}

/// Rewrites the install record so that it stands for an older release: an extra object the new
/// release no longer has, a different rule in a recorded ClusterRole, and a setting (the
/// privileged agent) that the upgrade must keep.
async fn upgrade_from_an_older_release(cluster: &Cluster, client: &Client) -> anyhow::Result<()> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let legacy = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "causely-legacy", "namespace": NS, "labels": {"app.kubernetes.io/part-of": "causely"}}, "data": {"old": "yes"}});
    maps.create(&PostParams::default(), &serde_json::from_value(legacy.clone())?).await?;
    let record = maps.get("causely-install").await?;
    let data = record.data.context("record has no data")?;
    let mut settings: serde_json::Value = serde_json::from_str(&data["settings.json"])?;
    settings["agentMode"] = json!("privileged");
    settings["version"] = json!("0.0.9");
    let mut objects: Vec<serde_json::Value> = serde_json::from_str(&data["objects.json"])?;
    for object in objects.iter_mut().filter(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == "causely-agent")
    {
        object["rules"][0]["verbs"] = json!(["get", "watch", "list", "update"]);
    }
    objects.push(legacy);
    let patch =
        json!({"data": {"settings.json": settings.to_string(), "objects.json": serde_json::to_string(&objects)?}});
    maps.patch("causely-install", &PatchParams::default(), &Patch::Merge(&patch)).await?;

    let plan = expect(cluster, &["upgrade", "--dry-run"], 0)?;
    ensure!(plan.stdout.contains("- ConfigMap/causely/causely-legacy (removed)"), "{}", plan.stdout);
    ensure!(plan.stdout.contains("agent\n  - update on nodes, nodes/metrics, services\n"), "{}", plan.stdout);
    ensure!(plan.stdout.contains("~ DaemonSet/causely/causely-agent (changed)"), "{}", plan.stdout);

    let upgraded = expect(cluster, &["upgrade", "--timeout", "2m"], 0)?;
    ensure!(upgraded.stdout.contains("ConfigMap/causely/causely-legacy pruned"), "{}", upgraded.stdout);
    ensure!(maps.get_opt("causely-legacy").await?.is_none(), "the legacy object was not pruned");
    let ds = Api::<DaemonSet>::namespaced(client.clone(), NS).get("causely-agent").await?;
    let privileged = ds
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers[0].security_context.clone())
        .and_then(|c| c.privileged);
    ensure!(privileged == Some(true), "the recorded privileged agent setting was not kept");
    // The widened mediator role is back to the release's rules.
    expect(cluster, &["check"], 0)?;
    let after: serde_json::Value =
        serde_json::from_str(&maps.get("causely-install").await?.data.context("data")?["settings.json"])?;
    ensure!(after["version"] == json!(env!("CARGO_PKG_VERSION")) && after["agentMode"] == json!("privileged"));
    Ok(())
}

#[tokio::test]
async fn bad_input_is_one_error_line_and_changes_nothing() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    let ns = format!("e2e-bad-{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("causely-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let unknown_key = dir.join("values.yaml");
    std::fs::write(&unknown_key, "mediator:\n  nodeSelektor: {pool: system}\n")?;
    let unknown_key = unknown_key.to_string_lossy().into_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["install", "-n", &ns, "--agent-mode", "root"], "invalid value 'root'"),
        (
            vec!["install", "-n", &ns, "-f", "/nonexistent/values.yaml"],
            "cannot read values file /nonexistent/values.yaml",
        ),
        (vec!["install", "-n", &ns, "-f", &unknown_key], "nodeSelektor"),
        (vec!["install", "-n", &ns, "--set", "image.database=x"], "--set image.database"),
        (vec!["install", "-n", &ns, "--victoria-metrics", "external:vm:8428"], "needs an http:// or https:// URL"),
    ];
    for (args, reason) in cases {
        let out = run(&cluster, &args)?;
        ensure!(out.code == Some(2), "{args:?} exited {:?}", out.code);
        ensure!(out.stderr.contains(reason), "{args:?}: {}", out.stderr);
        if !args.contains(&"root") {
            ensure!(out.stderr.trim().lines().count() == 1, "{args:?}: not one line: {}", out.stderr);
        }
    }
    // A caller without permissions: refused at the first object, before anything is created.
    let nobody = kubeconfig_without_permissions(&cluster, &client, &dir).await?;
    let out = std::process::Command::new(causely_tests::workspace::workspace_bin("kubectl-causely")?)
        .args(["install", "-n", &ns, "--kubeconfig", &nobody])
        .env_remove("KUBECONFIG")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.code() == Some(2), "install without permissions exited {:?}", out.status.code());
    ensure!(stderr.trim().lines().count() == 1 && stderr.contains("forbidden"), "{stderr}");
    ensure!(
        Api::<Namespace>::all(client.clone()).get_opt(&ns).await?.is_none(),
        "a failed install created its namespace"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A kubeconfig file for a fresh ServiceAccount that RBAC grants nothing.
async fn kubeconfig_without_permissions(
    cluster: &Cluster,
    client: &Client,
    dir: &std::path::Path,
) -> anyhow::Result<String> {
    let kubeconfig =
        cluster.service_account_kubeconfig(client, "default", &format!("e2e-nobody-{}", std::process::id())).await?;
    let path = dir.join("nobody.kubeconfig");
    std::fs::write(&path, serde_json::to_string(&kubeconfig)?)?;
    Ok(path.to_string_lossy().into_owned())
}

#[tokio::test]
async fn a_rollout_that_cannot_finish_is_explained_and_a_failed_upgrade_rolls_back() -> anyhow::Result<()> {
    let _one_at_a_time = INSTALLS.lock().await;
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    remove_any_previous_install(&cluster, &client).await?;
    let dir = std::env::temp_dir().join(format!("causely-rollout-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let nowhere = dir.join("nowhere.yaml");
    std::fs::write(&nowhere, "mediator:\n  nodeSelector: {pool: does-not-exist}\n")?;
    let nowhere = nowhere.to_string_lossy().into_owned();

    // install --wait names the scheduler's reason when the mediator cannot be placed.
    let stuck = install(&cluster, &["-f", &nowhere, "--wait", "--timeout", "8s"], 1)?;
    ensure!(stuck.stderr.contains("not ready after 8s: mediator"), "{}", stuck.stderr);
    ensure!(stuck.stderr.contains("node(s) didn't match Pod's node affinity/selector"), "{}", stuck.stderr);

    expect(&cluster, &["uninstall", "--purge"], 0)?;

    // install --wait names an admission denial: a policy that refuses mediator pods.
    deny_mediator_pods(&client, true).await?;
    let denied = install(&cluster, &["--wait", "--timeout", "8s"], 1);
    deny_mediator_pods(&client, false).await?;
    let denied = denied?;
    ensure!(denied.stderr.contains("not ready after 8s: mediator"), "{}", denied.stderr);
    ensure!(denied.stderr.contains("e2e: mediator pods are refused"), "{}", denied.stderr);
    expect(&cluster, &["uninstall", "--purge"], 0)?;

    // A good install, then an upgrade that cannot roll out: rolled back to the recorded release.
    install(&cluster, &["--wait", "--timeout", "2m"], 0)?;
    let failed = expect(&cluster, &["upgrade", "-f", &nowhere, "--timeout", "8s"], 1)?;
    ensure!(failed.stderr.contains("rolled back to the recorded release"), "{}", failed.stderr);
    let deployment = Api::<Deployment>::namespaced(client.clone(), NS).get("causely-mediator").await?;
    let selector = deployment.spec.and_then(|s| s.template.spec).and_then(|s| s.node_selector);
    ensure!(selector.is_none(), "the mediator still has the failed release's nodeSelector {selector:?}");
    expect(&cluster, &["status", "--wait", "--timeout", "2m"], 0)?;
    let plan = expect(&cluster, &["upgrade", "--dry-run"], 0)?;
    ensure!(plan.stdout.starts_with("no changes"), "the record was not restored:\n{}", plan.stdout);

    expect(&cluster, &["uninstall", "--purge"], 0)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Creates (or removes) a ValidatingAdmissionPolicy that refuses mediator pods in the causely
/// namespace, and waits until the API server enforces it.
async fn deny_mediator_pods(client: &Client, deny: bool) -> anyhow::Result<()> {
    use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    let name = "e2e-deny-mediator";
    if !deny {
        bindings.delete(name, &Default::default()).await?;
        policies.delete(name, &Default::default()).await?;
        return Ok(());
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": NS}}))?).await?;
    let policy = json!({
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]},
            "validations": [{
                "expression": "!has(object.metadata.labels) || object.metadata.labels.all(k, k != 'app.kubernetes.io/name' || object.metadata.labels[k] != 'mediator')",
                "message": "e2e: mediator pods are refused"
            }]
        }
    });
    let binding = json!({
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NS}}}
        }
    });
    policies.create(&PostParams::default(), &serde_json::from_value(policy)?).await?;
    bindings.create(&PostParams::default(), &serde_json::from_value(binding)?).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let probe: Pod = serde_json::from_value(json!({
        "metadata": {"name": "probe", "labels": {"app.kubernetes.io/name": "mediator"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]}
    }))?;
    let dry = PostParams { dry_run: true, ..PostParams::default() };
    poll::until("the admission policy is enforced", CONVERGE, || async {
        Ok(match pods.create(&dry, &probe).await {
            Err(kube::Error::Api(e)) if e.message.contains("e2e: mediator pods are refused") => Some(()),
            _ => None,
        })
    })
    .await
}
