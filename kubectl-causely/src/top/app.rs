//! The state of `top` and the pure functions that change it: applying feed updates and handling
//! keys. Selections are kept by what they select (a row's entity path, a symptom id), so live
//! updates move the list under the cursor without moving the cursor off its item.

use causely_model::{Edge, EntityId, Symptom, SymptomId, UnixMillis};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::feed::Update;
use super::model::Store;
use super::tree::{self, Row};

/// The views, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Symptoms,
    Topology,
    Entity,
    Egress,
}

impl View {
    pub const ALL: [View; 4] = [View::Symptoms, View::Topology, View::Entity, View::Egress];

    pub fn title(self) -> &'static str {
        match self {
            View::Symptoms => "Symptoms",
            View::Topology => "Topology",
            View::Entity => "Entity",
            View::Egress => "Egress",
        }
    }

    fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
}

/// How the connection to the mediator stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not heard from the mediator yet.
    Connecting,
    /// Snapshot read and stream followed.
    Live,
    /// Lost or never reached; the feed retries at `retry_at`. The data shown is as of `since`.
    Down { error: String, retry_at: UnixMillis, since: UnixMillis },
}

/// What the event loop does after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

/// The Topology view's rows and cursor.
#[derive(Debug, Default)]
pub struct TopologyState {
    rows: Vec<Row>,
    /// Indexes into `rows` that pass the filter.
    visible: Vec<usize>,
    built: Option<(u64, String)>,
    /// The selected row's path (see `tree::path`).
    selected: Option<Vec<EntityId>>,
    /// Position of the selection within `visible`.
    pub cursor: usize,
    /// First visible row on screen; kept by the renderer so the list scrolls only when needed.
    pub offset: usize,
}

impl TopologyState {
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    pub fn visible(&self) -> &[usize] {
        &self.visible
    }

    pub fn selected_row(&self) -> Option<&Row> {
        self.visible.get(self.cursor).and_then(|i| self.rows.get(*i))
    }
}

/// The Symptoms view's list (open ones, then recently resolved) and cursor.
#[derive(Debug, Default)]
pub struct SymptomsState {
    items: Vec<Symptom>,
    open_len: usize,
    built: Option<(u64, String)>,
    selected: Option<SymptomId>,
    pub cursor: usize,
    pub offset: usize,
}

impl SymptomsState {
    /// Open symptoms (most severe first), then recently resolved ones (newest first).
    pub fn items(&self) -> &[Symptom] {
        &self.items
    }

    /// How many of `items` are open.
    pub fn open_len(&self) -> usize {
        self.open_len
    }

    pub fn selected(&self) -> Option<&Symptom> {
        self.items.get(self.cursor)
    }
}

/// One edge of the Entity view's focus, seen from the focus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// True when the edge starts at the focus.
    pub outbound: bool,
    pub edge: Edge,
}

impl Neighbour {
    /// The entity at the other end.
    pub fn peer(&self) -> &EntityId {
        if self.outbound { &self.edge.to } else { &self.edge.from }
    }
}

/// The Entity view: which entity, how we got there, and the selected edge.
#[derive(Debug)]
pub struct EntityState {
    pub focus: Option<EntityId>,
    /// Entities drilled through to reach the focus; `esc` walks back.
    history: Vec<EntityId>,
    /// Where `esc` returns once the history is empty.
    back_to: View,
    selected: Option<Edge>,
    pub cursor: usize,
    pub offset: usize,
}

impl Default for EntityState {
    fn default() -> Self {
        EntityState { focus: None, history: Vec::new(), back_to: View::Topology, selected: None, cursor: 0, offset: 0 }
    }
}

/// Everything `top` shows, and where the user is.
#[derive(Debug)]
pub struct App {
    pub store: Store,
    pub view: View,
    pub help: bool,
    pub filter: String,
    /// True while `/` is typing into the filter.
    pub editing_filter: bool,
    pub link: Link,
    /// How the mediator is reached, for the header.
    pub via: String,
    /// The wall clock, set by the event loop before each frame, so rendering stays pure.
    pub now: UnixMillis,
    /// Rows a page key moves; set by the renderer from the list's height.
    pub page: usize,
    pub topology: TopologyState,
    pub symptoms: SymptomsState,
    pub entity: EntityState,
}

impl App {
    pub fn new(via: impl Into<String>, now: UnixMillis) -> Self {
        App {
            store: Store::default(),
            view: View::Symptoms,
            help: false,
            filter: String::new(),
            editing_filter: false,
            link: Link::Connecting,
            via: via.into(),
            now,
            page: 10,
            topology: TopologyState::default(),
            symptoms: SymptomsState::default(),
            entity: EntityState::default(),
        }
    }

