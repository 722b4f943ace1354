//! The Egress view: what the mediator's egress has sent, rejected, dropped and still holds, and
//! what is known of the ledger (its length and the last error); `egress verify` checks it fully.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::format::{age, bytes, count};
use crate::top::app::App;

pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let block = Block::bordered().title(" egress ");
    let Some(status) = app.store.egress() else {
        frame.render_widget(Paragraph::new(" no egress status yet").dim().block(block), area);
        return;
    };
    let field = |name: &str, value: Span<'static>| {
        Line::from(vec![Span::styled(format!(" {name:<17} "), Style::new().dim()), value])
    };
    let plain = |text: String| Span::raw(text);
    let warn = |n: u64| {
        let style = if n > 0 { Style::new().fg(Color::Yellow).bold() } else { Style::new() };
        Span::styled(count(n), style)
    };
    let upstream = if status.upstream == "none" {
        "none (batches stay in the cluster)".to_owned()
    } else {
        status.upstream.clone()
    };
    let last_delivery = match status.last_delivery {
        Some(at) => format!("{} ago", age(app.now.saturating_since(at))),
        None => "never".to_owned(),
    };
    let last_error = match &status.last_error {
        Some(error) => Span::styled(error.clone(), Style::new().fg(Color::Red)),
        None => Span::raw("none"),
    };
    let lines = vec![
        field("cluster id", plain(status.cluster_id.clone())),
        field("upstream", plain(upstream)),
        field("leader", plain(if status.leader { "yes" } else { "no (a standby replica)" }.to_owned())),
        Line::default(),
        field("batches sent", plain(format!("{} ({})", count(status.batches_accepted), bytes(status.bytes_accepted)))),
        field("rejected batches", warn(status.batches_rejected)),
        field("dropped batches", warn(status.batches_dropped)),
        field("pending", plain(format!("{} batches ({})", count(status.pending_batches), bytes(status.pending_bytes)))),
        field("delivered seq", plain(format!("{} (next seq {})", count(status.delivered_seq), count(status.next_seq)))),
        field("last delivery", plain(last_delivery)),
        Line::default(),
        field("ledger entries", plain(count(status.ledger_entries))),
        field("last error", last_error),
        field("last verify", Span::raw("not checked by top: run `kubectl causely egress verify`").dim()),
    ];
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
