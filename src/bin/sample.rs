//! `sample`: the base model continues a prompt, streaming tokens as they are made.

use anyhow::Context;
use clap::Parser;
use pretrain::cli::{self, Common};
use pretrain::model::config::GptConfig;
use pretrain::model::gpt::Gpt;
use pretrain::model::memory::{self, MemoryEstimate, SamplingShape};
use pretrain::sample::{SamplingConfig, generate, next};
use pretrain::tensor::Device;
use pretrain::tensor::cuda::DeviceArg;
use pretrain::tokenizer::Tokenizer;
use pretrain::tokenizer::encode::StreamDecoder;
use pretrain::train::trainer::load_model;
use std::io::Write;
use std::path::PathBuf;

/// Continue a prompt with a trained model (ours, or a Hugging Face GPT-2 checkpoint directory).
#[derive(Parser, Debug)]
#[command(name = "sample", version)]
struct Args {
    /// Checkpoint directory: config.json, model.safetensors and the tokenizer files.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Text to continue.
    #[arg(long)]
    prompt: String,
    /// Tokens to generate at most.
    #[arg(long, default_value_t = 200)]
    max_new_tokens: usize,
    /// Softmax temperature; 0 picks the most likely token every time (greedy).
    #[arg(long, default_value_t = 0.8, value_parser = cli::non_negative, allow_negative_numbers = true)]
    temperature: f32,
    /// Sample only among the K most likely tokens (0 = all).
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Instead of generating, print the N most likely next tokens after the prompt, with their
    /// probabilities and the entropy of the distribution.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    next_tokens: Option<u32>,
    /// Instead of generating, walk the prompt: the probability the model gave each of its
    /// tokens after the ones before it (combines with --next-tokens).
    #[arg(long)]
    walk: bool,
    /// Accepted for symmetry with train; sampling always runs on the CPU (one token at a time
    /// with a KV cache; a GPU sampler is not written yet).
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    #[command(flatten)]
    common: Common,
}
pretrain::has_common!(Args);

fn main() -> std::process::ExitCode {
    cli::run::<Args, _>("sample", |a| {
        if a.device == DeviceArg::Cuda {
            pretrain::info!("device: sampling runs on the CPU (no GPU sampler yet)");
        }
        // The sizes first: the memory check comes before the weights are read.
        let config = GptConfig::from_hf_json(&a.checkpoint.join("config.json"))?;
        let tok = pretrain::tokenizer::formats::load(&a.checkpoint, None)
            .with_context(|| format!("{}: loading the tokenizer", a.checkpoint.display()))?;
        if tok.vocab_size() > config.vocab_size {
            anyhow::bail!(
                "{}: the tokenizer has {} tokens but the model only {}",
                a.checkpoint.display(),
                tok.vocab_size(),
                config.vocab_size
            );
        }
        let prompt = tok.encode_ordinary(&a.prompt);
        if prompt.is_empty() {
            anyhow::bail!("--prompt is empty");
        }
        if a.next_tokens.is_some() || a.walk {
            check_memory(config, prompt.len(), 1)?;
            let model = load_model(&a.checkpoint)?;
            return inspect(&model, &tok, &prompt, &a);
        }
        let max_new = if cli::quick() {
            a.max_new_tokens.min(16)
        } else {
            a.max_new_tokens
        };
        check_memory(config, prompt.len(), max_new)?;
        let model = load_model(&a.checkpoint)?;
        let cfg = SamplingConfig {
            temperature: a.temperature,
            top_k: a.top_k,
        };
        let eot = tok.special_id(pretrain::tokenizer::ENDOFTEXT);
        let mut out = std::io::stdout().lock();
        write!(out, "{}", a.prompt)?;
        // A token can end in the middle of a UTF-8 character (common in Chinese): the stream
        // decoder holds such bytes back until the character is complete.
        let mut decoder = StreamDecoder::new();
        let mut failed: Option<anyhow::Error> = None;
        let t0 = std::time::Instant::now();
        let ids = generate(&model, &prompt, max_new, &cfg, a.seed, eot, |id| {
            let written = decoder
                .push(&tok, id)
                .and_then(|text| Ok(write!(out, "{text}").and_then(|_| out.flush())?));
            if let Err(e) = written {
                failed.get_or_insert(e);
            }
        });
        write!(out, "{}", decoder.finish())?;
        writeln!(out)?;
        if let Some(e) = failed {
            return Err(e).context("writing the sample");
        }
        let secs = t0.elapsed().as_secs_f64();
        // Fewer tokens than asked for means the model chose to end the document.
        let ended = if ids.len() < max_new {
            format!(
                "; stopped at {}, the end of a document",
                pretrain::tokenizer::ENDOFTEXT
            )
        } else {
            String::new()
        };
        pretrain::info!(
            "{} prompt tokens, {} new tokens in {secs:.2} s ({:.1} tokens/s, KV cache){ended}",
            prompt.len(),
            ids.len(),
            ids.len() as f64 / secs.max(1e-9)
        );
        Ok(())
    })
}

/// `--walk` and `--next-tokens`: what the model believes, token by token, then what comes next.
fn inspect(model: &Gpt, tok: &Tokenizer, prompt: &[u32], a: &Args) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if prompt.len() > model.config.block_size {
        pretrain::info!(
            "the prompt has {} tokens; the model sees the last {}",
            prompt.len(),
            model.config.block_size
        );
    }
    if a.walk {
        writeln!(out, "p(token | the tokens before it):")?;
        let seen = &prompt[prompt.len().saturating_sub(model.config.block_size)..];
        writeln!(
            out,
            "  {:<16} (first: nothing before it)",
            show(tok, seen[0])
        )?;
        for (&id, p) in seen[1..].iter().zip(next::walk(model, seen)) {
            writeln!(out, "  {:<16} {:6.2}%", show(tok, id), 100.0 * p)?;
        }
    }
    if let Some(n) = a.next_tokens {
        let next = next::next_tokens(model, prompt, n as usize);
        writeln!(out, "after {:?}, the next token:", a.prompt)?;
        for (rank, c) in next.top.iter().enumerate() {
            writeln!(
                out,
                "  {:>2}. {:<16} {:6.2}%",
                rank + 1,
                show(tok, c.id),
                100.0 * c.prob
            )?;
        }
        let uniform = (model.config.vocab_size as f64).log2();
        writeln!(
            out,
            "entropy {:.2} bits (as uncertain as {:.1} equally likely tokens; a uniform guess is \
             {uniform:.2} bits)",
            next.entropy_bits,
            next.entropy_bits.exp2()
        )?;
    }
    Ok(())
}

/// A token as text in quotes, escaped; a token that is only part of a UTF-8 character (common
/// in Chinese) as its bytes in hex.
fn show(tok: &Tokenizer, id: u32) -> String {
    match tok.decode_bytes(&[id]).map(String::from_utf8) {
        Ok(Ok(text)) => format!("{text:?}"),
        Ok(Err(e)) => {
            let hex: Vec<String> = e.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
            format!("<{}>", hex.join(" "))
        }
        Err(_) => format!("<id {id}>"),
    }
}

/// Refuses, before the weights are read, a run whose model, KV cache and tokens cannot fit in
/// the host's memory (sampling runs on the CPU).
fn check_memory(config: GptConfig, prompt_len: usize, max_new: usize) -> anyhow::Result<()> {
    let need = MemoryEstimate::sampling(&SamplingShape::new(config, prompt_len, max_new));
    memory::check_fits(&need, "sampling", Device::Cpu)
}
