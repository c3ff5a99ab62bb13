//! Where [`GpuGpt`](super::gpt::GpuGpt) runs its kernels: on the GPU, or (in unit tests only)
//! on plain host loops that follow the same launcher contract.
//!
//! The model's forward and backward are a long sequence of launches whose offsets, layouts and
//! accumulate flags must all be right. The host executor lets `cargo test` check that sequence
//! against the CPU model on a machine without a GPU: the same `GpuGpt` code runs, and every
//! launcher call lands in `host_kernels` (naive loops written from the contract) instead of the
//! GPU. It proves the sequence, not the kernels (those have their own tests).

use super::{Buffer, DevPtr, Gpu, GpuFloat};
use super::{attention, matmul, ops};
use anyhow::Result;
use cudarc::driver::{DeviceRepr, ValidAsZeroBits};
use std::sync::Arc;

pub use matmul::Version as MatmulVersion;
pub use ops::AdamwArgs;

/// The fastest of our matmuls for `X`.
pub fn best_matmul<X: GpuFloat>() -> MatmulVersion {
    matmul::best::<X>()
}

/// fp32 elements of scratch `encoder_backward` needs for a `[v, c]` embedding.
pub fn encoder_scratch_len(v: usize, c: usize) -> usize {
    ops::encoder_scratch_len(v, c)
}

/// The executor: a GPU, or the host loops of the unit tests.
#[derive(Clone)]
pub enum Exec {
    Gpu(Arc<Gpu>),
    #[cfg(test)]
    Host,
}

/// Memory of an executor: a GPU [`Buffer`], or host cells the test kernels write through.
pub enum Mem<T> {
    Gpu(Buffer<T>),
    #[cfg(test)]
    Host(Box<[std::cell::Cell<T>]>),
}

impl<T> Mem<T> {
    /// The view kernels take.
    pub fn ptr(&self) -> DevPtr<T> {
        match self {
            Mem::Gpu(b) => b.ptr(),
            #[cfg(test)]
            Mem::Host(h) => DevPtr::from_raw_parts(h.as_ptr() as u64, h.len()),
        }
    }
}

/// Calls the GPU launcher `$gpu_fn` or the host loop `$host_fn` with the same arguments.
macro_rules! dispatch {
    ($self:expr, $gpu_fn:path, $host_fn:path, $($arg:expr),*) => {
        match $self {
            Exec::Gpu(g) => $gpu_fn(g, $($arg),*),
            #[cfg(test)]
            Exec::Host => {
                $host_fn($($arg),*);
                Ok(())
            }
        }
    };
}

#[cfg(test)]
use super::host_kernels as host;

