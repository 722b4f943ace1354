//! Tests of the app state: feed updates, key handling, and selections that stay on their item.

use std::time::Duration;

use causely_model::api::{StreamEvent, SymptomsView};
use causely_model::{Edge, Entity, EntityId, Relation, SymptomChange, UnixMillis};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::top::testdata::{NOW, egress_status, high_cpu, node_not_ready, shop_view, shop_with_symptoms};

fn app() -> App {
    let mut app = App::new("at http://127.0.0.1:1", NOW);
    app.store = shop_with_symptoms();
    app.link = Link::Live;
    app.refresh();
    app
}

fn press(app: &mut App, code: KeyCode) -> Flow {
    handle_key(app, KeyEvent::new(code, KeyModifiers::NONE))
}

fn keys(app: &mut App, codes: &str) {
    for c in codes.chars() {
        press(app, KeyCode::Char(c));
    }
}

fn selected_row(app: &App) -> String {
    app.topology.selected_row().map(|r| r.id.to_string()).unwrap_or_default()
}

fn opened(symptom: causely_model::Symptom) -> Update {
    Update::Event(StreamEvent::Symptom { change: SymptomChange::Opened { symptom } })
}

#[test]
fn it_starts_on_symptoms_and_tab_number_keys_and_shift_tab_switch_views() {
    let mut app = app();
    assert_eq!(app.view, View::Symptoms);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.view, View::Topology);
    press(&mut app, KeyCode::Char('4'));
    assert_eq!(app.view, View::Egress);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.view, View::Symptoms, "tab wraps around");
    press(&mut app, KeyCode::BackTab);
    assert_eq!(app.view, View::Egress);
    press(&mut app, KeyCode::Char('2'));
    assert_eq!(app.view, View::Topology);
}

#[test]
fn q_and_ctrl_c_quit_but_q_in_the_filter_is_typed() {
    let mut app = app();
    assert_eq!(press(&mut app, KeyCode::Char('q')), Flow::Quit);
    press(&mut app, KeyCode::Char('/'));
    assert_eq!(press(&mut app, KeyCode::Char('q')), Flow::Continue);
    assert_eq!(app.filter, "q");
    assert_eq!(handle_key(&mut app, KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)), Flow::Quit);
}

#[test]
fn j_k_and_arrows_move_and_stop_at_the_ends() {
    let mut app = app();
    press(&mut app, KeyCode::Char('2'));
    assert_eq!(selected_row(&app), "ns/shop");
    press(&mut app, KeyCode::Char('k'));
    assert_eq!(selected_row(&app), "ns/shop", "no row above the first");
    keys(&mut app, "jj");
    press(&mut app, KeyCode::Down);
    assert_eq!(selected_row(&app), "svc/shop/web");
    press(&mut app, KeyCode::Up);
    assert_eq!(selected_row(&app), "pod/shop/db-0");
    keys(&mut app, "G");
    assert_eq!(selected_row(&app), "node/n2");
    press(&mut app, KeyCode::Down);
    assert_eq!(selected_row(&app), "node/n2", "no row below the last");
    keys(&mut app, "g");
    assert_eq!(selected_row(&app), "ns/shop");
    app.page = 5;
    press(&mut app, KeyCode::PageDown);
    assert_eq!(app.topology.cursor, 5);
}

#[test]
fn the_topology_selection_stays_on_its_entity_when_rows_appear_above_it() {
    let mut app = app();
    press(&mut app, KeyCode::Char('2'));
    keys(&mut app, "G");
    assert_eq!(selected_row(&app), "node/n2");
    let cursor = app.topology.cursor;
    app.apply(Update::Event(StreamEvent::Topology {
        delta: causely_model::TopologyPayload::Delta {
            added_entities: vec![Entity::new(EntityId::ns("aaa")), Entity::new(EntityId::pod("aaa", "p"))],
            removed_entities: vec![],
            added_edges: vec![],
            removed_edges: vec![],
        },
    }));
    app.refresh();
    assert_eq!(selected_row(&app), "node/n2");
    assert_eq!(app.topology.cursor, cursor + 2, "two rows were added above");
}

#[test]
fn when_the_selected_entity_goes_away_the_cursor_stays_on_its_neighbour() {
    let mut app = app();
    press(&mut app, KeyCode::Char('2'));
    keys(&mut app, "G");
    press(&mut app, KeyCode::Up);
    assert_eq!(selected_row(&app), "node/n1");
    app.apply(Update::Event(StreamEvent::Topology {
        delta: causely_model::TopologyPayload::Delta {
            added_entities: vec![],
            removed_entities: vec![EntityId::node("n1")],
            added_edges: vec![],
            removed_edges: vec![],
        },
    }));
    app.refresh();
    assert_eq!(selected_row(&app), "node/n2");
}

#[test]
fn the_symptom_selection_stays_on_its_symptom_when_a_more_severe_one_opens_above() {
    let mut app = app();
    assert_eq!(app.symptoms.selected().map(|s| s.entity.to_string()).as_deref(), Some("node/n2"));
    press(&mut app, KeyCode::Down);
    let chosen = app.symptoms.selected().map(|s| s.id.clone());
    assert_eq!(app.symptoms.selected().map(|s| s.entity.to_string()).as_deref(), Some("container/shop/web-1/nginx"));
    app.apply(opened(node_not_ready("n1", NOW.0)));
    app.refresh();
    assert_eq!(app.symptoms.selected().map(|s| s.id.clone()), chosen);
    assert_eq!(app.symptoms.cursor, 2);
}

