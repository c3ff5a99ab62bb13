//! The emulated GPU: our kernels compiled with g++ against `tools/cuda-emu` and run on the CPU,
//! behind the same [`Gpu`](super::Gpu) API as a real device.
//!
//! The kernel tests in `tools/cuda-emu/tests` call kernels from C++. This goes one step
//! further: the Rust launchers (`ops`, `matmul`, `attention`) and the GPU model run unchanged,
//! and only the last step differs — instead of `cuLaunchKernel`, a launch calls into a shared
//! library built from the kernel file. So the launchers' argument lists, sizes and grids, and
//! the model's whole sequence of launches, are checked without a GPU. The library also checks
//! every argument's type against the kernel's parameter list (a launcher passing an `int` where
//! the kernel takes a `size_t` is an error, not a silent garbage value).
//!
//! Everything is slow (each CUDA thread is a coroutine) and synchronous: use small sizes. It is
//! for tests and for `PRETRAIN_GPU_EMU=1` at toy sizes. Needs g++ and this repository's
//! `tools/cuda-emu`. `EMU_PROFILE=1` prints each launch's kernel, grid, block and seconds on
//! stderr, to see where an emulated test spends its time.

use super::Precision;
use super::device::Arg;
use super::strided::Strided;
use anyhow::{Context, Result, anyhow, bail, ensure};
use cudarc::driver::LaunchConfig;
use std::collections::HashMap;
use std::ffi::{CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

type LaunchFn = unsafe extern "C" fn(
    *const c_char, // kernel name
    *const u32,    // grid x, y, z, block x, y, z
    usize,         // dynamic shared memory bytes
    *const *mut c_void,
    *const c_char, // one type letter per argument: p i u l f s
    c_int,
    *mut c_char, // error message out
    usize,
) -> c_int;

/// One compiled kernel file.
struct Library {
    _lib: libloading::Library,
    launch: LaunchFn,
}

/// The emulated device: one library per (file, precision), built on first use.
pub struct Emulator {
    libs: Mutex<HashMap<(&'static str, Precision), Arc<Library>>>,
}

/// The emulator's runtime has process-wide state (one launch runs at a time).
static LAUNCH: Mutex<()> = Mutex::new(());

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Why the emulator cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    if !repo().join("tools/cuda-emu/emu.h").exists() {
        return Some("tools/cuda-emu is not in this checkout".into());
    }
    match Command::new(cxx()).arg("--version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some(format!("{} not found", cxx())),
    }
}

fn cxx() -> String {
    std::env::var("CXX").unwrap_or_else(|_| "g++".into())
}

impl Emulator {
    pub fn new() -> Result<Emulator> {
        if let Some(why) = unavailable() {
            bail!("no CUDA emulator: {why}");
        }
        Ok(Emulator {
            libs: Mutex::new(HashMap::new()),
        })
    }

    fn library(&self, file: &'static str, precision: Precision) -> Result<Arc<Library>> {
        if let Some(l) = self.libs.lock().unwrap().get(&(file, precision)) {
            return Ok(l.clone());
        }
        // Built without holding the lock, so threads that need other files build at once.
        let path = build(file, precision)?;
        // SAFETY: the library was just built from our kernel file and the emulator; loading it
        // runs only C++ static initialisers.
        let lib = unsafe { libloading::Library::new(&path) }
            .with_context(|| format!("loading {}", path.display()))?;
        // SAFETY: `emu_launch` is defined by `launch_source` with exactly `LaunchFn`'s signature.
        let launch: LaunchFn = *unsafe { lib.get::<LaunchFn>(b"emu_launch\0") }?;
        let l = Arc::new(Library { _lib: lib, launch });
        let mut libs = self.libs.lock().unwrap();
        Ok(libs.entry((file, precision)).or_insert(l).clone())
    }

    /// Runs kernel `name` of `kernels/{file}` to completion.
    pub fn launch(
        &self,
        file: &'static str,
        precision: Precision,
        name: &str,
        cfg: &LaunchConfig,
        args: &[Arg],
    ) -> Result<()> {
        let (grid, block, smem) = (cfg.grid_dim, cfg.block_dim, cfg.shared_mem_bytes);
        let lib = self.library(file, precision)?;
        // Scalars are read from the low bytes of a u64 slot each; a struct in place, from `args`.
        let slots: Vec<u64> = args.iter().map(|a| a.scalar_bits().unwrap_or(0)).collect();
        let ptrs: Vec<*mut c_void> = args
            .iter()
            .zip(&slots)
            .map(|(a, slot)| match a {
                Arg::Strided(st) => (st as *const Strided).cast_mut().cast(),
                _ => (slot as *const u64).cast_mut().cast(),
            })
            .collect();
        let kinds: Vec<u8> = args.iter().map(Arg::letter).chain([0]).collect();
        let dims = [grid.0, grid.1, grid.2, block.0, block.1, block.2];
        let cname = CString::new(name)?;
        let mut err = vec![0u8; 4096];
        let _one = LAUNCH.lock().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        // SAFETY: every pointer argument is an address inside a live host allocation of an
        // emulated allocator block (the launchers check the lengths); `slots` holds each scalar
        // argument's value in its first bytes (little-endian), as the kernel's parameter reads
        // it, and a `Strided` is read in place, as the `repr(C)` struct it is; `slots` and
        // `args` outlive the call; the library checks count, types and the struct's size
        // before calling the kernel, which only reads the arguments.
        let rc = unsafe {
            (lib.launch)(
                cname.as_ptr(),
                dims.as_ptr(),
                smem as usize,
                ptrs.as_ptr(),
                kinds.as_ptr().cast(),
                args.len() as c_int,
                err.as_mut_ptr().cast(),
                err.len(),
            )
        };
        if std::env::var("EMU_PROFILE").is_ok_and(|v| v == "1") {
            let secs = started.elapsed().as_secs_f64();
            eprintln!("emu-profile {name} grid {grid:?} block {block:?} {secs:.6} s");
        }
        if rc != 0 {
            let end = err.iter().position(|&b| b == 0).unwrap_or(err.len());
            bail!(
                "emulated {name} ({file}, {}): {}",
                precision.name(),
                String::from_utf8_lossy(&err[..end])
            );
        }
        Ok(())
    }
}

/// The kernels a file defines for `precision`: the `extern "C" __global__` functions left after
/// preprocessing (so kernels inside `#ifdef PRETRAIN_BF16` count only for bf16).
fn kernel_names(kernel: &Path, precision: Precision, dir: &Path) -> Result<Vec<String>> {
    let scan = dir.join("scan.cpp");
    std::fs::write(
        &scan,
        format!(
            "#include \"emu.h\"\n#undef __global__\n#define __global__ EMU_KERNEL_MARKER\n#include \"{}\"\n",
            kernel.display()
        ),
    )?;
    let out = compiler(precision)
        .args(["-E", "-P"])
        .arg(&scan)
        .output()
        .context("running g++ -E")?;
    ensure!(
        out.status.success(),
        "preprocessing {}: {}",
        kernel.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut names = Vec::new();
    for piece in text.split("EMU_KERNEL_MARKER").skip(1) {
        let rest = piece.trim_start().strip_prefix("void").map(str::trim_start);
        let name: String = rest
            .unwrap_or("")
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

fn compiler(precision: Precision) -> Command {
    let emu = repo().join("tools/cuda-emu");
    let mut c = Command::new(cxx());
    c.arg("-std=c++17")
        .arg("-DPRETRAIN_EMU")
        .arg(format!("-I{}", emu.join("include").display()))
        .arg(format!("-I{}", emu.display()))
        .arg(format!("-I{}", repo().display()));
    if precision == Precision::Bf16 {
        c.arg("-DPRETRAIN_BF16");
    }
    c
}

/// The C++ of the library: the kernel file, and `emu_launch`, which finds a kernel by name,
/// checks the arguments against its parameters and runs it.
fn launch_source(kernel: &Path, names: &[String]) -> String {
    let mut s = format!(
        r#"#include "emu.h"
#include "{}"
#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
namespace {{
template <typename T> char letter() {{
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_pointer_v<U>) return 'p';
    else if constexpr (std::is_same_v<U, float>) return 'f';
    else if constexpr (std::is_integral_v<U> && sizeof(U) == 4 && std::is_signed_v<U>) return 'i';
    else if constexpr (std::is_integral_v<U> && sizeof(U) == 4) return 'u';
    else if constexpr (std::is_integral_v<U> && sizeof(U) == 8) return 'l';
    else if constexpr (std::is_class_v<U> && sizeof(U) == {strided_bytes} && alignof(U) == 8) return 's';
    else return '?';
}}
template <typename... P, size_t... I>
void call(void (*k)(P...), const char* name, const unsigned* d, size_t smem, void** args,
          const char* kinds, int n, std::index_sequence<I...>) {{
    const char want[] = {{letter<P>()..., 0}};
    if (n != (int)sizeof...(P))
        throw std::runtime_error(std::string(name) + " takes " + std::to_string(sizeof...(P)) +
                                 " arguments, the launcher passed " + std::to_string(n));
    for (int i = 0; i < n; i++)
        if (want[i] != kinds[i])
            throw std::runtime_error(std::string(name) + ": argument " + std::to_string(i) +
                                     " has type letter '" + want[i] + "' in the kernel, '" +
                                     kinds[i] + "' from the launcher (p pointer, i int, u unsigned, l 64-bit, f float, s Strided of {strided_bytes} bytes)");
    emu::launch(k, dim3(d[0], d[1], d[2]), dim3(d[3], d[4], d[5]), smem,
                *static_cast<std::remove_cv_t<P>*>(args[I])...);
}}
template <typename... P>
void call(void (*k)(P...), const char* name, const unsigned* d, size_t smem, void** args,
          const char* kinds, int n) {{
    call(k, name, d, smem, args, kinds, n, std::index_sequence_for<P...>{{}});
}}
}}  // namespace
extern "C" int emu_launch(const char* name, const unsigned* d, size_t smem, void** args,
                          const char* kinds, int n, char* err, size_t errlen) {{
    try {{
"#,
        kernel.display(),
        strided_bytes = std::mem::size_of::<Strided>()
    );
    for n in names {
        s += &format!(
            "        if (!strcmp(name, \"{n}\")) {{ call({n}, name, d, smem, args, kinds, n); return 0; }}\n"
        );
    }
    s += r#"        snprintf(err, errlen, "no kernel named %s in this file", name);
        return 1;
    } catch (const std::exception& e) {
        snprintf(err, errlen, "%s", e.what());
        return 1;
    }
}
"#;
    s
}

/// Builds (or finds, cached by content) the library for `kernels/{file}` with `precision`.
fn build(file: &str, precision: Precision) -> Result<PathBuf> {
    let kernel = repo().join("kernels").join(file);
    // The cache key: the kernel folder and the emulator's headers, byte for byte.
    let mut key = Vec::new();
    for dir in ["kernels", "tools/cuda-emu", "tools/cuda-emu/include"] {
        let mut files: Vec<_> = std::fs::read_dir(repo().join(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            key.extend(std::fs::read(&f)?);
        }
    }
    key.extend(format!("{file} {precision:?} {}", cxx()).bytes());
    // And the launch shim's own text (its type checks change with this file, not with those).
    key.extend(launch_source(Path::new(""), &[]).bytes());
    let dir = repo().join("target/cuda-emu-lib");
    std::fs::create_dir_all(&dir)?;
    let stem = format!(
        "{}-{}-{:016x}",
        file.trim_end_matches(".cu"),
        precision.name(),
        fnv(&key)
    );
    let lib = dir.join(format!("{stem}.so"));
    if lib.exists() {
        return Ok(lib);
    }
    // A work folder of its own per build: tests in other threads or processes may build the
    // same library at the same time; the first rename wins, and both results are identical.
    static BUILDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nth = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let work = dir.join(format!("{stem}.{}-{nth}.tmp", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let names = kernel_names(&kernel, precision, &work)?;
    let src = work.join("lib.cpp");
    std::fs::write(&src, launch_source(&kernel, &names))?;
    let tmp_lib = work.join("lib.so");
    let out = compiler(precision)
        .args(["-O1", "-shared", "-fPIC", "-o"])
        .arg(&tmp_lib)
        .arg(&src)
        .output()
        .context("running g++")?;
    if !out.status.success() {
        return Err(anyhow!(
            "building the emulated kernels/{file} ({}): {}",
            precision.name(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::rename(&tmp_lib, &lib)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(lib)
}

/// FNV-1a, 64-bit: a stable content hash for the cache file names.
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    h
}
