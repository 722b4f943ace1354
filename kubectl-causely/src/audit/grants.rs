//! Effective grants: RBAC rules expanded into single (apiGroup, resource, verb) or
//! (nonResourceURL, verb) permissions, with wildcards expanded against the API server's discovery.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde::Serialize;

/// One permission.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Grant {
    Resource {
        group: String,
        resource: String,
        verb: String,
        /// Limited to these object names; empty means every object.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
    },
    NonResource {
        url: String,
        verb: String,
    },
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::Resource { group, resource, verb, names } => {
                let group = if group.is_empty() { String::new() } else { format!("{group}/") };
                let names = if names.is_empty() { String::new() } else { format!("[{}]", names.join(",")) };
                write!(f, "{verb} {group}{resource}{names}")
            }
            Grant::NonResource { url, verb } => write!(f, "{verb} {url}"),
        }
    }
}

impl Grant {
    pub fn verb(&self) -> &str {
        match self {
            Grant::Resource { verb, .. } | Grant::NonResource { verb, .. } => verb,
        }
    }
}

/// What the API server serves: each (group, resource) with the verbs it supports. Wildcards in
/// rules expand to these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalogue {
    pub resources: Vec<(String, String, Vec<String>)>,
}

/// The verbs a `*` means when the catalogue does not list a resource.
pub const STANDARD_VERBS: [&str; 8] =
    ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];

impl Catalogue {
    fn verbs_of(&self, group: &str, resource: &str) -> Vec<String> {
        self.resources
            .iter()
            .find(|(g, r, _)| g == group && r == resource)
            .map(|(_, _, v)| v.clone())
            .unwrap_or_else(|| STANDARD_VERBS.iter().map(|v| (*v).to_owned()).collect())
    }

    fn groups(&self) -> BTreeSet<String> {
        self.resources.iter().map(|(g, _, _)| g.clone()).collect()
    }

    fn resources_in(&self, group: &str) -> Vec<String> {
        self.resources.iter().filter(|(g, _, _)| g == group).map(|(_, r, _)| r.clone()).collect()
    }
}

/// Expands one rule into grants. `*` in groups, resources or verbs becomes every group, resource
/// or verb the catalogue lists; a subresource wildcard (`pods/*`) becomes the listed subresources.
pub fn expand(rule: &PolicyRule, catalogue: &Catalogue) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    let names = rule.resource_names.clone().unwrap_or_default();
    let groups: Vec<String> = match rule.api_groups.as_deref() {
        // Without discovery (rendered YAML audited offline), a wildcard stays a literal `*`.
        Some(groups) if groups.iter().any(|g| g == "*") && catalogue.resources.is_empty() => vec!["*".to_owned()],
        Some(groups) if groups.iter().any(|g| g == "*") => catalogue.groups().into_iter().collect(),
        Some(groups) => groups.to_vec(),
        None => Vec::new(),
    };
    for group in &groups {
        let listed = catalogue.resources_in(group);
        for resource in rule.resources.iter().flatten() {
            let resources: Vec<String> = if resource == "*" && listed.is_empty() {
                vec!["*".to_owned()]
            } else if resource == "*" {
                listed.clone()
            } else if let Some(parent) = resource.strip_suffix("/*") {
                listed.iter().filter(|r| r.starts_with(&format!("{parent}/"))).cloned().collect()
            } else {
                vec![resource.clone()]
            };
            for resource in resources {
                let verbs: Vec<String> = if rule.verbs.iter().any(|v| v == "*") {
                    catalogue.verbs_of(group, &resource)
                } else {
                    rule.verbs.clone()
                };
                for verb in verbs {
                    out.insert(Grant::Resource {
                        group: group.clone(),
                        resource: resource.clone(),
                        verb,
                        names: names.clone(),
                    });
                }
            }
        }
    }
    for url in rule.non_resource_urls.iter().flatten() {
        let verbs: Vec<String> = if rule.verbs.iter().any(|v| v == "*") {
            ["get", "post", "put", "patch", "delete", "head"].iter().map(|v| (*v).to_owned()).collect()
        } else {
            rule.verbs.clone()
        };
        for verb in verbs {
            out.insert(Grant::NonResource { url: url.clone(), verb });
        }
    }
    out
}

/// Expands every rule.
pub fn expand_all<'a>(rules: impl IntoIterator<Item = &'a PolicyRule>, catalogue: &Catalogue) -> BTreeSet<Grant> {
    rules.into_iter().flat_map(|r| expand(r, catalogue)).collect()
}

