//! Tensor bookkeeping: views share storage, the RNG is reproducible, dtype conversions, and the
//! autograd tape's rules (accumulation, no_grad, freeing, in-place updates, error messages).

use half::{bf16, f16};
use pretrain::tensor::{DType, Rng, Tensor, no_grad};

#[test]
fn tensor_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tensor>();
    let a = Tensor::zeros(&[1000]);
    let b = a.clone();
    assert!(a.shares_storage(&b));
}

#[test]
fn views_share_storage_and_copy_only_when_needed() {
    let x = Tensor::arange(24).reshape(&[2, 3, 4]);
    assert!(x.is_contiguous());
    let t = x.transpose(1, 2);
    assert!(t.shares_storage(&x));
    assert!(!t.is_contiguous());
    assert_eq!(t.shape(), &[2, 4, 3]);
    assert_eq!(t.strides(), &[12, 1, 4]);
    let n = x.narrow(2, 1, 2);
    assert!(n.shares_storage(&x));
    assert_eq!(n.offset(), 1);
    assert_eq!(
        n.to_vec(),
        vec![1., 2., 5., 6., 9., 10., 13., 14., 17., 18., 21., 22.]
    );
    // contiguous(): the same storage when already contiguous, a copy otherwise.
    assert!(x.contiguous().shares_storage(&x));
    let c = t.contiguous();
    assert!(!c.shares_storage(&x));
    assert_eq!(c.to_vec()[..4], [0., 4., 8., 1.]);
    // reshape of a contiguous tensor is a view; of a transposed one, a copy.
    assert!(x.reshape(&[6, 4]).shares_storage(&x));
    assert!(!t.reshape(&[24]).shares_storage(&x));
    assert_eq!(x.permute(&[2, 0, 1]).shape(), &[4, 2, 3]);
    // expand: stride 0.
    let e = Tensor::arange(3).reshape(&[1, 3]).expand(&[4, 3]);
    assert_eq!(e.strides(), &[0, 1]);
    assert_eq!(e.sum(0, false).to_vec(), vec![0., 4., 8.]);
}

#[test]
fn creation() {
    assert_eq!(Tensor::ones(&[2, 2]).to_vec(), vec![1.0; 4]);
    assert_eq!(Tensor::full(&[3], 2.5).to_vec(), vec![2.5; 3]);
    assert_eq!(Tensor::zeros(&[0, 3]).numel(), 0);
    let s = Tensor::scalar(4.0);
    assert_eq!(s.shape(), &[] as &[usize]);
    assert_eq!(s.item(), 4.0);
    assert_eq!(
        Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]).dim(-1),
        3
    );
}

#[test]
fn rng_is_reproducible_and_restorable() {
    let mut a = Rng::new(42);
    let mut b = Rng::new(42);
    let x = Tensor::randn(&[100], 0.0, 1.0, &mut a);
    let y = Tensor::randn(&[100], 0.0, 1.0, &mut b);
    assert_eq!(x.to_vec(), y.to_vec());
    let saved = a.state();
    let u1 = Tensor::uniform(&[10], -1.0, 1.0, &mut a).to_vec();
    let mut c = Rng::from_state(saved);
    let u2 = Tensor::uniform(&[10], -1.0, 1.0, &mut c).to_vec();
    assert_eq!(u1, u2);
    assert!(u1.iter().all(|v| (-1.0..1.0).contains(v)));
    // Moments of 100k normals: mean ≈ 0, variance ≈ 1 (5σ bounds).
    let mut r = Rng::new(7);
    let v: Vec<f64> = (0..100_000).map(|_| r.normal()).collect();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
    assert!(mean.abs() < 5.0 / 316.0, "mean {mean}");
    assert!((var - 1.0).abs() < 5.0 * (2.0f64 / 1e5).sqrt(), "var {var}");
    assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
}

#[test]
fn half_precision_round_trip() {
    let x = Tensor::from_vec(vec![1.0, -2.5, 3.140625, 0.0], &[2, 2]);
    let b = x.to_bf16_vec();
    assert_eq!(b[1], bf16::from_f32(-2.5));
    assert_eq!(Tensor::from_bf16(&b, &[2, 2]).to_vec(), x.to_vec());
    let h = x.to_f16_vec();
    assert_eq!(h[2], f16::from_f32(3.140625));
    assert_eq!(Tensor::from_f16(&h, &[2, 2]).to_vec(), x.to_vec());
    let d = x.to_dtype(DType::F64);
    assert_eq!(d.dtype(), DType::F64);
    assert_eq!(d.to_vec(), x.to_vec());
}

