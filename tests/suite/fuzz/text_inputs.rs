//! `clean`'s inputs: JSONL lines (through the reader that repairs UTF-8 and can skip bad lines,
//! and through `for_each_doc`, which later stages use), HTML pages and plain text, and whole
//! `clean` runs on a folder of such files; and the same files read by the tokenizer trainer
//! (`count_files`).

use super::mutate::{Kind, damage, mutate};
use super::{check, each_input, iters};
use crate::common::{Draw, Rng, fixture, temp_dir};
use pretrain::data::read::Reader;
use pretrain::data::{CleanConfig, clean, html, jsonl, normalize};
use pretrain::tokenizer::corpus::count_files;
use pretrain::tokenizer::{ENDOFTEXT, Split};
use std::path::{Path, PathBuf};

/// Valid inputs to start from: the JSONL, HTML, text and code fixtures of the cleaning tests.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let files = [
        ("jsonl", "clean/zh/poems.jsonl"),
        ("html", "clean/web/deserts.html"),
        ("html", "clean/web/forests.html"),
        ("txt", "clean/en/rivers.md"),
        ("txt", "clean/junk/latin1.txt"),
        ("py", "clean/code/stats.py"),
        ("jsonl", "tokenizer/docs.jsonl"),
    ];
    files
        .iter()
        .map(|(ext, rel)| {
            let mut bytes = std::fs::read(fixture(rel)).unwrap();
            bytes.truncate(16 << 10);
            (*ext, bytes)
        })
        .collect()
}

/// A mutated seed (or random bytes) and the extension it is read as.
fn draw(rng: &mut Rng, seeds: &[(&'static str, Vec<u8>)]) -> (&'static str, Vec<u8>) {
    let (ext, valid) = &seeds[rng.index(seeds.len())];
    let kind = if *ext == "jsonl" {
        Kind::Lines
    } else {
        Kind::Bytes
    };
    (ext, damage(rng, valid, kind))
}

/// Every document `Reader` gives for the file at `path`.
fn read_all(path: &Path, skip_bad_lines: bool) -> anyhow::Result<()> {
    let mut reader = Reader::new(vec![path.to_path_buf()], skip_bad_lines);
    while !reader.next_batch(16, 1 << 20)?.is_empty() {}
    Ok(())
}

#[test]
fn clean_readers_load_or_refuse_every_input() {
    let dir = temp_dir("fuzz-clean-readers");
    let seeds = seeds();
    each_input("clean readers", 11, |rng, what| {
        let (ext, input) = draw(rng, &seeds);
        let path = dir.join(format!("in.{ext}"));
        let skip = rng.index(2) == 0;
        check(what, &input, |b| {
            std::fs::write(&path, b)?;
            read_all(&path, skip)?;
            if ext == "jsonl" {
                jsonl::for_each_doc(&path, |_| Ok(true))?;
            }
            // The tokenizer trainer's reader of the same files.
            let eot = [ENDOFTEXT.to_string()];
            count_files(
                std::slice::from_ref(&path),
                Split::Gpt2,
                &eot,
                ENDOFTEXT,
                1 << 20,
            )?;
            let (text, _) = normalize::decode(b);
            let page = html::to_text(&text);
            normalize::normalize(page, false);
            normalize::normalize(text, true);
            Ok(())
        })
    });
}

/// A folder holding one mutated file of each kind.
fn fuzzed_folder(rng: &mut Rng, dir: &Path, seeds: &[(&'static str, Vec<u8>)]) -> Vec<PathBuf> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut paths = Vec::new();
    for (i, (ext, valid)) in seeds.iter().enumerate() {
        let path = dir.join(format!("{i}.{ext}"));
        std::fs::write(&path, mutate(rng, valid)).unwrap();
        paths.push(path);
    }
    paths
}

#[test]
fn clean_runs_to_the_end_on_damaged_folders() {
    let root = temp_dir("fuzz-clean-runs");
    let seeds = seeds();
    let mut rng = Rng::new(12);
    // A whole run costs far more than one read: one run per 20 inputs of the other targets.
    for i in 0..iters().div_ceil(20) {
        let folder = fuzzed_folder(&mut rng, &root.join("in"), &seeds);
        let out = root.join("out.jsonl");
        let what = format!("clean run (seed 12, run {i}) on {}", root.display());
        check(&what, &[], |_| {
            let cfg = CleanConfig {
                skip_bad_lines: true,
                ..CleanConfig::default()
            };
            clean(&cfg, &folder, &out, None, None)?;
            Ok(())
        });
    }
}