impl Exec {
    /// `len` zeros.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits + Copy + Default>(
        &self,
        len: usize,
    ) -> Result<Mem<T>> {
        Ok(match self {
            Exec::Gpu(g) => Mem::Gpu(Buffer::zeros(g, len)?),
            #[cfg(test)]
            Exec::Host => Mem::Host((0..len).map(|_| Default::default()).collect()),
        })
    }

    /// Overwrites the first `data.len()` elements of `m`.
    pub fn upload<T: DeviceRepr + ValidAsZeroBits + Copy + Default>(
        &self,
        m: &mut Mem<T>,
        data: &[T],
    ) -> Result<()> {
        match (self, m) {
            (Exec::Gpu(g), Mem::Gpu(b)) => b.upload(g, data),
            #[cfg(test)]
            (Exec::Host, Mem::Host(h)) => {
                assert!(data.len() <= h.len(), "upload past the end");
                h.iter().zip(data).for_each(|(c, &x)| c.set(x));
                Ok(())
            }
            #[cfg(test)]
            _ => unreachable!("memory of another executor"),
        }
    }

    /// A copy of `m` on the host (waits for the queued work).
    pub fn to_host<T: DeviceRepr + ValidAsZeroBits + Copy + Default>(
        &self,
        m: &Mem<T>,
    ) -> Result<Vec<T>> {
        match (self, m) {
            (Exec::Gpu(g), Mem::Gpu(b)) => b.to_host(g),
            #[cfg(test)]
            (Exec::Host, Mem::Host(h)) => Ok(h.iter().map(|c| c.get()).collect()),
            #[cfg(test)]
            _ => unreachable!("memory of another executor"),
        }
    }

    /// Sets every element of `m` to zero.
    pub fn zero<T: DeviceRepr + ValidAsZeroBits + Copy + Default>(
        &self,
        m: &mut Mem<T>,
    ) -> Result<()> {
        match (self, m) {
            (Exec::Gpu(g), Mem::Gpu(b)) => b.zero(g),
            #[cfg(test)]
            (Exec::Host, Mem::Host(h)) => {
                h.iter().for_each(|c| c.set(T::default()));
                Ok(())
            }
            #[cfg(test)]
            _ => unreachable!("memory of another executor"),
        }
    }

    /// One line naming the device, e.g. "NVIDIA H200 (sm_90, 132 SMs)".
    pub fn describe(&self) -> String {
        match self {
            Exec::Gpu(g) => g.describe(),
            #[cfg(test)]
            Exec::Host => "the host (test executor)".to_string(),
        }
    }

    /// The GPU's name ("host" for the test executor).
    pub fn name(&self) -> &str {
        match self {
            Exec::Gpu(g) => &g.name,
            #[cfg(test)]
            Exec::Host => "host",
        }
    }

    pub fn cast_to_floatx<X: GpuFloat>(&self, out: DevPtr<X>, inp: DevPtr<f32>) -> Result<()> {
        dispatch!(self, ops::cast_to_floatx, host::cast_to_floatx, out, inp)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn gemm<X: GpuFloat>(
        &self,
        v: matmul::Version,
        m: usize,
        k: usize,
        n: usize,
        a: DevPtr<X>,
        ta: bool,
        b: DevPtr<X>,
        tb: bool,
        c: DevPtr<X>,
        bias: Option<DevPtr<X>>,
        accumulate: bool,
    ) -> Result<()> {
        match self {
            Exec::Gpu(g) => matmul::gemm(g, v, m, k, n, a, ta, b, tb, c, bias, accumulate),
            #[cfg(test)]
            Exec::Host => {
                host::gemm(m, k, n, a, ta, b, tb, c, bias, accumulate);
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn encoder_forward<X: GpuFloat>(
        &self,
        out: DevPtr<X>,
        tokens: DevPtr<i32>,
        wte: DevPtr<X>,
        wpe: DevPtr<X>,
        b: usize,
        t: usize,
        c: usize,
    ) -> Result<()> {
        dispatch!(
            self,
            ops::encoder_forward,
            host::encoder_forward,
            out,
            tokens,
            wte,
            wpe,
            b,
            t,
            c
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn encoder_backward<X: GpuFloat>(
        &self,
        dwte: DevPtr<X>,
        dwpe: DevPtr<X>,
        dout: DevPtr<X>,
        tokens: DevPtr<i32>,
        b: usize,
        t: usize,
        c: usize,
        scratch: DevPtr<f32>,
    ) -> Result<()> {
        dispatch!(
            self,
            ops::encoder_backward,
            host::encoder_backward,
            dwte,
            dwpe,
            dout,
            tokens,
            b,
            t,
            c,
            scratch
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn layernorm_forward<X: GpuFloat>(
        &self,
        out: DevPtr<X>,
        mean: DevPtr<f32>,
        rstd: DevPtr<f32>,
        inp: DevPtr<X>,
        weight: DevPtr<X>,
        bias: DevPtr<X>,
        n: usize,
        c: usize,
    ) -> Result<()> {
        dispatch!(
            self,
            ops::layernorm_forward,
            host::layernorm_forward,
            out,
            mean,
            rstd,
            inp,
            weight,
            bias,
            n,
            c
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn layernorm_backward<X: GpuFloat>(
        &self,
        dinp: DevPtr<X>,
        dweight: DevPtr<X>,
        dbias: DevPtr<X>,
        dout: DevPtr<X>,
        inp: DevPtr<X>,
        weight: DevPtr<X>,
        mean: DevPtr<f32>,
        rstd: DevPtr<f32>,
        n: usize,
        c: usize,
    ) -> Result<()> {
        dispatch!(
            self,
            ops::layernorm_backward,
            host::layernorm_backward,
            dinp,
            dweight,
            dbias,
            dout,
            inp,
            weight,
            mean,
            rstd,
            n,
            c
        )
    }

    pub fn gelu_forward<X: GpuFloat>(&self, out: DevPtr<X>, inp: DevPtr<X>) -> Result<()> {
        dispatch!(self, ops::gelu_forward, host::gelu_forward, out, inp)
    }

    pub fn gelu_backward<X: GpuFloat>(
        &self,
        dinp: DevPtr<X>,
        inp: DevPtr<X>,
        dout: DevPtr<X>,
    ) -> Result<()> {
        dispatch!(
            self,
            ops::gelu_backward,
            host::gelu_backward,
            dinp,
            inp,
            dout
        )
    }

    pub fn residual_forward<X: GpuFloat>(
        &self,
        out: DevPtr<X>,
        a: DevPtr<X>,
        b: DevPtr<X>,
    ) -> Result<()> {
        dispatch!(
            self,
            ops::residual_forward,
            host::residual_forward,
            out,
            a,
            b
        )
    }

    pub fn bias_backward<X: GpuFloat>(
        &self,
        dbias: DevPtr<X>,
        dout: DevPtr<X>,
        n: usize,
        oc: usize,
    ) -> Result<()> {
        dispatch!(
            self,
            ops::bias_backward,
            host::bias_backward,
            dbias,
            dout,
            n,
            oc
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn adamw_update<X: GpuFloat>(
        &self,
        params: DevPtr<X>,
        master: DevPtr<f32>,
        grads: DevPtr<X>,
        m: DevPtr<f32>,
        v: DevPtr<f32>,
        h: &ops::AdamwArgs,
    ) -> Result<()> {
        dispatch!(
            self,
            ops::adamw_update,
            host::adamw_update,
            params,
            master,
            grads,
            m,
            v,
            h
        )
    }

    pub fn grad_norm_squared<X: GpuFloat>(&self, out: DevPtr<f32>, grads: DevPtr<X>) -> Result<()> {
        dispatch!(
            self,
            ops::grad_norm_squared,
            host::grad_norm_squared,
            out,
            grads
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn attention_forward<X: GpuFloat>(
        &self,
        out: DevPtr<X>,
        lse: DevPtr<f32>,
        qkv: DevPtr<X>,
        b: usize,
        t: usize,
        nh: usize,
        hs: usize,
    ) -> Result<()> {
        dispatch!(
            self,
            attention::attention_forward,
            host::attention_forward,
            out,
            lse,
            qkv,
            b,
            t,
            nh,
            hs
        )
    }

    /// fp32 elements of scratch `attention_backward` needs.
    pub fn attention_scratch_len(&self, b: usize, t: usize, nh: usize, hs: usize) -> usize {
        attention::attention_scratch_len(b, t, nh, hs)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn attention_backward<X: GpuFloat>(
        &self,
        dqkv: DevPtr<X>,
        dout: DevPtr<X>,
        out: DevPtr<X>,
        qkv: DevPtr<X>,
        lse: DevPtr<f32>,
        scratch: DevPtr<f32>,
        b: usize,
        t: usize,
        nh: usize,
        hs: usize,
    ) -> Result<()> {
        dispatch!(
            self,
            attention::attention_backward,
            host::attention_backward,
            dqkv,
            dout,
            out,
            qkv,
            lse,
            scratch,
            b,
            t,
            nh,
            hs
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn classifier_forward_backward<X: GpuFloat>(
        &self,
        logits: DevPtr<X>,
        losses: DevPtr<f32>,
        targets: DevPtr<i32>,
        n: usize,
        v: usize,
        vp: usize,
        dloss: f32,
    ) -> Result<()> {
        dispatch!(
            self,
            attention::classifier_forward_backward,
            host::classifier_forward_backward,
            logits,
            losses,
            targets,
            n,
            v,
            vp,
            dloss
        )
    }
}
