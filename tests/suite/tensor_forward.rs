//! Forward ops in f32 against plain f64 reference loops written here, on random odd sizes.
//! Tolerance: `|ours − ref| ≤ 1e-5·(1 + |ref|)` per element (f32 rounding over short sums);
//! matmul uses `1e-5·(1 + Σ|a||b|)` per element (the error bound of a k-term dot product).

use pretrain::tensor::{Rng, Tensor};

const TOL: f64 = 1e-5;

fn rand(shape: &[usize], rng: &mut Rng) -> (Tensor, Vec<f64>) {
    let t = Tensor::randn(shape, 0.0, 1.0, rng);
    let v = t.to_vec_f64();
    (t, v)
}

fn close(name: &str, ours: &Tensor, reference: &[f64]) {
    let got = ours.to_vec_f64();
    assert_eq!(got.len(), reference.len(), "{name}: length");
    for (i, (g, r)) in got.iter().zip(reference).enumerate() {
        assert!(
            (g - r).abs() <= TOL * (1.0 + r.abs()),
            "{name}: element {i}: got {g}, expected {r}"
        );
    }
}

#[test]
fn elementwise_with_broadcasting() {
    let mut rng = Rng::new(11);
    let (a, b, c) = (3, 7, 5);
    let (x, xv) = rand(&[a, 1, c], &mut rng);
    let (y, yv) = rand(&[b, c], &mut rng);
    let mut add = vec![0.0; a * b * c];
    let mut mul = vec![0.0; a * b * c];
    for i in 0..a {
        for j in 0..b {
            for k in 0..c {
                add[(i * b + j) * c + k] = xv[i * c + k] + yv[j * c + k];
                mul[(i * b + j) * c + k] = xv[i * c + k] * yv[j * c + k];
            }
        }
    }
    close("add", &x.add(&y), &add);
    close("mul", &x.mul(&y), &mul);
    close(
        "exp",
        &y.exp(),
        &yv.iter().map(|v| v.exp()).collect::<Vec<_>>(),
    );
    close("neg", &y.neg(), &yv.iter().map(|v| -v).collect::<Vec<_>>());
    close(
        "relu",
        &y.relu(),
        &yv.iter().map(|v| v.max(0.0)).collect::<Vec<_>>(),
    );
    let pos = y.mul(&y).add_scalar(0.5);
    let pv: Vec<f64> = pos.to_vec_f64();
    close(
        "log",
        &pos.log(),
        &pv.iter().map(|v| v.ln()).collect::<Vec<_>>(),
    );
    close(
        "sqrt",
        &pos.sqrt(),
        &pv.iter().map(|v| v.sqrt()).collect::<Vec<_>>(),
    );
    close(
        "powf",
        &pos.powf(1.7),
        &pv.iter().map(|v| v.powf(1.7)).collect::<Vec<_>>(),
    );
    close(
        "div",
        &y.div(&pos),
        &yv.iter().zip(&pv).map(|(a, b)| a / b).collect::<Vec<_>>(),
    );
    close(
        "scalar ops",
        &(&(&y * 2.0) - 1.0),
        &yv.iter().map(|v| 2.0 * v - 1.0).collect::<Vec<_>>(),
    );
    let mask = Tensor::from_vec((0..c).map(|k| (k % 2) as f32).collect(), &[c]);
    let filled: Vec<f64> = yv
        .iter()
        .enumerate()
        .map(|(i, &v)| if i % c % 2 == 1 { -5.0 } else { v })
        .collect();
    close("masked_fill", &y.masked_fill(&mask, -5.0), &filled);
    close(
        "tanh",
        &y.tanh(),
        &yv.iter().map(|v| v.tanh()).collect::<Vec<_>>(),
    );
    let gelu: Vec<f64> = yv
        .iter()
        .map(|&v| {
            0.5 * v
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh())
        })
        .collect();
    close("gelu", &y.gelu(), &gelu);
    // Large enough to run on several threads, with a broadcast row.
    let (big, bv) = rand(&[301, 257], &mut rng);
    let (row, rv) = rand(&[257], &mut rng);
    let want: Vec<f64> = bv
        .iter()
        .enumerate()
        .map(|(i, v)| v - rv[i % 257])
        .collect();
    close("sub (big, row broadcast)", &big.sub(&row), &want);
    let wt: Vec<f64> = (0..257 * 301)
        .map(|i| bv[(i % 301) * 257 + i / 301])
        .collect();
    close("contiguous of transposed", &big.t().contiguous(), &wt);
}

