//! The collectives of `train::dist::Comm` on 2 real MPI ranks (`examples/collectives.rs`):
//! all-reduce, the ring all-reduce built from send/receive (and the bytes it sends),
//! reduce-scatter, all-gather, broadcast, send/receive and sub-groups, each against the result
//! worked out locally. Needs `--features mpi`, Open MPI's `mpirun`, and the example built
//! (`cargo build --release --features mpi --examples`; `.ci/run` does).

#[cfg(feature = "mpi")]
#[test]
fn every_collective_matches_the_local_result_on_two_ranks() {
    let exe = std::env::current_exe().unwrap();
    let examples = exe.parent().unwrap().parent().unwrap().join("examples");
    let mut c = std::process::Command::new("mpirun");
    c.args(["-np", "2", "--bind-to", "none", "--oversubscribe"]);
    if std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0) {
        c.arg("--allow-run-as-root");
    }
    let exe = examples.join("collectives");
    assert!(
        exe.is_file(),
        "{} is not built: `cargo build --release --features mpi --examples` first (the full \
         `cargo test --release --features mpi` builds it)",
        exe.display()
    );
    let out = c.arg(exe).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}{err}");
    for what in [
        "all-reduce: ok",
        "ring all-reduce: ok",
        "ring bytes are 2(N−1)/N of the buffer: ok",
        "reduce-scatter: ok",
        "all-gather: ok",
        "broadcast: ok",
        "send-receive: ok",
        "split into even and odd ranks: ok",
    ] {
        assert!(text.contains(what), "missing {what:?} in:\n{text}");
    }
    assert!(!text.contains("MISMATCH"), "{text}");
    // 2 ranks: each sends half the buffer in each of the two phases, so the whole buffer once.
    assert!(
        text.contains("ring all-reduce of 92 bytes on 2 ranks: rank 0 sent 92"),
        "{text}"
    );
}
