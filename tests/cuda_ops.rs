//! The CUDA kernels against the CPU on random inputs. These need a GPU: without one each test
//! prints why it skips and passes (CI has no GPU; `scripts/gpu-check.sh` runs them on one).

use half::bf16;
use pretrain::cuda::device::for_tests;
use pretrain::cuda::{Buffer, ops};
use pretrain::tensor::Rng;

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// fp32 → bf16 → fp32 on the GPU equals `half`'s round-to-nearest-even on the host, exactly.
#[test]
fn cast_round_trip_matches_half() {
    let Some(gpu) = for_tests("cast_round_trip_matches_half") else {
        return;
    };
    let mut rng = Rng::new(7);
    for n in [1, 255, 256, 1023, 100_003] {
        let x = random(&mut rng, n);
        let src = Buffer::from_host(&gpu, &x).unwrap();
        let mid = Buffer::<bf16>::zeros(&gpu, n).unwrap();
        let back = Buffer::<f32>::zeros(&gpu, n).unwrap();
        ops::cast_to_floatx(&gpu, mid.ptr(), src.ptr()).unwrap();
        ops::cast_to_float::<bf16>(&gpu, back.ptr(), mid.ptr()).unwrap();
        let got = back.to_host(&gpu).unwrap();
        for (i, (&g, &v)) in got.iter().zip(&x).enumerate() {
            assert_eq!(g, bf16::from_f32(v).to_f32(), "n {n} element {i}");
        }
    }
}
