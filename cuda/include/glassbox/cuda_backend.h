// The CUDA backend's entry points. A build without nvcc links a stub with the
// same API that reports "not compiled with CUDA".
#pragma once

#include <string>
#include <vector>

namespace gb::cuda {

struct DeviceReport {
    bool                     compiled = false;   // built with nvcc
    bool                     available = false;  // a usable device and driver
    std::string              message;            // why not, or a summary
    std::vector<std::string> devices;            // "NVIDIA H100 80GB HBM3 (sm_90, 79 GiB)"
};

// Never fails hard: no driver or no GPU is reported in the message.
DeviceReport probe();

}  // namespace gb::cuda
