#!/usr/bin/env bash
# One device call for the GPU BatchEngine (paged KV cache on the device):
# tst_cuda_batch, compute-sanitizer memcheck on it, then `glassbox-cli
# bench-serve --backend cuda` (1/4/16 concurrent streams against the same
# requests one after another; a long prompt arriving while 4 streams decode)
# on synthetic gemma3-270m-shaped and llama-1b-shaped Q4_K_M files made there.
# Logs and JSON go to $OUT.
#
# usage: bench/bench_serve_cuda.sh WORKDIR
#   WORKDIR/bin: glassbox-cli, tst_cuda_batch (built with -DGLASSBOX_CUDA=ON)
#   WORKDIR/lib.tgz (-> /tmp/gblib): the Qt libraries the test binary needs
# env: GB_DEADLINE (seconds, default 420), GB_MODELS (shape:type list),
#      GB_SKIP_CHECKS=1, GB_SERVE_ARGS (extra bench-serve arguments)
set -u
. "$(dirname "$0")/cuda_kit.sh"
kit_init "${1:-.cudawork-cudab}" 420
kit_gpu_info

MODELS=${GB_MODELS:-"gemma3-270m:Q4_K_M llama-1b:Q4_K_M"}
( for mt in $MODELS; do kit_synth "${mt%%:*}" "${mt##*:}" 12; done ) &
SYNTH_PID=$!

if [ "${GB_SKIP_CHECKS:-0}" != 1 ]; then
  timeout 150 "$BIN/tst_cuda_batch" > "$OUT/tst_cuda_batch.log" 2>&1
  log "tst_cuda_batch rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_batch.log")"
  grep -E "FAIL|QINFO|seed" "$OUT/tst_cuda_batch.log" | cut -c1-220 | head -40
  timeout 150 compute-sanitizer --tool memcheck --error-exitcode 3 "$BIN/tst_cuda_batch" paged_attention page_copy \
    "mixed_batch_vs_reference:tiny-gemma3 (window 8)" "engine_concurrent_vs_alone:tiny-llama x4" > "$OUT/memcheck_batch.log" 2>&1
  log "memcheck tst_cuda_batch rc=$? $(grep -E 'ERROR SUMMARY|^Totals' "$OUT/memcheck_batch.log" | tr '\n' ' ')"
  timeout 60 compute-sanitizer --tool racecheck --error-exitcode 3 "$BIN/tst_cuda_batch" paged_attention > "$OUT/racecheck_batch.log" 2>&1
  log "racecheck paged_attention rc=$? $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY|^Totals' "$OUT/racecheck_batch.log" | tr '\n' ' ')"
fi

while kill -0 "$SYNTH_PID" 2>/dev/null && [ "$(left)" -gt 60 ]; do sleep 1; done
log "models ready"
for mt in $MODELS; do
  f="$M/${mt%%:*}-${mt##*:}.gguf"; tag="${mt%%:*}-${mt##*:}"
  [ -f "$f" ] && [ "$(left)" -gt 40 ] || { log "skipping $tag"; continue; }
  GB_CUDA_BATCH_PROFILE=1 timeout $(( $(left) - 10 )) "$BIN/glassbox-cli" bench-serve -m "$f" --backend cuda -n 64 ${GB_SERVE_ARGS:-} > "$OUT/serve_$tag.md" 2> "$OUT/serve_$tag.err"
  log "bench-serve $tag rc=$?"
  cat "$OUT/serve_$tag.md" | tee -a "$OUT/summary.log"
  grep -v "^loading" "$OUT/serve_$tag.err" | tr '\r' '\n' | grep -v "^loading" | tail -16 | tee -a "$OUT/summary.log"
done
# path variants at 16 streams: decode rows through the GEMM (GB_CUDA_BATCH_MV=0),
# the logit rows through the GEMM (GB_CUDA_BATCH_MV_OUT=4)
for var in GB_CUDA_BATCH_MV=0 GB_CUDA_BATCH_MV_OUT=4; do
  for mt in $MODELS; do
    f="$M/${mt%%:*}-${mt##*:}.gguf"; tag="${mt%%:*}-${mt##*:}"
    [ -f "$f" ] && [ "$(left)" -gt 30 ] || continue
    env $var GB_CUDA_BATCH_PROFILE=1 timeout $(( $(left) - 5 )) "$BIN/glassbox-cli" bench-serve -m "$f" --backend cuda -n 64 --streams 16 \
      --long-prompt 300 > "$OUT/variants.md" 2> "$OUT/variants.err"
    log "bench-serve $var $tag rc=$? $(grep -E '^\| 16 ' "$OUT/variants.md")"
    tr '\r' '\n' < "$OUT/variants.err" | grep "cuda batch" | head -3 | tee -a "$OUT/summary.log"
  done
done
log "done"
