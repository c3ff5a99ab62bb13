//! `pipeline`: every stage of pretrain on the bundled corpus. `cargo run --release` runs this.

use clap::Parser;
use pretrain::cli::{self, Common};

/// Run every pipeline stage on the bundled corpus: clean → train-tokenizer → tokenize → train → sample.
#[derive(Parser, Debug)]
#[command(name = "pipeline", version)]
struct Args {
    /// Quick preset (seconds, for tests) instead of the default (about 10 minutes).
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    common: Common,
}
pretrain::has_common!(Args);

fn main() -> std::process::ExitCode {
    cli::run::<Args, _>("pipeline", |args| {
        let quick = args.quick || cli::quick();
        println!(
            "pretrain pipeline ({} preset)",
            if quick { "quick" } else { "default" }
        );
        let stages = [
            ("1 clean", "not built yet (issue: data cleaning)"),
            (
                "2 train-tokenizer",
                "not built yet (issue: tokenizer and dataset)",
            ),
            ("2 tokenize", "not built yet (issue: tokenizer and dataset)"),
            ("3 train", "not built yet (issue: GPT model and training)"),
            ("4 sample", "not built yet (issue: GPT model and training)"),
        ];
        for (stage, state) in stages {
            println!("  {stage:<18} {state}");
        }
        println!(
            "built so far: the tensor engine and its kernels (try `cargo run --release --bin kernels`)"
        );
        Ok(())
    })
}
