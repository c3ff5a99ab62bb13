//! Differentiable ops: each computes its result through `backend` and records how to
//! backpropagate through it. Views (reshape, permute, narrow, expand) share storage.

use super::autograd::{Into, record, record_into};
use super::backend::{self, Binary, Unary};
use super::shape::{self, broadcast_shapes, contiguous_strides, numel};
use super::storage::DType;
use super::tensor::Tensor;
use crate::tensor::cpu::matmul::Layout;

/// Sums `g` down to `shape` (undoes broadcasting): the gradient of a broadcast input.
pub(crate) fn sum_to(g: &Tensor, shape: &[usize]) -> Tensor {
    if g.shape() == shape {
        return g.clone();
    }
    let lead = g.ndim() - shape.len();
    let reduced: Vec<bool> = (0..g.ndim())
        .map(|d| d < lead || (shape[d - lead] == 1 && g.shape()[d] != 1))
        .collect();
    // Fast path: only a prefix of axes is reduced (a bias gradient): one column-sum pass.
    let p = reduced.iter().take_while(|&&r| r).count();
    let r = if p > 0 && reduced[p..].iter().all(|&r| !r) {
        let rest = numel(&g.shape()[p..]);
        let g2 = backend::contiguous(g).reshape_view(&[numel(&g.shape()[..p]), rest]);
        backend::sum_axis(&g2, 0)
    } else {
        let mut r = g.clone();
        for (d, &red) in reduced.iter().enumerate() {
            if red {
                r = backend::sum_axis(&r, d);
            }
        }
        r
    };
    backend::contiguous(&r).reshape_view(shape)
}

impl Tensor {
    /// A view with new shape/strides (no record); `self` must be contiguous for `reshape_view`.
    pub(crate) fn reshape_view(&self, shape: &[usize]) -> Tensor {
        debug_assert!(self.is_contiguous());
        self.view_raw(shape.to_vec(), contiguous_strides(shape), self.offset())
    }

    /// The transpose of the last two axes as a plain view (no record): for backends.
    pub(crate) fn t_view(&self) -> Tensor {
        let nd = self.ndim();
        let (mut shape, mut strides) = (self.shape().to_vec(), self.strides().to_vec());
        shape.swap(nd - 2, nd - 1);
        strides.swap(nd - 2, nd - 1);
        self.view_raw(shape, strides, self.offset())
    }

    // ---- views --------------------------------------------------------------------------

    /// Same elements, new shape: a view when the layout allows it (always for a contiguous
    /// tensor), else a copy.
    pub fn reshape(&self, new_shape: &[usize]) -> Tensor {
        assert_eq!(
            numel(new_shape),
            self.numel(),
            "reshape: shape {:?} cannot become {new_shape:?}",
            self.shape()
        );
        if self.shape() == new_shape {
            return self.clone();
        }
        let out = match shape::view_strides(self.shape(), self.strides(), new_shape) {
            Some(strides) => self.view_raw(new_shape.to_vec(), strides, self.offset()),
            None => backend::copy(self).reshape_view(new_shape),
        };
        let old = self.shape().to_vec();
        record(out, "reshape", &[self], move |g| {
            vec![Some(g.reshape(&old))]
        })
    }

    /// Reorders the axes: axis `i` of the result is axis `perm[i]` of `self` (a view).
    pub fn permute(&self, perm: &[usize]) -> Tensor {
        let nd = self.ndim();
        let mut seen = vec![false; nd];
        assert!(
            perm.len() == nd
                && perm
                    .iter()
                    .all(|&p| p < nd && !std::mem::replace(&mut seen[p], true)),
            "permute: {perm:?} is not a permutation of the axes of shape {:?}",
            self.shape()
        );
        let shape = perm.iter().map(|&p| self.shape()[p]).collect();
        let strides = perm.iter().map(|&p| self.strides()[p]).collect();
        let out = self.view_raw(shape, strides, self.offset());
        let mut inv = vec![0; nd];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        record(out, "permute", &[self], move |g| {
            vec![Some(g.permute(&inv))]
        })
    }

