//! `top` benchmark: how long one frame takes with 10k entities and 1k open symptoms (each view,
//! at 80×24 and 200×60, the cursor moving every frame), and what a live change costs (a
//! topology delta that rebuilds the tree, a symptom opening, a snapshot, the filter).
//! Run with `cargo bench -p kubectl-causely --bench top` (figures in docs/benchmarks.md).

use std::time::{Duration, Instant};

use causely_model::api::{EgressStatus, StreamEvent, SymptomsView, TopologyView};
use causely_model::{
    Edge, Entity, EntityId, Protocol, Relation, Severity, Symptom, SymptomChange, SymptomId, SymptomKind,
    TopologyPayload, UnixMillis, WorkloadKind,
};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use kubectl_causely::top::app::{App, handle_key};
use kubectl_causely::top::feed::Update;
use kubectl_causely::top::views;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const NOW: UnixMillis = UnixMillis(1_700_000_000_000);
const NAMESPACES: usize = 83;
const NODES: usize = 50;
const SERVICES_PER_NS: usize = 10;
const PODS_PER_WORKLOAD: usize = 3;
const CONTAINERS_PER_POD: usize = 2;
const OPEN_SYMPTOMS: usize = 1_000;
const RESOLVED_SYMPTOMS: usize = 500;

/// 83 namespaces of 10 services, 10 deployments with a replica set of 3 pods of 2 containers each,
/// web → next namespace's service calls, 50 nodes: 10,093 entities.
fn topology() -> TopologyView {
    let mut entities = Vec::new();
    let mut edges = Vec::new();
    for n in 0..NODES {
        entities.push(Entity::new(EntityId::node(format!("node-{n:03}"))).with_label("zone", format!("z{}", n % 3)));
    }
    for ns_index in 0..NAMESPACES {
        let ns = format!("team-{ns_index:03}");
        entities.push(Entity::new(EntityId::ns(&ns)));
        for s in 0..SERVICES_PER_NS {
            let app = format!("app-{s:02}");
            let service = EntityId::service(&ns, &app);
            let deploy = EntityId::workload(WorkloadKind::Deployment, &ns, &app);
            let rs = EntityId::workload(WorkloadKind::ReplicaSet, &ns, format!("{app}-7d9f"));
            entities.push(Entity::new(service.clone()).with_label("app", &app));
            entities.push(Entity::new(deploy.clone()).with_label("app", &app));
            entities.push(Entity::new(rs.clone()).with_label("app", &app));
            edges.push(Edge::new(rs.clone(), Relation::OwnedBy {}, deploy.clone()));
            let next = EntityId::service(format!("team-{:03}", (ns_index + 1) % NAMESPACES), &app);
            edges.push(Edge::new(deploy, Relation::Calls { port: 8080, protocol: Protocol::Tcp }, next));
            for p in 0..PODS_PER_WORKLOAD {
                let pod_name = format!("{app}-7d9f-{p}");
                let pod = EntityId::pod(&ns, &pod_name);
                entities.push(Entity::new(pod.clone()).with_label("app", &app));
                edges.push(Edge::new(pod.clone(), Relation::OwnedBy {}, rs.clone()));
                let node = (ns_index * 31 + s * 7 + p) % NODES;
                edges.push(Edge::new(pod.clone(), Relation::RunsOn {}, EntityId::node(format!("node-{node:03}"))));
                edges.push(Edge::new(service.clone(), Relation::Selects {}, pod.clone()));
                for c in 0..CONTAINERS_PER_POD {
                    let container = EntityId::container(&ns, &pod_name, format!("c{c}"));
                    entities.push(Entity::new(container.clone()));
                    edges.push(Edge::new(container, Relation::RunsOn {}, pod.clone()));
                }
            }
        }
    }
    TopologyView { entities, edges }
}

fn symptom(entity: EntityId, i: usize, resolved: Option<UnixMillis>) -> Symptom {
    let kinds = [SymptomKind::HighCpuUtilization, SymptomKind::MemoryPressure, SymptomKind::CrashLoop];
    let severities = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];
    let started = UnixMillis(NOW.0 - 1_000 * i as u64);
    Symptom {
        id: SymptomId::of("bench.rule", &entity, started),
        kind: kinds[i % kinds.len()],
        entity,
        severity: severities[i % severities.len()],
        rule: "bench.rule".into(),
        threshold: None,
        started,
        resolved,
    }
}

/// 1,000 open symptoms on containers across the namespaces, 500 recently resolved.
fn symptoms(topology: &TopologyView) -> SymptomsView {
    let containers: Vec<&EntityId> =
        topology.entities.iter().map(|e| &e.id).filter(|id| matches!(id, EntityId::Container { .. })).collect();
    let step = containers.len() / (OPEN_SYMPTOMS + RESOLVED_SYMPTOMS);
    let pick = |i: usize| containers[(i * step) % containers.len()].clone();
    SymptomsView {
        open: (0..OPEN_SYMPTOMS).map(|i| symptom(pick(i), i, None)).collect(),
        recent: (0..RESOLVED_SYMPTOMS)
            .map(|i| symptom(pick(OPEN_SYMPTOMS + i), i, Some(UnixMillis(NOW.0 - 500))))
            .collect(),
    }
}

