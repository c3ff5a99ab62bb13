//! Elementwise kernels over strided views: the loops behind add/mul/exp/... and `contiguous()`.
//!
//! An operand is a [`View`]: a slice, an offset and one stride per output dimension (stride 0 on
//! a broadcast dimension). The output is always contiguous. The last dimension is the inner loop;
//! rows of the output are split across rayon threads when there is enough work.

use super::fastmath::simd;
use rayon::prelude::*;

/// Below this many elements a kernel runs on the calling thread (threads cost more than they save).
pub const PAR_GRAIN: usize = 1 << 15;

/// A strided operand: element `idx` lives at `offset + Σ idx[d]·strides[d]`.
#[derive(Clone, Copy)]
pub struct View<'a, T> {
    pub data: &'a [T],
    pub offset: usize,
    pub strides: &'a [usize],
}

impl<T> View<'_, T> {
    /// True when the view is the row-major contiguous layout of `shape`.
    fn is_dense(&self, shape: &[usize]) -> bool {
        let mut expect = 1;
        for (&d, &s) in shape.iter().zip(self.strides).rev() {
            if d != 1 && s != expect {
                return false;
            }
            expect *= d;
        }
        true
    }
}

/// Calls `f(first_row, chunk)` over chunks of whole rows of `out`, in parallel when large.
pub fn for_rows<T: Send, F>(out: &mut [T], row_len: usize, f: F)
where
    F: Fn(usize, &mut [T]) + Sync,
{
    let row_len = row_len.max(1);
    if out.len() < PAR_GRAIN || out.len() <= row_len {
        f(0, out);
        return;
    }
    let rows_per_chunk = PAR_GRAIN.div_ceil(row_len);
    out.par_chunks_mut(rows_per_chunk * row_len)
        .enumerate()
        .for_each(|(c, chunk)| f(c * rows_per_chunk, chunk));
}

/// Offset of the first element of output row `row` (row = index over all dims but the last).
#[inline]
fn row_offset<T>(v: &View<T>, shape: &[usize], mut row: usize) -> usize {
    let nd = shape.len();
    let mut off = v.offset;
    for d in (0..nd.saturating_sub(1)).rev() {
        let i = row % shape[d];
        row /= shape[d];
        off += i * v.strides[d];
    }
    off
}

/// `out[i] = f(a[i])` for every index of `shape`.
pub fn map1<T, F>(shape: &[usize], a: View<T>, out: &mut [T], f: F)
where
    T: Copy + Send + Sync,
    F: Fn(T) -> T + Sync,
{
    let n = out.len();
    if n == 0 {
        return;
    }
    if a.is_dense(shape) {
        let src = &a.data[a.offset..a.offset + n];
        for_rows(out, 1, |start, chunk| {
            simd(|| {
                for (o, &x) in chunk.iter_mut().zip(&src[start..]) {
                    *o = f(x);
                }
            })
        });
        return;
    }
    let inner = shape.last().copied().unwrap_or(1);
    let sa = a.strides.last().copied().unwrap_or(0);
    for_rows(out, inner, |first, chunk| {
        for (r, orow) in chunk.chunks_mut(inner).enumerate() {
            let oa = row_offset(&a, shape, first + r);
            match sa {
                0 => orow.fill(f(a.data[oa])),
                1 => {
                    for (o, &x) in orow.iter_mut().zip(&a.data[oa..oa + inner]) {
                        *o = f(x);
                    }
                }
                _ => {
                    for (j, o) in orow.iter_mut().enumerate() {
                        *o = f(a.data[oa + j * sa]);
                    }
                }
            }
        }
    });
}

