//! `train-tokenizer`: learn a byte-level BPE tokenizer from text files or clean JSONL.

use clap::Parser;
use pretrain::cli::{self, Common};
use pretrain::tokenizer::corpus::count_files;
use pretrain::tokenizer::{Split, TrainOptions, formats};
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
        let (counts, stats) = count_files(&args.input, split, &opts.specials, &joiner, limit)?;
        for (path, bad) in &stats.invalid_utf8 {
            pretrain::info!(
                "warning: {}: replaced {bad} invalid UTF-8 sequences with U+FFFD",
                path.display()
            );
        }
        let (total, bad_total): (usize, usize) =
            (stats.bytes, stats.invalid_utf8.iter().map(|(_, n)| n).sum());
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
