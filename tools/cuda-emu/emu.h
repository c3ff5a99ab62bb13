// emu.h: compile CUDA C++ kernels with g++ and run them on the CPU, to test their logic.
//
//   g++ -std=c++17 -DPRETRAIN_EMU -Itools/cuda-emu/include -Itools/cuda-emu -I. test.cpp
//
// The stand-in headers in include/ (cuda_bf16.h, cuda_fp16.h, mma.h, cuda_runtime.h) pull this
// file in, so a kernel file compiles unchanged. See README.md for what is emulated and what is
// not. Parts:
//   emu_types.h   dim3, vector types, __nv_bfloat16, __half
//   emu_sched.h   threads as coroutines, __syncthreads, warp collectives, shared memory, launch
//   emu_device.h  shuffles, votes, atomics, math intrinsics
//   emu_mem.h     emu::Array: guarded "device" buffers
//   include/mma.h nvcuda::wmma, every lane holding the whole tile
#pragma once
#ifndef PRETRAIN_EMU
#define PRETRAIN_EMU 1
#endif
#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include "emu_types.h"
#include "emu_sched.h"
#include "emu_device.h"
#include "emu_mem.h"

// The kernel-side names. Defined after every standard header.
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __grid_constant__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ thread_local  // one instance per block: see emu_sched.h
#define __CUDACC__ 1
#ifndef __CUDA_ARCH__
#ifdef EMU_CUDA_ARCH
#define __CUDA_ARCH__ EMU_CUDA_ARCH
#else
#define __CUDA_ARCH__ 800
#endif
#endif
#define threadIdx (::emu::thread_idx())
#define blockIdx (static_cast<const uint3&>(::emu::rt.block_idx))
#define blockDim (static_cast<const dim3&>(::emu::rt.block))
#define gridDim (static_cast<const dim3&>(::emu::rt.grid))
constexpr int warpSize = 32;
