#!/usr/bin/env bash
# One device call: checks the CUDA backend (cuda tests, compute-sanitizer
# memcheck + racecheck) and times it against llama.cpp (built with CUDA here
# from the llama-cpp-python sdist's vendor/llama.cpp) on synthetic models:
# decode tg128 and prefill pp512, plus the device-to-device copy bandwidth and
# the roofline (bandwidth / weight bytes per token). Logs go to $OUT.
#
# usage: bench/bench_cuda.sh WORKDIR
#   WORKDIR/bin: glassbox-cli, tst_cuda_kernels, tst_cuda_model, bench_cuda_kernels (built with
#                -DGLASSBOX_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90; the device
#                image has no Qt, so the binaries are built where Qt is)
#   WORKDIR/lib or lib.tgz (-> /tmp/gblib): shared libraries the test binaries need (Qt)
#   WORKDIR/lcpp.tgz: llama.cpp sources (trimmed vendor/llama.cpp)
# env: GB_DEADLINE (seconds, default 560), GB_MODELS (space-separated
#      shape:type list), GB_SKIP_CHECKS=1, GB_SKIP_LCPP=1
set -u
. "$(dirname "$0")/cuda_kit.sh"
kit_init "${1:-.cudawork}" 560
kit_gpu_info
nproc

# ---- llama.cpp build (background) -------------------------------------------
LCPP_PID=
[ "${GB_SKIP_LCPP:-0}" != 1 ] && kit_lcpp_build 12

# ---- models (8B in the background: it takes minutes) -------------------------
MODELS=${GB_MODELS:-"gemma3-270m:Q4_K_M llama-1b:Q4_K_M llama-1b:Q8_0 llama-1b:F16 llama-8b:Q4_K_M"}
BIG_PID=
for mt in $MODELS; do
  case $mt in llama-8b:*) ( kit_synth "${mt%%:*}" "${mt##*:}" 4 ) & BIG_PID="$BIG_PID $!";; esac
done

# ---- checks ---------------------------------------------------------------------
if [ "${GB_SKIP_CHECKS:-0}" != 1 ]; then
  log "tests"
  "$BIN/tst_cuda_kernels" > "$OUT/tst_cuda_kernels.log" 2>&1; log "tst_cuda_kernels rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_kernels.log")"
  timeout 240 "$BIN/tst_cuda_model" > "$OUT/tst_cuda_model.log" 2>&1; log "tst_cuda_model rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_model.log")"
  grep -E "top-1|FAIL|error" "$OUT/tst_cuda_model.log" | head -40
  grep -E "FAIL" -A3 "$OUT/tst_cuda_kernels.log" | head -40
  log "compute-sanitizer memcheck (kernels)"
  timeout 150 compute-sanitizer --tool memcheck --leak-check full --error-exitcode 3 "$BIN/tst_cuda_kernels" > "$OUT/memcheck_kernels.log" 2>&1
  log "memcheck kernels rc=$? $(grep -E 'ERROR SUMMARY|^Totals' "$OUT/memcheck_kernels.log" | tr '\n' ' ')"
  timeout 90 compute-sanitizer --tool memcheck --error-exitcode 3 "$BIN/tst_cuda_model" "logits:tiny-gemma3 Q4_K_M" "logits:tiny-qwen2 Q4_K_M" > "$OUT/memcheck_model.log" 2>&1
  log "memcheck model rc=$? $(grep -E 'ERROR SUMMARY|^Totals' "$OUT/memcheck_model.log" | tr '\n' ' ')"
  timeout 120 compute-sanitizer --tool racecheck --error-exitcode 3 "$BIN/tst_cuda_kernels" attention add_norm qkv_post act argmax_softcap "linear:Q4_K gemm x130" "linear:Q6_K matvec x3" > "$OUT/racecheck.log" 2>&1
  log "racecheck rc=$? $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY|^Totals' "$OUT/racecheck.log" | tr '\n' ' ')"
fi

if [ -x "$BIN/bench_cuda_kernels" ]; then
  timeout 120 "$BIN/bench_cuda_kernels" > "$OUT/kernels.md" 2>&1; log "bench_cuda_kernels rc=$?"
  cat "$OUT/kernels.md" | tee -a "$OUT/summary.log"
fi

