//! NVRTC, CUDA's run-time compiler, called directly through `libloading`.
//!
//! Why not cudarc's own NVRTC module: cudarc looks the library up by name on the loader path
//! (`libnvrtc.so`, `libnvrtc.so.12`, ...), and panics when it is not there. We want three things
//! it cannot give: find the library by absolute path (the PyPI wheel unpacked by
//! `scripts/cuda-toolchain.sh`, or a CUDA toolkit's `lib64`), work with any major version
//! (CUDA 12 or 13), and say clearly what was searched when nothing is found. NVRTC's C API is
//! eight functions, so binding it by hand is short. The result is a CUBIN (machine code for one
//! GPU architecture) that cudarc's driver API loads, plus the compiler's log.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

type Program = *mut c_void;
type NvrtcResult = c_int;

/// The loaded library and the functions we use from it.
pub struct Nvrtc {
    path: String,
    _lib: libloading::Library,
    version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> NvrtcResult,
    error_string: unsafe extern "C" fn(NvrtcResult) -> *const c_char,
    create: unsafe extern "C" fn(
        *mut Program,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> NvrtcResult,
    compile: unsafe extern "C" fn(Program, c_int, *const *const c_char) -> NvrtcResult,
    destroy: unsafe extern "C" fn(*mut Program) -> NvrtcResult,
    log_size: unsafe extern "C" fn(Program, *mut usize) -> NvrtcResult,
    log: unsafe extern "C" fn(Program, *mut c_char) -> NvrtcResult,
    ptx_size: unsafe extern "C" fn(Program, *mut usize) -> NvrtcResult,
    ptx: unsafe extern "C" fn(Program, *mut c_char) -> NvrtcResult,
    cubin_size: unsafe extern "C" fn(Program, *mut usize) -> NvrtcResult,
    cubin: unsafe extern "C" fn(Program, *mut c_char) -> NvrtcResult,
}

/// What one compilation produced.
pub struct Compiled {
    /// PTX, the portable assembly (what `ptxas` turns into machine code).
    pub ptx: String,
    /// Machine code for the architecture asked for (`-arch=sm_XY`).
    pub cubin: Vec<u8>,
    /// The compiler's messages (warnings, and the `-Xptxas -v` resource report when asked).
    pub log: String,
}

/// The unpacked wheels of `scripts/cuda-toolchain.sh`, next to this crate's `target/`.
pub fn toolchain_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PRETRAIN_CUDA_TOOLCHAIN") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/cuda-toolchain")
}

/// Folders that may hold a CUDA toolkit (`lib64/`, `include/`), most specific first.
fn toolkit_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for var in ["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"] {
        if let Some(d) = std::env::var_os(var) {
            dirs.push(PathBuf::from(d));
        }
    }
    dirs.push(PathBuf::from("/usr/local/cuda"));
    dirs
}

/// Every place we look for libnvrtc, in order. An absolute path first: `PRETRAIN_NVRTC`.
fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("PRETRAIN_NVRTC") {
        out.push(PathBuf::from(p));
    }
    let mut dirs = vec![toolchain_dir().join("lib")];
    dirs.extend(toolkit_dirs().into_iter().map(|d| d.join("lib64")));
    for dir in dirs {
        for name in ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"] {
            let p = dir.join(name);
            if p.exists() {
                out.push(p);
            }
        }
    }
    // Last, plain names for the loader's own search path (LD_LIBRARY_PATH, ldconfig).
    for name in ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"] {
        out.push(PathBuf::from(name));
    }
    out
}

/// Include folders holding `cuda_fp16.h` / `cuda_bf16.h`, for `-I`.
pub fn include_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("PRETRAIN_CUDA_INCLUDE") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(toolchain_dir().join("include"));
    dirs.extend(toolkit_dirs().into_iter().map(|d| d.join("include")));
    dirs.retain(|d| d.join("cuda_bf16.h").exists());
    dirs
}

/// Loads NVRTC once per process. The error says every place that was tried.
pub fn get() -> Result<&'static Nvrtc, String> {
    static NVRTC: OnceLock<Result<Nvrtc, String>> = OnceLock::new();
    NVRTC.get_or_init(load).as_ref().map_err(|e| e.clone())
}