#[test]
fn gradients_accumulate_and_zero() {
    let w = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]).requires_grad_();
    let loss = |w: &Tensor| w.mul(w).sum_all(); // d/dw = 2w
    loss(&w).backward();
    assert_eq!(w.grad().unwrap().to_vec(), vec![2.0, 4.0, 6.0]);
    loss(&w).backward();
    assert_eq!(w.grad().unwrap().to_vec(), vec![4.0, 8.0, 12.0]);
    w.zero_grad();
    assert!(w.grad().is_none());
}

#[test]
fn dtype_conversion_is_differentiable() {
    let w = Tensor::from_vec_f64(vec![1.0, -2.0], &[2]).requires_grad_();
    w.to_dtype(DType::F32).mul_scalar(3.0).sum_all().backward();
    let g = w.grad().unwrap();
    assert_eq!(g.dtype(), DType::F64);
    assert_eq!(g.to_vec(), vec![3.0, 3.0]);
}

#[test]
fn no_grad_records_nothing() {
    let w = Tensor::ones(&[2]).requires_grad_();
    let y = no_grad(|| w.mul_scalar(2.0));
    assert!(!y.requires_grad());
    let z = w.mul_scalar(2.0);
    assert!(z.requires_grad());
    assert_eq!(z.op_name(), Some("mul_scalar"));
    {
        let _g = pretrain::tensor::NoGradGuard::new();
        assert!(!pretrain::tensor::is_grad_enabled());
    }
    assert!(pretrain::tensor::is_grad_enabled());
}

#[test]
fn graph_is_freed_after_backward() {
    let w = Tensor::ones(&[4]).requires_grad_();
    let h = w.exp();
    let loss = h.sum_all();
    loss.backward();
    assert_eq!(loss.op_name(), None, "the loss's node is freed");
    assert_eq!(h.op_name(), None, "intermediate nodes are freed");
    let again = std::panic::catch_unwind(|| loss.backward());
    assert!(
        again.is_err(),
        "a second backward through a freed graph panics"
    );
}

#[test]
fn update_in_place_is_not_recorded() {
    let w = Tensor::from_vec(vec![1.0, 2.0], &[2]).requires_grad_();
    w.mul(&w).sum_all().backward();
    let alias = w.clone();
    w.update_(|d, g| {
        for (x, gx) in d.iter_mut().zip(g) {
            *x -= 0.5 * gx;
        }
    });
    assert_eq!(w.to_vec(), vec![0.0, 0.0]);
    assert_eq!(alias.to_vec(), vec![0.0, 0.0], "clones see the update");
    assert!(w.is_leaf());
    // The stored gradient owns its storage: scaling it in place touches nothing else.
    let g = w.grad().unwrap();
    g.with_data_mut(|d: &mut [f32]| d.iter_mut().for_each(|x| *x *= 2.0));
    assert_eq!(w.grad().unwrap().to_vec(), vec![4.0, 8.0]);
}

#[test]
fn tied_weights_get_both_gradients() {
    // The same leaf used twice (like GPT-2's tied embedding and LM head) sums both paths.
    let w = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]).requires_grad_();
    let e = w.embedding(&[1], &[1]); // [[3, 4]]
    let logits = e.matmul(&w.t()); // [[3·1+4·2, 3·3+4·4]] = [[11, 25]]
    logits.sum_all().backward();
    // d/dw via the matmul: each row j gets e; via the embedding: row 1 gets Σ_j w[j].
    assert_eq!(
        w.grad().unwrap().to_vec(),
        vec![3.0, 4.0, 3.0 + 4.0, 4.0 + 6.0]
    );
}

#[test]
#[should_panic(expected = "add: shapes [2, 3] and [4] do not broadcast")]
fn shape_mismatch_names_op_and_shapes() {
    Tensor::zeros(&[2, 3]).add(&Tensor::zeros(&[4]));
}

#[test]
#[should_panic(expected = "matmul: shapes [2, 3] and [4, 5] do not multiply")]
fn matmul_mismatch_names_shapes() {
    Tensor::zeros(&[2, 3]).matmul(&Tensor::zeros(&[4, 5]));
}

