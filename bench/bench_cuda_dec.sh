#!/usr/bin/env bash
# One device call (h4/cudadec): checks (kernels, model, memcheck, racecheck), then
# decode/prefill timings of this build against a baseline build (glassbox-cli-main)
# on synthetic llama-8b/1b and gemma3-270m Q4_K_M files, alternating, plus the
# decode fusions toggled off (GB_CUDA_ROPE=0, GB_CUDA_ATTN_FUSE=0; same binary).
# usage: bench/bench_cuda_dec.sh WORKDIR (WORKDIR/bin: glassbox-cli, glassbox-cli-main = a baseline build,
#   tst_cuda_kernels, tst_cuda_model; WORKDIR/lib.tgz: the Qt libraries)   env: GB_DEADLINE (s), GB_LCPP=1 to build/time llama.cpp
set -u
. "$(dirname "$0")/cuda_kit.sh"
kit_init "${1:-.cudawork-cudadec}" 540
kit_gpu_info
LCPP_PID=
[ "${GB_LCPP:-0}" = 1 ] && kit_lcpp_build 10
( kit_synth llama-8b Q4_K_M 6 ) & P8=$!
( kit_synth llama-1b Q4_K_M 2 ) & P1=$!
( kit_synth gemma3-270m Q4_K_M 2 ) & PG=$!
log "tests"
"$BIN/tst_cuda_kernels" > "$OUT/tst_cuda_kernels.log" 2>&1; log "tst_cuda_kernels rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_kernels.log")"
grep -E "FAIL" -A3 "$OUT/tst_cuda_kernels.log" | head -20
timeout 200 "$BIN/tst_cuda_model" > "$OUT/tst_cuda_model.log" 2>&1; log "tst_cuda_model rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_model.log")"
grep -E "FAIL|SKIP|GPU decode|GPU batches" -A1 "$OUT/tst_cuda_model.log" | grep -v "^--" | cut -c1-200 | head -40
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 3 "$BIN/tst_cuda_kernels" attention > "$OUT/memcheck_kernels.log" 2>&1
log "memcheck kernels rc=$? $(grep -E 'ERROR SUMMARY|^Totals' "$OUT/memcheck_kernels.log" | tr '\n' ' ')"
timeout 120 compute-sanitizer --tool memcheck --error-exitcode 3 "$BIN/tst_cuda_model" "logits:tiny-llama Q4_K_M" "logits:tiny-gemma3 Q4_K_M" "partial:tiny-qwen2 Q4_K_M" > "$OUT/memcheck_model.log" 2>&1
log "memcheck model rc=$? $(grep -E 'ERROR SUMMARY|^Totals' "$OUT/memcheck_model.log" | tr '\n' ' ')"
timeout 60 compute-sanitizer --tool racecheck --error-exitcode 3 "$BIN/tst_cuda_kernels" attention > "$OUT/racecheck.log" 2>&1
log "racecheck kernels rc=$? $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY|^Totals' "$OUT/racecheck.log" | tr '\n' ' ')"
bench() {  # tag file binary env...
  local tag=$1 f=$2 b=$3; shift 3
  env "$@" "$BIN/$b" bench -m "$f" --backend cuda -p ${GB_P:-512} -n 128 -r 3 --json > "$OUT/ours_$tag.json" 2>> "$OUT/ours_err.log"
  log "$tag: $(grep -o '"pp": {[^}]*}, "tg": {[^}]*}' "$OUT/ours_$tag.json" | sed 's/"cpu_ms_per_tok": [0-9.]*//g')"
}
wait $P1 $PG
F1=$M/llama-1b-Q4_K_M.gguf; FG=$M/gemma3-270m-Q4_K_M.gguf
for f in "$F1" "$FG"; do [ -f "$f" ] && { bench "$(basename $f)_new" "$f" glassbox-cli X=1; bench "$(basename $f)_main" "$f" glassbox-cli-main X=1; }; done
while kill -0 $P8 2>/dev/null && [ "$(left)" -gt 150 ]; do sleep 2; done
F8=$M/llama-8b-Q4_K_M.gguf
if [ -f "$F8" ] && ! kill -0 $P8 2>/dev/null; then
  bench 8b_new "$F8" glassbox-cli X=1
  bench 8b_main "$F8" glassbox-cli-main X=1
  bench 8b_new_b "$F8" glassbox-cli X=1
  bench 8b_main_b "$F8" glassbox-cli-main X=1
  bench 8b_norope "$F8" glassbox-cli GB_CUDA_ROPE=0
  bench 8b_noattn "$F8" glassbox-cli GB_CUDA_ATTN_FUSE=0
  bench 8b_alloff "$F8" glassbox-cli GB_CUDA_ROPE=0 GB_CUDA_ATTN_FUSE=0
  bench 8b_new_c "$F8" glassbox-cli X=1
  bench 8b_main_c "$F8" glassbox-cli-main X=1
fi
python3 - > "$OUT/bandwidth.txt" 2>&1 <<'PY'
import torch
n = 2 << 30
a = torch.empty(n, dtype=torch.uint8, device="cuda"); b = torch.empty_like(a); a.random_(0, 255)
for _ in range(3): b.copy_(a)
ts = []
for _ in range(10):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); b.copy_(a); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e) / 1e3)
ts.sort(); print(f"d2d_copy_GBps {2 * n / ts[5] / 1e9:.1f}")
PY
cat "$OUT/bandwidth.txt" | tee -a "$OUT/summary.log"
if [ -n "$LCPP_PID" ]; then
  while kill -0 "$LCPP_PID" 2>/dev/null && [ "$(left)" -gt 40 ]; do sleep 2; done
  log "llama.cpp build: $(tail -1 "$OUT/lcpp_build.log")"
  for f in "$F8" "$F1"; do
    [ -x /tmp/lcpp/build/bin/llama-bench ] && [ -f "$f" ] && [ "$(left)" -gt 20 ] || continue
    /tmp/lcpp/build/bin/llama-bench -m "$f" -ngl 99 -p 512 -n 128 -r 3 -o json > "$OUT/lcpp_$(basename $f).json" 2>> "$OUT/lcpp_err.log"
    log "llama.cpp $(basename $f): $(python3 -c "import json; d=json.load(open('$OUT/lcpp_$(basename $f).json')); print(' '.join('p%d n%d %.1f t/s' % (r['n_prompt'], r['n_gen'], r['avg_ts']) for r in d))" 2>&1)"
  done
fi
log "done"
