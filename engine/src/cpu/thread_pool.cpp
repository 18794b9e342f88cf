// Persistent worker threads with low-latency dispatch: run() publishes a job by
// bumping a generation counter; workers spin on it briefly, then sleep on a
// condition variable so idle threads do not burn CPU. The caller is thread 0.
#include "cpu/thread_pool.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GB_CPU_RELAX() _mm_pause()
#else
#define GB_CPU_RELAX() std::atomic_signal_fence(std::memory_order_seq_cst)
#endif

namespace gb::cpu {

namespace {
// ~100 µs of pause instructions: covers the gap between two matmuls of a
// decode step without sleeping, short enough not to hog a shared machine.
constexpr int k_spin_iterations = 2000;
}  // namespace

struct ThreadPool::Impl {
    int n_threads = 1;
    std::vector<std::thread> workers;

    // Job slot: written by run() before the generation bump (release), read by
    // workers after they observe it (acquire).
    const std::function<void(int, int)> * job = nullptr;
    std::atomic<uint64_t> generation{0};
    std::atomic<int> pending{0};      // workers still running the current job
    std::atomic<int> sleepers{0};     // workers waiting (or about to wait) on cv
    std::atomic<bool> stop{false};
    std::mutex mutex;
    std::condition_variable cv;

    void worker_main(int ith) {
        uint64_t seen = 0;
        for (;;) {
            uint64_t gen = generation.load(std::memory_order_acquire);
            for (int spin = 0; gen == seen && spin < k_spin_iterations; ++spin) {
                GB_CPU_RELAX();
                gen = generation.load(std::memory_order_acquire);
            }
            if (gen == seen) {
                std::unique_lock<std::mutex> lock(mutex);
                // NOTE: sleepers is raised before re-reading generation; run()
                // bumps generation before reading sleepers, so one of the two
                // sides always sees the other (no lost wake-up).
                sleepers.fetch_add(1, std::memory_order_seq_cst);
                cv.wait(lock, [&] {
                    gen = generation.load(std::memory_order_seq_cst);
                    return gen != seen || stop.load(std::memory_order_relaxed);
                });
                sleepers.fetch_sub(1, std::memory_order_relaxed);
            }
            if (stop.load(std::memory_order_acquire)) return;
            seen = gen;
            (*job)(ith, n_threads);
            pending.fetch_sub(1, std::memory_order_acq_rel);
        }
    }
};

ThreadPool::ThreadPool(int n_threads) : m_impl(std::make_unique<Impl>()) {
    m_impl->n_threads = n_threads < 1 ? 1 : n_threads;
    m_impl->workers.reserve(static_cast<size_t>(m_impl->n_threads - 1));
    for (int i = 1; i < m_impl->n_threads; ++i) {
        m_impl->workers.emplace_back([impl = m_impl.get(), i] { impl->worker_main(i); });
    }
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(m_impl->mutex);
        m_impl->stop.store(true, std::memory_order_seq_cst);
        m_impl->generation.fetch_add(1, std::memory_order_seq_cst);
    }
    m_impl->cv.notify_all();
    for (std::thread & t : m_impl->workers) t.join();
}

int ThreadPool::size() const { return m_impl->n_threads; }

void ThreadPool::run(const std::function<void(int ith, int nth)> & fn) {
    Impl & p = *m_impl;
    if (p.n_threads == 1) {
        fn(0, 1);
        return;
    }
    p.job = &fn;
    p.pending.store(p.n_threads - 1, std::memory_order_relaxed);
    p.generation.fetch_add(1, std::memory_order_seq_cst);
    if (p.sleepers.load(std::memory_order_seq_cst) > 0) {
        // Taking the mutex orders this notify after any waiter's predicate check.
        { std::lock_guard<std::mutex> lock(p.mutex); }
        p.cv.notify_all();
    }
    fn(0, p.n_threads);
    // Wait for the workers: spin, then yield the core (a worker may be
    // descheduled on an oversubscribed machine).
    for (int spin = 0; p.pending.load(std::memory_order_acquire) != 0; ++spin) {
        if (spin < k_spin_iterations) {
            GB_CPU_RELAX();
        } else {
            std::this_thread::yield();
        }
    }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)> & fn) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    const int64_t nth = size();
    // One contiguous chunk per thread, at least grain items each.
    int64_t chunk = (n + nth - 1) / nth;
    if (chunk < grain) chunk = grain;
    if (chunk >= n || nth == 1) {
        fn(0, n);
        return;
    }
    // NOTE: the lambda captures one pointer so std::function stores it inline
    // (no heap allocation per call).
    struct Job {
        int64_t n, chunk;
        const std::function<void(int64_t, int64_t)> * fn;
    } job{n, chunk, &fn};
    run([j = &job](int ith, int) {
        const int64_t begin = static_cast<int64_t>(ith) * j->chunk;
        if (begin >= j->n) return;
        const int64_t end = begin + j->chunk < j->n ? begin + j->chunk : j->n;
        (*j->fn)(begin, end);
    });
}

}  // namespace gb::cpu
