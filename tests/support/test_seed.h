// The seed of a randomized test run: fresh each run (from the clock), or
// GLASSBOX_TEST_SEED to repeat one; printed so a failure can be replayed.
#pragma once

#include <QString>
#include <QtGlobal>

#include <chrono>
#include <cstdint>

namespace gb::test {

inline uint64_t run_seed() {
    uint64_t seed = uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
    if (qEnvironmentVariableIsSet("GLASSBOX_TEST_SEED")) seed = qEnvironmentVariable("GLASSBOX_TEST_SEED").toULongLong();
    qInfo("seed %llu (GLASSBOX_TEST_SEED to repeat)", static_cast<unsigned long long>(seed));
    return seed;
}

}  // namespace gb::test
