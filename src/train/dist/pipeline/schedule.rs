//! The order in which one pipeline stage runs its micro-batches: a list of [`Op`]s, computed
//! before the step from `(schedule, stages, stage, micro-batches)` alone, so that it can be
//! printed, tested, and checked for deadlocks without running a model.
//!
//! Two stages × four micro-batches (`F2` = forward of micro-batch 2, `B2` its backward; each
//! column one unit of time, a backward counted as long as a forward for the picture):
//!
//! ```text
//! GPipe      stage 0  F0 F1 F2 F3 .. .. .. .. B0 B1 B2 B3        holds 4 micro-batches
//!            stage 1  .. F0 F1 F2 F3 B0 B1 B2 B3 ..              holds 4
//! 1F1B       stage 0  F0 F1 .. B0 F2 .. B1 F3 .. B2 .. B3        holds 2 (= stages)
//!            stage 1  .. F0 B0 .. F1 B1 .. F2 B2 .. F3 B3        holds 1
//! ```
//!
//! Both leave the same idle time, the *bubble*: `p − 1` slots of `m + p − 1` on each stage.
//! 1F1B (PipeDream-Flush) starts each backward as soon as it can, so a stage holds the
//! activations of at most `p − s` micro-batches instead of all `m`.
//!
//! Stages talk only to their neighbours, with blocking calls. Two neighbours that both *send*
//! first wait for each other forever once a message is too large to be buffered, which is what
//! 1F1B's steady state would do (stage `s` sends a forward while stage `s + 1` sends a backward).
//! There the two messages travel in one exchange, [`Op::SendFwdRecvBwd`] facing
//! [`Op::SendBwdRecvFwd`], as Megatron-LM's `send_forward_recv_backward` does.
//! [`simulate`] checks, for any shape, that every call finds its partner.

use crate::train::dist::PipeSchedule;

/// One thing a stage does; `usize`s are micro-batch numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Receive micro-batch `i`'s activations from the stage before.
    RecvFwd(usize),
    /// Run the stage's layers on micro-batch `i` (and, on the last stage, the loss).
    Forward(usize),
    /// Send micro-batch `i`'s output to the stage after.
    SendFwd(usize),
    /// Send output `i` to the stage after while receiving the gradient of output `j` from it.
    SendFwdRecvBwd(usize, usize),
    /// Receive the gradient of micro-batch `j`'s output from the stage after.
    RecvBwd(usize),
    /// Backward of micro-batch `j` through the stage's layers.
    Backward(usize),
    /// Send the gradient of micro-batch `j`'s input to the stage before.
    SendBwd(usize),
    /// Send input gradient `j` to the stage before while receiving activations `i` from it.
    SendBwdRecvFwd(usize, usize),
}

/// Stage `s`'s ops for one step of `m` micro-batches on `p` stages.
pub fn ops(kind: PipeSchedule, p: usize, s: usize, m: usize) -> Vec<Op> {
    match kind {
        PipeSchedule::Gpipe => gpipe(p, s, m),
        PipeSchedule::OneFOneB => one_f_one_b(p, s, m),
    }
}

/// All forwards, then all backwards in the same order.
fn gpipe(p: usize, s: usize, m: usize) -> Vec<Op> {
    let (first, last) = (s == 0, s + 1 == p);
    let mut v = vec![];
    for i in 0..m {
        v.extend((!first).then_some(Op::RecvFwd(i)));
        v.push(Op::Forward(i));
        v.extend((!last).then_some(Op::SendFwd(i)));
    }
    for j in 0..m {
        v.extend((!last).then_some(Op::RecvBwd(j)));
        v.push(Op::Backward(j));
        v.extend((!first).then_some(Op::SendBwd(j)));
    }
    v
}

