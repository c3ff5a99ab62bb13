//! Reading the resource report of `ptxas` (NVRTC's `--ptxas-options=-v`): registers, shared
//! memory, stack and spills per kernel. `kernels --ptx-report` prints it as a table.
//!
//! The report looks like this, one block per function:
//!
//! ```text
//! ptxas info    : Function properties for matmul_v4
//! ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
//! ptxas info    : Used 128 registers, used 1 barriers, 40960 bytes smem
//! ```
//!
//! Registers decide how many threads fit on a multiprocessor at once (65536 per SM: 128 per
//! thread allows 512 threads); spills are registers that did not fit and went to (slow) local
//! memory, which a hot loop should never have.

/// What ptxas reports for one kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Resources {
    pub kernel: String,
    pub registers: u32,
    /// Static shared memory per block, in bytes (dynamic shared memory is chosen at launch).
    pub shared_bytes: u32,
    pub stack_bytes: u32,
    pub spill_stores: u32,
    pub spill_loads: u32,
}

/// The number right before `unit` in `line` ("40960 bytes smem" → 40960 for "bytes smem").
fn number_before(line: &str, unit: &str) -> Option<u32> {
    let at = line.find(unit)?;
    line[..at].split_whitespace().last()?.parse().ok()
}

/// Every kernel in a ptxas `-v` log, in the order reported. Functions without a "Used N
/// registers" line (device functions that were not inlined) are left out.
pub fn parse(log: &str) -> Vec<Resources> {
    let mut out = Vec::new();
    let mut current: Option<Resources> = None;
    for line in log.lines() {
        if let Some(name) = line.split("Function properties for ").nth(1) {
            current = Some(Resources {
                kernel: name.trim().to_string(),
                ..Default::default()
            });
        } else if let Some(r) = current.as_mut() {
            if line.contains("stack frame") {
                r.stack_bytes = number_before(line, "bytes stack frame").unwrap_or(0);
                r.spill_stores = number_before(line, "bytes spill stores").unwrap_or(0);
                r.spill_loads = number_before(line, "bytes spill loads").unwrap_or(0);
            } else if let Some(regs) = number_before(line, "registers") {
                r.registers = regs;
                r.shared_bytes = number_before(line, "bytes smem").unwrap_or(0);
                out.extend(current.take());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registers_shared_memory_and_spills() {
        let log = "ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'matmul_v4' for 'sm_90'
ptxas info    : Function properties for matmul_v4
ptxas         .     48 bytes stack frame, 4 bytes spill stores, 8 bytes spill loads
ptxas info    : Used 128 registers, used 1 barriers, 48 bytes cumulative stack size, 40960 bytes smem
ptxas info    : Compile time = 3197.055 ms
ptxas info    : Function properties for _Z6helperv
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Function properties for bias_broadcast
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 22 registers, used 0 barriers
";
        let got = parse(log);
        assert_eq!(
            got,
            [
                Resources {
                    kernel: "matmul_v4".into(),
                    registers: 128,
                    shared_bytes: 40960,
                    stack_bytes: 48,
                    spill_stores: 4,
                    spill_loads: 8,
                },
                Resources {
                    kernel: "bias_broadcast".into(),
                    registers: 22,
                    ..Default::default()
                },
            ]
        );
    }

    #[test]
    fn an_empty_log_has_no_kernels() {
        assert!(parse("ptxas info    : 0 bytes gmem\n").is_empty());
        assert!(parse("").is_empty());
    }
}
