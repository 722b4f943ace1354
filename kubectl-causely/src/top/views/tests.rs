//! Snapshot tests of each view on ratatui's TestBackend, at 80×24 (the smallest size `top`
//! supports) and wider; snapshots live in `snapshots/` and are reviewed like code.

use std::time::Duration;

use causely_model::{EntityId, UnixMillis};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Modifier;

use super::*;
use crate::top::app::handle_key;
use crate::top::testdata::{NOW, high_cpu, shop_with_symptoms};

fn app() -> App {
    let mut app = App::new("at http://127.0.0.1:8080", NOW);
    app.store = shop_with_symptoms();
    app.link = Link::Live;
    app
}

fn press(app: &mut App, code: KeyCode) {
    handle_key(app, KeyEvent::new(code, KeyModifiers::NONE));
}

fn render(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| draw(frame, app)).unwrap();
    terminal
}

/// The text of screen line `y`.
fn line(terminal: &Terminal<TestBackend>, y: u16) -> String {
    let buffer = terminal.backend().buffer();
    (0..buffer.area.width).map(|x| buffer[(x, y)].symbol()).collect()
}

/// The screen line whose text contains `needle`, and whether it is drawn reversed (selected).
fn find_line(terminal: &Terminal<TestBackend>, needle: &str) -> Option<(u16, bool)> {
    let buffer = terminal.backend().buffer();
    (0..buffer.area.height).find_map(|y| {
        let text = line(terminal, y);
        let x = text.find(needle)?;
        let x = text[..x].chars().count() as u16;
        Some((y, buffer[(x, y)].modifier.contains(Modifier::REVERSED)))
    })
}

#[test]
fn the_symptoms_view_lists_open_ones_by_severity_then_the_recently_resolved() {
    let mut app = app();
    let terminal = render(&mut app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
    assert_eq!(find_line(&terminal, "node/n2").map(|(_, selected)| selected), Some(true));
}

#[test]
fn the_topology_view_shows_the_tree_with_the_selected_entitys_edges_below() {
    let mut app = app();
    press(&mut app, KeyCode::Char('2'));
    for _ in 0..4 {
        press(&mut app, KeyCode::Down);
    }
    let terminal = render(&mut app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
    assert_eq!(find_line(&terminal, "web-1  on n1").map(|(_, selected)| selected), Some(true));
}

#[test]
fn a_wide_topology_view_puts_the_edges_beside_the_tree() {
    let mut app = app();
    press(&mut app, KeyCode::Char('2'));
    for _ in 0..6 {
        press(&mut app, KeyCode::Down);
    }
    let terminal = render(&mut app, 120, 20);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn the_entity_view_shows_owners_node_symptoms_and_edges() {
    let mut app = app();
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.entity.focus, Some(EntityId::container("shop", "web-1", "nginx")));
    let terminal = render(&mut app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn the_entity_view_without_a_focus_says_how_to_pick_one() {
    let mut app = App::new("at http://127.0.0.1:8080", NOW);
    app.link = Link::Live;
    press(&mut app, KeyCode::Char('3'));
    let terminal = render(&mut app, 80, 24);
    assert!(line(&terminal, 2).contains("no entity selected"), "{}", terminal.backend());
}

#[test]
fn the_egress_view_shows_counters_and_what_is_known_of_the_ledger() {
    let mut app = app();
    press(&mut app, KeyCode::Char('4'));
    let terminal = render(&mut app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn the_help_overlay_lists_the_keys_over_the_view() {
    let mut app = app();
    press(&mut app, KeyCode::Char('?'));
    let terminal = render(&mut app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn an_unreachable_mediator_gets_a_banner_and_the_last_data_stays() {
    let mut app = app();
    app.apply(crate::top::feed::Update::Down {
        error: "cannot reach the mediator at http://127.0.0.1:8080: connection refused".into(),
        retry_in: Duration::from_secs(4),
    });
    app.now = UnixMillis(NOW.0 + 1_000);
    let terminal = render(&mut app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
    app.now = UnixMillis(NOW.0 + 12_000);
    let terminal = render(&mut app, 80, 24);
    assert!(line(&terminal, 1).contains("retrying now (data 12s old)"), "{}", terminal.backend());
}

#[test]
fn before_the_first_snapshot_the_banner_says_it_is_connecting() {
    let mut app = App::new("through the API server's proxy to service causely/causely-mediator:8080", NOW);
    let terminal = render(&mut app, 80, 24);
    assert!(line(&terminal, 1).contains("connecting to the mediator through the API server"), "{}", terminal.backend());
    assert!(terminal.backend().to_string().contains("no symptoms"));
}

#[test]
fn the_filter_being_typed_shows_in_the_footer_and_narrows_the_list() {
    let mut app = app();
    press(&mut app, KeyCode::Char('/'));
    for c in "nginx".chars() {
        press(&mut app, KeyCode::Char(c));
    }
    let terminal = render(&mut app, 80, 24);
    assert!(line(&terminal, 23).contains("filter: nginx"), "{}", terminal.backend());
    assert!(find_line(&terminal, "node/n2").is_none());
    assert!(find_line(&terminal, "container/shop/web-1/ng").is_some());
}

#[test]
fn a_long_list_scrolls_to_keep_the_cursor_on_screen_and_back() {
    let mut app = app();
    for i in 0..100 {
        let symptom = high_cpu(EntityId::container("shop", format!("load-{i:03}"), "main"), NOW.0 - 1_000 * i);
        app.store.apply(causely_model::api::StreamEvent::Symptom {
            change: causely_model::SymptomChange::Opened { symptom },
        });
    }
    render(&mut app, 80, 24);
    press(&mut app, KeyCode::End);
    let terminal = render(&mut app, 80, 24);
    assert_eq!(find_line(&terminal, "db-0/pos…").map(|(_, selected)| selected), Some(true));
    assert!(find_line(&terminal, "recently resolved").is_some(), "the heading stays above the first resolved one");
    press(&mut app, KeyCode::Home);
    let terminal = render(&mut app, 80, 24);
    assert_eq!(find_line(&terminal, "node/n2").map(|(_, selected)| selected), Some(true));
}

#[test]
fn tiny_and_resized_terminals_draw_without_panicking() {
    let mut app = app();
    for view in ['1', '2', '3', '4', '?'] {
        press(&mut app, KeyCode::Char(view));
        for (w, h) in [(1, 1), (20, 5), (80, 24), (200, 60), (40, 10)] {
            render(&mut app, w, h);
        }
        press(&mut app, KeyCode::Esc);
    }
}

#[test]
fn scrolling_moves_the_window_only_as_far_as_the_cursor_needs() {
    assert_eq!(scroll(0, 5, 10, 100), 0);
    assert_eq!(scroll(0, 12, 10, 100), 3);
    assert_eq!(scroll(3, 2, 10, 100), 2);
    assert_eq!(scroll(50, 8, 10, 9), 0, "a list that shrank pulls the window back");
    assert_eq!(scroll(4, 0, 0, 100), 0);
}
