//! What `train --nproc N` shows of its ranks' stderr: everything, except that an error every
//! rank hit (a missing data folder, say) is shown once rather than N times.
//!
//! Each failing rank prints `train: error: rank R: MESSAGE` before ending the run (see the
//! `train` binary). The launcher reads the ranks' stderr through `mpirun` and drops a line whose
//! MESSAGE an earlier rank already printed. Other output passes straight through, partial lines
//! included (a progress bar redraws without a newline).

use std::collections::HashSet;
use std::io::Write;

/// The start of a rank's error line.
pub const ERROR_PREFIX: &str = "train: error: rank ";

/// Passes the ranks' stderr on, each distinct error message once.
#[derive(Default)]
pub struct ErrorRelay {
    /// The current line, held back while it may still become an error line.
    held: Vec<u8>,
    /// The current line is passing through (it cannot be an error line).
    passing: bool,
    seen: HashSet<String>,
}

impl ErrorRelay {
    /// Feeds a chunk read from the ranks' stderr, writing what should be shown to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut impl Write) -> std::io::Result<()> {
        for &b in chunk {
            if self.passing {
                out.write_all(&[b])?;
                self.passing = b != b'\n';
                continue;
            }
            self.held.push(b);
            if b == b'\n' {
                self.end_line(out)?;
            } else if !may_be_error(&self.held) {
                out.write_all(&self.held)?;
                self.held.clear();
                self.passing = true;
            }
        }
        out.flush()
    }

    /// Writes a held line, unless it repeats an error message already shown.
    fn end_line(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        let line = String::from_utf8_lossy(&self.held).into_owned();
        self.held.clear();
        let is_error = line.starts_with(ERROR_PREFIX);
        if !is_error || self.seen.insert(error_message(&line).to_string()) {
            out.write_all(line.as_bytes())?;
        }
        Ok(())
    }

    /// Writes what is held at the end of the stream.
    pub fn finish(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if !self.held.is_empty() {
            self.held.push(b'\n');
            self.end_line(out)?;
        }
        out.flush()
    }

    /// True once some rank printed an error line.
    pub fn saw_errors(&self) -> bool {
        !self.seen.is_empty()
    }
}

/// True while `line` is a prefix of an error line, or is one.
fn may_be_error(line: &[u8]) -> bool {
    let p = ERROR_PREFIX.as_bytes();
    if line.len() <= p.len() {
        return p.starts_with(line);
    }
    line.starts_with(p)
}

/// The message of an error line: what follows `rank R: `.
fn error_message(line: &str) -> &str {
    let rest = line.strip_prefix(ERROR_PREFIX).unwrap_or(line);
    rest.split_once(": ").map_or(rest, |(_, m)| m).trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(chunks: &[&str]) -> String {
        let (mut r, mut out) = (ErrorRelay::default(), Vec::new());
        for c in chunks {
            r.feed(c.as_bytes(), &mut out).unwrap();
        }
        r.finish(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_error_every_rank_hit_is_shown_once() {
        let e0 = "train: error: rank 0: reading /x: No such file\n";
        let e1 = "train: error: rank 1: reading /x: No such file\n";
        assert_eq!(relay(&[e0, e1]), e0);
        // Split anywhere, the same.
        let both = format!("{e0}{e1}");
        let (a, b) = both.split_at(23);
        assert_eq!(relay(&[a, b]), e0);
    }

    #[test]
    fn different_errors_and_other_output_pass() {
        let e0 = "train: error: rank 0: one\n";
        let e1 = "train: error: rank 1: two\n";
        let text = format!("step 1\rstep 2\n\n{e0}trainer says hi\n\ntrain\n{e1}");
        assert_eq!(relay(&[&text]), text);
        // A partial line that is not an error goes out before its newline.
        let (mut r, mut out) = (ErrorRelay::default(), Vec::new());
        r.feed(b"50% done", &mut out).unwrap();
        assert_eq!(out, b"50% done");
    }
}
