// Public switch for the CPU backend's summation orders (see model.h).
#include "glassbox/model.h"

#include "cpu/matmul.h"

namespace gb {

void set_cpu_numerics(CpuNumerics mode) { cpu::set_llamacpp_order(mode == CpuNumerics::LlamaCpp); }

CpuNumerics cpu_numerics() { return cpu::llamacpp_order() ? CpuNumerics::LlamaCpp : CpuNumerics::BatchInvariant; }

}  // namespace gb
