//! `train-tokenizer`: learn a byte-level BPE tokenizer from text files or clean JSONL.

use clap::Parser;
use pretrain::cli::outputs::StagedDir;
use pretrain::cli::{self, Common};
use pretrain::tokenizer::corpus::count_files;
use pretrain::tokenizer::train::{Counts, check_vocab_size};
use pretrain::tokenizer::{Split, Tokenizer, TrainOptions, formats};
use std::path::PathBuf;
use std::time::Instant;

/// Train a byte-level BPE tokenizer and write DIR/vocab.json, DIR/merges.txt, DIR/tokenizer.json.
#[derive(Parser, Debug)]
#[command(name = "train-tokenizer", version)]
struct Args {
    /// Training text: UTF-8 text files, or JSONL with one document per line in field `text`.
    #[arg(long, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    /// Total vocabulary size: 256 bytes + special tokens + merges (at most 4294967295).
    #[arg(long, value_parser = parse_vocab_size)]
    vocab_size: usize,
    /// A special token (repeatable; each one once, as a token has one id: a repeat is refused).
    /// JSONL documents are joined by the first one.
    #[arg(long = "special", value_name = "TOKEN")]
    specials: Vec<String>,
    /// Split pattern: gpt2 or gpt4.
    #[arg(long, default_value = "gpt2")]
    split: String,
    /// Output directory (a new one, or one this program wrote: it is replaced whole).
    #[arg(long)]
    output: PathBuf,
    #[command(flatten)]
    common: Common,
}
pretrain::has_common!(Args);

/// Quick mode reads at most this many bytes of each input.
const QUICK_BYTES: usize = 1 << 20;

/// `--vocab-size`: a number that u32 token ids can address.
fn parse_vocab_size(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{s:?} is not a size: {e}"))?;
    check_vocab_size(n)
}

/// The files `train-tokenizer` writes into its output folder.
fn is_tokenizer_file(name: &str) -> bool {
    matches!(name, "vocab.json" | "merges.txt" | "tokenizer.json")
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

/// Count the pre-tokens of the inputs (at most [`QUICK_BYTES`] of each in quick mode), warn
/// about invalid UTF-8 and say what was read.
fn count(args: &Args, opts: &TrainOptions) -> anyhow::Result<Counts> {
    let joiner = args.specials.first().cloned().unwrap_or_default();
    let limit = if cli::quick() {
        QUICK_BYTES
    } else {
        usize::MAX
    };
    let t0 = Instant::now();
    let (counts, stats) = count_files(&args.input, opts.split, &opts.specials, &joiner, limit)?;
    for (path, bad) in &stats.invalid_utf8 {
        pretrain::info!(
            "warning: {}: replaced {bad} invalid UTF-8 sequences with U+FFFD",
            path.display()
        );
    }
    if counts.is_empty() {
        let names: Vec<String> = args.input.iter().map(|p| p.display().to_string()).collect();
        anyhow::bail!("the training text is empty ({})", names.join(", "));
    }
    let bad_total: usize = stats.invalid_utf8.iter().map(|(_, n)| n).sum();
    println!(
        "read {} input(s): {:.2} MB, {} distinct pre-tokens ({} split), {bad_total} invalid UTF-8 sequences replaced, {:.2} s",
        args.input.len(),
        stats.bytes as f64 / 1e6,
        counts.len(),
        opts.split.name(),
        t0.elapsed().as_secs_f64()
    );
    Ok(counts)
}

/// `-v`: the first 20 merges.
fn show_merges(tok: &Tokenizer) {
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

fn main() -> std::process::ExitCode {
    cli::run::<Args, _>("train-tokenizer", |args| {
        let opts = TrainOptions {
            vocab_size: args.vocab_size,
            specials: args.specials.clone(),
            split: Split::parse(&args.split)?,
            progress: true,
        };
        opts.validate()?;
        // Before any work: a folder we cannot write, or must not replace, fails here.
        let staged = StagedDir::create(&args.output, is_tokenizer_file)?;
        let counts = count(&args, &opts)?;
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
            show_merges(&tok);
        }
        formats::save_dir(staged.path(), &tok)?;
        staged.commit()?;
        println!(
            "wrote {0}/vocab.json, {0}/merges.txt, {0}/tokenizer.json",
            args.output.display()
        );
        Ok(())
    })
}
