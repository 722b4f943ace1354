//! The screen of `top`: a header with the view tabs and link state, a banner while the mediator is
//! unreachable, the current view, and a footer with key hints or the filter being typed.

mod egress;
mod entity;
pub mod format;
mod help;
mod symptoms;
mod topology;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::app::{App, Link, View};
use format::age;

/// Draws the whole screen. Brings `app`'s derived lists up to date first, and records the list
/// height (for page keys) and scroll offsets in it.
pub fn draw(frame: &mut Frame<'_>, app: &mut App) {
    app.refresh();
    let banner = banner_text(app);
    // A long error wraps onto a second line rather than being cut.
    let banner_height =
        banner.as_ref().map_or(0, |(text, _)| if text.chars().count() > frame.area().width as usize { 2 } else { 1 });
    let [header, banner_area, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner_height),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, header, app);
    if let Some((text, style)) = banner {
        frame.render_widget(Paragraph::new(text).style(style).wrap(Wrap { trim: false }), banner_area);
    }
    match app.view {
        View::Symptoms => symptoms::draw(frame, body, app),
        View::Topology => topology::draw(frame, body, app),
        View::Entity => entity::draw(frame, body, app),
        View::Egress => egress::draw(frame, body, app),
    }
    draw_footer(frame, footer, app);
    if app.help {
        help::draw(frame, body);
    }
}

fn draw_header(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let mut spans = vec![Span::styled(" causely top ", Style::new().bold().reversed()), Span::raw(" ")];
    for (i, view) in View::ALL.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, view.title());
        let style = if *view == app.view { Style::new().bold().reversed() } else { Style::new() };
        spans.push(Span::styled(label, style));
    }
    let status = match &app.link {
        Link::Live => Span::styled("● live", Style::new().fg(Color::Green)),
        Link::Connecting => Span::styled("○ connecting", Style::new().fg(Color::Yellow)),
        Link::Down { .. } => Span::styled("✕ offline", Style::new().fg(Color::Red).bold()),
    };
    let used: usize = spans.iter().map(Span::width).sum();
    let pad = (area.width as usize).saturating_sub(used + status.width() + 1);
    spans.push(Span::raw(" ".repeat(pad)));
    spans.push(status);
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The banner above the view while the mediator is not live, and its style.
fn banner_text(app: &App) -> Option<(String, Style)> {
    Some(match &app.link {
        Link::Connecting => {
            (format!(" connecting to the mediator {}…", app.via), Style::new().fg(Color::Black).bg(Color::Yellow))
        }
        Link::Down { error, retry_at, since } => {
            let retry = match retry_at.saturating_since(app.now) {
                0 => "now".to_owned(),
                wait => format!("in {}", format::duration(wait)),
            };
            let stale = age(app.now.saturating_since(*since));
            (
                format!(" mediator unreachable, retrying {retry} (data {stale} old): {error}"),
                Style::new().fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD),
            )
        }
        Link::Live => return None,
    })
}

fn draw_footer(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let line = if app.editing_filter {
        Line::from(vec![
            Span::styled(" filter: ", Style::new().bold()),
            Span::raw(app.filter.clone()),
            Span::styled("▏", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            Span::styled("   enter keep · esc clear", Style::new().dim()),
        ])
    } else {
        let mut spans = vec![Span::styled(
            " ? help  tab views  j/k move  enter open  esc back  / filter  q quit",
            Style::new().dim(),
        )];
        if !app.filter.is_empty() {
            spans.push(Span::styled(format!("  filter: {}", app.filter), Style::new().fg(Color::Cyan)));
        }
        Line::from(spans)
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// The first row to show so that `cursor` stays on a list `height` rows high, moving `offset` as
/// little as possible.
pub fn scroll(offset: usize, cursor: usize, height: usize, len: usize) -> usize {
    if height == 0 || len == 0 {
        return 0;
    }
    let offset = offset.min(len.saturating_sub(height));
    if cursor < offset {
        cursor
    } else if cursor >= offset + height {
        cursor + 1 - height
    } else {
        offset
    }
}

#[cfg(test)]
mod tests;
