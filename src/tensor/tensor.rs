//! The `Tensor` type: a shape, strides and an offset over shared storage, plus the autograd
//! bookkeeping (does it need a gradient, what op made it). Cloning a tensor clones an `Arc`.

use super::autograd::Node;
use super::backend;
use super::rng::Rng;
use super::shape::{contiguous_strides, numel};
use super::storage::{DType, Device, Element, Storage};
use half::{bf16, f16};
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

/// An N-d array of `f32` (`f64` for gradient checks, `bf16` on a GPU) on a device, cheap to
/// clone, `Send + Sync`.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub storage: Arc<RwLock<Storage>>,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub offset: usize,
    pub device: Device,
    pub dtype: DType,
    pub requires_grad: AtomicBool,
    /// A user-made tensor that accumulates its gradient (made by `requires_grad_`).
    pub leaf: AtomicBool,
    /// Accumulated gradient (leaves only).
    pub grad: Mutex<Option<Tensor>>,
    /// The op that made this tensor, while the graph is alive (taken by backward).
    pub node: Mutex<Option<Node>>,
}

impl Tensor {
    // ---- construction -------------------------------------------------------------------

    /// A contiguous tensor owning `storage`.
    pub(crate) fn from_storage(storage: Storage, shape: &[usize], device: Device) -> Tensor {
        assert_eq!(
            storage.len(),
            numel(shape),
            "from_storage: {} elements do not fill shape {shape:?}",
            storage.len()
        );
        let dtype = storage.dtype();
        Tensor(Arc::new(Inner {
            storage: Arc::new(RwLock::new(storage)),
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: 0,
            device,
            dtype,
            requires_grad: AtomicBool::new(false),
            leaf: AtomicBool::new(false),
            grad: Mutex::new(None),
            node: Mutex::new(None),
        }))
    }

    /// A view of this tensor's storage with another shape/strides/offset (no autograd record).
    pub(crate) fn view_raw(&self, shape: Vec<usize>, strides: Vec<usize>, offset: usize) -> Tensor {
        Tensor(Arc::new(Inner {
            storage: self.0.storage.clone(),
            shape,
            strides,
            offset,
            device: self.0.device,
            dtype: self.0.dtype,
            requires_grad: AtomicBool::new(false),
            leaf: AtomicBool::new(false),
            grad: Mutex::new(None),
            node: Mutex::new(None),
        }))
    }

    /// An `f32` tensor from data in row-major order. Panics if `data.len()` ≠ the shape's size.
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Tensor {
        Tensor::from_storage(Storage::F32(data), shape, Device::Cpu)
    }

    /// An `f64` tensor (for gradient checks).
    pub fn from_vec_f64(data: Vec<f64>, shape: &[usize]) -> Tensor {
        Tensor::from_storage(Storage::F64(data), shape, Device::Cpu)
    }

    /// A scalar (0-d) `f32` tensor.
    pub fn scalar(v: f32) -> Tensor {
        Tensor::from_vec(vec![v], &[])
    }

    /// A tensor filled with `value`, of the given dtype.
    pub fn full_dtype(shape: &[usize], value: f64, dtype: DType) -> Tensor {
        backend::full(shape, value, dtype, Device::Cpu)
    }

