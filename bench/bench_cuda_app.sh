#!/usr/bin/env bash
# One device call for the app's GPU path (h4/cudaapp): tst_cuda_batch (graph
# replay vs eager, Q8_0 pages vs the CPU), tst_glassbox_backend_cuda (the app's
# backend on the GPU BatchEngine), compute-sanitizer memcheck of the new test
# rows, then one-stream decode through BatchEngine with and without the CUDA
# graph against the CUDA Context (`glassbox-cli bench`), and bench-serve
# --backend cuda at 1/4/16 streams (F16 and Q8_0 KV) on synthetic
# gemma3-270m-shaped and llama-1b Q4_K_M files made there. Logs go to $OUT.
#
# usage: bench/bench_cuda_app.sh WORKDIR
#   WORKDIR/bin: glassbox-cli, tst_cuda_batch, tst_glassbox_backend_cuda (built with -DGLASSBOX_CUDA=ON)
#   WORKDIR/lib.tgz (-> /tmp/gblib): the Qt libraries the test binaries need (Core, Test, Sql)
# env: GB_DEADLINE (seconds, default 300), GB_MODELS, GB_SKIP_CHECKS=1, GB_SKIP_SERVE=1,
#      GB_TESTS (tst_cuda_batch arguments), GB_SKIP_SANITIZERS=1, GB_NCU=1 (per-kernel times)
set -u
. "$(dirname "$0")/cuda_kit.sh"
kit_init "${1:-.cudawork-cudaapp}" 300
RES=$OUT                  # gets summary.log, the test logs and serve_all.md at the end
OUT=/tmp/gb_logs          # everything
mkdir -p "$OUT"
kit_gpu_info

MODELS=${GB_MODELS:-"gemma3-270m:Q4_K_M llama-1b:Q4_K_M"}
( for mt in $MODELS; do kit_synth "${mt%%:*}" "${mt##*:}" 8; done ) &
SYNTH_PID=$!

if [ "${GB_SKIP_CHECKS:-0}" != 1 ]; then
  timeout 150 "$BIN/tst_cuda_batch" ${GB_TESTS:-} > "$OUT/tst_cuda_batch.log" 2>&1
  log "tst_cuda_batch rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_batch.log")"
  grep -E "FAIL|QINFO|QWARN|seed" "$OUT/tst_cuda_batch.log" | cut -c1-260 | tee -a "$OUT/summary.log" | head -60
  timeout 90 "$BIN/tst_glassbox_backend_cuda" > "$OUT/tst_glassbox_backend_cuda.log" 2>&1
  log "tst_glassbox_backend_cuda rc=$? $(grep -E '^Totals' "$OUT/tst_glassbox_backend_cuda.log")"
  grep -E "FAIL|QINFO|QWARN|SKIP" -A2 "$OUT/tst_glassbox_backend_cuda.log" | cut -c1-260 | tee -a "$OUT/summary.log" | head -30
  [ "${GB_SKIP_SANITIZERS:-0}" = 1 ] || {
  timeout 120 compute-sanitizer --tool memcheck --error-exitcode 3 "$BIN/tst_cuda_batch" paged_attention page_copy \
    "graph_replay_equals_eager:tiny-gemma3 q8_0 KV" "q8_pages_vs_cpu:tiny-llama" "engine_concurrent_vs_alone:tiny-llama x4" \
    > "$OUT/memcheck_batch.log" 2>&1
  log "memcheck tst_cuda_batch rc=$? $(grep -E 'ERROR SUMMARY|^Totals' "$OUT/memcheck_batch.log" | tr '\n' ' ')"
  timeout 60 compute-sanitizer --tool racecheck --error-exitcode 3 "$BIN/tst_cuda_batch" "paged_attention:q8 gqa4 hd64 ps16" \
    "q8_pages_vs_cpu:tiny-gemma3 (window 8)" > "$OUT/racecheck_batch.log" 2>&1
  log "racecheck tst_cuda_batch rc=$? $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY|^Totals' "$OUT/racecheck_batch.log" | tr '\n' ' ')"
  }
fi

