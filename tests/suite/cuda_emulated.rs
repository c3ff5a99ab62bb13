//! The CUDA kernels' logic, tested on the CPU: `tools/cuda-emu/run.sh` compiles each emulator
//! test (`tools/cuda-emu/tests/*.cpp`, which include the unchanged files from `kernels/`) with
//! g++ and runs it; every case compares a kernel with a double-precision reference on small, odd
//! sizes. See tools/cuda-emu/README.md. Without g++ the test says so and passes, except under CI
//! (`CI=true`), where a missing compiler is a failure.

use std::process::Command;

#[test]
fn kernels_pass_the_cpu_emulator() {
    let gxx = Command::new("g++").arg("--version").output();
    if gxx.is_err() || !gxx.as_ref().unwrap().status.success() {
        crate::common::skip(
            "kernels_pass_the_cpu_emulator",
            "g++ not found (tools/cuda-emu needs it)",
        );
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/tools/cuda-emu/run.sh"))
        .current_dir(root)
        .output()
        .expect("run tools/cuda-emu/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The summary and every failing line; the full log only on failure.
    for line in stdout.lines() {
        if line.starts_with("FAIL") || line.starts_with("SKIP") || line.starts_with("cuda-emu:") {
            eprintln!("{line}");
        }
    }
    assert!(
        out.status.success(),
        "tools/cuda-emu/run.sh failed:\n{stdout}\n{stderr}"
    );
}
