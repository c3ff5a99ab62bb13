//! Criterion benches for the tokenizer: pre-tokenization, encoding with GPT-2 ranks, training.
//! The side-by-side comparison against tiktoken/rustbpe/HF is `benches/compare/tokenizer_compare.sh`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pretrain::tokenizer::{Split, TrainOptions, formats, train};
use std::hint::black_box;
use std::path::Path;

fn text() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The bench corpus if tokenizer_compare.sh built it, else the test sample repeated.
    std::fs::read_to_string(root.join("runs/bench/corpus.txt"))
        .map(|t| t[..t.len().min(2 << 20)].to_string())
        .unwrap_or_else(|_| {
            std::fs::read_to_string(root.join("tests/fixtures/tokenizer/sample.txt"))
                .unwrap()
                .repeat(200)
        })
}

fn benches(c: &mut Criterion) {
    let mut text = text();
    while !text.is_char_boundary(text.len()) {
        text.pop();
    }
    let mut g = c.benchmark_group("tokenizer");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(text.len() as u64));
    for split in [Split::Gpt2, Split::Gpt4] {
        g.bench_function(format!("split_{}", split.name()), |b| {
            b.iter(|| split.pieces(black_box(&text)).count())
        });
    }
    let r50k = formats::tiktoken::read(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer/r50k_base.tiktoken"),
        Split::Gpt2,
    )
    .unwrap();
    g.bench_function("encode_r50k", |b| {
        b.iter(|| r50k.encode_ordinary(black_box(&text)).len())
    });
    let opts = TrainOptions {
        vocab_size: 2048,
        specials: vec![],
        split: Split::Gpt4,
        progress: false,
    };
    g.bench_function("train_2048", |b| {
        b.iter(|| train(black_box(&text), &opts).unwrap().vocab_size())
    });
    g.finish();
}

criterion_group!(tokenizer, benches);
criterion_main!(tokenizer);
