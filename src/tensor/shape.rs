//! Shape arithmetic: strides, broadcasting and axis normalisation.

/// Row-major strides for `shape`: the last axis has stride 1.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut s = 1;
    for d in (0..shape.len()).rev() {
        strides[d] = s;
        s *= shape[d];
    }
    strides
}

/// Number of elements of `shape` (1 for a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The numpy broadcast of two shapes: align on the right; sizes must match or one must be 1.
/// Panics naming `op` and both shapes when they do not broadcast.
pub fn broadcast_shapes(op: &str, a: &[usize], b: &[usize]) -> Vec<usize> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => panic!("{op}: shapes {a:?} and {b:?} do not broadcast"),
        };
    }
    out
}

/// Strides that read a tensor of `shape`/`strides` as if it had `out` shape (stride 0 where it
/// is broadcast). `shape` must broadcast to `out`.
pub fn broadcast_strides(shape: &[usize], strides: &[usize], out: &[usize]) -> Vec<usize> {
    let lead = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < lead || shape[i - lead] == 1 && out[i] != 1 {
                0
            } else {
                strides[i - lead]
            }
        })
        .collect()
}

/// An axis given as `isize` (negative counts from the end) as an index into `ndim` axes.
pub fn axis(op: &str, axis: isize, ndim: usize) -> usize {
    let a = if axis < 0 { axis + ndim as isize } else { axis };
    assert!(
        a >= 0 && (a as usize) < ndim,
        "{op}: axis {axis} out of range for a {ndim}-d tensor"
    );
    a as usize
}

/// `[outer, n, inner]` sizes of `shape` around axis `a`.
pub fn split_at_axis(shape: &[usize], a: usize) -> (usize, usize, usize) {
    (numel(&shape[..a]), shape[a], numel(&shape[a + 1..]))
}

/// Strides that let a tensor of `shape`/`strides` be read as `new_shape` without copying, if any
/// exist. Walks the old axes from the last, grouping runs of axes that are laid out back to back
/// (each run can be re-split freely); the new axes must tile those runs exactly.
pub fn view_strides(shape: &[usize], strides: &[usize], new_shape: &[usize]) -> Option<Vec<usize>> {
    if numel(shape) <= 1 || shape.is_empty() {
        return Some(contiguous_strides(new_shape));
    }
    let mut new_strides = vec![0; new_shape.len()];
    let mut nd = new_shape.len();
    let mut base = strides[shape.len() - 1];
    let (mut run, mut view_run) = (1, 1);
    for d in (0..shape.len()).rev() {
        run *= shape[d];
        let run_ends = d == 0 || (shape[d - 1] != 1 && strides[d - 1] != run * base);
        if run_ends {
            while nd > 0 && (view_run < run || new_shape[nd - 1] == 1) {
                new_strides[nd - 1] = view_run * base;
                view_run *= new_shape[nd - 1];
                nd -= 1;
            }
            if view_run != run {
                return None;
            }
            if d > 0 {
                base = strides[d - 1];
                run = 1;
                view_run = 1;
            }
        }
    }
    (nd == 0).then_some(new_strides)
}