fn load() -> Result<Nvrtc, String> {
    let tried = candidates();
    for path in &tried {
        // SAFETY: loading NVRTC runs its initialisers, which have no preconditions.
        let Ok(lib) = (unsafe { libloading::Library::new(path) }) else {
            continue;
        };
        // SAFETY: each symbol is looked up with the signature NVRTC's header (nvrtc.h) gives it.
        let found = unsafe { bind(lib, path.display().to_string()) };
        if let Ok(n) = found {
            return Ok(n);
        }
    }
    Err(format!(
        "NVRTC not found (tried {}); run scripts/cuda-toolchain.sh or set PRETRAIN_NVRTC",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// SAFETY: the caller promises `lib` is libnvrtc, so each name has the C signature written here.
unsafe fn bind(lib: libloading::Library, path: String) -> Result<Nvrtc, libloading::Error> {
    unsafe {
        Ok(Nvrtc {
            version: *lib.get(b"nvrtcVersion\0")?,
            error_string: *lib.get(b"nvrtcGetErrorString\0")?,
            create: *lib.get(b"nvrtcCreateProgram\0")?,
            compile: *lib.get(b"nvrtcCompileProgram\0")?,
            destroy: *lib.get(b"nvrtcDestroyProgram\0")?,
            log_size: *lib.get(b"nvrtcGetProgramLogSize\0")?,
            log: *lib.get(b"nvrtcGetProgramLog\0")?,
            ptx_size: *lib.get(b"nvrtcGetPTXSize\0")?,
            ptx: *lib.get(b"nvrtcGetPTX\0")?,
            cubin_size: *lib.get(b"nvrtcGetCUBINSize\0")?,
            cubin: *lib.get(b"nvrtcGetCUBIN\0")?,
            _lib: lib,
            path,
        })
    }
}

impl Nvrtc {
    /// The file the library was loaded from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// NVRTC's (major, minor) version, e.g. (12, 9).
    pub fn version(&self) -> (i32, i32) {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: two valid out-pointers, as nvrtcVersion expects.
        unsafe { (self.version)(&mut major, &mut minor) };
        (major, minor)
    }

    fn check(&self, what: &str, r: NvrtcResult) -> Result<(), String> {
        if r == 0 {
            return Ok(());
        }
        // SAFETY: nvrtcGetErrorString returns a static C string for any result code.
        let msg = unsafe { CStr::from_ptr((self.error_string)(r)) };
        Err(format!("{what}: {}", msg.to_string_lossy()))
    }

    /// Compiles one CUDA C++ source. `headers` are (include name, contents) pairs that
    /// `#include "name"` resolves to; `options` are NVRTC's command-line options.
    pub fn compile(
        &self,
        source: &str,
        name: &str,
        headers: &[(&str, &str)],
        options: &[String],
    ) -> Result<Compiled, String> {
        let cstr = |s: &str| CString::new(s).map_err(|_| format!("{name}: NUL byte in input"));
        let src = cstr(source)?;
        let cname = cstr(name)?;
        let hsrc: Vec<CString> = headers
            .iter()
            .map(|h| cstr(h.1))
            .collect::<Result<_, _>>()?;
        let hname: Vec<CString> = headers
            .iter()
            .map(|h| cstr(h.0))
            .collect::<Result<_, _>>()?;
        let opts: Vec<CString> = options.iter().map(|o| cstr(o)).collect::<Result<_, _>>()?;
        let hsrc_p: Vec<*const c_char> = hsrc.iter().map(|s| s.as_ptr()).collect();
        let hname_p: Vec<*const c_char> = hname.iter().map(|s| s.as_ptr()).collect();
        let opts_p: Vec<*const c_char> = opts.iter().map(|s| s.as_ptr()).collect();

        let mut prog: Program = std::ptr::null_mut();
        // SAFETY: every pointer points into a CString or Vec that outlives the program, and the
        // counts match the arrays; the program is destroyed below on every path.
        unsafe {
            self.check(
                "nvrtcCreateProgram",
                (self.create)(
                    &mut prog,
                    src.as_ptr(),
                    cname.as_ptr(),
                    headers.len() as c_int,
                    hsrc_p.as_ptr(),
                    hname_p.as_ptr(),
                ),
            )?;
            let status = (self.compile)(prog, opts_p.len() as c_int, opts_p.as_ptr());
            let log = self.read(prog, self.log_size, self.log).map(to_text);
            let result = match (status, log) {
                (0, Ok(log)) => self.outputs(prog, log),
                (0, Err(e)) => Err(e),
                (_, log) => {
                    let log = log.unwrap_or_default();
                    self.check(name, status)
                        .and(Err(String::new()))
                        .map_err(|e| format!("{e}\n{}", log.trim_end()).trim_end().to_string())
                }
            };
            (self.destroy)(&mut prog);
            result
        }
    }

    /// SAFETY: `prog` must be a compiled program.
    unsafe fn outputs(&self, prog: Program, log: String) -> Result<Compiled, String> {
        unsafe {
            let ptx = to_text(self.read(prog, self.ptx_size, self.ptx)?);
            let cubin = self.read(prog, self.cubin_size, self.cubin)?;
            Ok(Compiled { ptx, cubin, log })
        }
    }

    /// Reads one of the program's outputs: ask its size, then fill a buffer of that size.
    /// SAFETY: `prog` must be a live program, `size`/`get` a matching pair of NVRTC getters.
    unsafe fn read(
        &self,
        prog: Program,
        size: unsafe extern "C" fn(Program, *mut usize) -> NvrtcResult,
        get: unsafe extern "C" fn(Program, *mut c_char) -> NvrtcResult,
    ) -> Result<Vec<u8>, String> {
        let mut n = 0usize;
        unsafe {
            self.check("nvrtc output size", size(prog, &mut n))?;
            let mut buf = vec![0u8; n];
            if n > 0 {
                self.check("nvrtc output", get(prog, buf.as_mut_ptr().cast()))?;
            }
            Ok(buf)
        }
    }
}

/// NVRTC's text outputs end with a NUL byte.
fn to_text(mut bytes: Vec<u8>) -> String {
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
