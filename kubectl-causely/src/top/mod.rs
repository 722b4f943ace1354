//! `kubectl causely top`: a live terminal view of the mediator's topology, symptoms and egress.
//! The feed (I/O) sends updates through a channel; the app state and its key handling are pure;
//! the views draw the state. This module joins them in one event loop.

pub mod app;
pub mod feed;
pub mod model;
pub mod terminal;
pub mod tree;
pub mod views;

#[cfg(test)]
pub(crate) mod testdata;

use std::io::IsTerminal;
use std::time::Duration;

use causely_model::UnixMillis;
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::exit::{Failure, Outcome};
use crate::mediator_api::MediatorApi;
use app::{App, Flow};

/// How often the screen is redrawn when nothing happens, so ages and retry countdowns move.
const TICK: Duration = Duration::from_secs(1);

/// Updates the feed may queue before it waits for the screen; past that the mediator tells it to
/// resync rather than the app falling behind.
const FEED_QUEUE: usize = 1_024;

/// Refuses to start unless stdout is a terminal: the screen is drawn there.
pub fn require_terminal() -> Result<(), Failure> {
    if std::io::stdout().is_terminal() {
        Ok(())
    } else {
        Err(Failure::Usage(
            "top draws a live screen and needs a terminal: stdout is not a TTY (run it in a terminal, not through a pipe)"
                .into(),
        ))
    }
}

/// Runs the screen until the user quits.
pub async fn run(api: MediatorApi) -> Result<Outcome, Failure> {
    let (sender, mut updates) = mpsc::channel(FEED_QUEUE);
    // Asked to stop (kill, a closed terminal): leave the loop so the terminal is restored.
    let signal = |kind| {
        tokio::signal::unix::signal(kind).map_err(|e| Failure::CouldNotRun(format!("cannot listen for signals: {e}")))
    };
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hangup = signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut app = App::new(api.via(), UnixMillis::now());
    let mut session =
        terminal::enter().map_err(|e| Failure::CouldNotRun(format!("cannot set up the terminal: {e}")))?;
    let feed = tokio::spawn(feed::run(api, sender));
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        app.now = UnixMillis::now();
        if let Err(e) = session.terminal.draw(|frame| views::draw(frame, &mut app)) {
            break Err(Failure::CouldNotRun(format!("cannot draw on the terminal: {e}")));
        }
        tokio::select! {
            update = updates.recv() => {
                let Some(update) = update else {
                    // The feed only ends early by panicking, and the panic hook has given the
                    // terminal back already: stop drawing.
                    break Err(Failure::CouldNotRun("the mediator feed stopped unexpectedly".into()));
                };
                app.now = UnixMillis::now();
                app.apply(update);
                // Apply what else is queued before drawing again: one frame per burst.
                while let Ok(update) = updates.try_recv() {
                    app.apply(update);
                }
            }
            event = keys.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => {
                    if app::handle_key(&mut app, key) == Flow::Quit {
                        break Ok(Outcome::Clean);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(Failure::CouldNotRun(format!("cannot read the terminal: {e}"))),
                None => break Ok(Outcome::Clean),
            },
            _ = terminate.recv() => break Ok(Outcome::Clean),
            _ = hangup.recv() => break Ok(Outcome::Clean),
            _ = tick.tick() => {}
        }
    };
    feed.abort();
    drop(session);
    result
}
