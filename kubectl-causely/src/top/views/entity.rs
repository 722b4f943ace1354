//! The Entity view: one entity's kind, labels, owners, node and symptoms, and its edges as a list
//! to walk along (enter opens the entity at the other end, esc comes back).

use causely_model::{EntityId, EntityKind, Relation, Symptom};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::format::{age, fit, severity_style, short};
use super::scroll;
use crate::top::app::App;
use crate::top::model::Store;

/// At most this many symptom lines; the rest are counted.
const SYMPTOM_LINES: usize = 4;

pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
    let Some(focus) = app.entity.focus.clone() else {
        let hint = " no entity selected: pick one in Symptoms (1) or Topology (2) and press enter";
        frame.render_widget(Paragraph::new(hint).dim().block(Block::bordered().title(" entity ")), area);
        return;
    };
    let info = info_lines(&app.store, &focus, app);
    let info_height = (info.len() as u16 + 2).min(area.height / 2);
    let [info_area, edges_area] = Layout::vertical([Constraint::Length(info_height), Constraint::Min(3)]).areas(area);
    let title = format!(" {} ", fit(&focus.to_string(), (area.width as usize).saturating_sub(4)));
    frame.render_widget(Paragraph::new(info).block(Block::bordered().title(title.bold())), info_area);
    draw_edges(frame, edges_area, app);
}

fn info_lines(store: &Store, focus: &EntityId, app: &App) -> Vec<Line<'static>> {
    let field = |name: &str, value: String| {
        Line::from(vec![Span::styled(format!(" {name:<9} "), Style::new().dim()), Span::raw(value)])
    };
    let mut lines = Vec::new();
    let Some(entity) = store.entity(focus) else {
        lines.push(Line::from(" no longer in the topology").dim());
        symptom_lines(store, focus, app, &mut lines);
        return lines;
    };
    lines.push(field("kind", kind_name(focus)));
    if !entity.labels.is_empty() {
        let labels: Vec<String> = entity.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push(field("labels", labels.join(", ")));
    }
    let owners = owners(store, focus);
    if !owners.is_empty() {
        let chain: Vec<String> = owners
            .iter()
            .map(|o| {
                let (tag, name) = short(o);
                format!("{tag} {name}")
            })
            .collect();
        lines.push(field("owners", chain.join(" → ")));
    }
    if let Some(node) = node_of(store, focus) {
        lines.push(field("node", short(&node).1.to_owned()));
    }
    symptom_lines(store, focus, app, &mut lines);
    lines
}

fn symptom_lines(store: &Store, focus: &EntityId, app: &App, lines: &mut Vec<Line<'static>>) {
    let mut open: Vec<&Symptom> = store.open_on(focus).collect();
    open.sort_by(|a, b| b.severity.cmp(&a.severity).then(b.started.cmp(&a.started)));
    let recent: Vec<&Symptom> = store.recent_symptoms().filter(|s| &s.entity == focus).collect();
    if open.is_empty() && recent.is_empty() {
        lines.push(Line::from(vec![Span::styled(" symptoms  ", Style::new().dim()), Span::raw("none")]));
        return;
    }
    let total = open.len() + recent.len();
    for (i, symptom) in open.iter().chain(recent.iter()).take(SYMPTOM_LINES).enumerate() {
        let label = if i == 0 { " symptoms  " } else { "           " };
        let mut spans = vec![Span::styled(label, Style::new().dim())];
        if let Some(resolved) = symptom.resolved {
            spans.push(
                Span::raw(format!(
                    "✓ {} ({}), resolved {} ago",
                    symptom.kind,
                    symptom.rule,
                    age(app.now.saturating_since(resolved))
                ))
                .dim(),
            );
        } else {
            spans.push(Span::styled(format!("● {}", symptom.severity), severity_style(symptom.severity)));
            spans.push(Span::raw(format!(
                " · {} ({}), for {}",
                symptom.kind,
                symptom.rule,
                age(app.now.saturating_since(symptom.started))
            )));
        }
        lines.push(Line::from(spans));
    }
    if total > SYMPTOM_LINES {
        lines.push(Line::from(format!("           … {} more", total - SYMPTOM_LINES)).dim());
    }
}

fn kind_name(id: &EntityId) -> String {
    match id.kind() {
        EntityKind::Node => "node".into(),
        EntityKind::Namespace => "namespace".into(),
        EntityKind::Pod => "pod".into(),
        EntityKind::Container => "container".into(),
        EntityKind::Service => "service".into(),
        EntityKind::Workload(kind) => kind.api_kind().into(),
    }
}

/// Who owns the entity, nearest first: a container's pod, then the pod's owners up the chain.
fn owners(store: &Store, id: &EntityId) -> Vec<EntityId> {
    let mut chain = Vec::new();
    let mut at = id.clone();
    if at.kind() == EntityKind::Container
        && let Some(pod) = store.targets(&at, Relation::RunsOn {}).next()
    {
        chain.push(pod.clone());
        at = pod.clone();
    }
    while let Some(owner) = store.targets(&at, Relation::OwnedBy {}).next() {
        if chain.contains(owner) || chain.len() > 8 {
            break;
        }
        chain.push(owner.clone());
        at = owner.clone();
    }
    chain
}

/// The node a pod runs on, or a container's pod runs on.
fn node_of(store: &Store, id: &EntityId) -> Option<EntityId> {
    let pod = match id.kind() {
        EntityKind::Pod => id.clone(),
        EntityKind::Container => store.targets(id, Relation::RunsOn {}).next()?.clone(),
        _ => return None,
    };
    store.targets(&pod, Relation::RunsOn {}).find(|n| n.kind() == EntityKind::Node).cloned()
}

fn draw_edges(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
    let neighbours = app.neighbours();
    let outbound = neighbours.iter().filter(|n| n.outbound).count();
    let title = format!(" edges: → {outbound} out, ← {} in · enter opens the other end ", neighbours.len() - outbound);
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = inner.height as usize;
    let width = inner.width as usize;
    app.page = height.saturating_sub(1).max(1);
    let e = &mut app.entity;
    e.offset = scroll(e.offset, e.cursor, height, neighbours.len());
    if neighbours.is_empty() {
        frame.render_widget(Paragraph::new(" no edges").dim(), inner);
        return;
    }
    let lines: Vec<Line<'_>> = neighbours
        .iter()
        .enumerate()
        .skip(e.offset)
        .take(height)
        .map(|(i, n)| {
            let arrow = if n.outbound { "→" } else { "←" };
            let peer = n.peer().to_string();
            let open = app.store.worst_on(n.peer());
            let mut spans = vec![
                Span::raw(format!(" {arrow} ")),
                Span::styled(format!("{:<15}", n.edge.relation.to_string()), Style::new().dim()),
                Span::raw(fit(&peer, width.saturating_sub(if open.is_some() { 33 } else { 19 }))),
            ];
            if let Some((worst, count)) = open {
                spans.push(Span::styled(format!("  ● {count} {worst}"), severity_style(worst)));
            }
            let used: usize = spans.iter().map(Span::width).sum();
            spans.push(Span::raw(" ".repeat(width.saturating_sub(used))));
            let line = Line::from(spans);
            if i == e.cursor { line.patch_style(Style::new().reversed()) } else { line }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}