#[test]
fn reshape_of_views_avoids_copies_when_possible() {
    // A narrowed last axis split into heads: still a view (like q/k/v from a fused qkv).
    let qkv = Tensor::arange(2 * 3 * 12).reshape(&[2, 3, 12]);
    let k = qkv.narrow(2, 4, 4);
    let heads = k.reshape(&[2, 3, 2, 2]);
    assert!(heads.shares_storage(&qkv));
    assert_eq!(heads.strides(), &[36, 12, 2, 1]);
    assert_eq!(heads.to_vec(), k.contiguous().to_vec());
    // Merging a transposed pair of axes needs a copy.
    let t = Tensor::arange(6).reshape(&[2, 3]).t();
    let flat = t.reshape(&[6]);
    assert!(!flat.shares_storage(&t));
    assert_eq!(flat.to_vec(), vec![0., 3., 1., 4., 2., 5.]);
    // Size-1 axes anywhere are fine.
    let x = t.reshape(&[3, 1, 2, 1]);
    assert!(x.shares_storage(&t));
    assert_eq!(x.to_vec(), vec![0., 3., 1., 4., 2., 5.]);
}

#[test]
fn in_place_accumulation_never_changes_a_gradient_someone_holds() {
    let w = Tensor::from_vec(vec![1.0, 2.0], &[2]).requires_grad_();
    w.mul_scalar(3.0).sum_all().backward();
    let held = w.grad().unwrap();
    w.mul_scalar(3.0).sum_all().backward();
    assert_eq!(
        held.to_vec(),
        vec![3.0, 3.0],
        "the first gradient is untouched"
    );
    assert_eq!(w.grad().unwrap().to_vec(), vec![6.0, 6.0]);
    drop(held);
    w.mul_scalar(1.0).sum_all().backward();
    assert_eq!(w.grad().unwrap().to_vec(), vec![7.0, 7.0]);
    // A tensor split three ways gets each slice's gradient in its own window.
    let x = Tensor::arange(6).reshape(&[2, 3]).requires_grad_();
    let p = x.split(&[1, 1, 1], 1);
    p[0].mul_scalar(1.0)
        .add(&p[1].mul_scalar(10.0))
        .add(&p[2].mul_scalar(100.0))
        .sum_all()
        .backward();
    assert_eq!(
        x.grad().unwrap().to_vec(),
        vec![1., 10., 100., 1., 10., 100.]
    );
}

#[test]
fn empty_tensors_do_not_panic() {
    let e = Tensor::zeros(&[0, 3]);
    assert_eq!(e.add(&Tensor::ones(&[3])).shape(), &[0, 3]);
    assert_eq!(e.exp().numel(), 0);
    assert_eq!(e.softmax().shape(), &[0, 3]);
    assert_eq!(e.sum(0, false).to_vec(), vec![0.0; 3]);
    assert_eq!(e.t().contiguous().shape(), &[3, 0]);
    assert_eq!(e.matmul(&Tensor::ones(&[3, 2])).shape(), &[0, 2]);
    assert_eq!(
        Tensor::zeros(&[2, 0])
            .matmul(&Tensor::ones(&[0, 4]))
            .to_vec(),
        vec![0.0; 8]
    );
}

#[test]
fn buffer_pool_reuses_large_buffers() {
    use pretrain::tensor::pool;
    let n = 1 << 16; // 256 KiB of f32: pooled
    let a = Tensor::full(&[n], 3.0);
    drop(a);
    assert!(pool::pooled_bytes() >= n * 4);
    // A reused buffer is fully overwritten: no stale values leak into a new tensor.
    let b = Tensor::full(&[n], 1.0).exp();
    assert!(
        b.to_vec()
            .iter()
            .all(|&v| (v - std::f32::consts::E).abs() < 1e-6)
    );
    let z = Tensor::zeros(&[n]);
    assert!(z.to_vec().iter().all(|&v| v == 0.0));
}

#[test]
fn profiler_reports_ops() {
    use pretrain::tensor::profile;
    profile::enable(true);
    let w = Tensor::ones(&[4, 4]).requires_grad_();
    w.matmul(&w).softmax().sum_all().backward();
    profile::enable(false);
    let r = profile::report();
    assert!(
        r.contains("matmul") && r.contains("softmax_backward"),
        "{r}"
    );
}

#[test]
fn deep_graphs_backpropagate_without_recursion() {
    // 20k chained ops: the topological sort and backward are iterative.
    let w = Tensor::from_vec(vec![1.0], &[1]).requires_grad_();
    let mut x = w.clone();
    for _ in 0..20_000 {
        x = x.mul_scalar(1.0);
    }
    x.sum_all().backward();
    assert_eq!(w.grad().unwrap().to_vec(), vec![1.0]);
}

#[test]
fn deep_graphs_drop_without_recursion() {
    let w = Tensor::from_vec(vec![1.0], &[1]).requires_grad_();
    let mut x = w.clone();
    for _ in 0..200_000 {
        x = x.mul_scalar(1.0);
    }
    drop(x); // no backward: the graph is freed iteratively
}
