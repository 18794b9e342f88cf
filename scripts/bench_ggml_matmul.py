#!/usr/bin/env python3
"""Times llama.cpp's CPU matmul (ggml_mul_mat from llama-cpp-python's libggml)
at the shapes bench_matmul uses, so the two can be compared side by side.
Matvec: a graph of 32 independent mul_mat nodes (ggml's per-op barrier cost
included, thread start-up amortized); prefill: one mul_mat of N tokens.
    python3 scripts/bench_ggml_matmul.py [--rows 8192 --cols 2048 --tokens 512 --threads 1,2 --types Q4_0,Q4_K]
"""
import argparse, ctypes, os, statistics, time
import numpy as np
import llama_cpp

LIB = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
base = ctypes.CDLL(os.path.join(LIB, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
cpu = ctypes.CDLL(os.path.join(LIB, "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)

class InitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]

P = ctypes.c_void_p
base.ggml_init.restype = P; base.ggml_init.argtypes = [InitParams]
base.ggml_free.argtypes = [P]
base.ggml_new_tensor_2d.restype = P; base.ggml_new_tensor_2d.argtypes = [P, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
base.ggml_mul_mat.restype = P; base.ggml_mul_mat.argtypes = [P, P, P]
base.ggml_new_graph.restype = P; base.ggml_new_graph.argtypes = [P]
base.ggml_build_forward_expand.argtypes = [P, P]
base.ggml_get_data.restype = P; base.ggml_get_data.argtypes = [P]
base.ggml_nbytes.restype = ctypes.c_size_t; base.ggml_nbytes.argtypes = [P]
cpu.ggml_graph_compute_with_ctx.argtypes = [P, P, ctypes.c_int]
cpu.ggml_cpu_init()

TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "Q2_K": 10,
         "Q3_K": 11, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "BF16": 30}
# (block bytes, [(offset, fp16 value)]) as in bench_matmul.cpp
SCALES = {"Q4_0": (18, [(0, .01)]), "Q5_0": (22, [(0, .01)]), "Q8_0": (34, [(0, .01)]),
          "Q4_1": (20, [(0, .001), (2, .001)]), "Q5_1": (24, [(0, .001), (2, .001)]),
          "Q2_K": (84, [(80, .01), (82, .01)]), "Q3_K": (110, [(108, .01)]),
          "Q4_K": (144, [(0, .001), (2, .001)]), "Q5_K": (176, [(0, .001), (2, .001)]),
          "Q6_K": (210, [(208, .001)])}

def fill_weights(name, t):
    n = base.ggml_nbytes(t)
    buf = (ctypes.c_uint8 * n).from_address(base.ggml_get_data(t))
    arr = np.frombuffer(buf, dtype=np.uint8)
    rng = np.random.default_rng(42)
    if name in ("F32", "F16", "BF16"):
        v = rng.uniform(-0.05, 0.05, n // (4 if name == "F32" else 2)).astype(np.float32)
        if name == "F32": arr[:] = v.view(np.uint8)
        elif name == "F16": arr[:] = v.astype(np.float16).view(np.uint8)
        else: arr[:] = (v.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
        return
    arr[:] = rng.integers(0, 256, n, dtype=np.uint8)
    bs, fields = SCALES[name]
    blocks = arr.reshape(-1, bs)
    for off, val in fields:
        blocks[:, off:off + 2] = np.frombuffer(np.float16(val).tobytes(), dtype=np.uint8)

def fill_f32(t, rng):
    n = base.ggml_nbytes(t) // 4
    arr = np.frombuffer((ctypes.c_float * n).from_address(base.ggml_get_data(t)), dtype=np.float32)
    arr[:] = rng.standard_normal(n).astype(np.float32)

def median_time(fn, min_time):
    fn()
    ts = []; cpu_ts = []
    start = time.perf_counter()
    while len(ts) < 3 or (time.perf_counter() - start < min_time and len(ts) < 1000):
        t0 = time.perf_counter(); c0 = time.process_time(); fn(); ts.append(time.perf_counter() - t0); cpu_ts.append(time.process_time() - c0)
    return statistics.median(ts), statistics.median(cpu_ts)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=8192)
    ap.add_argument("--cols", type=int, default=2048)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--types", default="Q4_0,Q8_0,Q5_0,Q4_K,Q5_K,Q6_K,F16,F32")
    ap.add_argument("--min-time", type=float, default=0.5)
    a = ap.parse_args()
    n_mv = 32
    print(f"ggml mul_mat: W [{a.rows} x {a.cols}], prefill {a.tokens} tokens; "
          f"avx512={cpu.ggml_cpu_has_avx512()} avx512_vnni={cpu.ggml_cpu_has_avx512_vnni()} avx_vnni={cpu.ggml_cpu_has_avx_vnni()}")
    rows = []
    for name in a.types.split(","):
        ty = TYPES[name]
        rng = np.random.default_rng(1)
        mem = 160 * 2**20 + 8 * a.rows * a.cols + 4 * (a.tokens + n_mv) * (a.rows + a.cols) * 2
        ctx = base.ggml_init(InitParams(mem, None, False))
        w = base.ggml_new_tensor_2d(ctx, ty, a.cols, a.rows)
        fill_weights(name, w)
        xv = base.ggml_new_tensor_2d(ctx, 0, a.cols, 1); fill_f32(xv, rng)
        xp = base.ggml_new_tensor_2d(ctx, 0, a.cols, a.tokens); fill_f32(xp, rng)
        g_mv = base.ggml_new_graph(ctx)
        for _ in range(n_mv):
            base.ggml_build_forward_expand(g_mv, base.ggml_mul_mat(ctx, w, xv))
        g_pp = base.ggml_new_graph(ctx)
        base.ggml_build_forward_expand(g_pp, base.ggml_mul_mat(ctx, w, xp))
        wbytes = base.ggml_nbytes(w)
        for nth in [int(s) for s in a.threads.split(",")]:
            mv, mv_cpu = median_time(lambda: cpu.ggml_graph_compute_with_ctx(ctx, g_mv, nth), a.min_time)
            mv, mv_cpu = mv / n_mv, mv_cpu / n_mv
            pp, pp_cpu = median_time(lambda: cpu.ggml_graph_compute_with_ctx(ctx, g_pp, nth), a.min_time)
            r = (name, nth, mv * 1e3, wbytes / mv * 1e-9, mv_cpu * 1e3, pp * 1e3, 2 * a.rows * a.cols * a.tokens / pp * 1e-9, pp_cpu * 1e3)
            print("  %-5s t=%d  matvec %8.3f ms %7.2f GB/s (cpu %.3f ms)   prefill %9.2f ms %7.2f GFLOP/s (cpu %.1f ms)" % r, flush=True)
            rows.append(r)
        base.ggml_free(ctx)
    print("\n| type | threads | matvec ms | matvec GB/s | matvec cpu ms | prefill ms | prefill GFLOP/s | prefill cpu ms |")
    print("|------|---------|-----------|-------------|---------------|------------|-----------------|----------------|")
    for r in rows:
        print("| %s | %d | %.3f | %.2f | %.3f | %.2f | %.2f | %.1f |" % r)

if __name__ == "__main__":
    main()
