// Y = X W^T for 2-4 activation rows (speculative verification's usual shape)
// with the decode kernels, weights read from memory once: on the machine of
// bench/NOTES.md the generic path costs 1.6-2.0x a matvec there, this ~1.25-1.3x.
// Bit-identical to cpu::matmul (vec_dot.h's canonical per-row order). Belongs in
// cpu::matmul; kept outside engine/src/cpu while that is being reworked.
#pragma once

#include "cpu/matmul.h"

namespace gb::cpu {
class ThreadPool;
}

namespace gb::spec {

// false (nothing done) where it does not apply: n outside 2..4, a small
// matrix, llama.cpp numerics, a type without the 4-token kernel. The caller
// then runs cpu::matmul.
bool small_batch_matmul(const cpu::WeightView & w, const float * x, int64_t n, float * y, cpu::ThreadPool & pool);

}  // namespace gb::spec
