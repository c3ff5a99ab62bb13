// Stand-in for <cuda_runtime.h> in the CPU emulator (tools/cuda-emu).
#pragma once
#include "../emu.h"