/// `out[i] = f(a[i], b[i])` for every index of `shape` (a and b already broadcast to `shape`).
pub fn map2<T, F>(shape: &[usize], a: View<T>, b: View<T>, out: &mut [T], f: F)
where
    T: Copy + Send + Sync,
    F: Fn(T, T) -> T + Sync,
{
    let n = out.len();
    if n == 0 {
        return;
    }
    if a.is_dense(shape) && b.is_dense(shape) {
        let (sa, sb) = (
            &a.data[a.offset..a.offset + n],
            &b.data[b.offset..b.offset + n],
        );
        for_rows(out, 1, |start, chunk| {
            simd(|| {
                for ((o, &x), &y) in chunk.iter_mut().zip(&sa[start..]).zip(&sb[start..]) {
                    *o = f(x, y);
                }
            })
        });
        return;
    }
    let inner = shape.last().copied().unwrap_or(1);
    let la = a.strides.last().copied().unwrap_or(0);
    let lb = b.strides.last().copied().unwrap_or(0);
    for_rows(out, inner, |first, chunk| {
        for (r, orow) in chunk.chunks_mut(inner).enumerate() {
            let oa = row_offset(&a, shape, first + r);
            let ob = row_offset(&b, shape, first + r);
            match (la, lb) {
                // The common broadcast cases, with unit-stride inner loops the compiler vectorises.
                (1, 1) => {
                    let (ra, rb) = (&a.data[oa..oa + inner], &b.data[ob..ob + inner]);
                    for ((o, &x), &y) in orow.iter_mut().zip(ra).zip(rb) {
                        *o = f(x, y);
                    }
                }
                (1, 0) => {
                    let y = b.data[ob];
                    for (o, &x) in orow.iter_mut().zip(&a.data[oa..oa + inner]) {
                        *o = f(x, y);
                    }
                }
                (0, 1) => {
                    let x = a.data[oa];
                    for (o, &y) in orow.iter_mut().zip(&b.data[ob..ob + inner]) {
                        *o = f(x, y);
                    }
                }
                _ => {
                    for (j, o) in orow.iter_mut().enumerate() {
                        *o = f(a.data[oa + j * la], b.data[ob + j * lb]);
                    }
                }
            }
        }
    });
}

/// `out[i] = f(a[i], b[i], c[i])` over equal-length contiguous slices (fused backward rules).
pub fn zip3<T, F>(a: &[T], b: &[T], c: &[T], out: &mut [T], f: F)
where
    T: Copy + Send + Sync,
    F: Fn(T, T, T) -> T + Sync,
{
    assert!(a.len() == out.len() && b.len() == out.len() && c.len() == out.len());
    for_rows(out, 1, |start, chunk| {
        let it = chunk
            .iter_mut()
            .zip(&a[start..])
            .zip(&b[start..])
            .zip(&c[start..]);
        for (((o, &x), &y), &z) in it {
            *o = f(x, y, z);
        }
    });
}

/// Sets `x[.., i, j] = value` where `j > i + (s − t)`: the causal mask of attention over a
/// contiguous `[.., t, s]` tensor (query `i` may see keys up to its own position; with `s > t`
/// the queries are the last `t` positions, as with a KV cache).
pub fn causal_fill<T: Copy + Send + Sync>(x: &mut [T], t: usize, s: usize, value: T) {
    assert!(s >= t, "causal_fill: {t} queries but only {s} keys");
    for_rows(x, s, |first, chunk| {
        for (r, row) in chunk.chunks_mut(s).enumerate() {
            let i = (first + r) % t;
            row[i + (s - t) + 1..].fill(value);
        }
    });
}

/// `dst[i] += src[i]` for every index of `shape`, where `dst` is a strided window of a mutable
/// buffer (e.g. the slice of a gradient that a `narrow` view covers).
pub fn add_assign_strided<T>(
    shape: &[usize],
    dst: &mut [T],
    dst_offset: usize,
    dst_strides: &[usize],
    src: View<T>,
) where
    T: Copy + Send + Sync + std::ops::AddAssign,
{
    let n: usize = shape.iter().product();
    if n == 0 {
        return;
    }
    let inner = shape.last().copied().unwrap_or(1);
    let (ld, ls) = (
        dst_strides.last().copied().unwrap_or(0),
        src.strides.last().copied().unwrap_or(0),
    );
    let dview = View {
        data: &[] as &[T],
        offset: dst_offset,
        strides: dst_strides,
    };
    if dst_offset == 0 && dview.is_dense(shape) && dst.len() == n {
        // The whole of a contiguous buffer: rows in parallel.
        for_rows(dst, inner, |first, chunk| {
            for (r, drow) in chunk.chunks_mut(inner).enumerate() {
                let os = row_offset(&src, shape, first + r);
                if ls == 1 {
                    for (d, &s) in drow.iter_mut().zip(&src.data[os..os + inner]) {
                        *d += s;
                    }
                } else {
                    for (j, d) in drow.iter_mut().enumerate() {
                        *d += src.data[os + j * ls];
                    }
                }
            }
        });
        return;
    }
    for row in 0..n / inner {
        let od = row_offset(&dview, shape, row);
        let os = row_offset(&src, shape, row);
        if ld == 1 && ls == 1 {
            for (d, &s) in dst[od..od + inner]
                .iter_mut()
                .zip(&src.data[os..os + inner])
            {
                *d += s;
            }
        } else {
            for j in 0..inner {
                dst[od + j * ld] += src.data[os + j * ls];
            }
        }
    }
}
