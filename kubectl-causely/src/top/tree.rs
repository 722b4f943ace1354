//! The Topology view's rows: each namespace with its services (and the pods they select) and its
//! workloads (owned workloads, pods, containers), then the nodes; flattened into an indented list.

use std::collections::BTreeMap;

use causely_model::{EntityId, EntityKind, Relation};

use super::model::Store;

/// Deepest nesting followed; owner chains are short, and this stops a cycle in bad data.
const MAX_DEPTH: u8 = 8;

/// One line of the topology tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub depth: u8,
    pub id: EntityId,
    /// Index of the row this one sits under.
    pub parent: Option<usize>,
}

/// The rows of a whole topology. A pod shows under each service that selects it and under its
/// owner, so a row is told apart by its path (see [`path`]), not its entity alone.
pub fn build(store: &Store) -> Vec<Row> {
    #[derive(Default)]
    struct Namespace<'a> {
        services: Vec<&'a EntityId>,
        roots: Vec<&'a EntityId>,
        pods: Vec<&'a EntityId>,
        others: Vec<&'a EntityId>,
    }
    let mut namespaces: BTreeMap<&str, Namespace<'_>> = BTreeMap::new();
    let mut nodes = Vec::new();
    // An owned entity shows under its owner, unless the owner chain never ends in an unowned
    // workload (a cycle in bad data): then it shows at the top of its namespace as well. The store
    // keeps edges only between entities it has, so an owner edge names an entity shown.
    let has_owner = |id: &EntityId| {
        let mut at = id;
        for _ in 0..MAX_DEPTH {
            match store.targets(at, Relation::OwnedBy {}).next() {
                Some(next) => at = next,
                None => return !std::ptr::eq(at, id),
            }
        }
        false
    };
    for entity in store.entities() {
        let id = &entity.id;
        match id {
            EntityId::Node { .. } => nodes.push(id),
            EntityId::Namespace { name } => {
                namespaces.entry(name).or_default();
            }
            EntityId::Service { namespace, .. } => namespaces.entry(namespace).or_default().services.push(id),
            EntityId::Workload { namespace, .. } if !has_owner(id) => {
                namespaces.entry(namespace).or_default().roots.push(id)
            }
            EntityId::Pod { namespace, .. } if !has_owner(id) => namespaces.entry(namespace).or_default().pods.push(id),
            EntityId::Container { namespace, .. } if store.targets(id, Relation::RunsOn {}).next().is_none() => {
                namespaces.entry(namespace).or_default().others.push(id)
            }
            _ => {}
        }
    }
    let mut builder = Builder { store, rows: Vec::with_capacity(store.entity_count() + 16) };
    for (name, ns) in namespaces {
        let at = builder.push(EntityId::ns(name), 0, None);
        for service in ns.services {
            let service_row = builder.push(service.clone(), 1, Some(at));
            let mut pods: Vec<&EntityId> = store.targets(service, Relation::Selects {}).collect();
            pods.sort();
            for pod in pods {
                builder.push(pod.clone(), 2, Some(service_row));
            }
        }
        for workload in ns.roots {
            builder.owned(workload, 1, at);
        }
        for pod in ns.pods {
            builder.pod(pod, 1, at);
        }
        for other in ns.others {
            builder.push(other.clone(), 1, Some(at));
        }
    }
    for node in nodes {
        builder.push(node.clone(), 0, None);
    }
    builder.rows
}

struct Builder<'a> {
    store: &'a Store,
    rows: Vec<Row>,
}

impl Builder<'_> {
    fn push(&mut self, id: EntityId, depth: u8, parent: Option<usize>) -> usize {
        self.rows.push(Row { depth, id, parent });
        self.rows.len() - 1
    }

    /// A workload, then what it owns: workloads first (a deployment's replica sets), then pods.
    fn owned(&mut self, id: &EntityId, depth: u8, parent: usize) {
        let at = self.push(id.clone(), depth, Some(parent));
        if depth >= MAX_DEPTH {
            return;
        }
        let mut children: Vec<&EntityId> = self.store.sources(id, Relation::OwnedBy {}).collect();
        children.sort_by_key(|c| (c.kind() == EntityKind::Pod, *c));
        for child in children {
            if child.kind() == EntityKind::Pod {
                self.pod(child, depth + 1, at);
            } else {
                self.owned(child, depth + 1, at);
            }
        }
    }

    fn pod(&mut self, id: &EntityId, depth: u8, parent: usize) {
        let at = self.push(id.clone(), depth, Some(parent));
        let containers = self.store.sources(id, Relation::RunsOn {}).filter(|c| c.kind() == EntityKind::Container);
        let containers: Vec<EntityId> = containers.cloned().collect();
        for container in containers {
            self.push(container, depth + 1, Some(at));
        }
    }
}

