// Emulator test of kernels/matmul_v4_tensorcore.cu: matmul_v4 (wmma, bf16 only) on every case
// of matmul_cases.h, plus k spanning several BK = 32 tiles with both pipeline stages reused.
// emu-kernels: kernels/matmul_v4_tensorcore.cu
// emu-precisions: bf16
#include "kernels/matmul_v4_tensorcore.cu"
#include "matmul_cases.h"

int main() {
    std::vector<Shape> shapes = matmul_shapes;
    shapes.push_back({40, 200, 24});  // 7 k-tiles, the last partial
    shapes.push_back({129, 96, 131}); // 3 k-tiles, partial C tiles in both directions
    shapes.push_back({24, 40, 16});   // 2 k-tiles: fewer tiles than pipeline stages
    // 61440 bytes of dynamic shared memory, as src/tensor/cuda/matmul.rs launches it.
    matmul_cases("v4", matmul_v4, 128, 128, 256, shapes, SMEM_BYTES);
    return check::finish();
}
