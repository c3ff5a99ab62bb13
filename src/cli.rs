//! The command-line conventions every binary shares.
//!
//! - `--help` on every binary (clap).
//! - Errors are one line on stderr, `NAME: error: MESSAGE`, and exit code 2. No panic, no backtrace.
//! - `-q/--quiet` hides progress and summaries; `-v/--verbose` prints more detail.
//! - Long work shows a progress bar on stderr (hidden when quiet or when stderr is not a terminal).
//! - `PRETRAIN_QUICK=1` asks every binary for its quick sizes; the lesson tests set it.
//! - Numbers from flags are checked when parsed ([`positive`], [`non_negative`]): `--lr nan`
//!   is a one-line error naming the flag, not a run that fails later.
//! - Outputs appear whole or not at all ([`atomic`]); long runs stop cleanly on Ctrl-C and
//!   SIGTERM ([`signals`]).
//!
//! A binary's `main` is one line: `cli::run::<Args>("name", body)`.

pub mod atomic;
pub mod outputs;
pub mod signals;

pub use atomic::{temp_path, write_atomic};

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};

/// Flags every binary has. Add to a binary's arguments with `#[command(flatten)]`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// Print only results and errors: no progress bars, no summaries.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail about each step.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

/// How chatty the binary is: 0 quiet, 1 normal, 2 verbose.
static VERBOSITY: AtomicU8 = AtomicU8::new(1);

impl Common {
    /// Record the chosen verbosity for [`info!`](crate::info), [`detail!`](crate::detail) and [`progress`].
    pub fn apply(&self) {
        let level = if self.quiet {
            0
        } else if self.verbose {
            2
        } else {
            1
        };
        VERBOSITY.store(level, Ordering::Relaxed);
    }

    /// From now on print only results and errors, as `--quiet` does (e.g. on the ranks of a
    /// distributed run other than the first).
    pub fn apply_quiet(&self) {
        VERBOSITY.store(0, Ordering::Relaxed);
    }
}

/// True unless `--quiet` was given.
pub fn is_normal() -> bool {
    VERBOSITY.load(Ordering::Relaxed) >= 1
}

/// True when `--verbose` was given.
pub fn is_verbose() -> bool {
    VERBOSITY.load(Ordering::Relaxed) >= 2
}

/// True when `PRETRAIN_QUICK` is set to anything but `0` or empty: use quick sizes.
pub fn quick() -> bool {
    std::env::var("PRETRAIN_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Print a status line on stderr unless quiet.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { if $crate::cli::is_normal() { eprintln!($($arg)*); } };
}

/// Print a detail line on stderr only when verbose.
#[macro_export]
macro_rules! detail {
    ($($arg:tt)*) => { if $crate::cli::is_verbose() { eprintln!($($arg)*); } };
}

/// A progress bar over `len` units, drawn on stderr when it is a terminal and we are not quiet.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if !is_normal() || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template(
        "{prefix:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
    )
    .expect("progress template is valid")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar
}

/// Parse arguments, run `body`, and turn any error into one line on stderr with exit code 2.
pub fn run<A, F>(name: &str, body: F) -> ExitCode
where
    A: Parser + HasCommon,
    F: FnOnce(A) -> anyhow::Result<()>,
{
    run_with_code::<A, _>(name, |a| body(a).map(|()| ExitCode::SUCCESS))
}

/// [`run`] for a body that picks its own exit code when it does not fail (an interrupted
/// `train` exits 130 or 143 after saving, see [`signals`]).
pub fn run_with_code<A, F>(name: &str, body: F) -> ExitCode
where
    A: Parser + HasCommon,
    F: FnOnce(A) -> anyhow::Result<ExitCode>,
{
    // A bug inside the library still panics; show it as one line, not a backtrace.
    let bin = name.to_string();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("{bin}: internal error: {msg}{at}");
    }));
    let args = match A::try_parse() {
        Ok(args) => args,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                print!("{e}");
                return ExitCode::SUCCESS;
            }
            // The message is the first paragraph ("... not provided:\n  --data <DATA>").
            let text = e.render().to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let first = first.join(" ");
            let first = first.strip_prefix("error: ").unwrap_or(&first);
            eprintln!("{name}: error: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    args.common().apply();
    match body(args) {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` joins the context chain on one line: "reading x.json: line 3: expected ...".
            let line = format!("{e:#}").replace('\n', " ");
            eprintln!("{name}: error: {line}");
            ExitCode::from(2)
        }
    }
}

/// Implemented by every binary's argument struct, to reach its [`Common`] flags.
pub trait HasCommon {
    fn common(&self) -> &Common;
}

/// Implement [`HasCommon`] for an argument struct with a `common: Common` field.
#[macro_export]
macro_rules! has_common {
    ($t:ty) => {
        impl $crate::cli::HasCommon for $t {
            fn common(&self) -> &$crate::cli::Common {
                &self.common
            }
        }
    };
}

/// A clap value parser for a finite number above 0 (`#[arg(value_parser = cli::positive)]`).
pub fn positive(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err("expected a finite number above 0".into()),
    }
}

/// A clap value parser for a finite number, 0 or above.
pub fn non_negative(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err("expected a finite number, 0 or more".into()),
    }
}
