//! The audit report as a table (grouped by component), JSON, or Markdown for a PR comment.

use causely_model::Severity;

use super::report::{Finding, FindingKind, Report};

fn severity(f: &Finding) -> String {
    f.severity.map_or("info".to_owned(), |s| s.to_string())
}

fn kind(f: &Finding) -> &'static str {
    match f.kind {
        FindingKind::Extra => "extra",
        FindingKind::Missing => "missing",
        FindingKind::Improvement => "improvement",
        FindingKind::Addition => "addition",
        FindingKind::Risk => "risk",
        FindingKind::PodSecurity => "pod-security",
    }
}

/// The verdict line: how many findings at or above `fail_on`.
pub fn verdict(report: &Report, fail_on: Option<Severity>) -> String {
    let failing = fail_on.map_or(0, |t| report.findings.iter().filter(|f| f.severity.is_some_and(|s| s >= t)).count());
    match fail_on {
        None => format!("{} findings; --fail-on none", report.findings.len()),
        Some(t) if failing == 0 => {
            format!("PASS: no finding at or above {t} ({} findings in all)", report.findings.len())
        }
        Some(t) => format!("FAIL: {failing} finding(s) at or above {t}"),
    }
}

/// Text grouped by component; `colour` only on a terminal.
pub fn table(report: &Report, fail_on: Option<Severity>, colour: bool) -> String {
    let paint = |s: &str, sev: Option<Severity>| -> String {
        let code = match sev {
            Some(Severity::Critical) | Some(Severity::High) => "31",
            Some(Severity::Medium) => "33",
            Some(Severity::Low) => "36",
            None => "32",
        };
        if colour { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_owned() }
    };
    let mut out = format!("Audit of namespace {} against the {} baseline\n", report.namespace, report.baseline);
    for (component, bindings) in &report.bindings {
        out.push_str(&format!("\n{component}\n"));
        for (binding, role) in bindings {
            out.push_str(&format!("  bound by {binding} -> {role}\n"));
        }
        let findings: Vec<&Finding> = report.findings.iter().filter(|f| f.component == *component).collect();
        if findings.is_empty() {
            out.push_str("  no findings\n");
        }
        for f in findings {
            out.push_str(&format!(
                "  {} {:<12} {}\n",
                paint(&format!("{:<8}", severity(f)), f.severity),
                kind(f),
                f.message
            ));
        }
    }
    out.push_str(&format!("\n{}\n", verdict(report, fail_on)));
    out
}

pub fn markdown(report: &Report, fail_on: Option<Severity>) -> String {
    let mut out = format!("### Causely permission audit ({} baseline)\n\n", report.baseline);
    out.push_str(&format!("**{}**\n\n", verdict(report, fail_on)));
    if report.findings.is_empty() {
        out.push_str("No findings.\n");
        return out;
    }
    out.push_str("| severity | component | kind | finding | object |\n|---|---|---|---|---|\n");
    for f in &report.findings {
        let cell = |s: &str| s.replace('|', "\\|");
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            severity(f),
            f.component,
            kind(f),
            cell(&f.message),
            cell(&f.object)
        ));
    }
    out
}

pub fn json(report: &Report, fail_on: Option<Severity>) -> String {
    let failing = fail_on.is_some_and(|t| report.worst().is_some_and(|w| w >= t));
    let doc = serde_json::json!({"report": report, "failOn": fail_on, "failed": failing});
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// SARIF 2.1.0: one rule per kind of finding, one result per finding, located at the object it
/// names (a logical location, since the objects live in a cluster, not in a file).
pub fn sarif(report: &Report) -> String {
    let mut rules: Vec<&str> = report.findings.iter().map(|f| f.rule.as_str()).collect();
    rules.sort();
    rules.dedup();
    let level = |s: Option<Severity>| match s {
        Some(Severity::Critical | Severity::High) => "error",
        Some(Severity::Medium) => "warning",
        Some(Severity::Low) | None => "note",
    };
    let descriptor = |id: &str| {
        let example = report.findings.iter().find(|f| f.rule == id);
        let text = match example.map(|f| f.kind) {
            Some(FindingKind::Extra) => "Permission granted beyond the baseline",
            Some(FindingKind::Missing) => "Permission in the baseline but not granted",
            Some(FindingKind::Improvement) => "Narrower than the published posture",
            Some(FindingKind::Addition) => "Documented addition to the published posture",
            Some(FindingKind::Risk) => "Risky permission",
            Some(FindingKind::PodSecurity) | None => "Pod security setting beyond the baseline",
        };
        serde_json::json!({
            "id": id,
            "shortDescription": {"text": format!("{text} ({id})")},
            "defaultConfiguration": {"level": level(example.and_then(|f| f.severity))},
        })
    };
    let results: Vec<serde_json::Value> = report
        .findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "ruleId": f.rule,
                "ruleIndex": rules.iter().position(|r| *r == f.rule).unwrap_or(0),
                "level": level(f.severity),
                "message": {"text": format!("{}: {}", f.component, f.message)},
                "locations": [{"logicalLocations": [{
                    "name": f.object,
                    "fullyQualifiedName": format!("{}/{}", report.namespace, f.object),
                    "kind": "resource",
                }]}],
                "properties": {"component": f.component, "kind": f.kind, "severity": severity(f)},
            })
        })
        .collect();
    let doc = serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "kubectl-causely",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules.iter().map(|r| descriptor(r)).collect::<Vec<_>>(),
            }},
            "properties": {"baseline": report.baseline, "namespace": report.namespace},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}
