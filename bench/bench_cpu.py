#!/usr/bin/env python3
"""Glassbox vs llama.cpp on the CPU, side by side in one run: same GGUF file, same
thread count, random prompt tokens; pp = prefill tokens/s of an N-token prompt in
one batch, tg = decode tokens/s generating M tokens one at a time from an empty
context (as llama-bench measures them). Each engine runs in its own process so
peak resident memory is measured separately. Prints a Markdown table last.

    python3 bench/bench_cpu.py MODEL.gguf [MODEL2.gguf ...] [--threads 2] [--reps 3] [-p 512] [-n 128]

llama.cpp is llama-cpp-python's build (pip install llama-cpp-python).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.environ.get("GLASSBOX_CLI", os.path.join(ROOT, "build", "app", "glassbox-cli"))


def llamacpp_child(path, threads, reps, n_prompt, n_gen):
    """Runs inside a child process; prints one JSON line."""
    import ctypes
    import random
    import llama_cpp as L

    L.llama_backend_init()
    mp = L.llama_model_default_params()
    model = L.llama_model_load_from_file(path.encode(), mp)
    if not model:
        raise SystemExit("llama.cpp could not load " + path)
    cp = L.llama_context_default_params()
    cp.n_ctx = max(n_prompt, n_gen) + 16
    cp.n_batch = max(n_prompt, 1)
    cp.n_ubatch = max(n_prompt, 1)
    cp.n_threads = threads
    cp.n_threads_batch = threads
    ctx = L.llama_init_from_model(model, cp)
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    mem = L.llama_get_memory(ctx)
    rng = random.Random(1234)

    def decode(ids):
        arr = (L.llama_token * len(ids))(*ids)
        if L.llama_decode(ctx, L.llama_batch_get_one(arr, len(ids))) != 0:
            raise SystemExit("llama_decode failed")

    pp, tg = [], []
    pp_cpu, tg_cpu = 0.0, 0.0  # process CPU seconds over the timed reps
    for r in range(-1, reps):
        if n_prompt:
            ids = [rng.randrange(n_vocab) for _ in range(n_prompt)]
            L.llama_memory_clear(mem, True)
            c0 = time.process_time()
            t0 = time.perf_counter()
            decode(ids)
            L.llama_synchronize(ctx)
            if r >= 0:
                pp.append(n_prompt / (time.perf_counter() - t0))
                pp_cpu += time.process_time() - c0
        if n_gen:
            L.llama_memory_clear(mem, True)
            ids = [rng.randrange(n_vocab) for _ in range(n_gen)]
            c0 = time.process_time()
            t0 = time.perf_counter()
            for t in ids:
                decode([t])
            L.llama_synchronize(ctx)
            if r >= 0:
                tg.append(n_gen / (time.perf_counter() - t0))
                tg_cpu += time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"pp": pp, "tg": tg, "peak_rss_mib": rss,
                      "pp_cpu_ms_per_tok": 1e3 * pp_cpu / (reps * n_prompt) if n_prompt else 0.0,
                      "tg_cpu_ms_per_tok": 1e3 * tg_cpu / (reps * n_gen) if n_gen else 0.0}))


def run_llamacpp(path, args):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--llamacpp-child", path,
                          "--threads", str(args.threads), "--reps", str(args.reps),
                          "-p", str(args.p), "-n", str(args.n)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_glassbox(path, args):
    out = subprocess.run([CLI, "bench", "-m", path, "-t", str(args.threads), "-r", str(args.reps),
                          "-p", str(args.p), "-n", str(args.n), "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt(mean, std):
    return f"{mean:.2f} ± {std:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--llamacpp-child", action="store_true")
    args = ap.parse_args()
    if args.llamacpp_child:
        llamacpp_child(args.models[0], args.threads, args.reps, args.p, args.n)
        return

    rows = []
    for path in args.models:
        name = os.path.basename(path)
        size_mib = os.path.getsize(path) / 2**20
        # Alternate the engines so drift on a shared machine hits both alike.
        gb = run_glassbox(path, args)
        lc = run_llamacpp(path, args)
        gb2 = run_glassbox(path, args)
        lc2 = run_llamacpp(path, args)
        gpp = [gb["pp"]["tps"], gb2["pp"]["tps"]]
        gtg = [gb["tg"]["tps"], gb2["tg"]["tps"]]
        lpp = lc["pp"] + lc2["pp"]
        ltg = lc["tg"] + lc2["tg"]
        gpp_m, gtg_m = statistics.mean(gpp), statistics.mean(gtg)
        lpp_m, ltg_m = statistics.median(lpp), statistics.median(ltg)
        # process CPU ms per token (all threads; llama.cpp's OpenMP workers spin
        # while idle, so its figure includes spinning)
        gpp_c = statistics.mean([gb["pp"].get("cpu_ms_per_tok", 0.0), gb2["pp"].get("cpu_ms_per_tok", 0.0)])
        gtg_c = statistics.mean([gb["tg"].get("cpu_ms_per_tok", 0.0), gb2["tg"].get("cpu_ms_per_tok", 0.0)])
        lpp_c = statistics.mean([lc["pp_cpu_ms_per_tok"], lc2["pp_cpu_ms_per_tok"]])
        ltg_c = statistics.mean([lc["tg_cpu_ms_per_tok"], lc2["tg_cpu_ms_per_tok"]])
        rows.append((name, size_mib, f"pp{args.p}", fmt(gpp_m, abs(gpp[0] - gpp[1]) / 2),
                     fmt(lpp_m, statistics.pstdev(lpp)), gpp_m / lpp_m,
                     max(gb["peak_rss_mib"], gb2["peak_rss_mib"]), max(lc["peak_rss_mib"], lc2["peak_rss_mib"]), gpp_c, lpp_c))
        rows.append((name, size_mib, f"tg{args.n}", fmt(gtg_m, abs(gtg[0] - gtg[1]) / 2),
                     fmt(ltg_m, statistics.pstdev(ltg)), gtg_m / ltg_m, None, None, gtg_c, ltg_c))
        print(f"{name}: glassbox {gb} / llama.cpp {lc}", file=sys.stderr)

    print(f"\nthreads {args.threads}, reps {args.reps} x 2 runs per engine (alternating)\n")
    print("| model | MiB | test | glassbox t/s | llama.cpp t/s | ratio | glassbox CPU ms/tok | llama.cpp CPU ms/tok "
          "| glassbox peak RSS MiB | llama.cpp peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, size, test, g, l, ratio, grss, lrss, gc, lcc in rows:
        rs = f"{grss:.0f}" if grss else ""
        ls = f"{lrss:.0f}" if lrss else ""
        print(f"| {name} | {size:.0f} | {test} | {g} | {l} | {ratio:.2f} | {gc:.2f} | {lcc:.2f} | {rs} | {ls} |")


if __name__ == "__main__":
    main()