    pub fn full(shape: &[usize], value: f32) -> Tensor {
        Tensor::full_dtype(shape, value as f64, DType::F32)
    }

    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 0.0)
    }

    pub fn ones(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 1.0)
    }

    /// Zeros with this tensor's shape, dtype and device.
    pub fn zeros_like(&self) -> Tensor {
        backend::full(self.shape(), 0.0, self.dtype(), self.device())
    }

    /// `[0, 1, …, n−1]` as `f32`.
    pub fn arange(n: usize) -> Tensor {
        Tensor::from_vec((0..n).map(|i| i as f32).collect(), &[n])
    }

    /// Normal(mean, std) samples drawn from `rng` in row-major order (reproducible for a seed).
    pub fn randn(shape: &[usize], mean: f32, std: f32, rng: &mut Rng) -> Tensor {
        let data = (0..numel(shape))
            .map(|_| mean + std * rng.normal() as f32)
            .collect();
        Tensor::from_vec(data, shape)
    }

    /// Uniform samples in `[lo, hi)` drawn from `rng`.
    pub fn uniform(shape: &[usize], lo: f32, hi: f32, rng: &mut Rng) -> Tensor {
        let data = (0..numel(shape))
            .map(|_| lo + (hi - lo) * rng.uniform() as f32)
            .collect();
        Tensor::from_vec(data, shape)
    }

    /// An `f32` tensor from bf16 values (e.g. read from a checkpoint).
    pub fn from_bf16(data: &[bf16], shape: &[usize]) -> Tensor {
        Tensor::from_vec(data.iter().map(|v| v.to_f32()).collect(), shape)
    }

    /// An `f32` tensor from f16 values.
    pub fn from_f16(data: &[f16], shape: &[usize]) -> Tensor {
        Tensor::from_vec(data.iter().map(|v| v.to_f32()).collect(), shape)
    }

    // ---- reading ------------------------------------------------------------------------

    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    pub fn strides(&self) -> &[usize] {
        &self.0.strides
    }

    pub fn offset(&self) -> usize {
        self.0.offset
    }

    pub fn ndim(&self) -> usize {
        self.0.shape.len()
    }

    pub fn numel(&self) -> usize {
        numel(&self.0.shape)
    }

    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    pub fn device(&self) -> Device {
        self.0.device
    }

    /// Size of axis `axis` (negative counts from the end).
    pub fn dim(&self, axis: isize) -> usize {
        self.0.shape[super::shape::axis("dim", axis, self.ndim())]
    }

    /// True when the elements are laid out row-major without gaps (size-1 axes ignored).
    pub fn is_contiguous(&self) -> bool {
        let mut expect = 1;
        for (&d, &s) in self.0.shape.iter().zip(&self.0.strides).rev() {
            if d != 1 && s != expect {
                return false;
            }
            expect *= d;
        }
        true
    }

    /// True when two tensors are views of the same storage.
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    /// Calls `f` with the elements in row-major order as a slice of `T` (copies only if the
    /// tensor is a non-contiguous view or lives on a GPU). Panics if `T` is not the tensor's
    /// dtype.
    pub fn with_slice<T: Element, R>(&self, f: impl FnOnce(&[T]) -> R) -> R {
        let c = backend::contiguous(&backend::to_device(self, Device::Cpu));
        let guard = c.0.storage.read().unwrap();
        let s = T::slice(&guard);
        f(&s[c.0.offset..c.0.offset + c.numel()])
    }

    /// This tensor in host memory as f32 or f64 (bf16 is widened to f32).
    fn host_values(&self) -> Tensor {
        let host = backend::to_device(self, Device::Cpu);
        match host.dtype() {
            DType::BF16 => backend::cast(&host, DType::F32),
            _ => host,
        }
    }

    /// The elements in row-major order as `f32` (read back from a GPU, which waits for it).
    pub fn to_vec(&self) -> Vec<f32> {
        let h = self.host_values();
        match h.dtype() {
            DType::F64 => h.with_slice(|s: &[f64]| s.iter().map(|&v| v as f32).collect()),
            _ => h.with_slice(|s: &[f32]| s.to_vec()),
        }
    }

    /// The elements in row-major order as `f64`.
    pub fn to_vec_f64(&self) -> Vec<f64> {
        let h = self.host_values();
        match h.dtype() {
            DType::F64 => h.with_slice(|s: &[f64]| s.to_vec()),
            _ => h.with_slice(|s: &[f32]| s.iter().map(|&v| v as f64).collect()),
        }
    }

    pub fn to_bf16_vec(&self) -> Vec<bf16> {
        self.to_vec().into_iter().map(bf16::from_f32).collect()
    }

    pub fn to_f16_vec(&self) -> Vec<f16> {
        self.to_vec().into_iter().map(f16::from_f32).collect()
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> f32 {
        self.item_f64() as f32
    }

    pub fn item_f64(&self) -> f64 {
        assert_eq!(
            self.numel(),
            1,
            "item: tensor of shape {:?} has more than one element",
            self.shape()
        );
        self.to_vec_f64()[0]
    }

    /// This tensor on `device`: itself when it is there already, else a contiguous copy (same
    /// dtype; f64 stays on the CPU). Not recorded by autograd: move parameters before training.
    pub fn to(&self, device: Device) -> Tensor {
        backend::to_device(self, device)
    }

    // ---- in-place updates (never recorded) ----------------------------------------------

    /// Mutates the elements in place. For a contiguous tensor on the CPU (e.g. a parameter);
    /// not recorded by autograd, so use it for optimizer updates and initialisation only.
    pub fn with_data_mut<T: Element, R>(&self, f: impl FnOnce(&mut [T]) -> R) -> R {
        assert!(
            self.is_contiguous() && self.device() == Device::Cpu,
            "with_data_mut: tensor of shape {:?} on {} is not contiguous host memory",
            self.shape(),
            self.device()
        );
        let mut guard = self.0.storage.write().unwrap();
        let s = T::slice_mut(&mut guard);
        f(&mut s[self.0.offset..self.0.offset + self.numel()])
    }

    /// Optimizer step: calls `f(data, grad)` on an `f32` leaf with a gradient, in place.
    /// Panics if there is no gradient yet.
    pub fn update_(&self, f: impl FnOnce(&mut [f32], &[f32])) {
        let grad = self.grad().unwrap_or_else(|| {
            panic!(
                "update_: tensor of shape {:?} has no gradient",
                self.shape()
            )
        });
        grad.with_slice(|g: &[f32]| self.with_data_mut(|d: &mut [f32]| f(d, g)));
    }

    /// Overwrites the elements from `src` (same shape, any device or dtype); not recorded.
    pub fn copy_from(&self, src: &Tensor) {
        assert_eq!(
            self.shape(),
            src.shape(),
            "copy_from: shapes {:?} and {:?}",
            self.shape(),
            src.shape()
        );
        let src = backend::cast(&backend::to_device(src, self.device()), self.dtype());
        backend::copy_into(self, &src)
    }
}