/// True when `granted` covers `needed` (a grant limited to names covers only those names).
pub fn covers(granted: &BTreeSet<Grant>, needed: &Grant) -> bool {
    match needed {
        Grant::Resource { group, resource, verb, names } => granted.iter().any(|g| match g {
            Grant::Resource { group: gg, resource: gr, verb: gv, names: gn } => {
                gg == group
                    && gr == resource
                    && gv == verb
                    && (gn.is_empty() || (!names.is_empty() && names.iter().all(|n| gn.contains(n))))
            }
            Grant::NonResource { .. } => false,
        }),
        Grant::NonResource { url, verb } => granted.iter().any(|g| match g {
            Grant::NonResource { url: gu, verb: gv } => {
                gv == verb && (gu == url || gu.strip_suffix('*').is_some_and(|prefix| url.starts_with(prefix)))
            }
            Grant::Resource { .. } => false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::rule;

    fn catalogue() -> Catalogue {
        let verbs = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        Catalogue {
            resources: vec![
                ("".into(), "pods".into(), verbs(&["get", "list", "delete"])),
                ("".into(), "pods/exec".into(), verbs(&["create", "get"])),
                ("".into(), "pods/log".into(), verbs(&["get"])),
                ("".into(), "secrets".into(), verbs(&["get", "list"])),
                ("apps".into(), "deployments".into(), verbs(&["get", "patch"])),
            ],
        }
    }

    #[test]
    fn a_plain_rule_expands_to_one_grant_per_group_resource_and_verb() {
        let grants = expand(&rule(&["", "apps"], &["pods", "deployments"], &["get"]), &catalogue());
        assert_eq!(grants.len(), 4);
        assert!(grants.iter().any(|g| g.to_string() == "get apps/deployments"));
        assert!(grants.iter().any(|g| g.to_string() == "get pods"));
    }

    #[test]
    fn a_wildcard_resource_expands_to_what_discovery_lists() {
        let grants = expand(&rule(&[""], &["*"], &["get"]), &catalogue());
        let text: Vec<String> = grants.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["get pods", "get pods/exec", "get pods/log", "get secrets"]);
    }

    #[test]
    fn a_wildcard_verb_expands_to_the_resources_verbs() {
        let grants = expand(&rule(&[""], &["pods"], &["*"]), &catalogue());
        let verbs: Vec<&str> = grants.iter().map(Grant::verb).collect();
        assert_eq!(verbs, ["delete", "get", "list"]);
    }

    #[test]
    fn a_wildcard_group_and_subresource_wildcards_expand() {
        let all = expand(&rule(&["*"], &["*"], &["get"]), &catalogue());
        assert_eq!(all.len(), 5);
        let sub = expand(&rule(&[""], &["pods/*"], &["create"]), &catalogue());
        let text: Vec<String> = sub.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["create pods/exec", "create pods/log"]);
    }

    #[test]
    fn without_discovery_a_wildcard_stays_literal() {
        let grants = expand(&rule(&["*"], &["*"], &["get"]), &Catalogue::default());
        assert_eq!(grants.iter().map(ToString::to_string).collect::<Vec<_>>(), ["get */*"]);
    }

    #[test]
    fn non_resource_urls_expand_and_prefix_wildcards_cover() {
        let r = PolicyRule {
            non_resource_urls: Some(vec!["/metrics/*".into()]),
            verbs: vec!["get".into()],
            ..PolicyRule::default()
        };
        let grants = expand(&r, &catalogue());
        assert!(covers(&grants, &Grant::NonResource { url: "/metrics/cadvisor".into(), verb: "get".into() }));
        assert!(!covers(&grants, &Grant::NonResource { url: "/healthz".into(), verb: "get".into() }));
    }

    #[test]
    fn a_name_limited_grant_covers_only_those_names() {
        let mut r = rule(&[""], &["secrets"], &["get"]);
        r.resource_names = Some(vec!["one".into()]);
        let grants = expand(&r, &catalogue());
        let any = Grant::Resource { group: "".into(), resource: "secrets".into(), verb: "get".into(), names: vec![] };
        let one = Grant::Resource {
            group: "".into(),
            resource: "secrets".into(),
            verb: "get".into(),
            names: vec!["one".into()],
        };
        assert!(!covers(&grants, &any));
        assert!(covers(&grants, &one));
    }
}
