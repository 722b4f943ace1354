//! The `?` overlay: every key of `top` and what each view shows.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph};

/// Keys and what they do, as the help overlay and docs/top.md list them.
pub const KEYS: [(&str, &str); 12] = [
    ("tab / shift-tab", "next / previous view"),
    ("1 2 3 4", "Symptoms, Topology, Entity, Egress"),
    ("j k ↓ ↑", "move"),
    ("pgdn pgup g G", "page, first, last"),
    ("enter", "open the selected entity"),
    ("esc", "back (or clear the filter)"),
    ("/", "filter by id, symptom or rule"),
    ("  enter / esc", "keep / clear the filter"),
    ("?", "this help; any key closes it"),
    ("q  ctrl-c", "quit"),
    ("", ""),
    ("", "data comes live from the mediator"),
];

pub fn draw(frame: &mut Frame<'_>, area: Rect) {
    let width = 56.min(area.width);
    let height = (KEYS.len() as u16 + 2).min(area.height);
    let [row] = Layout::vertical([Constraint::Length(height)]).flex(Flex::Center).areas(area);
    let [popup] = Layout::horizontal([Constraint::Length(width)]).flex(Flex::Center).areas(row);
    let lines: Vec<Line<'_>> = KEYS.iter().map(|(key, what)| Line::from(format!(" {key:<16} {what}"))).collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys ".bold()).border_style(Style::new().bold())),
        popup,
    );
}
