// Stand-in for <cuda_bf16.h> in the CPU emulator (tools/cuda-emu).
#pragma once
#include "../emu.h"