    /// Applies one message of the feed.
    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Snapshot { topology, symptoms, egress } => {
                self.store.replace(topology, symptoms);
                self.store.set_egress(egress);
                self.link = Link::Live;
            }
            Update::Event(event) => self.store.apply(event),
            Update::Down { error, retry_in } => {
                let since = match &self.link {
                    Link::Down { since, .. } => *since,
                    _ => self.now,
                };
                let retry_at = UnixMillis(self.now.0.saturating_add(retry_in.as_millis() as u64));
                self.link = Link::Down { error, retry_at, since };
            }
        }
    }

    /// Brings the current view's derived list up to date with the store and the filter; cheap
    /// when nothing changed. The topology tree (the costly one) is rebuilt only while shown.
    pub fn refresh(&mut self) {
        match self.view {
            View::Topology => self.refresh_topology(),
            View::Symptoms => self.refresh_symptoms(),
            View::Entity => self.refresh_entity(),
            View::Egress => {}
        }
    }

    fn refresh_topology(&mut self) {
        let generation = self.store.topology_generation();
        let t = &mut self.topology;
        if t.built.as_ref().is_some_and(|(g, f)| *g == generation && *f == self.filter) {
            return;
        }
        if t.built.as_ref().is_none_or(|(g, _)| *g != generation) {
            t.rows = tree::build(&self.store);
        }
        t.visible = tree::filter(&t.rows, &self.filter);
        t.built = Some((generation, self.filter.clone()));
        let found =
            t.selected.as_ref().and_then(|p| tree::find(&t.rows, p)).and_then(|i| t.visible.binary_search(&i).ok());
        // When the selected row went away, the cursor stays where it was: on its neighbour.
        t.cursor = found.unwrap_or(t.cursor).min(t.visible.len().saturating_sub(1));
        t.selected = t.visible.get(t.cursor).map(|i| tree::path(&t.rows, *i));
    }

    fn refresh_symptoms(&mut self) {
        let generation = self.store.symptoms_generation();
        let s = &mut self.symptoms;
        if s.built.as_ref().is_some_and(|(g, f)| *g == generation && *f == self.filter) {
            return;
        }
        let needle = self.filter.to_lowercase();
        let keep = |symptom: &&Symptom| needle.is_empty() || symptom_text(symptom).contains(&needle);
        s.items = self.store.open_symptoms().into_iter().filter(keep).cloned().collect();
        s.open_len = s.items.len();
        s.items.extend(self.store.recent_symptoms().filter(keep).cloned());
        s.built = Some((generation, self.filter.clone()));
        let found = s.selected.as_ref().and_then(|id| s.items.iter().position(|x| &x.id == id));
        s.cursor = found.unwrap_or(s.cursor).min(s.items.len().saturating_sub(1));
        s.selected = s.items.get(s.cursor).map(|x| x.id.clone());
    }

    fn refresh_entity(&mut self) {
        let neighbours = self.neighbours();
        let e = &mut self.entity;
        let found = e.selected.as_ref().and_then(|edge| neighbours.iter().position(|n| &n.edge == edge));
        e.cursor = found.unwrap_or(e.cursor).min(neighbours.len().saturating_sub(1));
        e.selected = neighbours.get(e.cursor).map(|n| n.edge.clone());
    }

    /// The focus entity's edges: outbound, then inbound.
    pub fn neighbours(&self) -> Vec<Neighbour> {
        let Some(focus) = &self.entity.focus else { return Vec::new() };
        let outbound = self.store.outgoing(focus).map(|e| Neighbour { outbound: true, edge: e.clone() });
        let inbound = self.store.incoming(focus).map(|e| Neighbour { outbound: false, edge: e.clone() });
        outbound.chain(inbound).collect()
    }

    /// The entity the current view has selected.
    fn selected_entity(&self) -> Option<EntityId> {
        match self.view {
            View::Symptoms => self.symptoms.selected().map(|s| s.entity.clone()),
            View::Topology => self.topology.selected_row().map(|r| r.id.clone()),
            View::Entity => self.entity.selected.as_ref().and_then(|edge| {
                let focus = self.entity.focus.as_ref()?;
                Some(if &edge.from == focus { edge.to.clone() } else { edge.from.clone() })
            }),
            View::Egress => None,
        }
    }

    fn switch_to(&mut self, view: View) {
        self.refresh();
        if view == View::Entity && self.view != View::Entity {
            // The Entity tab shows what the view we come from has selected, if anything.
            if let Some(id) = self.selected_entity() {
                self.open_entity(id, self.view);
                return;
            }
        }
        self.view = view;
        self.refresh();
    }

    fn open_entity(&mut self, id: EntityId, back_to: View) {
        self.entity = EntityState { focus: Some(id), back_to, ..EntityState::default() };
        self.view = View::Entity;
        self.refresh_entity();
    }

    fn drill_in(&mut self) {
        let Some(id) = self.selected_entity() else { return };
        if self.view == View::Entity {
            if let Some(focus) = self.entity.focus.take() {
                self.entity.history.push(focus);
            }
            self.entity.focus = Some(id);
            self.entity.selected = None;
            self.entity.cursor = 0;
            self.entity.offset = 0;
            self.refresh_entity();
        } else {
            self.open_entity(id, self.view);
        }
    }

    fn back(&mut self) {
        if self.view == View::Entity {
            if let Some(previous) = self.entity.history.pop() {
                let came_from = self.entity.focus.replace(previous);
                // Land on the edge we drilled through.
                self.entity.selected = None;
                let neighbours = self.neighbours();
                self.entity.cursor =
                    neighbours.iter().position(|n| Some(n.peer()) == came_from.as_ref()).unwrap_or_default();
                self.refresh_entity();
            } else {
                self.view = self.entity.back_to;
                self.refresh();
            }
        } else if !self.filter.is_empty() {
            self.filter.clear();
        }
    }

    /// Moves the current view's cursor by `delta` rows (clamped), or to the end for `isize::MAX`.
    fn move_cursor(&mut self, delta: isize) {
        let step = |cursor: usize, len: usize| -> usize {
            let target = if delta == isize::MIN { 0 } else { cursor.saturating_add_signed(delta) };
            target.min(len.saturating_sub(1))
        };
        match self.view {
            View::Topology => {
                let t = &mut self.topology;
                t.cursor = step(t.cursor, t.visible.len());
                t.selected = t.visible.get(t.cursor).map(|i| tree::path(&t.rows, *i));
            }
            View::Symptoms => {
                let s = &mut self.symptoms;
                s.cursor = step(s.cursor, s.items.len());
                s.selected = s.items.get(s.cursor).map(|x| x.id.clone());
            }
            View::Entity => {
                let neighbours = self.neighbours();
                let e = &mut self.entity;
                e.cursor = step(e.cursor, neighbours.len());
                e.selected = neighbours.get(e.cursor).map(|n| n.edge.clone());
            }
            View::Egress => {}
        }
    }

    fn filter_key(&mut self, key: KeyEvent) {
        match key.code {
            KeyCode::Enter => self.editing_filter = false,
            KeyCode::Esc => {
                self.editing_filter = false;
                self.filter.clear();
            }
            KeyCode::Backspace => {
                self.filter.pop();
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => self.filter.push(c),
            _ => {}
        }
    }
}