# ---- bandwidth -------------------------------------------------------------------
python3 - > "$OUT/bandwidth.txt" 2>&1 <<'PY'
import torch
n = 2 << 30  # 2 GiB per buffer
a = torch.empty(n, dtype=torch.uint8, device="cuda"); b = torch.empty_like(a)
a.random_(0, 255)
for _ in range(3): b.copy_(a)
ts = []
for _ in range(10):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); b.copy_(a); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e) / 1e3)
ts.sort(); t = ts[len(ts) // 2]
print(f"d2d_copy_GBps {2 * n / t / 1e9:.1f}  (read+write, median of 10, 2 GiB)")
PY
cat "$OUT/bandwidth.txt" | tee -a "$OUT/summary.log"

# ---- timing ----------------------------------------------------------------------
run_ours() {  # file tag
  "$BIN/glassbox-cli" bench -m "$1" --backend cuda -p 512 -n 128 -r 3 --json > "$OUT/ours_$2.json" 2>> "$OUT/ours_err.log"
  log "ours $2: $(cat "$OUT/ours_$2.json")"
}
run_lcpp() {
  [ -x /tmp/lcpp/build/bin/llama-bench ] || return
  /tmp/lcpp/build/bin/llama-bench -m "$1" -ngl 99 -p 512 -n 128 -r 3 -o json > "$OUT/lcpp_$2.json" 2>> "$OUT/lcpp_err.log"
  log "llama.cpp $2: $(python3 -c "import json,sys; d=json.load(open('$OUT/lcpp_$2.json')); print(' '.join('%s p%d n%d %.1f t/s' % (r['model_type'], r['n_prompt'], r['n_gen'], r['avg_ts']) for r in d))" 2>&1)"
}
for mt in $MODELS; do
  case $mt in llama-8b:*) continue;; esac
  [ "$(left)" -lt 60 ] && { log "deadline: skipping $mt"; continue; }
  kit_synth "${mt%%:*}" "${mt##*:}" 16
  run_ours "$M/${mt%%:*}-${mt##*:}.gguf" "${mt%%:*}-${mt##*:}"
done
log "waiting for the 8B file / llama.cpp build"
for p in $BIG_PID; do
  while kill -0 "$p" 2>/dev/null && [ "$(left)" -gt 45 ]; do sleep 2; done
done
for mt in $MODELS; do
  case $mt in llama-8b:*) ;; *) continue;; esac
  f="$M/${mt%%:*}-${mt##*:}.gguf"
  [ -f "$f" ] && [ "$(left)" -gt 40 ] && run_ours "$f" "${mt%%:*}-${mt##*:}"
done
# ---- PDL off (same binary, GB_CUDA_PDL=0) and per-kernel device times (ncu) -------
PDL_MODELS=${GB_PDL_MODELS:-llama-8b:Q4_K_M llama-1b:Q4_K_M}
for mt in $PDL_MODELS; do
  f="$M/${mt%%:*}-${mt##*:}.gguf"
  for var in GB_CUDA_PDL GB_CUDA_GLU; do
    [ -f "$f" ] && [ "$(left)" -gt 90 ] || continue
    env $var=0 "$BIN/glassbox-cli" bench -m "$f" --backend cuda -p 16 -n 128 -r 3 --json > "$OUT/ours_${var}0_${mt%%:*}-${mt##*:}.json" 2>> "$OUT/ours_err.log"
    log "ours $var=0 ${mt}: $(cat "$OUT/ours_${var}0_${mt%%:*}-${mt##*:}.json")"
  done
done
if command -v ncu > /dev/null && [ "${GB_SKIP_NCU:-0}" != 1 ]; then
  for mt in ${GB_NCU_MODELS:-"llama-8b:Q4_K_M"}; do
    f="$M/${mt%%:*}-${mt##*:}.gguf"
    [ -f "$f" ] && [ "$(left)" -gt 120 ] || continue
    timeout 100 ncu --clock-control none --metrics gpu__time_duration.sum --csv -c 420 \
      "$BIN/glassbox-cli" bench -m "$f" --backend cuda -p 1 -n 2 -r 1 > "$OUT/ncu_${mt%%:*}.csv" 2> "$OUT/ncu_err.log"
    python3 - "$OUT/ncu_${mt%%:*}.csv" <<'PY' | tee -a "$OUT/summary.log"
import csv, sys, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
if not rows: print("ncu: no rows"); sys.exit()
h = rows[0]; ki = h.index("Kernel Name"); vi = h.index("Metric Value"); ui = h.index("Metric Unit")
tot = collections.defaultdict(float); cnt = collections.Counter()
for r in rows[1:]:
    v = float(r[vi].replace(",", "")); v *= {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}.get(r[ui], float("nan"))
    name = r[ki].split("(")[0].split("<")[0].replace("gb::cuda::", "").replace("(anonymous namespace)::", "")
    tot[name] += v; cnt[name] += 1
print("ncu %s: %d kernels, %.1f us total" % (sys.argv[1].split("/")[-1], sum(cnt.values()), sum(tot.values())))
for k in sorted(tot, key=lambda k: -tot[k]): print("  %-40s n=%4d total %9.1f us  mean %7.2f us" % (k[:40], cnt[k], tot[k], tot[k] / cnt[k]))
PY
  done
fi
if [ -n "$LCPP_PID" ]; then
  while kill -0 "$LCPP_PID" 2>/dev/null && [ "$(left)" -gt 30 ]; do sleep 2; done
  log "llama.cpp build: $(tail -1 "$OUT/lcpp_build.log")"
  for mt in $MODELS; do
    f="$M/${mt%%:*}-${mt##*:}.gguf"
    [ -f "$f" ] && [ "$(left)" -gt 15 ] && run_lcpp "$f" "${mt%%:*}-${mt##*:}"
  done
fi
ls -la "$M" >> "$OUT/summary.log"
log "done"
