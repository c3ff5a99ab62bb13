//! Reading training text for the tokenizer: plain text files (invalid UTF-8 replaced and counted)
//! and the clean JSONL that `clean` writes (documents joined by a separator), streamed through a
//! [`StreamCounter`] so memory is bounded by the distinct pre-tokens, not the corpus size.

use super::Split;
use super::train::{Counts, StreamCounter};
use anyhow::{Context, Result};
use std::io::Read;
use std::path::PathBuf;

/// What [`count_files`] read.
#[derive(Clone, Debug, Default)]
pub struct CorpusStats {
    /// Bytes of text read.
    pub bytes: usize,
    /// Invalid UTF-8 sequences replaced with U+FFFD, per file (only files that had some).
    pub invalid_utf8: Vec<(PathBuf, usize)>,
}

/// Count the pre-tokens of every input, reading at most `limit` bytes from each. JSONL documents
/// (field `text`) are joined by `joiner`, usually the first special token.
pub fn count_files(
    inputs: &[PathBuf],
    split: Split,
    specials: &[String],
    joiner: &str,
    limit: usize,
) -> Result<(Counts, CorpusStats)> {
    let mut counter = StreamCounter::new(split, specials);
    let mut stats = CorpusStats::default();
    for path in inputs {
        if crate::data::jsonl::is_jsonl(path) {
            let (mut size, mut first) = (0, true);
            crate::data::jsonl::for_each_doc(path, |t| {
                if !first {
                    counter.push(joiner);
                }
                first = false;
                size += t.len();
                counter.push(&t);
                Ok(size < limit)
            })?;
            stats.bytes += size;
        } else {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let (size, bad) = push_lossy(file.take(limit as u64), &mut counter)
                .with_context(|| format!("reading {}", path.display()))?;
            if bad > 0 {
                stats.invalid_utf8.push((path.clone(), bad));
            }
            stats.bytes += size;
        }
    }
    Ok((counter.finish(), stats))
}

/// Feed a byte stream to `counter` as text, replacing invalid UTF-8; returns (bytes, replaced).
fn push_lossy(
    mut reader: impl Read,
    counter: &mut StreamCounter,
) -> std::io::Result<(usize, usize)> {
    let mut buf = vec![0u8; 1 << 20];
    let (mut carry, mut total, mut bad) = (0usize, 0usize, 0usize);
    loop {
        let n = reader.read(&mut buf[carry..])?;
        total += n;
        let end = carry + n;
        let eof = n == 0;
        let mut text = String::with_capacity(end);
        let mut keep = 0;
        let mut chunks = buf[..end].utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            text.push_str(chunk.valid());
            let bad_bytes = chunk.invalid();
            if bad_bytes.is_empty() {
                continue;
            }
            // A char cut by the block end is finished by the next read, not replaced.
            let incomplete = std::str::from_utf8(bad_bytes)
                .err()
                .is_some_and(|e| e.error_len().is_none());
            if chunks.peek().is_none() && incomplete && !eof {
                keep = bad_bytes.len();
            } else {
                text.push('\u{FFFD}');
                bad += 1;
            }
        }
        counter.push(&text);
        if eof {
            return Ok((total, bad));
        }
        buf.copy_within(end - keep..end, 0);
        carry = keep;
    }
}
