//! The layout of up to three strided operands of one shape, passed to a kernel as one by-value
//! argument ([`Strided`], the twin of `struct Strided` in `kernels/strided.cuh`).
//!
//! Operand 0 is the output, 1 the first input, 2 the second; strides are in elements, and a
//! stride of 0 broadcasts an operand along that axis. The device pointers handed to the kernel
//! point at each view's first element, so offsets do not travel in here. [`Strided::new`]
//! simplifies the layout first: it drops size-1 axes and merges neighbouring axes that are
//! contiguous in every operand, so a contiguous tensor becomes one axis, a transposed matrix
//! two, and most calls end with at most two axes to unravel per element.

/// The most axes a layout may keep after merging (`STRIDED_MAX_DIMS` in `kernels/strided.cuh`).
pub const MAX_DIMS: usize = 8;
/// Operands of a layout: the output and two inputs.
pub const OPERANDS: usize = 3;

/// `struct Strided` of `kernels/strided.cuh`, field for field (the emulator checks its size on
/// every launch). Build it with [`Strided::new`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strided {
    nd: i32,
    /// The 4 bytes of padding C puts after `nd`, spelled out so that no byte is uninitialised.
    _pad: i32,
    shape: [i64; MAX_DIMS],
    stride: [[i64; MAX_DIMS]; OPERANDS],
}

const _: () = assert!(std::mem::size_of::<Strided>() == 264);
const _: () = assert!(std::mem::align_of::<Strided>() == 8);

// SAFETY: `Strided` is `repr(C)` and made of plain integers only (no pointers, no padding left
// uninitialised), so its bytes are exactly what the kernel's by-value `Strided` parameter reads.
unsafe impl cudarc::driver::DeviceRepr for Strided {}

/// Row-major strides of `shape` (a contiguous tensor).
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![0; shape.len()];
    let mut k = 1;
    for d in (0..shape.len()).rev() {
        s[d] = k;
        k *= shape[d];
    }
    s
}

impl Strided {
    /// The layout of `strides.len()` operands (1 to 3: output, then inputs) over `shape`, each
    /// `strides[k]` with one stride per axis of `shape`. Size-1 axes are dropped, and axis
    /// `d, d + 1` are merged where `stride[d] == stride[d + 1] · shape[d + 1]` for every operand.
    /// Panics, naming the shape, when more than [`MAX_DIMS`] axes remain, or when the strides
    /// do not match the shape.
    pub fn new(shape: &[usize], strides: &[&[usize]]) -> Strided {
        assert!(
            (1..=OPERANDS).contains(&strides.len()),
            "Strided: {} operands for shape {shape:?}, need 1 to {OPERANDS}",
            strides.len()
        );
        for (k, s) in strides.iter().enumerate() {
            assert_eq!(
                s.len(),
                shape.len(),
                "Strided: operand {k} has strides {s:?} for shape {shape:?}"
            );
        }
        let stride_of = |k: usize, d: usize| strides.get(k).map_or(0, |s| s[d]);
        let mut axes: Vec<(usize, [usize; OPERANDS])> = Vec::new();
        if shape.contains(&0) {
            axes.push((0, [0; OPERANDS])); // nothing to visit
        } else {
            for d in (0..shape.len()).filter(|&d| shape[d] != 1) {
                let st: [usize; OPERANDS] = std::array::from_fn(|k| stride_of(k, d));
                match axes.last_mut() {
                    Some((n, prev)) if (0..OPERANDS).all(|k| prev[k] == st[k] * shape[d]) => {
                        *n *= shape[d];
                        *prev = st;
                    }
                    _ => axes.push((shape[d], st)),
                }
            }
        }
        assert!(
            axes.len() <= MAX_DIMS,
            "Strided: shape {shape:?} keeps {} axes after merging (strides {strides:?}); the \
             kernels take at most {MAX_DIMS}",
            axes.len()
        );
        let mut out = Strided {
            nd: axes.len() as i32,
            _pad: 0,
            shape: [0; MAX_DIMS],
            stride: [[0; MAX_DIMS]; OPERANDS],
        };
        for (d, (n, st)) in axes.iter().enumerate() {
            out.shape[d] = i64::try_from(*n).expect("axis size fits in i64");
            for (row, &v) in out.stride.iter_mut().zip(st) {
                row[d] = i64::try_from(v).expect("stride fits in i64");
            }
        }
        out
    }

