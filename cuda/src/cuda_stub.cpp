// CUDA backend stub for builds without nvcc.
#include "glassbox/cuda_backend.h"

namespace gb::cuda {

DeviceReport probe() {
    DeviceReport r;
    r.message = "not compiled with CUDA; using the CPU";
    return r;
}

}  // namespace gb::cuda
