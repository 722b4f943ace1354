//! The Symptoms view: open symptoms first (severity, symptom, entity, rule, age), then the recently
//! resolved ones under a heading, dimmed, with how long ago they resolved.

use causely_model::{Comparator, Symptom};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::format::{age, count, fit, severity_style};
use super::scroll;
use crate::top::app::App;

pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
    let [list_area, detail_area] = Layout::vertical([Constraint::Min(3), Constraint::Length(DETAIL)]).areas(area);
    draw_list(frame, list_area, app);
    draw_detail(frame, detail_area, app);
}

/// Height of the selected symptom's detail under the list: its whole entity id and rule, which
/// the columns may have cut.
const DETAIL: u16 = 4;

fn draw_detail(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let block = Block::new().borders(Borders::TOP).title(" selected ");
    let Some(symptom) = app.symptoms.selected() else {
        frame.render_widget(block, area);
        return;
    };
    let mut rule = format!(" {}", symptom.rule);
    if let Some(t) = &symptom.threshold {
        let comparator = match t.comparator {
            Comparator::Above => "above",
            Comparator::Below => "below",
        };
        rule.push_str(&format!(": {} {comparator} {} for {}s", t.signal, t.bound, t.window_seconds));
    }
    let when = match symptom.resolved {
        None => format!(
            " {} {}, open for {}",
            symptom.severity,
            symptom.kind,
            age(app.now.saturating_since(symptom.started))
        ),
        Some(resolved) => format!(
            " {} {}, resolved {} ago after {}",
            symptom.severity,
            symptom.kind,
            age(app.now.saturating_since(resolved)),
            age(resolved.saturating_since(symptom.started))
        ),
    };
    let lines = vec![Line::from(format!(" {}", symptom.entity)).bold(), Line::from(rule), Line::from(when)];
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_list(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
    let s = &app.symptoms;
    let (open, resolved) = (s.open_len(), s.items().len() - s.open_len());
    let mut title = format!(" {} open · {} recently resolved ", count(open as u64), count(resolved as u64));
    if !app.filter.is_empty() {
        title.push_str(&format!("· matching {:?} ", app.filter));
    }
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let height = (inner.height as usize).saturating_sub(1);
    app.page = height.saturating_sub(1).max(1);
    let columns = Columns::for_width(width);
    let mut lines = vec![columns.header()];
    // The list on screen is the items with one heading line before the first resolved one.
    let heading = (resolved > 0).then_some(open);
    let screen_len = s.items().len() + usize::from(heading.is_some());
    let screen_index = |item: usize| item + usize::from(heading.is_some_and(|h| item >= h));
    let s = &mut app.symptoms;
    if s.items().is_empty() {
        let none = if app.filter.is_empty() { " no symptoms" } else { " no symptom matches the filter" };
        lines.push(Line::from(none).dim());
        frame.render_widget(Paragraph::new(lines), inner);
        return;
    }
    // Keep the heading in view when the first resolved symptom is selected.
    let cursor = screen_index(s.cursor);
    s.offset = scroll(s.offset, cursor, height, screen_len);
    if heading == Some(s.cursor) && s.offset == cursor && height >= 2 {
        s.offset -= 1;
    }
    for line in s.offset..(s.offset + height).min(screen_len) {
        let item = match heading {
            Some(h) if line == h => {
                lines.push(Line::from(format!(" ── recently resolved {}", "─".repeat(width.saturating_sub(22)))).dim());
                continue;
            }
            Some(h) if line > h => line - 1,
            _ => line,
        };
        let symptom = &s.items()[item];
        let line = columns.row(symptom, app.now.saturating_since(symptom.resolved.unwrap_or(symptom.started)));
        lines.push(if item == s.cursor { line.patch_style(Style::new().reversed()) } else { line });
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// Column widths for one screen width: severity, symptom and age fixed, entity and rule share the rest.
struct Columns {
    entity: usize,
    rule: usize,
}

const SEVERITY: usize = 9;
const KIND: usize = 21;
const AGE: usize = 5;

impl Columns {
    fn for_width(width: usize) -> Columns {
        let rest = width.saturating_sub(1 + SEVERITY + KIND + AGE + 3);
        let rule = (rest * 2 / 5).min(28);
        Columns { entity: rest - rule, rule }
    }

    fn header(&self) -> Line<'static> {
        let text = format!(
            " {:<SEVERITY$}{:<KIND$}{:<entity$} {:<rule$} {:>AGE$}",
            "SEVERITY",
            "SYMPTOM",
            "ENTITY",
            "RULE",
            "AGE",
            entity = self.entity,
            rule = self.rule
        );
        Line::from(text).bold()
    }

    /// `age` is since it started while open, since it resolved once resolved.
    fn row(&self, symptom: &Symptom, age_millis: u64) -> Line<'static> {
        let open = symptom.is_open();
        let severity = Span::styled(
            format!(" {:<SEVERITY$}", symptom.severity.to_string()),
            if open { severity_style(symptom.severity) } else { Style::new() },
        );
        let rest = format!(
            "{:<KIND$}{:<entity$} {:<rule$} {:>AGE$}",
            fit(symptom.kind.describe(), KIND - 1),
            fit(&symptom.entity.to_string(), self.entity),
            fit(&symptom.rule, self.rule),
            age(age_millis),
            entity = self.entity,
            rule = self.rule
        );
        let line = Line::from(vec![severity, Span::raw(rest)]);
        if open { line } else { line.dim() }
    }
}