#[test]
fn the_symptom_list_shows_open_ones_before_recently_resolved_ones() {
    let app = app();
    let items: Vec<(String, bool)> = app.symptoms.items().iter().map(|s| (s.entity.to_string(), s.is_open())).collect();
    assert_eq!(
        items,
        [
            ("node/n2".to_owned(), true),
            ("container/shop/web-1/nginx".to_owned(), true),
            ("container/shop/db-0/postgres".to_owned(), false)
        ]
    );
    assert_eq!(app.symptoms.open_len(), 2);
}

#[test]
fn enter_on_a_symptom_opens_its_entity_and_esc_returns() {
    let mut app = app();
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Entity);
    assert_eq!(app.entity.focus, Some(EntityId::container("shop", "web-1", "nginx")));
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.view, View::Symptoms);
}

#[test]
fn enter_walks_along_edges_and_esc_walks_back_to_the_edge_it_came_through() {
    let mut app = app();
    press(&mut app, KeyCode::Char('2'));
    let pod = app
        .topology
        .visible()
        .iter()
        .position(|i| app.topology.rows()[*i].id == EntityId::pod("shop", "db-0"))
        .unwrap();
    app.page = pod;
    press(&mut app, KeyCode::PageDown);
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.entity.focus, Some(EntityId::pod("shop", "db-0")));
    let neighbours = app.neighbours();
    let node = neighbours.iter().position(|n| n.peer() == &EntityId::node("n1")).unwrap();
    for _ in 0..node {
        press(&mut app, KeyCode::Char('j'));
    }
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.entity.focus, Some(EntityId::node("n1")));
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.entity.focus, Some(EntityId::pod("shop", "db-0")));
    assert_eq!(app.entity.cursor, node, "back on the edge to the node");
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.view, View::Topology);
    assert_eq!(selected_row(&app), "pod/shop/db-0");
}

#[test]
fn the_entity_tab_shows_what_the_previous_view_had_selected() {
    let mut app = app();
    press(&mut app, KeyCode::Char('3'));
    assert_eq!(app.view, View::Entity);
    assert_eq!(app.entity.focus, Some(EntityId::node("n2")));
    press(&mut app, KeyCode::Char('4'));
    press(&mut app, KeyCode::Char('3'));
    assert_eq!(app.entity.focus, Some(EntityId::node("n2")), "the egress view selects nothing: the focus stays");
}

#[test]
fn the_filter_narrows_topology_and_symptoms_and_esc_clears_it() {
    let mut app = app();
    press(&mut app, KeyCode::Char('/'));
    keys(&mut app, "nginxx");
    press(&mut app, KeyCode::Backspace);
    press(&mut app, KeyCode::Enter);
    assert!(!app.editing_filter);
    assert_eq!(app.filter, "nginx");
    assert_eq!(app.symptoms.items().len(), 1);
    press(&mut app, KeyCode::Char('2'));
    let shown: Vec<String> = app.topology.visible().iter().map(|i| app.topology.rows()[*i].id.to_string()).collect();
    assert!(
        shown.iter().any(|s| s == "container/shop/web-2/nginx") && !shown.iter().any(|s| s == "node/n1"),
        "{shown:?}"
    );
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.filter, "");
    assert_eq!(app.topology.visible().len(), app.topology.rows().len());
    press(&mut app, KeyCode::Char('/'));
    keys(&mut app, "db");
    press(&mut app, KeyCode::Esc);
    assert!(!app.editing_filter && app.filter.is_empty(), "esc while typing drops the filter");
}

#[test]
fn help_opens_with_a_question_mark_and_any_key_closes_it_but_q_still_quits() {
    let mut app = app();
    press(&mut app, KeyCode::Char('?'));
    assert!(app.help);
    press(&mut app, KeyCode::Char('j'));
    assert!(!app.help);
    assert_eq!(app.symptoms.cursor, 0, "the closing key does nothing else");
    press(&mut app, KeyCode::Char('?'));
    assert_eq!(press(&mut app, KeyCode::Char('q')), Flow::Quit);
}

#[test]
fn a_lost_connection_keeps_the_data_and_the_time_it_was_lost_until_a_snapshot_comes() {
    let mut app = app();
    let down = |retry| Update::Down { error: "connection refused".into(), retry_in: Duration::from_millis(retry) };
    app.apply(down(500));
    app.now = UnixMillis(NOW.0 + 5_000);
    app.apply(down(1_000));
    assert_eq!(
        app.link,
        Link::Down { error: "connection refused".into(), retry_at: UnixMillis(NOW.0 + 6_000), since: NOW }
    );
    assert_eq!(app.store.open_count(), 2, "what was shown stays");
    app.apply(Update::Snapshot {
        topology: shop_view(),
        symptoms: SymptomsView {
            open: vec![high_cpu(EntityId::container("shop", "web-2", "nginx"), NOW.0)],
            recent: vec![],
        },
        egress: egress_status(),
    });
    assert_eq!(app.link, Link::Live);
    assert_eq!(app.store.open_count(), 1, "a snapshot replaces everything");
}

#[test]
fn an_edge_removed_from_the_focus_moves_the_entity_cursor_to_its_neighbour() {
    let mut app = app();
    press(&mut app, KeyCode::Char('3'));
    assert_eq!(app.entity.focus, Some(EntityId::node("n2")));
    let edge = Edge::new(EntityId::pod("shop", "web-2"), Relation::RunsOn {}, EntityId::node("n2"));
    assert_eq!(app.neighbours().len(), 1);
    app.apply(Update::Event(StreamEvent::Topology {
        delta: causely_model::TopologyPayload::Delta {
            added_entities: vec![],
            removed_entities: vec![],
            added_edges: vec![],
            removed_edges: vec![edge],
        },
    }));
    app.refresh();
    assert!(app.neighbours().is_empty());
    assert_eq!(app.entity.cursor, 0);
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.entity.focus, Some(EntityId::node("n2")), "nothing to open");
}
