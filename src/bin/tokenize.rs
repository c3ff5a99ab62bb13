//! `tokenize`: text → token ids. Prints the ids of stdin, or writes token shards from clean JSONL.

use anyhow::{Context, bail};
use clap::Parser;
use pretrain::cli::{self, Common};
use pretrain::dataset::meta;
use pretrain::dataset::write::check_val_fraction;
use pretrain::dataset::{TokenizeOptions, tokenize_jsonl};
use pretrain::tokenizer::{Specials, Split, Tokenizer, formats};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Encode text with a tokenizer: print the ids of stdin (--print-ids), its tokens (--print-tokens),
/// count them (--count), decode ids (--decode), write train/val token shards from clean JSONL
/// (--input ... --output DIR), or validate shards (--check DIR).
#[derive(Parser, Debug)]
#[command(name = "tokenize", version)]
struct Args {
    /// A directory from train-tokenizer, a directory with GPT-2's encoder.json + vocab.bpe,
    /// a .tiktoken rank file, or a tokenizer.json file.
    #[arg(long)]
    tokenizer: PathBuf,
    /// Read UTF-8 text on stdin and print its token ids on one line.
    #[arg(long)]
    print_ids: bool,
    /// Read UTF-8 text on stdin and print bytes, tokens and bytes per token.
    #[arg(long, conflicts_with = "print_ids")]
    count: bool,
    /// Read UTF-8 text on stdin and print its tokens as text, separated by `|`
    /// (a token that is not whole UTF-8 is shown as hex bytes).
    #[arg(long, conflicts_with_all = ["print_ids", "count"])]
    print_tokens: bool,
    /// Read token ids (separated by whitespace) on stdin and print the text they decode to.
    #[arg(long, conflicts_with_all = ["print_ids", "count", "print_tokens"])]
    decode: bool,
    /// Validate the shards in DIR (header, size, token range) and show the start of each.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["print_ids", "count", "print_tokens"])]
    check: Option<PathBuf>,
    /// Split pattern (gpt2 or gpt4); needed for .tiktoken files, which do not record it.
    #[arg(long)]
    split: Option<String>,
    /// Clean JSONL files (one document per line, field `text`) to write as shards.
    #[arg(long, num_args = 1..)]
    input: Vec<PathBuf>,
    /// Output directory for the shards.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Fraction of documents for the validation split, in [0, 1).
    #[arg(long, default_value_t = 0.05, value_parser = parse_fraction)]
    val_fraction: f64,
    /// Seed of the train/validation assignment.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Start a new shard after this many tokens (at least 1).
    #[arg(long, default_value_t = 100_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    shard_tokens: u64,
    #[command(flatten)]
    common: Common,
}
pretrain::has_common!(Args);

/// A token for people: its text (newlines and tabs escaped) or, if not whole UTF-8, its bytes in hex.
fn show_token(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s
            .replace('\n', "\\n")
            .replace('\t', "\\t")
            .replace('\r', "\\r"),
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

/// `--val-fraction`: a number in [0, 1).
fn parse_fraction(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number: {e}"))?;
    check_val_fraction(x)
}

/// `--check DIR`: validate every shard against its header and `meta.json`, and show how each
/// begins.
fn check(dir: &Path, tok: &Tokenizer) -> anyhow::Result<()> {
    let listed = meta::check_layout(dir)?;
    let mut total = 0u64;
    for split in ["train", "val"] {
        let Ok(paths) = pretrain::dataset::loader::shard_paths(dir, split) else {
            continue;
        };
        for path in paths {
            let (h, tokens) = pretrain::dataset::read_shard(&path)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(entry) = listed.iter().flatten().find(|e| e.file == name) {
                meta::check_shard(entry, &path, &h, &tokens)?;
            }
            let head: Vec<u32> = tokens.iter().take(12).copied().collect();
            let text = tok.decode(&head).unwrap_or_default().replace('\n', "\\n");
            println!(
                "{name}: ok, {} tokens, u{}, vocab {}; starts {head:?} = {text:?}",
                h.count,
                h.token_bytes * 8,
                h.vocab_size,
            );
            total += h.count;
        }
    }
    if total == 0 {
        bail!("{}: no train_*.bin or val_*.bin shards", dir.display());
    }
    match listed {
        Some(list) => println!(
            "meta.json: the {} shards it lists, with their sizes and checksums",
            list.len()
        ),
        None => println!("no meta.json: each shard checked on its own"),
    }
    println!("all shards valid: {total} tokens");
    Ok(())
}

/// `--decode`: ids on stdin → text on stdout.
fn decode(tok: &Tokenizer) -> anyhow::Result<()> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
        .context("reading stdin")?;
    let mut ids = Vec::new();
    for (i, word) in text.split_whitespace().enumerate() {
        let id: u32 = word
            .parse()
            .with_context(|| format!("stdin: id {} ({word:?}) is not a number", i + 1))?;
        ids.push(id);
    }
    let bytes = tok.decode_bytes(&ids).context("stdin")?;
    std::io::stdout().write_all(&bytes)?;
    Ok(())
}

