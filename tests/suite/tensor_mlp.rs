//! End to end: a 2-layer MLP `logits = tanh(x·W1 + b1)·W2 + b2` with mean cross-entropy, on a
//! synthetic 3-class task. Its tape gradient matches the gradient derived by hand below
//! (f64: `|Δ| ≤ 1e-12·(1 + |g|)`), and SGD drives the loss down.

use pretrain::tensor::{Rng, Tensor, no_grad};

const N: usize = 64; // examples
const D: usize = 5; // inputs
const H: usize = 16; // hidden units
const K: usize = 3; // classes

/// The task: the class is the argmax of three fixed linear functions of x.
fn data(rng: &mut Rng) -> (Vec<f64>, Vec<u32>) {
    let x: Vec<f64> = (0..N * D).map(|_| rng.normal()).collect();
    let y = (0..N)
        .map(|i| {
            let r = &x[i * D..(i + 1) * D];
            let s = [r[0] + r[1], r[2] - r[0], r[3] * 0.5 - r[4]];
            (0..K).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap() as u32
        })
        .collect();
    (x, y)
}

/// The gradient written out by hand (plain loops, f64):
/// z = x·W1 + b1, h = tanh(z), l = h·W2 + b2, p = softmax(l), L = −(1/N) Σ_i log p[i, y_i]
/// dl = (p − onehot(y)) / N;  dW2 = hᵀ·dl;  db2 = Σ_i dl
/// dh = dl·W2ᵀ;  dz = dh ⊙ (1 − h²);  dW1 = xᵀ·dz;  db1 = Σ_i dz
fn hand_gradient(
    x: &[f64],
    y: &[u32],
    w1: &[f64],
    b1: &[f64],
    w2: &[f64],
    b2: &[f64],
) -> (f64, [Vec<f64>; 4]) {
    let mut h = vec![0.0; N * H];
    for i in 0..N {
        for j in 0..H {
            let z: f64 = b1[j] + (0..D).map(|p| x[i * D + p] * w1[p * H + j]).sum::<f64>();
            h[i * H + j] = z.tanh();
        }
    }
    let mut dl = vec![0.0; N * K];
    let mut loss = 0.0;
    for i in 0..N {
        let l: Vec<f64> = (0..K)
            .map(|k| b2[k] + (0..H).map(|j| h[i * H + j] * w2[j * K + k]).sum::<f64>())
            .collect();
        let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = l.iter().map(|v| (v - m).exp()).sum();
        loss -= l[y[i] as usize] - m - s.ln();
        for k in 0..K {
            let p = (l[k] - m).exp() / s;
            dl[i * K + k] = (p - if k == y[i] as usize { 1.0 } else { 0.0 }) / N as f64;
        }
    }
    let (mut dw1, mut db1, mut dw2, mut db2) = (
        vec![0.0; D * H],
        vec![0.0; H],
        vec![0.0; H * K],
        vec![0.0; K],
    );
    for i in 0..N {
        for k in 0..K {
            db2[k] += dl[i * K + k];
            for j in 0..H {
                dw2[j * K + k] += h[i * H + j] * dl[i * K + k];
            }
        }
        for j in 0..H {
            let dh: f64 = (0..K).map(|k| dl[i * K + k] * w2[j * K + k]).sum();
            let dz = dh * (1.0 - h[i * H + j] * h[i * H + j]);
            db1[j] += dz;
            for p in 0..D {
                dw1[p * H + j] += x[i * D + p] * dz;
            }
        }
    }
    (loss / N as f64, [dw1, db1, dw2, db2])
}

fn forward(x: &Tensor, y: &[u32], p: &[Tensor]) -> Tensor {
    x.matmul(&p[0])
        .add(&p[1])
        .tanh()
        .matmul(&p[2])
        .add(&p[3])
        .cross_entropy(y)
}

fn init(rng: &mut Rng) -> Vec<Tensor> {
    vec![
        Tensor::randn(&[D, H], 0.0, 0.5, rng),
        Tensor::zeros(&[H]),
        Tensor::randn(&[H, K], 0.0, 0.5, rng),
        Tensor::zeros(&[K]),
    ]
}

#[test]
fn tape_gradient_matches_hand_derivation() {
    let mut rng = Rng::new(21);
    let (xv, y) = data(&mut rng);
    let params: Vec<Tensor> = init(&mut rng)
        .into_iter()
        .map(|t| Tensor::from_vec_f64(t.to_vec_f64(), t.shape()).requires_grad_())
        .collect();
    let x = Tensor::from_vec_f64(xv.clone(), &[N, D]);
    let loss = forward(&x, &y, &params);
    loss.backward();
    let v: Vec<Vec<f64>> = params.iter().map(|p| p.to_vec_f64()).collect();
    let (hand_loss, hand) = hand_gradient(&xv, &y, &v[0], &v[1], &v[2], &v[3]);
    assert!(
        (loss.item_f64() - hand_loss).abs() < 1e-12,
        "loss {} vs {hand_loss}",
        loss.item_f64()
    );
    for (i, (p, g)) in params.iter().zip(&hand).enumerate() {
        for (a, b) in p.grad().unwrap().to_vec_f64().iter().zip(g) {
            assert!(
                (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                "param {i}: tape {a} vs hand {b}"
            );
        }
    }
}

#[test]
fn sgd_drives_the_loss_down() {
    let mut rng = Rng::new(22);
    let (xv, y) = data(&mut rng);
    let x = Tensor::from_vec(xv.iter().map(|&v| v as f32).collect(), &[N, D]);
    let params: Vec<Tensor> = init(&mut rng)
        .into_iter()
        .map(|t| t.requires_grad_())
        .collect();
    let mut first = 0.0;
    let mut last = 0.0;
    for step in 0..300 {
        let loss = forward(&x, &y, &params);
        loss.backward();
        no_grad(|| {
            for p in &params {
                p.update_(|d, g| d.iter_mut().zip(g).for_each(|(w, gw)| *w -= 0.5 * gw));
                p.zero_grad();
            }
        });
        if step == 0 {
            first = loss.item();
        }
        last = loss.item();
    }
    eprintln!("loss {first:.4} → {last:.4}");
    assert!(last < 0.25 * first, "loss only went from {first} to {last}");
}
