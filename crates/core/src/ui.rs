//! Terminal output conventions, in one place:
//! - errors are one line starting with `error:` (and name the file or request); warnings start with `warning:`;
//! - `--quiet` leaves errors and warnings only (no summaries, progress or notes); `--verbose` adds per-item lines
//!   and the paths and versions resolved;
//! - colour only on a terminal and never with `NO_COLOR` (anstream strips the styles otherwise; it also honours
//!   `CLICOLOR_FORCE`).
//!
//! The product of a command (a configuration printed with `--print-config`, a report, Prolog facts, `doctor`)
//! is printed with plain `println!` and is not affected by `--quiet`.

use std::sync::atomic::{AtomicU8, Ordering};

const QUIET: u8 = 0;
const NORMAL: u8 = 1;
const VERBOSE: u8 = 2;

static LEVEL: AtomicU8 = AtomicU8::new(NORMAL);

pub fn init(quiet: bool, verbose: bool) {
    let level = if quiet {
        QUIET
    } else if verbose {
        VERBOSE
    } else {
        NORMAL
    };
    LEVEL.store(level, Ordering::Relaxed);
}

pub fn is_quiet() -> bool {
    LEVEL.load(Ordering::Relaxed) == QUIET
}

pub fn is_verbose() -> bool {
    LEVEL.load(Ordering::Relaxed) == VERBOSE
}

pub const ERROR: anstyle::Style = anstyle::AnsiColor::Red.on_default().bold();
pub const WARNING: anstyle::Style = anstyle::AnsiColor::Yellow.on_default().bold();
pub const EMPHASIS: anstyle::Style = anstyle::Style::new().bold();

/// `error: ...` on stderr, always.
macro_rules! error {
    ($($arg:tt)*) => {
        anstream::eprintln!(
            "{}error:{} {}",
            $crate::ui::ERROR.render(),
            $crate::ui::ERROR.render_reset(),
            format_args!($($arg)*)
        )
    };
}

/// `warning: ...` on stderr, always.
macro_rules! warning {
    ($($arg:tt)*) => {
        anstream::eprintln!(
            "{}warning:{} {}",
            $crate::ui::WARNING.render(),
            $crate::ui::WARNING.render_reset(),
            format_args!($($arg)*)
        )
    };
}

/// A note on stderr (progress, where the metrics are served), except with `--quiet`.
macro_rules! info {
    ($($arg:tt)*) => {
        if !$crate::ui::is_quiet() {
            anstream::eprintln!($($arg)*)
        }
    };
}

/// A summary line on stdout, except with `--quiet`.
macro_rules! summary {
    ($($arg:tt)*) => {
        if !$crate::ui::is_quiet() {
            anstream::println!($($arg)*)
        }
    };
}

/// A detail on stderr, only with `--verbose`.
macro_rules! verbose {
    ($($arg:tt)*) => {
        if $crate::ui::is_verbose() {
            anstream::eprintln!($($arg)*)
        }
    };
}

pub(crate) use {error, info, summary, verbose, warning};

/// Exit code for usage and configuration errors (clap uses 2 as well).
pub const CONFIG_ERROR: u8 = 2;

/// Prints `message` as an error and returns `code`.
pub fn fail(code: u8, message: impl std::fmt::Display) -> anyhow::Result<std::process::ExitCode> {
    error!("{message}");
    Ok(std::process::ExitCode::from(code))
}

/// [`fail`] with [`CONFIG_ERROR`].
pub fn config_error(message: impl std::fmt::Display) -> anyhow::Result<std::process::ExitCode> {
    fail(CONFIG_ERROR, message)
}
