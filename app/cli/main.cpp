// glassbox-cli: command-line front end to the engine.
#include "glassbox/cuda_backend.h"

#include <cstdio>
#include <cstring>

int main(int argc, char ** argv) {
    if (argc >= 2 && std::strcmp(argv[1], "devices") == 0) {
        const gb::cuda::DeviceReport r = gb::cuda::probe();
        std::printf("%s\n", r.message.c_str());
        for (const auto & d : r.devices) std::printf("  %s\n", d.c_str());
        return 0;
    }
    std::fprintf(stderr, "usage: glassbox-cli devices\n");
    return 2;
}
