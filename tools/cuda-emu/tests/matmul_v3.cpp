// Emulator test of kernels/matmul_v3_register.cu: matmul_v3 on every case of matmul_cases.h.
// emu-kernels: kernels/matmul_v3_register.cu
// emu-precisions: fp32 bf16
#include "kernels/matmul_v3_register.cu"
#include "matmul_cases.h"

int main() {
    matmul_cases("v3", matmul_v3, 128, 128, 256);
    return check::finish();
}