fn loaded_app() -> App {
    let topology = topology();
    let symptoms = symptoms(&topology);
    let mut app = App::new("at http://127.0.0.1:8080", NOW);
    app.apply(Update::Snapshot { topology, symptoms, egress: EgressStatus::default() });
    app
}

fn key(app: &mut App, code: KeyCode) {
    handle_key(app, KeyEvent::new(code, KeyModifiers::NONE));
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];
    println!(
        "{name:<52} p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}  ({} runs)",
        pct(0.5),
        pct(0.99),
        samples[samples.len() - 1],
        samples.len()
    );
}

/// Frames of one view with the cursor moving down one row per frame (so every frame differs).
fn frames(name: &str, app: &mut App, view: char, width: u16, height: u16) {
    key(app, KeyCode::Char(view));
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    let mut samples = Vec::with_capacity(500);
    for i in 0..500 {
        key(app, if i % 100 < 50 { KeyCode::Down } else { KeyCode::Up });
        let start = Instant::now();
        terminal.draw(|frame| views::draw(frame, app)).expect("drawing on a test terminal");
        samples.push(start.elapsed());
    }
    report(&format!("frame {name} {width}x{height}"), samples);
}

fn main() {
    let start = Instant::now();
    let mut app = loaded_app();
    println!(
        "{} entities, {} edges, {} open and {} resolved symptoms (built and loaded in {:.1?})",
        app.store.entity_count(),
        app.store.edge_count(),
        app.store.open_count(),
        app.store.recent_symptoms().count(),
        start.elapsed()
    );
    for (width, height) in [(80, 24), (200, 60)] {
        frames("symptoms", &mut app, '1', width, height);
        frames("topology", &mut app, '2', width, height);
        // The last row is a node with about 50 pods: the Entity view lists their edges.
        key(&mut app, KeyCode::Char('2'));
        key(&mut app, KeyCode::End);
        key(&mut app, KeyCode::Enter);
        frames("entity (a node)", &mut app, '3', width, height);
        frames("egress", &mut app, '4', width, height);
    }

    // The tree alone, as each topology change rebuilds it.
    let mut samples = Vec::new();
    for _ in 0..50 {
        let start = Instant::now();
        std::hint::black_box(kubectl_causely::top::tree::build(&app.store));
        samples.push(start.elapsed());
    }
    report("topology tree built from the store", samples);

    // A topology delta: the next frame rebuilds the tree (the cost each live topology change has).
    key(&mut app, KeyCode::Char('2'));
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("a test terminal");
    let mut samples = Vec::new();
    for i in 0..100 {
        let pod = EntityId::pod("team-000", format!("extra-{i}"));
        let delta = TopologyPayload::Delta {
            added_entities: vec![Entity::new(pod.clone())],
            removed_entities: vec![],
            added_edges: vec![Edge::new(pod, Relation::RunsOn {}, EntityId::node("node-000"))],
            removed_edges: vec![],
        };
        let start = Instant::now();
        app.apply(Update::Event(StreamEvent::Topology { delta }));
        terminal.draw(|frame| views::draw(frame, &mut app)).expect("drawing on a test terminal");
        samples.push(start.elapsed());
    }
    report("topology delta + frame (tree rebuilt) 80x24", samples);

    // A symptom opening: the next frame re-sorts the symptom list.
    key(&mut app, KeyCode::Char('1'));
    let mut samples = Vec::new();
    for i in 0..100 {
        let opened = symptom(EntityId::node(format!("node-{:03}", i % NODES)), 10_000 + i, None);
        let start = Instant::now();
        app.apply(Update::Event(StreamEvent::Symptom { change: SymptomChange::Opened { symptom: opened } }));
        terminal.draw(|frame| views::draw(frame, &mut app)).expect("drawing on a test terminal");
        samples.push(start.elapsed());
    }
    report("symptom opened + frame 80x24", samples);

    // A full snapshot (connect or resync) and its first frame.
    let topology = topology();
    let symptoms = symptoms(&topology);
    let mut samples = Vec::new();
    for _ in 0..10 {
        let update = Update::Snapshot {
            topology: topology.clone(),
            symptoms: symptoms.clone(),
            egress: EgressStatus::default(),
        };
        let start = Instant::now();
        app.apply(update);
        terminal.draw(|frame| views::draw(frame, &mut app)).expect("drawing on a test terminal");
        samples.push(start.elapsed());
    }
    report("snapshot applied + first frame 80x24", samples);

    // Typing a filter on the Topology view: each key re-filters 10k rows.
    key(&mut app, KeyCode::Char('2'));
    let mut samples = Vec::new();
    for _ in 0..20 {
        key(&mut app, KeyCode::Char('/'));
        for c in "team-042".chars() {
            let start = Instant::now();
            key(&mut app, KeyCode::Char(c));
            terminal.draw(|frame| views::draw(frame, &mut app)).expect("drawing on a test terminal");
            samples.push(start.elapsed());
        }
        key(&mut app, KeyCode::Esc);
    }
    report("filter key + frame (topology) 80x24", samples);
}
