//! The Topology view: counts per kind, the tree of namespaces, services, workloads, pods,
//! containers and nodes, and the selected entity's inbound and outbound edges.

use causely_model::{EntityId, EntityKind, Relation};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::format::{count, fit, severity_style, short};
use super::scroll;
use crate::top::app::App;
use crate::top::model::Store;

/// Below this width the edges go under the tree instead of beside it.
const SIDE_BY_SIDE_WIDTH: u16 = 110;

pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
    let [summary, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    frame.render_widget(Paragraph::new(counts(&app.store)).style(Style::new().dim()), summary);
    let [tree_area, edges_area] = if rest.width >= SIDE_BY_SIDE_WIDTH {
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(rest)
    } else {
        let edges_height = (rest.height / 3).clamp(3, 9);
        Layout::vertical([Constraint::Min(3), Constraint::Length(edges_height)]).areas(rest)
    };
    draw_tree(frame, tree_area, app);
    draw_edges(frame, edges_area, app);
}

/// "2 ns · 4 svc · 6 workloads · 9 pods · 9 containers · 2 nodes · 31 edges"
fn counts(store: &Store) -> Line<'static> {
    let mut by_kind = [0u64; 6];
    for entity in store.entities() {
        let slot = match entity.id.kind() {
            EntityKind::Namespace => 0,
            EntityKind::Service => 1,
            EntityKind::Workload(_) => 2,
            EntityKind::Pod => 3,
            EntityKind::Container => 4,
            EntityKind::Node => 5,
        };
        by_kind[slot] += 1;
    }
    let names = ["ns", "svc", "workloads", "pods", "containers", "nodes"];
    let mut parts: Vec<String> = names.iter().zip(by_kind).map(|(name, n)| format!("{} {name}", count(n))).collect();
    parts.push(format!("{} edges", count(store.edge_count() as u64)));
    Line::from(format!(" {}", parts.join(" · ")))
}

fn draw_tree(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
    let shown = app.topology.visible().len();
    let title = if app.filter.is_empty() {
        format!(" topology ({} rows) ", count(shown as u64))
    } else {
        format!(
            " topology: {} of {} rows match {:?} ",
            count(shown as u64),
            count(app.topology.rows().len() as u64),
            app.filter
        )
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = inner.height as usize;
    app.page = height.saturating_sub(1).max(1);
    let t = &mut app.topology;
    t.offset = scroll(t.offset, t.cursor, height, shown);
    if shown == 0 {
        let empty = if app.store.entity_count() == 0 { " no topology yet" } else { " nothing matches the filter" };
        frame.render_widget(Paragraph::new(empty).dim(), inner);
        return;
    }
    let width = inner.width as usize;
    let lines: Vec<Line<'_>> = (t.offset..(t.offset + height).min(shown))
        .map(|i| {
            let row = &t.rows()[t.visible()[i]];
            let line = row_line(&app.store, &row.id, row.depth as usize, width);
            if i == t.cursor { line.patch_style(Style::new().reversed()) } else { line }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// One tree row: indent, kind tag, name, then what helps to read it (node, pod count, symptoms).
fn row_line(store: &Store, id: &EntityId, depth: usize, width: usize) -> Line<'static> {
    let (tag, name) = short(id);
    let mut spans =
        vec![Span::raw(format!("{}{tag} ", "  ".repeat(depth))), Span::styled(name.to_owned(), Style::new().bold())];
    let detail = match id {
        EntityId::Pod { .. } => store.targets(id, Relation::RunsOn {}).next().map(|n| format!("on {}", short(n).1)),
        EntityId::Node { .. } => Some(pods(store.sources(id, Relation::RunsOn {}).count())),
        EntityId::Service { .. } => Some(pods(store.targets(id, Relation::Selects {}).count())),
        _ => None,
    };
    if let Some(detail) = detail {
        spans.push(Span::styled(format!("  {detail}"), Style::new().dim()));
    }
    let calls_out = store.outgoing(id).filter(|e| matches!(e.relation, Relation::Calls { .. })).count();
    let calls_in = store.incoming(id).filter(|e| matches!(e.relation, Relation::Calls { .. })).count();
    if calls_out + calls_in > 0 {
        spans.push(Span::styled(format!("  calls →{calls_out} ←{calls_in}"), Style::new().dim()));
    }
    if let Some((worst, open)) = store.worst_on(id) {
        spans.push(Span::styled(format!("  ● {open} {worst}"), severity_style(worst)));
    }
    let used: usize = spans.iter().map(Span::width).sum();
    if used > width {
        let text: String = spans.iter().map(|s| s.content.as_ref()).collect();
        return Line::from(fit(&text, width));
    }
    // Fill the row so the selection bar spans it.
    spans.push(Span::raw(" ".repeat(width - used)));
    Line::from(spans)
}

fn pods(n: usize) -> String {
    if n == 1 { "1 pod".to_owned() } else { format!("{n} pods") }
}

fn draw_edges(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let Some(row) = app.topology.selected_row() else {
        frame.render_widget(Block::bordered().title(" edges "), area);
        return;
    };
    let id = &row.id;
    let out: Vec<_> = app.store.outgoing(id).collect();
    let inbound: Vec<_> = app.store.incoming(id).collect();
    let title = format!(
        " {} → {} out, ← {} in ",
        fit(&row.id.to_string(), (area.width as usize).saturating_sub(24)),
        out.len(),
        inbound.len()
    );
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = inner.height as usize;
    let width = inner.width as usize;
    let total = out.len() + inbound.len();
    let mut lines: Vec<Line<'_>> = Vec::with_capacity(height);
    let listed = out.iter().map(|e| ("→", e.relation, &e.to)).chain(inbound.iter().map(|e| ("←", e.relation, &e.from)));
    for (arrow, relation, peer) in listed.take(if total > height { height.saturating_sub(1) } else { height }) {
        let relation = relation.to_string();
        lines.push(Line::from(vec![
            Span::raw(format!(" {arrow} ")),
            Span::styled(format!("{relation:<15}"), Style::new().dim()),
            Span::raw(fit(&peer.to_string(), width.saturating_sub(19))),
        ]));
    }
    if total > height && height > 0 {
        lines.push(Line::from(format!(" … {} more: enter opens the entity", total - (height - 1))).dim());
    }
    if total == 0 {
        lines.push(Line::from(" no edges").dim());
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