/// Warm-up of `p − s − 1` forwards, then one forward one backward, then the remaining
/// backwards (the drain).
fn one_f_one_b(p: usize, s: usize, m: usize) -> Vec<Op> {
    let (first, last) = (s == 0, s + 1 == p);
    let warmup = (p - s - 1).min(m);
    let mut v = vec![];
    for i in 0..warmup {
        v.extend((!first).then_some(Op::RecvFwd(i)));
        v.push(Op::Forward(i));
        v.extend((!last).then_some(Op::SendFwd(i)));
    }
    for j in 0..m - warmup {
        let i = warmup + j;
        // Later inputs arrive with the previous backward's send (below).
        v.extend((j == 0 && !first).then_some(Op::RecvFwd(i)));
        v.push(Op::Forward(i));
        v.extend((!last).then_some(Op::SendFwdRecvBwd(i, j)));
        v.push(Op::Backward(j));
        if !first {
            v.push(match i + 1 < m {
                true => Op::SendBwdRecvFwd(j, i + 1),
                false => Op::SendBwd(j),
            });
        }
    }
    for j in m - warmup..m {
        v.extend((!last).then_some(Op::RecvBwd(j)));
        v.push(Op::Backward(j));
        v.extend((!first).then_some(Op::SendBwd(j)));
    }
    v
}

/// The most micro-batches whose activations a list of ops holds at once (forward done,
/// backward not yet).
pub fn peak_held(ops: &[Op]) -> usize {
    let (mut held, mut peak) = (0usize, 0usize);
    for op in ops {
        match op {
            Op::Forward(_) => held += 1,
            Op::Backward(_) => held -= 1,
            _ => {}
        }
        peak = peak.max(held);
    }
    peak
}

/// Each stage's idle share of the step when a forward takes `f` and a backward `b` on every
/// stage and messages take no time: the ops run in order, each as soon as its input exists.
/// For equal stages this is the bubble, `(p − 1)/(m + p − 1)` of the step on every stage.
pub fn idle_shares(kind: PipeSchedule, p: usize, m: usize, f: f64, b: f64) -> Vec<f64> {
    let all: Vec<Vec<Op>> = (0..p).map(|s| ops(kind, p, s, m)).collect();
    // done_f[s][i], done_b[s][j]: when stage s finished that forward or backward.
    let (mut done_f, mut done_b) = (vec![vec![f64::NAN; m]; p], vec![vec![f64::NAN; m]; p]);
    let (mut at, mut clock) = (vec![0usize; p], vec![0.0f64; p]);
    let mut moved = true;
    while moved {
        moved = false;
        for s in 0..p {
            while let Some(&op) = all[s].get(at[s]) {
                let ready = match op {
                    Op::Forward(i) if s > 0 => done_f[s - 1][i],
                    Op::Backward(j) if s + 1 < p => done_b[s + 1][j],
                    Op::Backward(j) => done_f[s][j],
                    _ => 0.0,
                };
                if ready.is_nan() {
                    break;
                }
                let start = clock[s].max(ready);
                match op {
                    Op::Forward(i) => (clock[s], done_f[s][i]) = (start + f, start + f),
                    Op::Backward(j) => (clock[s], done_b[s][j]) = (start + b, start + b),
                    _ => {}
                }
                at[s] += 1;
                moved = true;
            }
        }
    }
    let end = clock.iter().cloned().fold(0.0, f64::max);
    (0..p).map(|_| 1.0 - m as f64 * (f + b) / end).collect()
}

/// One end of a message: (sender stage, receiver stage, is a gradient, micro-batch).
type Msg = (usize, usize, bool, usize);

/// The messages stage `s`'s op sends and receives, in a form two partners can compare.
fn messages(s: usize, op: Op) -> Option<(Vec<Msg>, Vec<Msg>)> {
    let (prev, next) = (s.wrapping_sub(1), s + 1);
    let (send, recv) = match op {
        Op::Forward(_) | Op::Backward(_) => return None,
        Op::RecvFwd(i) => (vec![], vec![(prev, s, false, i)]),
        Op::SendFwd(i) => (vec![(s, next, false, i)], vec![]),
        Op::SendFwdRecvBwd(i, j) => (vec![(s, next, false, i)], vec![(next, s, true, j)]),
        Op::RecvBwd(j) => (vec![], vec![(next, s, true, j)]),
        Op::SendBwd(j) => (vec![(s, prev, true, j)], vec![]),
        Op::SendBwdRecvFwd(j, i) => (vec![(s, prev, true, j)], vec![(prev, s, false, i)]),
    };
    Some((send, recv))
}

