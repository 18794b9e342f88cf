// Persistent worker threads for the CPU backend. run() executes a function on
// all threads (the caller is thread 0) and returns when every thread is done.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace gb::cpu {

class ThreadPool {
  public:
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool &) = delete;
    ThreadPool & operator=(const ThreadPool &) = delete;

    int size() const;
    // fn(ith, nth) on nth = size() threads; blocks until all return.
    void run(const std::function<void(int ith, int nth)> & fn);
    // Splits [0, n) into contiguous chunks of at least grain items.
    void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)> & fn);

  private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

}  // namespace gb::cpu
