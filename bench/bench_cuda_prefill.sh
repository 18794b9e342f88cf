#!/usr/bin/env bash
# One build-free device call for the prefill GEMM and partial offload work:
# cuda tests, compute-sanitizer (memcheck + racecheck) on the new test rows,
# then pp512 of the fused tensor-core GEMM vs the old slab path
# (GB_CUDA_GEMM=slab, same binary) vs llama.cpp (built here with CUDA), and a
# partial-offload timing. Logs go to $OUT; a table is printed last.
#
# usage: bench/bench_cuda_prefill.sh WORKDIR
#   WORKDIR/bin: glassbox-cli tst_cuda_kernels tst_cuda_model (CUDA build, sm_90)
#   WORKDIR/lib.tgz: Qt libs for the tests; WORKDIR/lcpp.tgz: llama.cpp sources
# env: GB_DEADLINE (s, default 540), GB_MODELS, GB_SKIP_CHECKS=1, GB_SKIP_LCPP=1,
#      GB_NCU_MODELS (shape:type list: per-kernel device times of one pp512 under ncu),
#      GB_FLASH_COMPARE=1 (also pp512 with GB_CUDA_FLASH=0), GB_SKIP_PARTIAL=1
set -u
. "$(dirname "$0")/cuda_kit.sh"
kit_init "${1:-.cudawork}" 540
FINAL_OUT=$OUT
OUT=/tmp/gb_logs  # everything is packed into $FINAL_OUT/logs.tgz at the end (the device returns 8 files at most)
mkdir -p "$OUT"
kit_gpu_info

LCPP_PID=
[ "${GB_SKIP_LCPP:-0}" != 1 ] && kit_lcpp_build 10
MODELS=${GB_MODELS:-"gemma3-270m:Q4_K_M llama-1b:Q4_K_M llama-1b:Q8_0 llama-1b:F16 llama-8b:Q4_K_M"}
( kit_synth llama-8b Q4_K_M 6 ) & BIG_PID=$!

if [ "${GB_SKIP_CHECKS:-0}" != 1 ]; then
  "$BIN/tst_cuda_kernels" > "$OUT/tst_kernels.log" 2>&1; log "tst_cuda_kernels rc=$? $(grep -E '^Totals' "$OUT/tst_kernels.log")"
  grep -E "^FAIL" -A3 "$OUT/tst_kernels.log" | head -20
  timeout 220 "$BIN/tst_cuda_model" > "$OUT/tst_model.log" 2>&1; log "tst_cuda_model rc=$? $(grep -E '^Totals' "$OUT/tst_model.log")"
  grep -E "^FAIL" -A3 "$OUT/tst_model.log" | head -20
  G="linear:Q4_K gemm x200 tile128" ; G2="linear:Q6_K gemm x37"; G3="linear:Q8_0 gemm x37 k800"
  F1="attention:flash hd128 x70 at 45"; F2="attention:flash hd256 window 24 x90 at 30"; F3="attention:flash hd64 x100"
  timeout 60 compute-sanitizer --tool memcheck --error-exitcode 3 "$BIN/tst_cuda_kernels" "$G" "$G2" "$G3" "linear:F16 gemm x130" "$F1" "$F2" "$F3" > "$OUT/memcheck_kernels.log" 2>&1
  log "memcheck gemm+flash rc=$? $(grep -E 'ERROR SUMMARY|^Totals' "$OUT/memcheck_kernels.log" | tr '\n' ' ')"
  timeout 90 compute-sanitizer --tool racecheck --error-exitcode 3 "$BIN/tst_cuda_kernels" "$G" "$G2" "$F1" "$F2" > "$OUT/racecheck.log" 2>&1
  log "racecheck gemm+flash rc=$? $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY|^Totals' "$OUT/racecheck.log" | tr '\n' ' ')"
  timeout 90 compute-sanitizer --tool memcheck --error-exitcode 3 "$BIN/tst_cuda_model" "partial:tiny-qwen2 Q4_K_M" "partial:tiny-gemma3 Q4_K_M" refuses_when_too_big > "$OUT/memcheck_model.log" 2>&1
  log "memcheck partial rc=$? $(grep -E 'ERROR SUMMARY|^Totals' "$OUT/memcheck_model.log" | tr '\n' ' ')"
fi