/// Runs every stage's ops with *blocking* (unbuffered) semantics: a communication op completes
/// only together with its partner's, which must send what it receives and receive what it
/// sends. Returns `Err` with the stuck ops when the stages would wait for each other forever.
pub fn simulate(all: &[Vec<Op>]) -> Result<(), String> {
    let mut at = vec![0usize; all.len()];
    let next_comm = |s: usize, at: &mut Vec<usize>| {
        while at[s] < all[s].len() && messages(s, all[s][at[s]]).is_none() {
            at[s] += 1;
        }
        all[s].get(at[s]).and_then(|&op| messages(s, op))
    };
    loop {
        let mut moved = false;
        for s in 0..all.len() {
            let Some((send, recv)) = next_comm(s, &mut at) else {
                continue;
            };
            let peer = send
                .first()
                .or(recv.first())
                .map(|m| if m.0 == s { m.1 } else { m.0 });
            let peer = peer.expect("a communication op has a message");
            let Some((psend, precv)) = all.get(peer).and_then(|_| next_comm(peer, &mut at)) else {
                continue;
            };
            if psend == recv && precv == send {
                (at[s], at[peer], moved) = (at[s] + 1, at[peer] + 1, true);
            }
        }
        if at.iter().zip(all).all(|(&a, ops)| a == ops.len()) {
            return Ok(());
        }
        if !moved {
            let stuck: Vec<String> = (0..all.len())
                .filter_map(|s| all[s].get(at[s]).map(|op| format!("stage {s}: {op:?}")))
                .collect();
            return Err(format!("deadlock: {}", stuck.join(", ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_runs_without_deadlock_and_holds_what_it_should() {
        for kind in [PipeSchedule::Gpipe, PipeSchedule::OneFOneB] {
            for p in 1..=5 {
                for m in 1..=9 {
                    let all: Vec<Vec<Op>> = (0..p).map(|s| ops(kind, p, s, m)).collect();
                    simulate(&all).unwrap_or_else(|e| panic!("{kind:?} p={p} m={m}: {e}"));
                    for (s, o) in all.iter().enumerate() {
                        let want = match kind {
                            PipeSchedule::Gpipe => m,
                            PipeSchedule::OneFOneB => (p - s).min(m),
                        };
                        assert_eq!(peak_held(o), want, "{kind:?} p={p} s={s} m={m}");
                        let bwd: Vec<usize> = o
                            .iter()
                            .filter_map(|op| match op {
                                Op::Backward(j) => Some(*j),
                                _ => None,
                            })
                            .collect();
                        assert_eq!(bwd, (0..m).collect::<Vec<_>>(), "backwards in order");
                    }
                }
            }
        }
    }

    #[test]
    fn equal_stages_idle_for_the_bubble() {
        for kind in [PipeSchedule::Gpipe, PipeSchedule::OneFOneB] {
            for (p, m) in [(2, 1), (2, 4), (3, 8), (4, 4), (5, 2)] {
                let want = (p - 1) as f64 / (m + p - 1) as f64;
                for idle in idle_shares(kind, p, m, 1.0, 2.0) {
                    assert!((idle - want).abs() < 1e-12, "{kind:?} p={p} m={m}: {idle}");
                }
            }
        }
    }

    #[test]
    fn two_ranks_that_both_send_first_are_caught() {
        let a = vec![Op::SendFwd(0), Op::RecvBwd(0)];
        let b = vec![Op::SendBwd(0), Op::RecvFwd(0)];
        assert!(simulate(&[a, b]).unwrap_err().contains("deadlock"));
    }
}
