//! Writing results to stdout. When the reader goes away (`kubectl causely ... | head`), the
//! command ends quietly with success instead of panicking on the broken pipe.

use std::io::{ErrorKind, Write};

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        if err.kind() == ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {err}");
        std::process::exit(2);
    }
}

/// `print!` to stdout through [`print`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::print(&format!($($arg)*)) };
}

/// `println!` to stdout through [`print`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::out::print(&format!("{}\n", format_args!($($arg)*))) };
}