impl Tensor {
    // ---- releasing storage (ZeRO-3) -----------------------------------------------------

    /// Frees this tensor's elements but keeps its shape, device and dtype: a parameter that
    /// another rank holds between steps (ZeRO-3). Reading it before [`Tensor::refill`] panics.
    /// The freed buffer goes where every dropped buffer goes (the host pool, the GPU's cache).
    pub fn release(&self) {
        *self.0.storage.write().unwrap() = Storage::F32(Vec::new());
    }

    /// True after [`Tensor::release`] (and before [`Tensor::refill`]).
    pub fn is_released(&self) -> bool {
        self.numel() > 0 && self.0.storage.read().unwrap().is_empty()
    }

    /// Gives a released tensor new storage holding `src`'s values (same shape, any device or
    /// dtype: converted to this tensor's). Not recorded by autograd.
    pub fn refill(&self, src: &Tensor) {
        assert_eq!(self.shape(), src.shape(), "refill: shapes differ");
        assert_eq!(self.offset(), 0, "refill: a view cannot be refilled");
        // A fresh contiguous copy on our device and dtype, whose storage we take over.
        let converted = backend::cast(&backend::to_device(src, self.device()), self.dtype());
        let fresh = backend::copy(&converted);
        let storage = std::mem::replace(
            &mut *fresh.0.storage.write().unwrap(),
            Storage::F32(Vec::new()),
        );
        assert_eq!(storage.len(), self.numel(), "refill: storage size");
        *self.0.storage.write().unwrap() = storage;
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.to_vec_f64();
        let shown: Vec<f64> = v.iter().take(8).copied().collect();
        write!(
            f,
            "Tensor(shape={:?}, dtype={:?}, requires_grad={}, data={:?}{})",
            self.shape(),
            self.dtype(),
            self.requires_grad(),
            shown,
            if v.len() > 8 { "…" } else { "" }
        )
    }
}
