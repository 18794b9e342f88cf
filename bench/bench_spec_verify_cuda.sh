#!/usr/bin/env bash
# GPU speculation verify cost and end-to-end speedup on the real model (h7/specgpu's device runs,
# one script): tst_cuda_spec with the fused verification on / off / without precapture + a memcheck,
# bench_spec_cuda's verification table (first use and steady state) for this build and an old one,
# plain decode speed of both, and bench_spec.py on the grounded (5 reps) and open (2 reps) prompts,
# this build against the old one (interleaved, --cli-b) and against itself without precapture.
#
# usage (repo root on the device): bench/bench_spec_verify_cuda.sh BIN MODEL
#   BIN: glassbox-cli, bench_spec_cuda, tst_cuda_spec (this build, CUDA sm_90) and glassbox-cli-base,
#        bench_spec_cuda-base (the build to compare with); LD_LIBRARY_PATH must reach Qt for the test.
#   MODEL: gemma-3-270m Q4_K_M (sha256 a5fd3b62...; it travels in pieces, see bench/NOTES.md)
# Logs and tables go to $OUT (default /tmp/gb_out).
set -u
B=$(cd "$1" && pwd); G=$2; OUT=${OUT:-/tmp/gb_out}; mkdir -p "$OUT"
T0=$(date +%s); log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/summary.log"; }
printf '#!/bin/sh\nGB_CUDA_TREE_PRECAPTURE=0 exec %s/glassbox-cli "$@"\n' "$B" > /tmp/glassbox-cli-noprecap
chmod +x /tmp/glassbox-cli-noprecap
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/summary.log"
log "model sha256 $(sha256sum "$G" | cut -c1-16)"
for v in "default:" "nofuse:GB_CUDA_TREE_FUSE=0" "noprecap:GB_CUDA_TREE_PRECAPTURE=0"; do
  n=${v%%:*}; e=${v#*:}
  env $e timeout 150 "$B/tst_cuda_spec" > "$OUT/tst_$n.log" 2>&1; log "tst_cuda_spec $n rc=$? $(grep ^Totals "$OUT/tst_$n.log")"
done
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 3 "$B/tst_cuda_spec" "treeMatchesPlain:tiny-gemma3 Q4_K_M" \
  "specGreedyEqualsPlain:tiny-gemma3 Q4_K_M lookahead" "rowSummaries" > "$OUT/memcheck.log" 2>&1
log "memcheck rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log")"
for v in "new:bench_spec_cuda:" "old_path:bench_spec_cuda:GB_CUDA_TREE_FUSE=0 GB_CUDA_TREE_PRECAPTURE=0" "base:bench_spec_cuda-base:"; do
  n=${v%%:*}; r=${v#*:}; b=${r%%:*}; e=${r#*:}
  env $e timeout 60 "$B/$b" "$G" --gen 0 --reps 21 > "$OUT/vc_$n.md" 2>&1; log "verification cost $n rc=$?"
done
for b in glassbox-cli glassbox-cli-base; do
  timeout 60 "$B/$b" bench -m "$G" --backend cuda -p 512 -n 128 -r 3 --json 2>/dev/null | tail -1 > "$OUT/tg_$b.json"
done
sp() {  # name args...
  local n=$1; shift
  timeout 200 python3 bench/bench_spec.py --model "$G" --backend cuda --methods lookup,lookahead "$@" > "$OUT/spec_$n.md" 2> "$OUT/spec_$n.err"
  log "bench_spec $n rc=$?"
}
sp grounded --cli "$B/glassbox-cli" --cli-b "$B/glassbox-cli-base" --prompts grounded --reps 5
sp base_answer --cli "$B/glassbox-cli-base" --prompts answer --reps 3
sp noprecap --cli "$B/glassbox-cli" --cli-b /tmp/glassbox-cli-noprecap --prompts grounded --reps 2
sp open --cli "$B/glassbox-cli" --cli-b "$B/glassbox-cli-base" --prompts open --reps 2
log done
