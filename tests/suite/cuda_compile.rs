//! Every kernel in `kernels/` compiles with NVRTC for sm_80 (A100) and sm_90 (H100/H200), in
//! both storage precisions. This needs no GPU: NVRTC and the CUDA headers come from NVIDIA's
//! PyPI wheels (`scripts/cuda-toolchain.sh`, which `.ci/run` calls). Without NVRTC the test
//! says so and passes, except under CI (`CI=true`), where a missing compiler is a failure.

use crate::common::nvrtc_or_skip;
use pretrain::tensor::cuda::Precision;
use pretrain::tensor::cuda::{nvrtc, sources};

#[test]
fn every_kernel_compiles_for_sm80_and_sm90() {
    if !nvrtc_or_skip("every_kernel_compiles_for_sm80_and_sm90") {
        return;
    }
    // Files compile independently (NVRTC programs do not share state): both cores at once.
    use rayon::prelude::*;
    let jobs: Vec<_> = sources::SOURCES
        .iter()
        .flat_map(|src| [80, 90].map(|arch| (src, arch)))
        .collect();
    let results: Vec<(usize, Vec<String>)> = jobs
        .par_iter()
        .map(|&(src, arch)| compile_both(src, arch))
        .collect();
    let built: usize = results.iter().map(|r| r.0).sum();
    let failures: Vec<String> = results.into_iter().flat_map(|r| r.1).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    eprintln!("compiled {built} modules");
}

/// Compiles `src` for `arch` in both precisions: (modules built, errors). A file may hold
/// kernels for one precision only (tensor-core matmul: bf16), but every file must have a kernel
/// in at least one.
fn compile_both(src: &sources::Source, arch: u32) -> (usize, Vec<String>) {
    let (mut entries, mut built, mut failures) = (0, 0, Vec::new());
    for precision in [Precision::F32, Precision::Bf16] {
        match sources::compile(src.file, arch, precision, false) {
            Ok(c) => {
                assert!(!c.cubin.is_empty(), "{}: empty cubin", src.file);
                entries += c.ptx.matches(".entry").count();
                built += 1;
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(
        entries > 0 || !failures.is_empty(),
        "{}: no kernel in the PTX",
        src.file
    );
    (built, failures)
}

#[test]
fn a_compile_error_names_the_file_and_line() {
    if !nvrtc_or_skip("a_compile_error_names_the_file_and_line") {
        return;
    }
    let n = nvrtc::get().unwrap();
    let err = n
        .compile(
            "extern \"C\" __global__ void k(float* x) {\n  x[0] = y;\n}\n",
            "broken.cu",
            &[],
            &sources::options(90, Precision::F32, false),
        )
        .err()
        .expect("an undefined name must not compile");
    assert!(err.contains("broken.cu(2)"), "{err}");
    assert!(err.contains("identifier \"y\" is undefined"), "{err}");
}

#[test]
fn the_resource_report_lists_registers() {
    if !nvrtc_or_skip("the_resource_report_lists_registers") {
        return;
    }
    let c = sources::compile("cast.cu", 90, Precision::Bf16, true).unwrap();
    assert!(c.log.contains("registers"), "{}", c.log);
    eprintln!("{}", c.log);
}