while kill -0 "$SYNTH_PID" 2>/dev/null && [ "$(left)" -gt 60 ]; do sleep 1; done
log "models ready"
# GB_NCU=1: per-kernel device times (ncu, kernels serialized) of a few decode
# steps of the gemma3-shaped file: the CUDA Context vs BatchEngine (one stream),
# grouped by kernel and grid, mean microseconds per launch.
if [ "${GB_NCU:-0}" = 1 ] && command -v ncu > /dev/null; then
  f="$M/gemma3-270m-Q4_K_M.gguf"
  timeout 90 ncu --clock-control none --metrics gpu__time_duration.sum --csv -c 700 \
    "$BIN/glassbox-cli" bench -m "$f" --backend cuda -p 1 -n 6 -r 1 > "$OUT/ncu_ctx.csv" 2> "$OUT/ncu_err.log"
  timeout 120 ncu --clock-control none --metrics gpu__time_duration.sum --csv -c 1300 \
    "$BIN/glassbox-cli" bench-serve -m "$f" --backend cuda --streams 1 -n 6 --long-prompt 16 > "$OUT/ncu_be.csv" 2>> "$OUT/ncu_err.log"
  for w in ctx be; do
    python3 - "$OUT/ncu_$w.csv" <<'PY' | tee -a "$OUT/summary.log"
import csv, sys, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
if not rows: print("ncu: no rows"); sys.exit()
h = rows[0]; ki = h.index("Kernel Name"); vi = h.index("Metric Value"); ui = h.index("Metric Unit"); gi = h.index("Grid Size")
tot = collections.defaultdict(float); cnt = collections.Counter()
for r in rows[1:]:
    v = float(r[vi].replace(",", "")); v *= {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}.get(r[ui], float("nan"))
    name = r[ki].split("(")[0].replace("gb::cuda::", "").replace("(anonymous namespace)::", "")[:44]
    key = name + " " + r[gi]
    tot[key] += v; cnt[key] += 1
print("ncu %s: %d kernels, %.1f us total" % (sys.argv[1].split("/")[-1], sum(cnt.values()), sum(tot.values())))
for k in sorted(tot, key=lambda k: -tot[k])[:28]: print("  %-62s n=%4d total %8.1f us  mean %6.2f us" % (k[:62], cnt[k], tot[k], tot[k] / cnt[k]))
PY
  done
fi
if [ "${GB_SKIP_SERVE:-0}" = 1 ]; then MODELS=""; fi
serve() {  # tag file args...
  local tag=$1 f=$2; shift 2
  [ "$(left)" -gt 25 ] || { log "skipping $tag"; return; }
  GB_CUDA_BATCH_PROFILE=1 timeout $(( $(left) - 10 )) "$BIN/glassbox-cli" bench-serve -m "$f" --backend cuda "$@" > "$OUT/serve_$tag.md" 2> "$OUT/serve_$tag.err"
  log "bench-serve $tag ($*) rc=$?"
  grep -E '^\| [0-9]' "$OUT/serve_$tag.md" | tee -a "$OUT/summary.log"
  tr '\r' '\n' < "$OUT/serve_$tag.err" | grep "cuda batch forward" | tee -a "$OUT/summary.log"
}
for mt in $MODELS; do
  f="$M/${mt%%:*}-${mt##*:}.gguf"; tag="${mt%%:*}-${mt##*:}"
  [ -f "$f" ] || { log "no $tag"; continue; }
  # one stream: the CUDA Context (graph) vs BatchEngine with and without the graph, 128 tokens
  "$BIN/glassbox-cli" bench -m "$f" --backend cuda -p 16 -n 128 -r 3 --json > "$OUT/ctx_$tag.json" 2>> "$OUT/ctx_err.log"
  log "context $tag: $(cat "$OUT/ctx_$tag.json")"
  serve "${tag}_1_graph" "$f" --streams 1 -n 128 --long-prompt 64
  GB_CUDA_BATCH_GRAPH=0 serve "${tag}_1_nograph" "$f" --streams 1 -n 128 --long-prompt 64
done
for mt in $MODELS; do
  f="$M/${mt%%:*}-${mt##*:}.gguf"; tag="${mt%%:*}-${mt##*:}"
  [ -f "$f" ] || continue
  serve "${tag}_f16" "$f" -n 64
  serve "${tag}_q8" "$f" -n 64 --kv q8_0 --streams 1,16 --long-prompt 300
done
for f in summary.log tst_cuda_batch.log tst_glassbox_backend_cuda.log memcheck_batch.log racecheck_batch.log; do
  [ -f "$OUT/$f" ] && cp "$OUT/$f" "$RES/"
done
for f in "$OUT"/serve_*.md "$OUT"/ctx_*.json; do [ -f "$f" ] && { echo "== $(basename "$f")"; cat "$f"; }; done > "$RES/serve_all.md"
log "done"