    /// Swaps two axes (a view).
    pub fn transpose(&self, a: isize, b: isize) -> Tensor {
        let (a, b) = (
            shape::axis("transpose", a, self.ndim()),
            shape::axis("transpose", b, self.ndim()),
        );
        let mut perm: Vec<usize> = (0..self.ndim()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Transpose of the last two axes (a view).
    pub fn t(&self) -> Tensor {
        self.transpose(-2, -1)
    }

    /// `len` entries of axis `axis` starting at `start` (a view).
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Tensor {
        let a = shape::axis("narrow", axis, self.ndim());
        let full = self.shape()[a];
        assert!(
            start + len <= full,
            "narrow: range {start}..{} out of bounds for axis {a} of shape {:?}",
            start + len,
            self.shape()
        );
        let mut shape = self.shape().to_vec();
        shape[a] = len;
        let out = self.view_raw(
            shape,
            self.strides().to_vec(),
            self.offset() + start * self.strides()[a],
        );
        // Backward: the engine adds the slice's gradient into the matching window of the
        // input's gradient (see `autograd::record_into`), so splitting qkv three ways costs one
        // zero-filled buffer rather than three padded copies.
        record_into(out, "narrow", self, Into::Region { axis: a, start })
    }

    /// A broadcast view of `self` with shape `shape` (stride 0 on broadcast axes).
    pub fn expand(&self, shape: &[usize]) -> Tensor {
        let b = broadcast_shapes("expand", self.shape(), shape);
        assert_eq!(
            b,
            shape,
            "expand: shape {:?} cannot expand to {shape:?}",
            self.shape()
        );
        let strides = shape::broadcast_strides(self.shape(), self.strides(), shape);
        let out = self.view_raw(shape.to_vec(), strides, self.offset());
        let orig = self.shape().to_vec();
        record(out, "expand", &[self], move |g| {
            vec![Some(sum_to(g, &orig))]
        })
    }

    /// A contiguous tensor with the same values (no copy when already contiguous).
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            return self.clone();
        }
        record(backend::copy(self), "contiguous", &[self], |g| {
            vec![Some(g.clone())]
        })
    }

