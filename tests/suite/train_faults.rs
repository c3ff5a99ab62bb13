//! The `train` binary and its run folder under bad input and faults, as a user meets them: a
//! copied or moved run folder, flags that make no sense, a diverging run, a crash in the middle
//! of a checkpoint swap, two runs on one folder, a damaged optimizer file, a validation split
//! from another tokenizer, a write that fails half way, SIGTERM and Ctrl-C (to `pipeline` too).
//!
//! The faults are made directly (the on-disk state a crash leaves, a lock held by this test, a
//! file-size limit that makes a write fail), so every test is deterministic. The two that signal
//! a running `train` wait for its first metrics line, a state, not a time.

use pretrain::dataset::shard::write_shard;
use pretrain::model::checkpoint::{read_safetensors, write_safetensors};
use pretrain::model::config::GptConfig;
use pretrain::train::optim::AdamWConfig;
use pretrain::train::schedule::ScheduleKind;
use pretrain::train::trainer::{TrainConfig, checkpoint_dir, load_model, train};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const TRAIN: &str = env!("CARGO_BIN_EXE_train");

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pretrain-faults-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A shard folder of a learnable sequence (vocabulary `vocab`).
fn shards(dir: &Path, vocab: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let tokens: Vec<u32> = (0..3000u32).map(|i| (i % 13) * 3 % vocab as u32).collect();
    write_shard(&dir.join("train_000000.bin"), &tokens[..2500], vocab).unwrap();
    write_shard(&dir.join("val_000000.bin"), &tokens[2500..], vocab).unwrap();
    dir.to_path_buf()
}

/// The flags of a tiny run (1 layer, width 16) on `data` in `out`.
fn tiny(data: &Path, out: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
        "--n-layer",
        "1",
        "--n-head",
        "2",
        "--n-embd",
        "16",
        "--seq-len",
        "16",
        "--batch-size",
        "2",
        "--eval-every",
        "0",
        "--eval-batches",
        "1",
        "--warmup",
        "2",
        "--checkpoint-every",
        "1",
        "-q",
    ]
    .map(String::from)
    .to_vec();
    a.extend(["--data".into(), s(data), "--out".into(), s(out)]);
    a
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// `train ARGS` (without the quick preset of the lesson tests).
fn run(args: &[String]) -> Output {
    Command::new(TRAIN)
        .args(args)
        .env_remove("PRETRAIN_QUICK")
        .output()
        .unwrap()
}

fn resume(out: &Path, steps: usize, more: &[&str]) -> Output {
    let mut a = vec!["--out".into(), s(out), "--resume".into(), "--steps".into()];
    a.push(steps.to_string());
    a.extend(more.iter().map(|m| m.to_string()));
    run(&a)
}

fn fresh(data: &Path, out: &Path, steps: usize) -> Output {
    let mut a = tiny(data, out);
    a.extend(["--steps".into(), steps.to_string()]);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The one error line of a failed run, which must exit with 2.
fn error_line(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "expected exit code 2: {err}");
    let line = err.lines().last().unwrap_or_default().to_string();
    assert!(line.starts_with("train: error: "), "{err}");
    line
}

/// The step of the run's checkpoint.
fn saved_step(out: &Path) -> u64 {
    let text = std::fs::read_to_string(checkpoint_dir(out).join("trainer_state.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["step"]
        .as_u64()
        .unwrap()
}

fn metrics(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{} {} {}", v["step"], v["loss"], v["grad_norm"])
        })
        .collect()
}

