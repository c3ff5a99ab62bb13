//! `train-tokenizer`: learn a byte-level BPE tokenizer from text files or clean JSONL.

use anyhow::Context;
use clap::Parser;
use pretrain::cli::{self, Common};
use pretrain::tokenizer::train::StreamCounter;
use pretrain::tokenizer::{Split, TrainOptions, formats};
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

/// Train a byte-level BPE tokenizer and write DIR/vocab.json, DIR/merges.txt, DIR/tokenizer.json.
#[derive(Parser, Debug)]
#[command(name = "train-tokenizer", version)]
struct Args {
    /// Training text: UTF-8 text files, or JSONL with one document per line in field `text`.
    #[arg(long, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    /// Total vocabulary size: 256 bytes + special tokens + merges.
    #[arg(long)]
    vocab_size: usize,
    /// A special token (repeatable). JSONL documents are joined by the first one.
    #[arg(long = "special", value_name = "TOKEN")]
    specials: Vec<String>,
    /// Split pattern: gpt2 or gpt4.
    #[arg(long, default_value = "gpt2")]
    split: String,
    /// Output directory.
    #[arg(long)]
    output: PathBuf,
    #[command(flatten)]
    common: Common,
}
pretrain::has_common!(Args);

/// Quick mode reads at most this many bytes of each input.
const QUICK_BYTES: usize = 1 << 20;

/// Stream `reader` into `counter` as UTF-8, replacing each invalid sequence with U+FFFD.
/// Returns the bytes read and the number of replacements.
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

/// A token for people: its text in quotes if it is valid UTF-8, else its bytes in hex.
fn show_token(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => format!("{s:?}"),
        Err(_) => format!(
            "<{}>",
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

fn main() -> std::process::ExitCode {
    cli::run::<Args, _>("train-tokenizer", |args| {
        let split = Split::parse(&args.split)?;
        let opts = TrainOptions {
            vocab_size: args.vocab_size,
            specials: args.specials.clone(),
            split,
            progress: true,
        };
        let base = 256 + opts.specials.len();
        anyhow::ensure!(
            opts.vocab_size >= base,
            "--vocab-size {} is below 256 bytes + {} special tokens = {base}",
            opts.vocab_size,
            opts.specials.len()
        );
        let joiner = args.specials.first().cloned().unwrap_or_default();
        let limit = if cli::quick() {
            QUICK_BYTES
        } else {
            usize::MAX
        };
        let t0 = Instant::now();
        // Text streams through a counter: memory is bounded by the distinct pre-tokens.
        let mut counter = StreamCounter::new(split, &opts.specials);
        let (mut total, mut bad_total) = (0usize, 0usize);
        for path in &args.input {
            if pretrain::dataset::jsonl::is_jsonl(path) {
                let (mut size, mut first) = (0, true);
                pretrain::dataset::jsonl::for_each_doc(path, |t| {
                    if !first {
                        counter.push(&joiner);
                    }
                    first = false;
                    size += t.len();
                    counter.push(&t);
                    Ok(size < limit)
                })?;
                total += size;
            } else {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                let (size, bad) = push_lossy(file.take(limit as u64), &mut counter)
                    .with_context(|| format!("reading {}", path.display()))?;
                if bad > 0 {
                    pretrain::info!(
                        "warning: {}: replaced {bad} invalid UTF-8 sequences with U+FFFD",
                        path.display()
                    );
                }
                total += size;
                bad_total += bad;
            }
        }
        let counts = counter.finish();
        if counts.is_empty() {
            anyhow::bail!(
                "the training text is empty ({})",
                args.input
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let t_count = t0.elapsed().as_secs_f64();
        println!(
            "read {} input(s): {:.2} MB, {} distinct pre-tokens ({} split), {bad_total} invalid UTF-8 sequences replaced, {t_count:.2} s",
            args.input.len(),
            total as f64 / 1e6,
            counts.len(),
            split.name()
        );
        let t1 = Instant::now();
        let tok = pretrain::tokenizer::train::train_from_counts(&counts, &opts)?;
        let merges = tok.merges().len();
        println!(
            "learned {merges} merges in {:.2} s: vocab {} = 256 bytes + {} special + {merges} merges",
            t1.elapsed().as_secs_f64(),
            tok.vocab_size(),
            tok.specials().len()
        );
        if cli::is_verbose() {
            for (r, &(a, b, m)) in tok.merges().iter().take(20).enumerate() {
                let show = |id| show_token(tok.token_bytes(id).unwrap_or_default());
                println!(
                    "  merge {r:>3}: {} + {} -> {} (id {m})",
                    show(a),
                    show(b),
                    show(m)
                );
            }
        }
        formats::save_dir(&args.output, &tok)?;
        println!(
            "wrote {0}/vocab.json, {0}/merges.txt, {0}/tokenizer.json",
            args.output.display()
        );
        Ok(())
    })
}