    /// Converts to `dtype` (recorded: the gradient is converted back).
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if self.dtype() == dtype {
            return self.clone();
        }
        let from = self.dtype();
        record(backend::cast(self, dtype), "to_dtype", &[self], move |g| {
            vec![Some(backend::cast(g, from))]
        })
    }

    // ---- elementwise --------------------------------------------------------------------

    fn binary(&self, other: &Tensor, op: Binary) -> Tensor {
        let out = backend::binary(op, self, other);
        let (ra, rb) = (self.requires_grad(), other.requires_grad());
        let (sa, sb) = (self.shape().to_vec(), other.shape().to_vec());
        // Only mul and div need their inputs saved for backward.
        let saved = matches!(op, Binary::Mul | Binary::Div).then(|| (self.clone(), other.clone()));
        record(out, op.name(), &[self, other], move |g| {
            let (ga, gb) = match (op, saved) {
                (Binary::Add, _) => (ra.then(|| g.clone()), rb.then(|| g.clone())),
                (Binary::Sub, _) => (ra.then(|| g.clone()), rb.then(|| g.neg())),
                (Binary::Mul, Some((a, b))) => (ra.then(|| g.mul(&b)), rb.then(|| g.mul(&a))),
                (Binary::Div, Some((a, b))) => (
                    ra.then(|| g.div(&b)),
                    rb.then(|| g.mul(&a).div(&b.mul(&b)).neg()),
                ),
                _ => unreachable!(),
            };
            vec![ga.map(|t| sum_to(&t, &sa)), gb.map(|t| sum_to(&t, &sb))]
        })
    }

    /// `self + other` with numpy broadcasting.
    pub fn add(&self, other: &Tensor) -> Tensor {
        self.binary(other, Binary::Add)
    }

    pub fn sub(&self, other: &Tensor) -> Tensor {
        self.binary(other, Binary::Sub)
    }

    pub fn mul(&self, other: &Tensor) -> Tensor {
        self.binary(other, Binary::Mul)
    }

    pub fn div(&self, other: &Tensor) -> Tensor {
        self.binary(other, Binary::Div)
    }

    fn unary(&self, op: Unary, name: &'static str) -> Tensor {
        let out = backend::unary(op, self);
        let x = self.clone();
        let y = out.detach();
        record(out, name, &[self], move |g| {
            vec![Some(match op {
                Unary::AddScalar(_) => g.clone(),
                Unary::MulScalar(c) => g.mul_scalar(c),
                Unary::Neg => g.neg(),
                _ => backend::unary_backward(op, &x, &y, g),
            })]
        })
    }

    pub fn add_scalar(&self, c: f64) -> Tensor {
        self.unary(Unary::AddScalar(c), "add_scalar")
    }

    pub fn mul_scalar(&self, c: f64) -> Tensor {
        self.unary(Unary::MulScalar(c), "mul_scalar")
    }

    pub fn neg(&self) -> Tensor {
        self.unary(Unary::Neg, "neg")
    }

    pub fn exp(&self) -> Tensor {
        self.unary(Unary::Exp, "exp")
    }

    /// Natural logarithm.
    pub fn log(&self) -> Tensor {
        self.unary(Unary::Log, "log")
    }

    pub fn sqrt(&self) -> Tensor {
        self.unary(Unary::Sqrt, "sqrt")
    }

    pub fn tanh(&self) -> Tensor {
        self.unary(Unary::Tanh, "tanh")
    }

    pub fn relu(&self) -> Tensor {
        self.unary(Unary::Relu, "relu")
    }

    /// `self^p` elementwise (for non-integer `p`, `self` must be positive).
    pub fn powf(&self, p: f64) -> Tensor {
        self.unary(Unary::Powf(p), "powf")
    }

    /// GELU, tanh approximation (GPT-2).
    pub fn gelu(&self) -> Tensor {
        self.unary(Unary::Gelu, "gelu")
    }

    // ---- reductions ---------------------------------------------------------------------

    fn drop_axis(shape: &[usize], a: usize) -> Vec<usize> {
        let mut s = shape.to_vec();
        s.remove(a);
        s
    }

    /// Sum over `axis`; `keepdim` keeps it with size 1.
    pub fn sum(&self, axis: isize, keepdim: bool) -> Tensor {
        let a = shape::axis("sum", axis, self.ndim());
        let shape = self.shape().to_vec();
        let out = record(backend::sum_axis(self, a), "sum", &[self], move |g| {
            vec![Some(g.expand(&shape))]
        });
        if keepdim {
            out
        } else {
            out.reshape(&Self::drop_axis(self.shape(), a))
        }
    }

    /// Mean over `axis`.
    pub fn mean(&self, axis: isize, keepdim: bool) -> Tensor {
        let a = shape::axis("mean", axis, self.ndim());
        let n = self.shape()[a];
        self.sum(axis, keepdim).mul_scalar(1.0 / n as f64)
    }

    /// Max over `axis` (the gradient flows to the first maximum).
    pub fn max(&self, axis: isize, keepdim: bool) -> Tensor {
        let a = shape::axis("max", axis, self.ndim());
        let out = backend::max_axis(self, a);
        let (x, y) = (self.clone(), out.detach());
        let out = record(out, "max", &[self], move |g| {
            vec![Some(backend::max_axis_backward(&x, &y, g, a))]
        });
        if keepdim {
            out
        } else {
            out.reshape(&Self::drop_axis(self.shape(), a))
        }
    }

    /// Sum of every element, as a scalar (0-d) tensor.
    pub fn sum_all(&self) -> Tensor {
        self.reshape(&[self.numel()]).sum(0, false)
    }

    /// Mean of every element, as a scalar.
    pub fn mean_all(&self) -> Tensor {
        self.sum_all().mul_scalar(1.0 / self.numel() as f64)
    }

    // ---- matmul -------------------------------------------------------------------------

    /// Matrix product over the last two axes; batch axes broadcast (numpy `matmul`, ≥ 2-d).
    /// Transposed views (`w.t()`) are read in place, not copied.
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        assert!(
            self.ndim() >= 2 && other.ndim() >= 2,
            "matmul: shapes {:?} and {:?}: both need at least 2 axes",
            self.shape(),
            other.shape()
        );
        if other.ndim() == 2 && self.ndim() > 2 {
            // [.., m, k] @ [k, n]: fold the batch into m for one large gemm (and one in backward).
            let k = self.shape()[self.ndim() - 1];
            assert_eq!(
                k,
                other.shape()[0],
                "matmul: shapes {:?} and {:?} do not multiply",
                self.shape(),
                other.shape()
            );
            let mut out_shape = self.shape().to_vec();
            *out_shape.last_mut().unwrap() = other.shape()[1];
            let a2 = self.reshape(&[self.numel() / k.max(1), k]);
            return a2.matmul(other).reshape(&out_shape);
        }
        let out = backend::matmul(self, other);
        let (a, b) = (self.clone(), other.clone());
        record(out, "matmul", &[self, other], move |g| {
            let ga = a
                .requires_grad()
                .then(|| sum_to(&g.matmul(&b.t()), a.shape()));
            let gb = b
                .requires_grad()
                .then(|| sum_to(&a.t().matmul(g), b.shape()));
            vec![ga, gb]
        })
    }

    /// `self · w + b` over the last axis of `self`, with `w` of shape `[in, out]` (GPT-2's
    /// Conv1D layout; pass `w.t()` for a PyTorch `[out, in]` weight) and `b` of shape `[out]`.
    /// One node: the bias is added into the product's buffer in place, and backward gives
    /// `dx = g·wᵀ`, `dw = xᵀ·g`, `db = Σ_rows g`.
    pub fn linear(&self, w: &Tensor, b: Option<&Tensor>) -> Tensor {
        let k = *self
            .shape()
            .last()
            .expect("linear: input needs at least 1 axis");
        assert!(
            w.ndim() == 2 && w.shape()[0] == k,
            "linear: input {:?} and weight {:?} do not match (weight is [in, out])",
            self.shape(),
            w.shape()
        );
        let n = w.shape()[1];
        if let Some(b) = b {
            assert_eq!(
                b.shape(),
                [n],
                "linear: bias {:?} for weight {:?}",
                b.shape(),
                w.shape()
            );
        }
        let mut out_shape = self.shape().to_vec();
        *out_shape.last_mut().unwrap() = n;
        let x2 = self.reshape(&[self.numel() / k.max(1), k]);
        let y = backend::linear(&x2, w, b);
        let (xs, ws, has_b) = (x2.clone(), w.clone(), b.is_some());
        let y = y.reshape_view(&out_shape);
        let mut inputs = vec![&x2, w];
        if let Some(b) = b {
            inputs.push(b);
        }
        record(y, "linear", &inputs, move |g| {
            let g2 = g.reshape(&[xs.shape()[0], ws.shape()[1]]);
            let transposed = |t: &Tensor| backend::mat_layout(t) == Some(Layout::T);
            let gx = xs.requires_grad().then(|| g2.matmul(&ws.t()));
            let gw = ws.requires_grad().then(|| {
                if transposed(&ws) {
                    g2.t().matmul(&xs).t()
                } else {
                    xs.t().matmul(&g2)
                }
            });
            let mut v = vec![gx, gw];
            if has_b {
                v.push(Some(sum_to(&g2, &[ws.shape()[1]])));
            }
            v
        })
    }

    // ---- fused neural-network ops -------------------------------------------------------

    /// Softmax over the last axis.
    pub fn softmax(&self) -> Tensor {
        let out = backend::softmax(self, false);
        let y = out.detach();
        record(out, "softmax", &[self], move |g| {
            vec![Some(backend::softmax_backward(&y, g, false))]
        })
    }

    /// Log-softmax over the last axis.
    pub fn log_softmax(&self) -> Tensor {
        let out = backend::softmax(self, true);
        let y = out.detach();
        record(out, "log_softmax", &[self], move |g| {
            vec![Some(backend::softmax_backward(&y, g, true))]
        })
    }

    /// Attention's `softmax(scale·x)` with the causal mask over the last two axes `[T, S]` built in
    /// (key `j > i + S − T` gets probability 0): one fused pass instead of scale, mask, softmax.
    pub fn causal_softmax(&self, scale: f64) -> Tensor {
        let out = backend::causal_softmax(self, scale);
        let y = out.detach();
        record(out, "causal_softmax", &[self], move |g| {
            vec![Some(backend::causal_softmax_backward(&y, g, scale))]
        })
    }

    /// LayerNorm over the last axis with `weight` and `bias` of shape `[C]`.
    pub fn layer_norm(&self, weight: &Tensor, bias: &Tensor, eps: f64) -> Tensor {
        let (y, mean, rstd) = backend::layernorm(self, weight, bias, eps);
        let (x, w) = (self.clone(), weight.clone());
        record(y, "layer_norm", &[self, weight, bias], move |g| {
            let stats = backend::LayerNormStats {
                mean: &mean,
                rstd: &rstd,
            };
            let (dx, dw, db) = backend::layernorm_backward(&x, &w, stats, g);
            vec![Some(dx), Some(dw), Some(db)]
        })
    }

    /// Embedding lookup: `self` is the `[vocab, dim]` table; `ids` (shape `shape`) pick rows.
    /// The result has shape `shape + [dim]`. Backward adds each gradient row into the table's
    /// gradient at its id (`autograd::Into::Rows`): a tied embedding, whose gradient also comes
    /// whole from the LM head, is then updated in place instead of summed with a mostly-zero
    /// table of its own.
    pub fn embedding(&self, ids: &[u32], shape: &[usize]) -> Tensor {
        let out = backend::embedding(self, ids, shape);
        record_into(out, "embedding", self, Into::Rows(ids.to_vec()))
    }

    /// Mean cross-entropy between logits `[.., classes]` and integer targets (one per row).
    pub fn cross_entropy(&self, targets: &[u32]) -> Tensor {
        self.cross_entropy_ignore(targets, None)
    }

    /// Cross-entropy that skips rows whose target equals `ignore` (the mean is over the rest).
    pub fn cross_entropy_ignore(&self, targets: &[u32], ignore: Option<u32>) -> Tensor {
        let c = *self
            .shape()
            .last()
            .expect("cross_entropy: logits need at least 1 axis");
        let rows = self.numel() / c.max(1);
        assert_eq!(
            rows,
            targets.len(),
            "cross_entropy: logits {:?} have {rows} rows but {} targets were given",
            self.shape(),
            targets.len()
        );
        let x = if self.ndim() == 2 {
            self.clone()
        } else {
            self.reshape(&[rows, c])
        };
        let t = backend::Targets {
            ids: targets,
            ignore,
        };
        let (loss, lse, _) = backend::cross_entropy(&x, t);
        let (xs, ids) = (x.clone(), targets.to_vec());
        record(loss, "cross_entropy", &[&x], move |g| {
            let t = backend::Targets { ids: &ids, ignore };
            vec![Some(backend::cross_entropy_backward(&xs, &lse, t, g))]
        })
    }

    /// `value` where `mask` (broadcast to self's shape) is non-zero, `self` elsewhere.
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Tensor {
        let out = backend::masked_fill(self, mask, value);
        let m = mask.detach();
        record(out, "masked_fill", &[self], move |g| {
            vec![Some(backend::masked_fill(g, &m, 0.0))]
        })
    }

    /// Causal mask over the last two axes `[T, S]`: entries with key `j > i + S − T` become
    /// `value` (use `f64::NEG_INFINITY` before a softmax).
    pub fn causal_mask(&self, value: f64) -> Tensor {
        let out = backend::causal_fill(self, value);
        record(out, "causal_mask", &[self], |g| {
            vec![Some(backend::causal_fill(g, 0.0))]
        })
    }

    // ---- joining and splitting ----------------------------------------------------------

    /// Concatenates tensors along `axis`.
    pub fn cat(xs: &[&Tensor], axis: isize) -> Tensor {
        assert!(!xs.is_empty(), "cat: no tensors");
        let a = shape::axis("cat", axis, xs[0].ndim());
        let out = backend::cat(xs, a);
        let sizes: Vec<usize> = xs.iter().map(|t| t.shape()[a]).collect();
        record(out, "cat", xs, move |g| {
            let mut start = 0;
            sizes
                .iter()
                .map(|&n| {
                    let part = g.narrow(a as isize, start, n);
                    start += n;
                    Some(part)
                })
                .collect()
        })
    }

    /// Splits along `axis` into pieces of the given sizes (views).
    pub fn split(&self, sizes: &[usize], axis: isize) -> Vec<Tensor> {
        let a = shape::axis("split", axis, self.ndim());
        assert_eq!(
            sizes.iter().sum::<usize>(),
            self.shape()[a],
            "split: sizes {sizes:?} do not add up to axis {a} of shape {:?}",
            self.shape()
        );
        let mut start = 0;
        sizes
            .iter()
            .map(|&n| {
                let t = self.narrow(axis, start, n);
                start += n;
                t
            })
            .collect()
    }

    /// Splits along `axis` into `n` equal pieces (views).
    pub fn chunk(&self, n: usize, axis: isize) -> Vec<Tensor> {
        let a = shape::axis("chunk", axis, self.ndim());
        let size = self.shape()[a];
        assert!(
            n > 0 && size.is_multiple_of(n),
            "chunk: axis {a} of shape {:?} does not split into {n}",
            self.shape()
        );
        self.split(&vec![size / n; n], axis)
    }
}

macro_rules! operator {
    ($trait:ident, $method:ident, $scalar:expr) => {
        impl std::ops::$trait<&Tensor> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$method(self, rhs)
            }
        }
        impl std::ops::$trait<Tensor> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$method(&self, &rhs)
            }
        }
        impl std::ops::$trait<&Tensor> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$method(&self, rhs)
            }
        }
        impl std::ops::$trait<f64> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: f64) -> Tensor {
                #[allow(clippy::redundant_closure_call)]
                $scalar(self, rhs)
            }
        }
        impl std::ops::$trait<f64> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: f64) -> Tensor {
                #[allow(clippy::redundant_closure_call)]
                $scalar(&self, rhs)
            }
        }
    };
}

operator!(Add, add, |t: &Tensor, c| t.add_scalar(c));
operator!(Sub, sub, |t: &Tensor, c: f64| t.add_scalar(-c));
operator!(Mul, mul, |t: &Tensor, c| t.mul_scalar(c));
operator!(Div, div, |t: &Tensor, c: f64| t.mul_scalar(1.0 / c));

impl std::ops::Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}

impl std::ops::Neg for Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(&self)
    }
}
