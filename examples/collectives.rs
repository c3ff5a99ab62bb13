//! Every collective of `train::dist::Comm` on the ranks `mpirun` starts, checked against the
//! result worked out locally, plus the ring all-reduce built from send/receive and the bytes it
//! sends. Run it with `mpirun -np 2 target/release/examples/collectives` (built with
//! `--features mpi`); it prints one line per check on rank 0 and exits 1 on a mismatch.

use pretrain::train::dist::{self, Comm};

/// Rank `r`'s test values: distinct per rank and per element, exact in f32.
fn values(r: usize, n: usize) -> Vec<f32> {
    (0..n).map(|i| (r * 1000 + i) as f32).collect()
}

fn check(comm: &dyn Comm, what: &str, got: &[f32], want: &[f32]) -> bool {
    let ok = got == want;
    if comm.is_root() || !ok {
        println!(
            "rank {}: {what}: {}",
            comm.rank(),
            if ok { "ok" } else { "MISMATCH" }
        );
    }
    ok
}

fn main() -> anyhow::Result<()> {
    let comm = dist::connect()?;
    let (n, r) = (comm.world_size(), comm.rank());
    let len = 10 * n + 3;
    let sum: Vec<f32> = (0..len)
        .map(|i| (0..n).map(|q| values(q, len)[i]).sum())
        .collect();
    let mut ok = true;

    let mut buf = values(r, len);
    comm.all_reduce_sum_f32(&mut buf);
    ok &= check(&*comm, "all-reduce", &buf, &sum);

    let mut buf = values(r, len);
    let sent = dist::ring_all_reduce(&*comm, &mut buf);
    ok &= check(&*comm, "ring all-reduce", &buf, &sum);
    // 2(N−1) chunks of len/N floats each (chunk sizes differ by at most one float).
    let want_bytes = 2 * (n - 1) * len * 4 / n;
    let close = sent.abs_diff(want_bytes) <= 2 * (n - 1) * 4;
    ok &= check(
        &*comm,
        "ring bytes are 2(N−1)/N of the buffer",
        &[close as u8 as f32],
        &[1.0],
    );
    if comm.is_root() {
        println!(
            "ring all-reduce of {} bytes on {n} ranks: rank 0 sent {sent}",
            len * 4
        );
    }

    let block = 10;
    let mut mine = vec![0.0; block];
    comm.reduce_scatter_sum_f32(&values(r, block * n), &mut mine);
    let full: Vec<f32> = (0..block * n)
        .map(|i| (0..n).map(|q| values(q, block * n)[i]).sum())
        .collect();
    ok &= check(
        &*comm,
        "reduce-scatter",
        &mine,
        &full[r * block..(r + 1) * block],
    );

    let mut all = vec![0.0; block * n];
    comm.all_gather_f32(&values(r, block), &mut all);
    let want: Vec<f32> = (0..n).flat_map(|q| values(q, block)).collect();
    ok &= check(&*comm, "all-gather", &all, &want);

    let mut buf = values(r, 5);
    comm.broadcast_f32(&mut buf, n - 1);
    ok &= check(&*comm, "broadcast", &buf, &values(n - 1, 5));

    // A ring of sends: each rank sends to the next and receives from the one before.
    let mut got = vec![0.0; 4];
    comm.send_recv_f32(&values(r, 4), (r + 1) % n, &mut got, (r + n - 1) % n);
    ok &= check(&*comm, "send-receive", &got, &values((r + n - 1) % n, 4));
    if n >= 2 {
        if r == 0 {
            comm.send_f32(&values(0, 3), 1);
        } else if r == 1 {
            let mut got = vec![0.0; 3];
            comm.recv_f32(&mut got, 0);
            ok &= check(&*comm, "send then receive", &got, &values(0, 3));
        }
    }

    // Sub-groups: even and odd ranks; each all-reduces among its own.
    let sub = comm.split(r % 2);
    let mut buf = vec![r as f32];
    sub.all_reduce_sum_f32(&mut buf);
    let want: f32 = (0..n).filter(|q| q % 2 == r % 2).map(|q| q as f32).sum();
    ok &= check(&*comm, "split into even and odd ranks", &buf, &[want]);
    ok &= sub.rank() == r / 2;

    comm.barrier();
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
