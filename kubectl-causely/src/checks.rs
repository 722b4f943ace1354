//! The vocabulary of `check`: results grouped by category, printed like `linkerd check`
//! (√ passed, × failed, ‼ warning, - skipped, each failure with a hint), and the pure judgements
//! behind them.

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde::Serialize;

use crate::audit::grants::{Catalogue, Grant, expand_all};

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Error,
    /// Not checked, for a reason the description gives (e.g. a node where nothing can run).
    Skipped,
}

/// One line of `check` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub category: String,
    pub description: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl CheckResult {
    pub fn ok(category: &str, description: impl Into<String>) -> Self {
        CheckResult { category: category.to_owned(), description: description.into(), status: Status::Ok, hint: None }
    }

    pub fn warning(category: &str, description: impl Into<String>, hint: impl Into<String>) -> Self {
        CheckResult {
            category: category.to_owned(),
            description: description.into(),
            status: Status::Warning,
            hint: Some(hint.into()),
        }
    }

    pub fn skipped(category: &str, description: impl Into<String>) -> Self {
        CheckResult {
            category: category.to_owned(),
            description: description.into(),
            status: Status::Skipped,
            hint: None,
        }
    }

    pub fn error(category: &str, description: impl Into<String>, hint: impl Into<String>) -> Self {
        CheckResult {
            category: category.to_owned(),
            description: description.into(),
            status: Status::Error,
            hint: Some(hint.into()),
        }
    }
}

/// True when no check failed (warnings do not fail).
pub fn passed(results: &[CheckResult]) -> bool {
    results.iter().all(|r| r.status != Status::Error)
}

/// The text report: categories in order of first appearance, a line per check, hints indented.
pub fn report(results: &[CheckResult]) -> String {
    let mut order: Vec<&str> = Vec::new();
    for r in results {
        if !order.contains(&r.category.as_str()) {
            order.push(&r.category);
        }
    }
    let mut out = String::new();
    for category in order {
        out.push_str(&format!("{category}\n{}\n", "-".repeat(category.len())));
        for r in results.iter().filter(|r| r.category == category) {
            let mark = match r.status {
                Status::Ok => "√",
                Status::Warning => "‼",
                Status::Error => "×",
                Status::Skipped => "-",
            };
            out.push_str(&format!("{mark} {}\n", r.description));
            if let Some(hint) = &r.hint {
                out.push_str(&format!("    hint: {hint}\n"));
            }
        }
        out.push('\n');
    }
    out.push_str(if passed(results) { "Status check results are √\n" } else { "Status check results are ×\n" });
    out
}

/// `major.minor` of a kernel release string such as `6.1.0-18-amd64` or `5.15.0-1057-aws`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The oldest kernel the agent's eBPF programs load on: CAP_BPF and CAP_PERFMON (5.8), BPF ring
/// buffers (5.8) and BTF-typed tracepoints.
pub const MIN_KERNEL: (u32, u32) = (5, 8);

/// The oldest Kubernetes minor release this plugin supports.
pub const MIN_KUBERNETES_MINOR: u32 = 30;

/// `1.35` from an API server's `major`/`minor` (the minor may carry a `+`).
pub fn kubernetes_minor(major: &str, minor: &str) -> Option<u32> {
    (major == "1").then_some(())?;
    minor.trim_end_matches('+').parse().ok()
}

/// `group/resource[names]:verb`, or `url:verb`: how `check` names a grant.
fn key(grant: &Grant) -> String {
    match grant {
        Grant::Resource { group, resource, verb, names } => {
            let group = if group.is_empty() { String::new() } else { format!("{group}/") };
            let names = if names.is_empty() { String::new() } else { format!("[{}]", names.join(",")) };
            format!("{group}{resource}{names}:{verb}")
        }
        Grant::NonResource { url, verb } => format!("{url}:{verb}"),
    }
}

/// Grants in `live` but not in `expected` (+) and in `expected` but not in `live` (-), compared
/// as expanded grants, so that two roles writing the same grants in another grouping are equal.
pub fn grant_diff(expected: &[PolicyRule], live: &[PolicyRule]) -> Vec<String> {
    let (e, l) = (expand_all(expected, &Catalogue::default()), expand_all(live, &Catalogue::default()));
    let extra = l.difference(&e).map(|g| format!("+{}", key(g)));
    let missing = e.difference(&l).map(|g| format!("-{}", key(g)));
    extra.chain(missing).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::rule;

    #[test]
    fn kernel_releases_parse_to_major_and_minor() {
        assert_eq!(kernel_version("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("5.15.0-1057-aws"), Some((5, 15)));
        assert_eq!(kernel_version("4.19.112+"), Some((4, 19)));
        assert_eq!(kernel_version("garbage"), None);
        assert!((4, 19) < MIN_KERNEL && (5, 15) >= MIN_KERNEL);
    }

    #[test]
    fn kubernetes_minors_parse_with_a_plus() {
        assert_eq!(kubernetes_minor("1", "35"), Some(35));
        assert_eq!(kubernetes_minor("1", "29+"), Some(29));
        assert_eq!(kubernetes_minor("2", "0"), None);
    }

    #[test]
    fn regrouped_rules_grant_the_same_and_a_change_is_named() {
        let a = [rule(&[""], &["pods", "nodes"], &["get", "list"])];
        let b = [rule(&[""], &["nodes"], &["list", "get"]), rule(&[""], &["pods"], &["get", "list"])];
        assert!(grant_diff(&a, &b).is_empty());
        let c = [rule(&[""], &["pods", "nodes", "secrets"], &["get", "list"])];
        assert_eq!(grant_diff(&a, &c), ["+secrets:get", "+secrets:list"]);
        assert_eq!(grant_diff(&c, &a), ["-secrets:get", "-secrets:list"]);
    }

    #[test]
    fn the_report_marks_each_result_and_the_verdict() {
        let results = vec![
            CheckResult::ok("kubernetes-api", "can reach the API server"),
            CheckResult::warning("nodes", "BTF cannot be seen from the API", "the agent reports it"),
            CheckResult::error(
                "permissions",
                "can create ClusterRoles",
                "ask for rbac.authorization.k8s.io/clusterroles create",
            ),
        ];
        let text = report(&results);
        assert!(text.contains("kubernetes-api\n--------------\n√ can reach the API server"), "{text}");
        assert!(text.contains("‼ BTF cannot be seen"), "{text}");
        assert!(text.contains("× can create ClusterRoles\n    hint: ask for"), "{text}");
        assert!(text.ends_with("Status check results are ×\n"));
        assert!(!passed(&results));
        assert!(passed(&results[..2]));
        let skipped = [CheckResult::skipped("node-check: kwok-node-1", "skipped: nothing runs there")];
        assert!(report(&skipped).contains("- skipped: nothing runs there\n"));
        assert!(passed(&skipped), "a skipped check does not fail");
    }
}
