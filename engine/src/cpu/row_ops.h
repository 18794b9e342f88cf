// Whole-row reductions over a logits row (argmax, log-sum-exp), vectorized:
// a 262k vocabulary makes them a visible per-token cost next to a small
// model's decode step (and per emitted token in a speculative verify walk).
#pragma once

#include <cstddef>
#include <cstdint>

namespace gb::cpu {

// Index of the first maximum (as std::max_element); -1 for n == 0. Rows with
// NaN: the first maximum of the non-NaN values (0 if all are NaN).
int64_t row_argmax(const float * x, int64_t n);

// log(sum_i exp(x_i - max)) and max (written to *max_out), for n >= 1. The
// exponentials are a float polynomial (relative error < 2e-7), summed in
// float within blocks of 1024 and in double across them: within ~1e-6 of a
// double-precision evaluation.
double row_log_sum_exp(const float * x, int64_t n, float * max_out);

}  // namespace gb::cpu