pp() {  # file tag env...
  local f=$1 tag=$2; shift 2
  env "$@" "$BIN/glassbox-cli" bench -m "$f" --backend cuda -p 512 -n 0 -r 5 --json > "$OUT/pp_$tag.json" 2>> "$OUT/ours_err.log"
  log "pp512 $tag $*: $(python3 -c "import json; d=json.load(open('$OUT/pp_$tag.json')); print(d['backend'], 'pp %.1f +- %.1f t/s' % (d['pp']['tps'], d['pp']['std']))" 2>&1 | head -c 300)"
}
for mt in $MODELS; do
  [ "$(left)" -lt 60 ] && { log "deadline: skip $mt"; continue; }
  s=${mt%%:*}; t=${mt##*:}; f="$M/$s-$t.gguf"
  if [ "$s" = llama-8b ]; then while kill -0 $BIG_PID 2>/dev/null && [ "$(left)" -gt 60 ]; do sleep 2; done; else kit_synth "$s" "$t" 12; fi
  [ -f "$f" ] || continue
  pp "$f" "fused_$s-$t" GB_CUDA_GEMM=
  pp "$f" "slab_$s-$t" GB_CUDA_GEMM=slab
  [ "${GB_FLASH_COMPARE:-0}" = 1 ] && pp "$f" "noflash_$s-$t" GB_CUDA_FLASH=0
done
f="$M/llama-1b-Q4_K_M.gguf"
if [ "${GB_SKIP_PARTIAL:-0}" != 1 ] && [ -f "$f" ] && [ "$(left)" -gt 60 ]; then
  for ngl in 8 0; do
    "$BIN/glassbox-cli" bench -m "$f" --backend cuda -ngl $ngl -p 512 -n 32 -r 1 --json > "$OUT/partial_ngl$ngl.json" 2>> "$OUT/ours_err.log"
    log "partial llama-1b Q4_K_M ngl $ngl: $(cat "$OUT/partial_ngl$ngl.json" | head -c 400)"
  done
fi
if command -v ncu > /dev/null; then
  for mt in ${GB_NCU_MODELS:-}; do
    f="$M/${mt%%:*}-${mt##*:}.gguf"
    [ -f "$f" ] && [ "$(left)" -gt 90 ] || continue
    timeout 80 ncu --clock-control none --metrics gpu__time_duration.sum --csv \
      "$BIN/glassbox-cli" bench -m "$f" --backend cuda -p 512 -n 0 -r 1 > "$OUT/ncu_$mt.csv" 2> "$OUT/ncu_err.log"
    python3 - "$OUT/ncu_$mt.csv" <<'PY' | tee -a "$OUT/summary.log"
import csv, sys, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
if not rows: print("ncu: no rows"); sys.exit()
h = rows[0]; ki = h.index("Kernel Name"); vi = h.index("Metric Value"); ui = h.index("Metric Unit")
tot = collections.defaultdict(float); cnt = collections.Counter()
for r in rows[1:]:
    v = float(r[vi].replace(",", "")); v *= {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}.get(r[ui], float("nan"))
    name = r[ki].split("(")[0].replace("gb::cuda::", "").replace("(anonymous namespace)::", "")[:60]
    tot[name] += v; cnt[name] += 1
print("ncu %s (2 prefills of 512: warm-up + 1): %d kernels, %.1f us total" % (sys.argv[1].split("/")[-1], sum(cnt.values()), sum(tot.values())))
for k in sorted(tot, key=lambda k: -tot[k])[:14]: print("  %-60s n=%4d total %9.1f us  mean %8.2f us" % (k, cnt[k], tot[k], tot[k] / cnt[k]))
PY
  done
fi
if [ -n "$LCPP_PID" ]; then
  while kill -0 "$LCPP_PID" 2>/dev/null && [ "$(left)" -gt 25 ]; do sleep 2; done
  log "llama.cpp build: $(tail -1 "$OUT/lcpp_build.log")"
  for mt in $MODELS; do
    f="$M/${mt%%:*}-${mt##*:}.gguf"
    [ -f "$f" ] && [ -x /tmp/lcpp/build/bin/llama-bench ] && [ "$(left)" -gt 12 ] || continue
    /tmp/lcpp/build/bin/llama-bench -m "$f" -ngl 99 -p 512 -n 0 -r 3 -o json > "$OUT/lcpp_$mt.json" 2>> "$OUT/lcpp_err.log"
    log "llama.cpp pp512 $mt: $(python3 -c "import json; d=json.load(open('$OUT/lcpp_$mt.json')); print(' '.join('%.1f' % r['avg_ts'] for r in d))" 2>&1 | head -c 200)"
  done
fi
log "done"
cp "$OUT/summary.log" "$FINAL_OUT/"
tar czf "$FINAL_OUT/logs.tgz" -C "$OUT" --exclude '*.csv' . 2>/dev/null
