//! Runs a program in a pseudo-terminal and reads its screen as a user would see it: the bytes it
//! writes go through a VT100 emulator, and keys are written to the terminal's input.

use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use portable_pty::{Child, CommandBuilder, PtySize, native_pty_system};

/// A program running in a pseudo-terminal of a fixed size.
pub struct Pty {
    child: Box<dyn Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    screen: Arc<Mutex<vt100::Parser>>,
    // Kept open so the terminal stays alive for the whole test.
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl std::fmt::Debug for Pty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pty").finish_non_exhaustive()
    }
}

impl Pty {
    /// Starts `program args` in a `cols`×`rows` terminal with `TERM=xterm-256color`.
    pub fn spawn(program: &str, args: &[&str], cols: NonZeroU16, rows: NonZeroU16) -> anyhow::Result<Pty> {
        let pair = native_pty_system()
            .openpty(PtySize { rows: rows.get(), cols: cols.get(), pixel_width: 0, pixel_height: 0 })
            .context("opening a pseudo-terminal")?;
        let mut command = CommandBuilder::new(program);
        command.args(args);
        command.env("TERM", "xterm-256color");
        command.env_remove("CAUSELY_MEDIATOR_URL");
        let child = pair.slave.spawn_command(command).with_context(|| format!("starting {program}"))?;
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader()?;
        let writer = pair.master.take_writer()?;
        let screen = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
        let feed = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                if let Ok(mut parser) = feed.lock() {
                    parser.process(&buffer[..n]);
                }
            }
        });
        Ok(Pty { child, writer, screen, _master: pair.master })
    }

    /// The screen's text, rows joined by newlines.
    pub fn contents(&self) -> String {
        self.screen.lock().map(|p| p.screen().contents()).unwrap_or_default()
    }

    /// Whether the program left the alternate screen and shows the cursor (a restored terminal).
    pub fn on_main_screen_with_cursor(&self) -> bool {
        self.screen.lock().map(|p| !p.screen().alternate_screen() && !p.screen().hide_cursor()).unwrap_or(false)
    }

    /// Types `keys` (bytes as a terminal sends them: `\t` for tab, `q`).
    pub fn send(&mut self, keys: &str) -> anyhow::Result<()> {
        self.writer.write_all(keys.as_bytes())?;
        self.writer.flush()?;
        Ok(())
    }

    /// Waits until the screen shows something `check` accepts, and returns when it did.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.contents();
            if check(&screen) {
                return Ok(Instant::now());
            }
            if Instant::now() >= deadline {
                bail!("{what}: not on screen within {timeout:?}; the screen:\n{screen}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the program to exit and returns its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<u32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.exit_code());
            }
            if Instant::now() >= deadline {
                bail!("still running after {timeout:?}; the screen:\n{}", self.contents());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