/// What the filter matches a symptom against, lowercased.
fn symptom_text(symptom: &Symptom) -> String {
    format!("{} {} {} {}", symptom.entity, symptom.kind, symptom.rule, symptom.severity).to_lowercase()
}

/// Handles one key press. Pure: it changes only `app`.
pub fn handle_key(app: &mut App, key: KeyEvent) -> Flow {
    if key.kind == KeyEventKind::Release {
        return Flow::Continue;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Flow::Quit;
    }
    app.refresh();
    if app.editing_filter {
        app.filter_key(key);
        app.refresh();
        return Flow::Continue;
    }
    if app.help {
        match key.code {
            KeyCode::Char('q') => return Flow::Quit,
            _ => app.help = false,
        }
        return Flow::Continue;
    }
    let page = app.page.max(1) as isize;
    match key.code {
        KeyCode::Char('q') => return Flow::Quit,
        KeyCode::Char('?') => app.help = true,
        KeyCode::Char('/') => app.editing_filter = true,
        KeyCode::Tab => app.switch_to(View::ALL[(app.view.index() + 1) % View::ALL.len()]),
        KeyCode::BackTab => app.switch_to(View::ALL[(app.view.index() + View::ALL.len() - 1) % View::ALL.len()]),
        KeyCode::Char(c @ '1'..='4') => app.switch_to(View::ALL[(c as usize) - ('1' as usize)]),
        KeyCode::Char('j') | KeyCode::Down => app.move_cursor(1),
        KeyCode::Char('k') | KeyCode::Up => app.move_cursor(-1),
        KeyCode::PageDown => app.move_cursor(page),
        KeyCode::PageUp => app.move_cursor(-page),
        KeyCode::Char('g') | KeyCode::Home => app.move_cursor(isize::MIN),
        KeyCode::Char('G') | KeyCode::End => app.move_cursor(isize::MAX),
        KeyCode::Enter => app.drill_in(),
        KeyCode::Esc => app.back(),
        _ => {}
    }
    app.refresh();
    Flow::Continue
}

#[cfg(test)]
mod tests;