#[test]
fn reductions() {
    let mut rng = Rng::new(12);
    let (a, b, c) = (5, 9, 3);
    let (x, xv) = rand(&[a, b, c], &mut rng);
    let mut sum1 = vec![0.0; a * c];
    let mut max1 = vec![f64::NEG_INFINITY; a * c];
    for i in 0..a {
        for j in 0..b {
            for k in 0..c {
                sum1[i * c + k] += xv[(i * b + j) * c + k];
                max1[i * c + k] = max1[i * c + k].max(xv[(i * b + j) * c + k]);
            }
        }
    }
    close("sum axis 1", &x.sum(1, false), &sum1);
    assert_eq!(x.sum(1, true).shape(), &[a, 1, c]);
    close(
        "mean axis 1",
        &x.mean(1, false),
        &sum1.iter().map(|v| v / b as f64).collect::<Vec<_>>(),
    );
    close("max axis 1", &x.max(1, false), &max1);
    let total: f64 = xv.iter().sum();
    close("sum_all", &x.sum_all(), &[total]);
    // Column sums of a tall matrix (the bias-gradient path, parallel partial sums).
    let (tall, tv) = rand(&[4099, 33], &mut rng);
    let mut cols = vec![0.0; 33];
    for (i, v) in tv.iter().enumerate() {
        cols[i % 33] += v;
    }
    let got = tall.sum(0, false).to_vec_f64();
    for (g, r) in got.iter().zip(&cols) {
        assert!((g - r).abs() < 1e-3, "column sum {g} vs {r}");
    }
}

fn matmul_ref(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut c = vec![0.0; m * n];
    let mut bound = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                c[i * n + j] += a[i * k + p] * b[p * n + j];
                bound[i * n + j] += (a[i * k + p] * b[p * n + j]).abs();
            }
        }
    }
    (c, bound)
}

fn close_mm(name: &str, ours: &Tensor, want: &(Vec<f64>, Vec<f64>)) {
    for (i, ((g, r), s)) in ours
        .to_vec_f64()
        .iter()
        .zip(&want.0)
        .zip(&want.1)
        .enumerate()
    {
        assert!(
            (g - r).abs() <= TOL * (1.0 + s),
            "{name}: element {i}: {g} vs {r}"
        );
    }
}

#[test]
fn matmul_variants() {
    let mut rng = Rng::new(13);
    for (m, k, n) in [(1, 1, 1), (7, 33, 5), (33, 7, 127), (64, 65, 63)] {
        let (a, av) = rand(&[m, k], &mut rng);
        let (b, bv) = rand(&[k, n], &mut rng);
        let want = matmul_ref(&av, &bv, m, k, n);
        close_mm("matmul", &a.matmul(&b), &want);
        // The same product from transposed storage (read as Layout::T, no copy).
        let at = a.t().contiguous();
        let bt = b.t().contiguous();
        close_mm("matmul Aᵀ view", &at.t().matmul(&b), &want);
        close_mm("matmul Bᵀ view", &a.matmul(&bt.t()), &want);
        close_mm("matmul both views", &at.t().matmul(&bt.t()), &want);
    }
    // linear = matmul + bias.
    let (x, _) = rand(&[3, 4, 7], &mut rng);
    let (w, _) = rand(&[7, 5], &mut rng);
    let (bias, _) = rand(&[5], &mut rng);
    let want = x.matmul(&w).add(&bias).to_vec_f64();
    close("linear", &x.linear(&w, Some(&bias)), &want);
    // Batched with broadcasting: [2, 1, m, k] @ [3, k, n] → [2, 3, m, n].
    let (m, k, n) = (5, 7, 3);
    let (a, av) = rand(&[2, 1, m, k], &mut rng);
    let (b, bv) = rand(&[3, k, n], &mut rng);
    let c = a.matmul(&b);
    assert_eq!(c.shape(), &[2, 3, m, n]);
    let cv = c.to_vec_f64();
    for i in 0..2 {
        for j in 0..3 {
            let want = matmul_ref(
                &av[i * m * k..(i + 1) * m * k],
                &bv[j * k * n..(j + 1) * k * n],
                m,
                k,
                n,
            );
            let got = Tensor::from_vec_f64(
                cv[(i * 3 + j) * m * n..(i * 3 + j + 1) * m * n].to_vec(),
                &[m, n],
            );
            close_mm("batched", &got, &want);
        }
    }
}

