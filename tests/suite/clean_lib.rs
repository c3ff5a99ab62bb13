//! The library entry point, `pretrain::data::clean`, as the pipeline binary calls it.

use pretrain::data::{CleanConfig, clean};
use std::path::PathBuf;

#[test]
fn batch_size_and_threads_do_not_change_the_output() {
    let dir = std::env::temp_dir().join(format!("pretrain-clean-lib-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inputs = [PathBuf::from("tests/fixtures/clean")];
    let run = |name: &str, cfg: &CleanConfig| {
        let out = dir.join(name);
        let report = clean(cfg, &inputs, &out, None, None).unwrap();
        (std::fs::read(&out).unwrap(), report.docs_out)
    };
    let (big, n) = run("default.jsonl", &CleanConfig::default());
    let tiny = CleanConfig {
        batch_docs: 3,
        batch_bytes: 1000,
        ..CleanConfig::default()
    };
    let (small, m) = run("tiny.jsonl", &tiny);
    assert_eq!(n, m);
    assert!(big == small, "output depends on the batch size");
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (single, _) = one_thread.install(|| run("single.jsonl", &tiny));
    assert!(big == single, "output depends on the thread count");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn output_folders_are_created() {
    let dir = std::env::temp_dir().join(format!("pretrain-clean-dirs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("a/b/out.jsonl");
    let rep = dir.join("c/report.json");
    let inputs = [PathBuf::from("tests/fixtures/clean/en")];
    clean(&CleanConfig::default(), &inputs, &out, Some(&rep), None).unwrap();
    assert!(out.exists() && rep.exists());
    let _ = std::fs::remove_dir_all(dir);
}