    /// Axes kept after merging (0 for a single element).
    pub fn nd(&self) -> usize {
        self.nd as usize
    }

    /// The sizes of the kept axes.
    pub fn shape(&self) -> Vec<usize> {
        self.shape[..self.nd()]
            .iter()
            .map(|&n| n as usize)
            .collect()
    }

    /// Operand `k`'s strides over the kept axes.
    pub fn strides(&self, k: usize) -> Vec<usize> {
        self.stride[k][..self.nd()]
            .iter()
            .map(|&s| s as usize)
            .collect()
    }

    /// Elements the layout visits (the product of the shape).
    pub fn numel(&self) -> usize {
        self.shape[..self.nd()]
            .iter()
            .map(|&n| n as usize)
            .product()
    }

    /// Elements operand `k` spans from its first one: `1 + Σ (shape_d − 1)·stride_d`, 0 when
    /// there is nothing to visit. Its buffer must hold at least this many.
    pub fn span(&self, k: usize) -> usize {
        if self.numel() == 0 {
            return 0;
        }
        1 + (0..self.nd())
            .map(|d| (self.shape[d] as usize - 1) * self.stride[k][d] as usize)
            .sum::<usize>()
    }

    /// Whether operand `k` visits every element at most once, by a sufficient test: sorted by
    /// stride, each axis steps over everything the smaller ones span (true for any view of a
    /// tensor that `permute`, `narrow` and `transpose` can make; false under broadcasting).
    pub fn distinct(&self, k: usize) -> bool {
        let mut axes: Vec<(usize, usize)> = (0..self.nd())
            .map(|d| (self.stride[k][d] as usize, self.shape[d] as usize))
            .collect();
        axes.sort_unstable();
        let mut extent = 1;
        for (stride, n) in axes {
            if stride < extent {
                return false;
            }
            extent += (n - 1) * stride;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_tensors_become_one_axis() {
        let shape = [2, 3, 4];
        let c = contiguous_strides(&shape);
        assert_eq!(c, [12, 4, 1]);
        let s = Strided::new(&shape, &[&c, &c]);
        assert_eq!((s.nd(), s.shape(), s.strides(0)), (1, vec![24], vec![1]));
        assert_eq!((s.numel(), s.span(1)), (24, 24));
    }

    #[test]
    fn size_one_axes_drop_and_broadcasts_stay() {
        // [4, 1, 3] + bias [3] broadcast to [4, 1, 3]: out contiguous, bias stride 0 on axis 0.
        let s = Strided::new(&[4, 1, 3], &[&[3, 3, 1], &[3, 3, 1], &[0, 0, 1]]);
        assert_eq!(s.shape(), [4, 3]);
        assert_eq!(s.strides(2), [0, 1]);
        assert_eq!(s.span(2), 3);
        assert!(s.distinct(0) && !s.distinct(2));
    }

    #[test]
    fn a_transpose_keeps_two_axes() {
        let s = Strided::new(&[5, 7], &[&[7, 1], &[1, 5]]);
        assert_eq!((s.shape(), s.strides(1)), (vec![5, 7], vec![1, 5]));
        assert_eq!(s.strides(2), [0, 0]); // unused operand
        // A scalar and an empty shape.
        assert_eq!(Strided::new(&[], &[&[]]).numel(), 1);
        assert_eq!(Strided::new(&[3, 0], &[&[0, 1]]).numel(), 0);
        assert_eq!(Strided::new(&[3, 0], &[&[0, 1]]).span(0), 0);
    }

    #[test]
    #[should_panic(expected = "shape [2, 2, 2, 2, 2, 2, 2, 2, 2]")]
    fn more_than_eight_axes_panic_naming_the_shape() {
        // Reversed strides: no two neighbours merge.
        let shape = [2; 9];
        let rev: Vec<usize> = (0..9).map(|d| 1 << d).collect();
        Strided::new(&shape, &[&contiguous_strides(&shape), &rev]);
    }
}