#[test]
fn softmax_layernorm_cross_entropy() {
    let mut rng = Rng::new(14);
    let (rows, cols) = (37, 101);
    let (x, xv) = rand(&[rows, cols], &mut rng);
    let mut sm = vec![0.0; rows * cols];
    let mut lsm = vec![0.0; rows * cols];
    let mut ln = vec![0.0; rows * cols];
    let (w, wv) = rand(&[cols], &mut rng);
    let (b, bv) = rand(&[cols], &mut rng);
    let targets: Vec<u32> = (0..rows).map(|_| rng.below(cols as u64) as u32).collect();
    let mut ce = 0.0;
    for r in 0..rows {
        let row = &xv[r * cols..(r + 1) * cols];
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
        let mean = row.iter().sum::<f64>() / cols as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
        for j in 0..cols {
            sm[r * cols + j] = (row[j] - m).exp() / s;
            lsm[r * cols + j] = row[j] - m - s.ln();
            ln[r * cols + j] = (row[j] - mean) / (var + 1e-5).sqrt() * wv[j] + bv[j];
        }
        ce += -lsm[r * cols + targets[r] as usize];
    }
    close("softmax", &x.softmax(), &sm);
    close("log_softmax", &x.log_softmax(), &lsm);
    close("layer_norm", &x.layer_norm(&w, &b, 1e-5), &ln);
    close(
        "cross_entropy",
        &x.cross_entropy(&targets),
        &[ce / rows as f64],
    );
    // Stability: huge logits do not overflow.
    let huge = x.mul_scalar(1e4);
    assert!(huge.cross_entropy(&targets).item().is_finite());
    assert!(huge.softmax().to_vec().iter().all(|v| v.is_finite()));
    // ignore index: the mean is over the counted rows only.
    let mut t2 = targets.clone();
    t2[0] = u32::MAX;
    let want = (ce + lsm[targets[0] as usize]) / (rows - 1) as f64;
    close(
        "cross_entropy ignore",
        &x.cross_entropy_ignore(&t2, Some(u32::MAX)),
        &[want],
    );
}

#[test]
fn embedding_masks_cat() {
    let mut rng = Rng::new(15);
    let (table, tv) = rand(&[11, 3], &mut rng);
    let ids = [4u32, 0, 10, 4];
    let e = table.embedding(&ids, &[2, 2]);
    assert_eq!(e.shape(), &[2, 2, 3]);
    let want: Vec<f64> = ids
        .iter()
        .flat_map(|&i| tv[i as usize * 3..i as usize * 3 + 3].to_vec())
        .collect();
    close("embedding", &e, &want);

    let (x, xv) = rand(&[2, 3, 5], &mut rng);
    let m = x.causal_mask(-7.0);
    let want: Vec<f64> = (0..30)
        .map(|i| {
            let (r, j) = ((i / 5) % 3, i % 5);
            if j > r + 2 { -7.0 } else { xv[i] }
        })
        .collect();
    close("causal_mask", &m, &want);

    // Fused causal softmax = scale, mask with −inf, softmax.
    let fused = x.causal_softmax(0.5);
    let composed = x.mul_scalar(0.5).causal_mask(f64::NEG_INFINITY).softmax();
    close("causal_softmax", &fused, &composed.to_vec_f64());

    let (y, yv) = rand(&[2, 1, 5], &mut rng);
    let c = Tensor::cat(&[&x, &y], 1);
    assert_eq!(c.shape(), &[2, 4, 5]);
    let mut want = Vec::new();
    for i in 0..2 {
        want.extend_from_slice(&xv[i * 15..(i + 1) * 15]);
        want.extend_from_slice(&yv[i * 5..(i + 1) * 5]);
    }
    close("cat", &c, &want);
    let parts = c.split(&[3, 1], 1);
    close("split 0", &parts[0], &xv);
    close("split 1", &parts[1], &yv);
}

/// The fused LM head (`classifier_loss`) against matmul + cross_entropy: loss and both
/// gradients, through backward with an upstream factor of 3 (so backward's scaling is
/// exercised). f32 with sums in another order: 1e-5 relative on the loss, 1e-6 absolute on
/// gradients of order 3/rows.
#[test]
fn fused_classifier_matches_matmul_then_cross_entropy() {
    let mut rng = pretrain::tensor::Rng::new(3);
    let (rows, c, v) = (24, 32, 300);
    let x0 = Tensor::randn(&[rows, c], 0.0, 1.0, &mut rng);
    let w0 = Tensor::randn(&[v, c], 0.0, 0.3, &mut rng);
    let targets: Vec<u32> = (0..rows).map(|_| rng.below(v as u64) as u32).collect();
    let run = |fused: bool| {
        let (x, w) = (x0.detach().requires_grad_(), w0.detach().requires_grad_());
        let loss = if fused {
            x.classifier_loss(&w, &targets)
        } else {
            x.matmul(&w.t()).cross_entropy(&targets)
        };
        loss.mul_scalar(3.0).backward();
        let (dx, dw) = (x.grad().unwrap().to_vec(), w.grad().unwrap().to_vec());
        (loss.item(), dx, dw)
    };
    let (l1, dx1, dw1) = run(true);
    let (l2, dx2, dw2) = run(false);
    assert!((l1 - l2).abs() <= 1e-5 * l2.abs(), "loss {l1} vs {l2}");
    assert_eq!((dx1.len(), dw1.len()), (dx2.len(), dw2.len()));
    for (a, b) in dx1.iter().zip(&dx2).chain(dw1.iter().zip(&dw2)) {
        assert!((a - b).abs() <= 1e-6, "gradient {a} vs {b}");
    }
}
