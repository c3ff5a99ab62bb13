//! `clean`: raw text → clean, deduplicated JSONL (stage 1, lesson 01).
//! `PRETRAIN_QUICK=1` changes nothing here: the bundled corpus cleans in about a second.

use clap::Parser;
use pretrain::cli::{self, Common};
use pretrain::data::dedup::minhash::MinHashConfig;
use pretrain::data::{self, CleanConfig, RuleSets};
use std::path::PathBuf;

/// Clean raw text: normalize, extract HTML, identify language, drop duplicates, boilerplate and
/// low-quality documents, scrub e-mail and IP addresses. Writes one JSON document per line:
/// {"id", "text", "source", "lang"}.
#[derive(Parser, Debug)]
#[command(name = "clean", version)]
struct Args {
    /// Input files or directories (walked recursively): .txt .md .html .htm .jsonl and code files.
    #[arg(long, num_args = 1.., required = true)]
    input: Vec<PathBuf>,
    /// Output JSONL file (written only when the run completes).
    #[arg(long)]
    output: PathBuf,
    /// Write the counts as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write every removed document with its reason here (JSONL).
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Skip and count malformed JSONL lines instead of stopping at the first one.
    #[arg(long)]
    skip_bad_lines: bool,
    /// Apply the web rule sets (C4, FineWeb) to .txt/.md books too.
    #[arg(long)]
    web_rules_for_books: bool,
    /// Do not remove boilerplate lines shared across web pages.
    #[arg(long)]
    no_boilerplate: bool,
    /// MinHash shingle size (tokens).
    #[arg(long, default_value_t = data::dedup::minhash::NGRAM)]
    ngram: usize,
    /// LSH bands.
    #[arg(long, default_value_t = data::dedup::minhash::BANDS)]
    bands: usize,
    /// LSH rows per band.
    #[arg(long, default_value_t = data::dedup::minhash::ROWS)]
    rows: usize,
    /// Estimated Jaccard similarity at which two documents are near-duplicates.
    #[arg(long, default_value_t = data::dedup::minhash::THRESHOLD)]
    threshold: f64,
    #[command(flatten)]
    common: Common,
}
pretrain::has_common!(Args);

fn main() -> std::process::ExitCode {
    cli::run::<Args, _>("clean", |args| {
        anyhow::ensure!(
            args.ngram >= 1 && args.bands >= 1 && args.rows >= 1,
            "--ngram, --bands and --rows must be at least 1"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&args.threshold),
            "--threshold must be between 0 and 1"
        );
        let mut cfg = CleanConfig {
            skip_bad_lines: args.skip_bad_lines,
            boilerplate: !args.no_boilerplate,
            minhash: MinHashConfig {
                ngram: args.ngram,
                bands: args.bands,
                rows: args.rows,
                threshold: args.threshold,
            },
            ..CleanConfig::default()
        };
        if args.web_rules_for_books {
            cfg.filters.books = RuleSets::WEB;
        }
        let report = data::clean(
            &cfg,
            &args.input,
            &args.output,
            args.report.as_deref(),
            args.rejects.as_deref(),
        )?;
        if cli::is_normal() {
            println!("{}", report.table());
            println!("wrote {}", args.output.display());
        }
        Ok(())
    })
}