/// `--print-tokens`: the tokens of stdin, separated by `|`.
fn print_tokens(tok: &Tokenizer) -> anyhow::Result<()> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
        .context("reading stdin as UTF-8")?;
    let ids = tok.encode_ordinary(&text);
    let shown: Vec<String> = ids
        .iter()
        .map(|&id| show_token(tok.token_bytes(id).unwrap_or_default()))
        .collect();
    println!("{} tokens: |{}|", ids.len(), shown.join("|"));
    Ok(())
}

/// `--print-ids` or `--count`: stream stdin through the encoder.
fn print_ids_or_count(tok: &Tokenizer, print_ids: bool) -> anyhow::Result<()> {
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut first = true;
    let mut n = 0u64;
    let t0 = Instant::now();
    let bytes = tok
        .encode_stream(stdin, Specials::AsText, |ids| {
            n += ids.len() as u64;
            if print_ids {
                for id in ids {
                    let _ = if first {
                        write!(out, "{id}")
                    } else {
                        write!(out, " {id}")
                    };
                    first = false;
                }
            }
        })
        .context("reading stdin")?;
    let done = if print_ids {
        writeln!(out)
    } else {
        let secs = t0.elapsed().as_secs_f64();
        writeln!(
            out,
            "{bytes} bytes, {n} tokens, {:.3} bytes/token ({} split, vocab {}), {:.1} MB/s",
            bytes as f64 / n.max(1) as f64,
            tok.split().name(),
            tok.vocab_size(),
            bytes as f64 / 1e6 / secs.max(1e-9)
        )
    };
    // A closed pipe (`| head`) is not an error.
    match done.and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// `--input ... --output DIR`: write the shards and say what was written.
fn write_shards(args: &Args, output: &Path, tok: &mut Tokenizer) -> anyhow::Result<()> {
    if args.input.is_empty() {
        bail!("--output needs --input FILE...");
    }
    let opts = TokenizeOptions {
        val_fraction: args.val_fraction,
        seed: args.seed,
        shard_tokens: args.shard_tokens,
        max_docs: cli::quick().then_some(2000),
    };
    let t0 = Instant::now();
    let s = tokenize_jsonl(tok, &args.input, output, &opts)?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "train: {} documents, {} tokens in {} shard(s); val: {} documents, {} tokens in {} shard(s)",
        s.train_docs,
        s.train_tokens,
        s.train_shards.len(),
        s.val_docs,
        s.val_tokens,
        s.val_shards.len()
    );
    println!(
        "vocab {} (<|endoftext|> = {}), u{} tokens, {:.3} bytes/token, {:.2} MB in {secs:.2} s -> {}",
        s.vocab_size,
        s.eot_id,
        s.token_bytes * 8,
        s.text_bytes as f64 / (s.train_tokens + s.val_tokens).max(1) as f64,
        s.text_bytes as f64 / 1e6,
        output.display()
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    cli::run::<Args, _>("tokenize", |args| {
        let split = args.split.as_deref().map(Split::parse).transpose()?;
        let mut tok = formats::load(&args.tokenizer, split)?;
        if let Some(dir) = &args.check {
            return check(dir, &tok);
        }
        if args.decode {
            return decode(&tok);
        }
        if args.print_tokens {
            return print_tokens(&tok);
        }
        if args.print_ids || args.count {
            if !args.input.is_empty() || args.output.is_some() {
                bail!(
                    "--print-ids and --count read stdin; do not combine them with --input/--output"
                );
            }
            return print_ids_or_count(&tok, args.print_ids);
        }
        let Some(output) = &args.output else {
            bail!("give --print-ids, --count, or --input FILE... --output DIR");
        };
        write_shards(&args, output, &mut tok)
    })
}
