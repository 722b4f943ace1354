//! Taking the terminal over for `top` (raw mode, alternate screen, hidden cursor) and giving it
//! back as it was: when `top` ends, when it fails, and when it panics.

use std::io::{self, Stdout};
use std::sync::Once;

use crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

pub type Tui = Terminal<CrosstermBackend<Stdout>>;

/// The terminal while `top` owns it; restored when dropped.
#[derive(Debug)]
pub struct Session {
    pub terminal: Tui,
}

static PANIC_HOOK: Once = Once::new();

/// Switches the terminal to raw mode on the alternate screen.
pub fn enter() -> io::Result<Session> {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Restore first, or the panic message lands on the alternate screen and is lost.
            restore();
            previous(info);
        }));
    });
    terminal::enable_raw_mode()?;
    let mut stdout = io::stdout();
    if let Err(err) = execute!(stdout, terminal::EnterAlternateScreen, cursor::Hide) {
        restore();
        return Err(err);
    }
    match Terminal::new(CrosstermBackend::new(stdout)) {
        Ok(terminal) => Ok(Session { terminal }),
        Err(err) => {
            restore();
            Err(err)
        }
    }
}

/// Leaves the alternate screen, shows the cursor and ends raw mode. Safe to call more than once.
pub fn restore() {
    let _ = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
    let _ = terminal::disable_raw_mode();
}

impl Drop for Session {
    fn drop(&mut self) {
        restore();
    }
}