/// The ids from the top of the tree down to `index`: what identifies a row across rebuilds.
pub fn path(rows: &[Row], index: usize) -> Vec<EntityId> {
    let mut path = Vec::new();
    let mut at = Some(index);
    while let Some(i) = at {
        let Some(row) = rows.get(i) else { break };
        path.push(row.id.clone());
        at = row.parent;
    }
    path.reverse();
    path
}

/// Where a row with `path` is now: the same path, else the first row of the same entity.
pub fn find(rows: &[Row], wanted: &[EntityId]) -> Option<usize> {
    let last = wanted.last()?;
    let mut same_entity = None;
    for (i, row) in rows.iter().enumerate() {
        if &row.id != last {
            continue;
        }
        if path(rows, i) == wanted {
            return Some(i);
        }
        same_entity.get_or_insert(i);
    }
    same_entity
}

/// The indexes of the rows that match `filter` (case-insensitive, anywhere in the id) together with
/// their ancestors, so a match is shown in its place in the tree. An empty filter keeps every row.
pub fn filter(rows: &[Row], filter: &str) -> Vec<usize> {
    if filter.is_empty() {
        return (0..rows.len()).collect();
    }
    let needle = filter.to_lowercase();
    let mut keep = vec![false; rows.len()];
    for (i, row) in rows.iter().enumerate() {
        if row.id.to_string().to_lowercase().contains(&needle) {
            let mut at = Some(i);
            while let Some(j) = at {
                if keep[j] && j != i {
                    break;
                }
                keep[j] = true;
                at = rows[j].parent;
            }
        }
    }
    keep.iter().enumerate().filter(|(_, k)| **k).map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::testdata::shop;

    fn outline(rows: &[Row]) -> Vec<String> {
        rows.iter().map(|r| format!("{}{}", "  ".repeat(r.depth as usize), r.id)).collect()
    }

    #[test]
    fn namespaces_hold_services_with_their_pods_and_workloads_down_to_containers_then_nodes_follow() {
        let rows = build(&shop());
        assert_eq!(
            outline(&rows),
            [
                "ns/shop",
                "  svc/shop/db",
                "    pod/shop/db-0",
                "  svc/shop/web",
                "    pod/shop/web-1",
                "    pod/shop/web-2",
                "  workload/deployment/shop/web",
                "    workload/replicaset/shop/web-7d9f",
                "      pod/shop/web-1",
                "        container/shop/web-1/nginx",
                "      pod/shop/web-2",
                "        container/shop/web-2/nginx",
                "  workload/statefulset/shop/db",
                "    pod/shop/db-0",
                "      container/shop/db-0/postgres",
                "node/n1",
                "node/n2",
            ]
        );
    }

    #[test]
    fn a_row_is_found_again_by_its_path_or_else_by_its_entity() {
        let rows = build(&shop());
        let under_owner = rows.iter().rposition(|r| r.id == EntityId::pod("shop", "web-1")).unwrap();
        let wanted = path(&rows, under_owner);
        assert_eq!(wanted.len(), 4, "{wanted:?}");
        assert_eq!(find(&rows, &wanted), Some(under_owner));
        let under_service = rows.iter().position(|r| r.id == EntityId::pod("shop", "web-1")).unwrap();
        assert_eq!(find(&rows, &[EntityId::pod("shop", "web-1")]), Some(under_service));
        assert_eq!(find(&rows, &[EntityId::pod("shop", "gone")]), None);
    }

    #[test]
    fn a_filter_keeps_matching_rows_with_their_ancestors() {
        let rows = build(&shop());
        let kept: Vec<String> = filter(&rows, "POSTGRES").into_iter().map(|i| rows[i].id.to_string()).collect();
        assert_eq!(kept, ["ns/shop", "workload/statefulset/shop/db", "pod/shop/db-0", "container/shop/db-0/postgres"]);
        assert_eq!(filter(&rows, "").len(), rows.len());
        assert!(filter(&rows, "nothing-like-this").is_empty());
    }

    #[test]
    fn an_ownership_cycle_in_bad_data_is_shown_and_stops_at_the_depth_limit() {
        use causely_model::api::{SymptomsView, TopologyView};
        use causely_model::{Edge, Entity, WorkloadKind};
        let a = EntityId::workload(WorkloadKind::Job, "x", "a");
        let b = EntityId::workload(WorkloadKind::Job, "x", "b");
        let view = TopologyView {
            entities: vec![Entity::new(a.clone()), Entity::new(b.clone())],
            edges: vec![Edge::new(a.clone(), Relation::OwnedBy {}, b.clone()), Edge::new(b, Relation::OwnedBy {}, a)],
        };
        let mut store = Store::default();
        store.replace(view, SymptomsView::default());
        let rows = build(&store);
        assert_eq!(rows[0].id, EntityId::ns("x"));
        assert_eq!(rows.iter().filter(|r| r.depth == 1).count(), 2, "both show at the top");
        assert!(rows.iter().all(|r| r.depth <= MAX_DEPTH), "{:?}", outline(&rows));
    }
}
