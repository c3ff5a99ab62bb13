// Stand-in for <cuda.h> in the CPU emulator (tools/cuda-emu).
#pragma once
#include "../emu.h"
