// Emulator test of kernels/matmul_v2_tiled.cu: matmul_v2 on every case of matmul_cases.h.
// emu-kernels: kernels/matmul_v2_tiled.cu
// emu-precisions: fp32 bf16
#include "kernels/matmul_v2_tiled.cu"
#include "matmul_cases.h"

int main() {
    matmul_cases("v2", matmul_v2, 32, 32, 1024);
    return check::finish();
}