/// Hidden entries of a folder (temps, the lock), sorted.
fn hidden(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn resume_continues_the_folder_it_is_given() {
    let dir = tmp("resume-here");
    let data = shards(&dir.join("shards"), 50);
    let (a, b) = (dir.join("runA"), dir.join("runB"));
    fresh(&data, &a, 2);
    copy_dir(&a, &b);
    let o = resume(&b, 4, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        (saved_step(&a), saved_step(&b)),
        (2, 4),
        "the copy advanced, not A"
    );
    assert_eq!((metrics(&a).len(), metrics(&b).len()), (2, 4));

    // Moved to another depth: the stored "../shards" is gone, --data says where it is now.
    let moved = dir.join("elsewhere/deeper/runB");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&b, &moved).unwrap();
    let line = error_line(&resume(&moved, 5, &[]));
    assert!(line.contains("give --data"), "{line}");
    let o = resume(&moved, 5, &["--data", &s(&data)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(saved_step(&moved), 5);

    // A data folder that is not there is an error, not a resume of the old data.
    let line = error_line(&resume(&moved, 6, &["--data", "/nonexistent"]));
    assert!(line.contains("/nonexistent"), "{line}");
    assert_eq!(saved_step(&moved), 5);

    // Run folder and data moved together: the relative path still holds.
    let _ = std::fs::remove_dir_all(dir.with_extension("moved"));
    std::fs::rename(&dir, dir.with_extension("moved")).unwrap();
    let o = resume(&dir.with_extension("moved").join("runA"), 3, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_dir_all(dir.with_extension("moved")).unwrap();
}

#[test]
fn resume_rejects_data_or_a_model_that_do_not_match() {
    let dir = tmp("resume-mismatch");
    let data = shards(&dir.join("shards"), 50);
    let other = shards(&dir.join("shards60"), 60);
    let out = dir.join("run");
    fresh(&data, &out, 2);
    let line = error_line(&resume(&out, 4, &["--data", &s(&other)]));
    assert!(line.contains("60") && line.contains("50"), "{line}");

    // train_config.json says 2 layers, the checkpoint holds 1.
    let path = out.join("train_config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["model"]["n_layer"] = 2.into();
    std::fs::write(&path, cfg.to_string()).unwrap();
    let line = error_line(&resume(&out, 4, &[]));
    assert!(
        line.contains("1 layers") && line.contains("2 layers"),
        "{line}"
    );
    // Settings flags conflict with --resume instead of being ignored.
    let line = error_line(&resume(&out, 4, &["--lr", "0.5"]));
    assert!(line.contains("--resume") && line.contains("--lr"), "{line}");
    assert_eq!(saved_step(&out), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The library's settings for a tiny run, as `train_loop` uses them.
fn config(data: &Path, out: &Path, steps: usize) -> TrainConfig {
    TrainConfig {
        data: data.to_path_buf(),
        layout: Default::default(),
        out: out.to_path_buf(),
        init_from: None,
        model: GptConfig {
            n_layer: 1,
            n_head: 2,
            n_embd: 16,
            block_size: 16,
            vocab_size: 50,
        },
        steps,
        batch_size: 2,
        seq_len: 16,
        grad_accum: 1,
        lr: 1e-2,
        min_lr: 1e-3,
        warmup: 0,
        schedule: ScheduleKind::Constant,
        adamw: AdamWConfig::default(),
        grad_clip: 1.0,
        sequential: false,
        seed: 3,
        eval_every: 0,
        eval_batches: 1,
        sample_every: 0,
        checkpoint_every: 1,
    }
}

#[test]
fn non_finite_weights_are_never_saved() {
    let dir = tmp("nan-weights");
    let data = shards(&dir.join("shards"), 50);
    let out = dir.join("run");
    train(&config(&data, &out, 2), false).unwrap();
    // A finite but absurd learning rate: step 3's loss is finite, its update overflows.
    let mut cfg = config(&data, &out, 4);
    cfg.lr = f32::MAX;
    let err = format!("{:#}", train(&cfg, true).unwrap_err());
    assert!(
        err.contains("weights are no longer finite at step 3") && err.contains("from step 2"),
        "{err}"
    );
    assert_eq!(saved_step(&out), 2, "the last good checkpoint is kept");
    let model = load_model(&checkpoint_dir(&out)).unwrap();
    let finite = model
        .to_named()
        .iter()
        .all(|t| t.data.iter().all(|x| x.is_finite()));
    assert!(finite);
    // Without an earlier checkpoint the message says that nothing was saved.
    let fresh_out = dir.join("fresh");
    let mut cfg = config(&data, &fresh_out, 2);
    cfg.lr = f32::MAX;
    let err = format!("{:#}", train(&cfg, false).unwrap_err());
    assert!(
        err.contains("at step 1") && err.contains("saved no checkpoint"),
        "{err}"
    );
    assert!(!checkpoint_dir(&fresh_out).exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flags_that_make_no_sense_are_rejected_when_parsed() {
    let dir = tmp("flags");
    let data = shards(&dir.join("shards"), 50);
    let out = dir.join("run");
    let cases = [
        ("--lr", "nan"),
        ("--lr", "inf"),
        ("--lr", "-1"),
        ("--lr", "0"),
        ("--grad-clip", "nan"),
        ("--min-lr", "nan"),
        ("--weight-decay", "-0.1"),
    ];
    for (flag, value) in cases {
        let mut a = tiny(&data, &out);
        a.extend([flag.to_string(), value.to_string()]);
        let line = error_line(&run(&a));
        assert!(
            line.contains(flag) && line.contains(&format!("'{value}'")),
            "{flag} {value}: {line}"
        );
        assert!(!out.exists(), "{flag} {value} created the run folder");
    }
    for value in ["-1", "nan"] {
        let o = Command::new(env!("CARGO_BIN_EXE_sample"))
            .args(["--checkpoint", "x", "--prompt", "a", "--temperature", value])
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains("--temperature") && err.contains(value),
            "{err}"
        );
    }
    // A missing flag is named too (clap puts the names on the lines after the message).
    let line = error_line(&run(&["--out".into(), s(&out)]));
    assert!(line.contains("--data"), "{line}");
    // The library checks the same for callers that build a config by hand.
    let mut cfg = config(&data, &out, 2);
    cfg.lr = f32::NAN;
    let err = format!("{:#}", train(&cfg, false).unwrap_err());
    assert!(err.contains("--lr") && err.contains("NaN"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_swap_cut_between_its_renames_is_finished_or_rolled_back() {
    let dir = tmp("swap");
    let data = shards(&dir.join("shards"), 50);
    let straight = dir.join("straight");
    train(&config(&data, &straight, 4), false).unwrap();
    let two = dir.join("two");
    train(&config(&data, &two, 2), false).unwrap();
    // What a kill between the swap's renames leaves at step 3: the old copy (step 2) moved
    // aside, the new one (step 3) complete under its temp name, no checkpoint/.
    let cut = dir.join("cut");
    train(&config(&data, &cut, 3), false).unwrap();
    std::fs::rename(checkpoint_dir(&cut), cut.join(".checkpoint.tmp-999999")).unwrap();
    copy_dir(&checkpoint_dir(&two), &cut.join(".checkpoint.old-999999"));
    train(&config(&data, &cut, 4), true).unwrap();
    assert_eq!(
        metrics(&cut),
        metrics(&straight),
        "finished at step 3, then on to 4"
    );
    assert_eq!(hidden(&cut), [".lock"], "the old copy is gone");

    // Cut before the new copy was complete (no temp of that PID): the old copy goes back.
    let back = dir.join("back");
    train(&config(&data, &back, 3), false).unwrap();
    std::fs::remove_dir_all(checkpoint_dir(&back)).unwrap();
    copy_dir(&checkpoint_dir(&two), &back.join(".checkpoint.old-999999"));
    train(&config(&data, &back, 4), true).unwrap();
    assert_eq!(
        metrics(&back),
        metrics(&straight),
        "rolled back to step 2, then on to 4"
    );
    assert_eq!(hidden(&back), [".lock"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_run_on_a_locked_folder_fails_naming_the_holder() {
    let dir = tmp("lock");
    let data = shards(&dir.join("shards"), 50);
    let out = dir.join("run");
    std::fs::create_dir_all(&out).unwrap();
    // This test holds the run folder's lock, as a running `train` would.
    let lock = std::fs::File::create(out.join(".lock")).unwrap();
    lock.try_lock().unwrap();
    std::fs::write(out.join(".lock"), std::process::id().to_string()).unwrap();
    let mut a = tiny(&data, &out);
    a.extend(["--steps".into(), "2".into()]);
    let line = error_line(&run(&a));
    assert!(
        line.contains(&format!("PID {}", std::process::id())),
        "{line}"
    );
    assert!(!out.join("metrics.jsonl").exists(), "the second run wrote");
    // Released (as when its holder ends, however it ends), the folder is free again, even
    // though the lock file still names the old PID.
    drop(lock);
    assert!(run(&a).status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Starts `train` for a very long run and waits until it has logged a step.
fn start_long_run(data: &Path, out: &Path) -> std::process::Child {
    let mut a = tiny(data, out);
    // Checkpoints only when stopped.
    let every = a.iter().position(|f| f == "--checkpoint-every").unwrap();
    a[every + 1] = "0".into();
    a.extend(["--steps", "100000000"].map(String::from));
    let mut child = Command::new(TRAIN)
        .args(&a)
        .env_remove("PRETRAIN_QUICK")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..6000 {
        // A whole line: the file may be read while the line is half written.
        let logged = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap_or_default();
        if logged.contains('\n') {
            return child;
        }
        if child.try_wait().unwrap().is_some() {
            let o = child.wait_with_output().unwrap();
            panic!("train ended early ({}): {}", o.status, stderr(&o));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    panic!("train logged no step in 5 minutes");
}

#[test]
fn a_killed_run_leaves_no_lock_behind() {
    let dir = tmp("kill9");
    let data = shards(&dir.join("shards"), 50);
    let out = dir.join("run");
    let mut child = start_long_run(&data, &out);
    child.kill().unwrap(); // SIGKILL: no handler runs
    child.wait().unwrap();
    let mut a = tiny(&data, &out);
    a.extend(["--steps".into(), "2".into()]);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_and_ctrl_c_save_then_exit_128_plus_the_signal() {
    let dir = tmp("signals");
    let data = shards(&dir.join("shards"), 50);
    for (sig, code) in [("TERM", 143), ("INT", 130)] {
        let out = dir.join(sig);
        let child = start_long_run(&data, &out);
        let kill = Command::new("kill")
            .args([format!("-{sig}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(code), "SIG{sig}: {}", stderr(&o));
        let steps = metrics(&out).len() as u64;
        assert_eq!(
            saved_step(&out),
            steps,
            "SIG{sig}: saved after the last step"
        );
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            stdout.contains(&format!("interrupted after step {steps}")),
            "{stdout}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_optimizer_moment_is_an_error_naming_it() {
    let dir = tmp("moments");
    let data = shards(&dir.join("shards"), 50);
    let out = dir.join("run");
    fresh(&data, &out, 2);
    let path = checkpoint_dir(&out).join("optimizer.safetensors");
    let (mut tensors, _) = read_safetensors(&path).unwrap();
    let original = tensors.clone();
    tensors.retain(|t| t.name != "v.h.0.ln_1.bias");
    write_safetensors(&path, &tensors, None).unwrap();
    let line = error_line(&resume(&out, 4, &[]));
    assert!(line.contains("missing tensor v.h.0.ln_1.bias"), "{line}");
    // One with the wrong number of values.
    let mut tensors = original;
    let t = tensors
        .iter_mut()
        .find(|t| t.name == "m.wpe.weight")
        .unwrap();
    t.data.pop();
    t.shape = vec![t.data.len()];
    write_safetensors(&path, &tensors, None).unwrap();
    let line = error_line(&resume(&out, 4, &[]));
    assert!(line.contains("m.wpe.weight has shape"), "{line}");
    assert_eq!(saved_step(&out), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_validation_split_that_does_not_match_fails_before_step_1() {
    let dir = tmp("val");
    let data = shards(&dir.join("shards"), 50);
    let out = dir.join("run");
    let val = data.join("val_000000.bin");
    // From another tokenizer (vocabulary 60, ids 50..59 from the first batch on): without the
    // check, the final evaluation would crash on id 59 after all the training.
    let tokens: Vec<u32> = (0..500).map(|i| 59 - i % 60).collect();
    write_shard(&val, &tokens, 60).unwrap();
    let mut a = tiny(&data, &out);
    a.extend(["--steps".into(), "2".into()]);
    let line = error_line(&run(&a));
    assert!(line.contains("val_000000.bin") && line.contains("60") && line.contains("50"));
    assert!(metrics(&out).is_empty(), "it trained before failing");
    // A damaged val shard is an error too, not a run without validation.
    write_shard(
        &val,
        &tokens[..400].iter().map(|t| t % 50).collect::<Vec<_>>(),
        50,
    )
    .unwrap();
    let bytes = std::fs::read(&val).unwrap();
    std::fs::write(&val, &bytes[..bytes.len() - 3]).unwrap();
    let line = error_line(&run(&a));
    assert!(
        line.contains("val_000000.bin") && line.contains("truncated"),
        "{line}"
    );
    // Without val shards at all, the run trains without a validation loss.
    std::fs::remove_file(&val).unwrap();
    assert!(run(&a).status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_write_names_its_output_and_leaves_no_temp() {
    let dir = tmp("fsize");
    let data = shards(&dir.join("shards"), 50);
    let out = dir.join("run");
    fresh(&data, &out, 2);
    // Leftovers of a process that died mid-write are removed on the next start.
    std::fs::create_dir_all(out.join(".checkpoint.tmp-999999")).unwrap();
    std::fs::write(out.join(".train_config.json.tmp-999999"), "{").unwrap();
    let o = resume(&out, 3, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(hidden(&out), [".lock"]);
    // A file-size limit (like a full disk) makes the checkpoint's model file fail to write:
    // the error names the checkpoint, the old one stays, no temp is left.
    // (`ulimit -f` counts 512- or 1024-byte blocks; the model file is 17 KB either way.)
    let limited = "trap '' XFSZ; ulimit -f 8; exec \"$0\" --out \"$1\" --resume --steps 5 -q";
    let o = Command::new("sh")
        .args(["-c", limited, TRAIN, &s(&out)])
        .env_remove("PRETRAIN_QUICK")
        .output()
        .unwrap();
    let line = error_line(&o);
    let ckpt = checkpoint_dir(&out);
    assert!(
        line.contains(&format!("writing {}", ckpt.display())),
        "{line}"
    );
    assert_eq!(saved_step(&out), 3);
    assert_eq!(hidden(&out), [".lock"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn a_path_that_is_not_utf8_is_named() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tmp("utf8");
    let data = shards(&dir.join("shards"), 50);
    let out = dir.join(std::ffi::OsStr::from_bytes(b"run\xff"));
    let o = Command::new(TRAIN)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .args(["--steps", "1", "-q"])
        .env_remove("PRETRAIN_QUICK")
        .output()
        .unwrap();
    let line = error_line(&o);
    assert!(
        line.contains("run\u{FFFD}") && line.contains("not valid UTF-8"),
        "{line}"
    );
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_pipeline_saves_and_exits_like_train_on_sigterm() {
    let dir = tmp("pipeline-signal");
    let out = dir.join("p");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["--quick", "-q", "--steps", "100000000", "--out"])
        .arg(&out)
        .env_remove("PRETRAIN_QUICK")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = out.join("run");
    let mut logged = false;
    for _ in 0..6000 {
        if std::fs::read_to_string(run.join("metrics.jsonl")).is_ok_and(|m| m.contains('\n')) {
            logged = true;
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "pipeline ended early");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if !logged {
        child.kill().unwrap();
        panic!("the pipeline logged no training step in 5 minutes");
    }
    let kill = Command::new("kill")
        .args(["-TERM".to_string(), child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    let steps = metrics(&run).len() as u64;
    assert_eq!(saved_step(&run), steps, "saved after the last step");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!("interrupted after step {steps}")),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
