//! Agent intake refuses bad input with a 4xx and the reason, counts each refusal, and keeps
//! serving: no token, tokens for the wrong audience or account, a token bound to another node,
//! malformed JSON, a report outside the schema, an oversized body, the wrong content type.

use causely_tests::cluster::Cluster;
use causely_tests::mediator::{Mediator, MediatorOptions, agent_token, ensure_namespace, metric_value, reqwest_client};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

const NS: &str = "med-intake";

/// The counter label a refusal is counted under, the token sent, the content type, the body, and
/// the status expected.
type Case<'a> = (&'a str, Option<&'a str>, &'a str, Vec<u8>, u16);

fn report(node: &str) -> serde_json::Value {
    json!({"node": node, "agentVersion": "0.1.0", "seq": 1, "time": 1})
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_reports_get_a_4xx_with_the_reason_are_counted_and_the_mediator_keeps_serving() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    ensure_namespace(&client, NS).await?;
    let state = tempfile::tempdir()?;
    let mut options = MediatorOptions::new(NS);
    options.extra_args = vec!["--max-report-bytes".into(), "4096".into()];
    let mediator = Mediator::start(&cluster, &state.path().join("state"), options).await?;
    let http = reqwest_client()?;
    let url = format!("{}/v1/reports", mediator.url);

    let good = agent_token(&client, NS, "causely-agent", "causely-mediator", None).await?;
    let wrong_audience = agent_token(&client, NS, "causely-agent", "https://kubernetes.default.svc", None).await?;
    let wrong_account = agent_token(&client, NS, "someone-else", "causely-mediator", None).await?;

    // A token bound to a pod on kwok-node-1 may only report for kwok-node-1.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "agent-on-node-1"},
        "spec": {"nodeName": "kwok-node-1", "serviceAccountName": "causely-agent",
                 "containers": [{"name": "agent", "image": "registry.example/agent:1"}]}
    }))?;
    let pod = match pods.create(&PostParams::default(), &pod).await {
        Ok(pod) => pod,
        Err(kube::Error::Api(s)) if s.is_already_exists() => pods.get("agent-on-node-1").await?,
        Err(e) => return Err(e.into()),
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let bound = agent_token(&client, NS, "causely-agent", "causely-mediator", Some(("agent-on-node-1", &uid))).await?;

    let cases: Vec<Case> = vec![
        ("unauthenticated", None, "application/json", report("kwok-node-1").to_string().into_bytes(), 401),
        (
            "unauthenticated",
            Some(&wrong_audience),
            "application/json",
            report("kwok-node-1").to_string().into_bytes(),
            401,
        ),
        (
            "unauthenticated",
            Some(&wrong_account),
            "application/json",
            report("kwok-node-1").to_string().into_bytes(),
            401,
        ),
        ("unauthenticated", Some("not.a.jwt"), "application/json", report("kwok-node-1").to_string().into_bytes(), 401),
        ("forbidden", Some(&bound), "application/json", report("kwok-node-2").to_string().into_bytes(), 403),
        ("malformed", Some(&good), "application/json", b"{\"node\": ".to_vec(), 400),
        (
            "invalid",
            Some(&good),
            "application/json",
            {
                let mut r = report("kwok-node-1");
                r["samples"] = json!([[1700000000, 0.93]]);
                r.to_string().into_bytes()
            },
            422,
        ),
        ("too-large", Some(&good), "application/json", vec![b' '; 10_000], 413),
        ("unsupported-media-type", Some(&good), "text/plain", report("kwok-node-1").to_string().into_bytes(), 415),
    ];
    for (result, token, content_type, body, status) in &cases {
        let mut request = http.post(&url).header("content-type", *content_type).body(body.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let code = response.status().as_u16();
        let text = response.text().await?;
        assert_eq!(code, *status, "{result}: {text}");
        let reason: serde_json::Value = serde_json::from_str(&text)?;
        assert_eq!(reason["error"], *result, "{text}");
        assert!(reason["reason"].as_str().is_some_and(|r| !r.is_empty()), "{text}");
    }

    let metrics = reqwest_client()?.get(format!("{}/metrics", mediator.url)).send().await?.text().await?;
    let count =
        |result: &str| metric_value(&metrics, &format!("causely_mediator_intake_reports_total{{result=\"{result}\"}}"));
    assert_eq!(count("unauthenticated")?, 4.0, "{metrics}");
    for result in ["forbidden", "malformed", "invalid", "too-large", "unsupported-media-type"] {
        assert_eq!(count(result)?, 1.0, "{result}: {metrics}");
    }

    // Still serving, and a good report (the bound token for its own node) is accepted.
    let ok = http.post(&url).bearer_auth(&bound).json(&report("kwok-node-1")).send().await?;
    assert_eq!(ok.status().as_u16(), 202, "{}", ok.text().await?);
    assert_eq!(mediator.metric("causely_mediator_intake_reports_total{result=\"accepted\"}").await?, 1.0);
    Ok(())
}
