#!/usr/bin/env bash
# One device call, nothing built there: the CUDA speculation tests (token trees
# on the CUDA Context) plus the kernel/model/batch tests and a memcheck of the
# tree path, then bench_spec_cuda on synthetic llama-1b- and llama-8b-shaped
# Q4_K_M files (draft model: llama-1b's weights in Q2_K; for 8B the 1B file): verification cost of n
# tokens against a decode step, and plain vs oracle / lookup / lookahead /
# selfdraft / draft tokens/s. Logs and tables go to $OUT.
#
# usage: bench/bench_spec_cuda.sh WORKDIR
#   WORKDIR/bin (or bin.tgz holding bin/): glassbox-cli bench_spec_cuda tst_cuda_spec
#     [tst_cuda_kernels tst_cuda_model tst_cuda_batch], built with -DGLASSBOX_CUDA=ON
#     -DCMAKE_CUDA_ARCHITECTURES=90 where Qt is (the device image has none)
#   WORKDIR/lib.tgz (-> /tmp/gblib): the Qt libraries the test binaries need
# env: GB_SHAPES (default "gemma3-270m llama-1b llama-8b"), GB_SKIP_TESTS=1; each shape's
#   verification table is run a second time with GB_CUDA_HEAD_MULTI=0 (the
#   tree's head one node at a time, as before h5/gpuspec)
set -u
. "$(dirname "$0")/cuda_kit.sh"
kit_init "${1:-.cudawork}" 540
kit_gpu_info

# draft models: llama-1b's own weights in Q2_K; for llama-8b the llama-1b Q4_K_M file
SHAPES=${GB_SHAPES:-"gemma3-270m llama-1b llama-8b"}
draft_of() { case $1 in llama-8b) echo "$M/llama-1b-Q4_K_M.gguf";; *) echo "$M/$1-Q2_K.gguf";; esac; }
( for f in $(for s in $SHAPES; do echo "$s:Q4_K_M"; [ "$s" = llama-8b ] || echo "$s:Q2_K"; done); do
    kit_synth "${f%%:*}" "${f##*:}" 12
  done ) &
SYNTH=$!

if [ "${GB_SKIP_TESTS:-0}" != 1 ]; then
  for t in tst_cuda_spec tst_cuda_kernels tst_cuda_model tst_cuda_batch; do
    [ -x "$BIN/$t" ] || continue
    timeout 200 "$BIN/$t" > "$OUT/$t.log" 2>&1
    log "$t rc=$? $(grep -E '^Totals' "$OUT/$t.log")"
    grep -E "^FAIL|Loc:" "$OUT/$t.log" | head -20
  done
  grep -E "bit-identical|skip .* layers|proposed" "$OUT/tst_cuda_spec.log" | head -60 > "$OUT/spec_test_info.txt"
  timeout 120 compute-sanitizer --tool memcheck --error-exitcode 3 "$BIN/tst_cuda_spec" "treeMatchesPlain:tiny-gemma3 Q4_K_M" \
    "specGreedyEqualsPlain:tiny-llama Q4_K_M lookahead" > "$OUT/memcheck_spec.log" 2>&1
  log "memcheck tst_cuda_spec rc=$? $(grep -E 'ERROR SUMMARY|^Totals' "$OUT/memcheck_spec.log" | tr '\n' ' ')"
  timeout 120 compute-sanitizer --tool memcheck --error-exitcode 3 "$BIN/tst_cuda_kernels" "headMulti:Q8_0 k768" "headMulti:Q6_K k4352" \
    rowSummaries > "$OUT/memcheck_kernels.log" 2>&1
  log "memcheck tst_cuda_kernels rc=$? $(grep -E 'ERROR SUMMARY|^Totals' "$OUT/memcheck_kernels.log" | tr '\n' ' ')"
fi

wait $SYNTH
log "models: $(ls -la $M | tr '\n' ' ')"
for s in $SHAPES; do
  f="$M/$s-Q4_K_M.gguf"
  [ -f "$f" ] || { log "no $f"; continue; }
  log "bench $s"
  timeout 200 "$BIN/bench_spec_cuda" "$f" --draft "$(draft_of $s)" --reps 15 --gen 128 > "$OUT/bench_$s.md" 2>&1
  log "bench $s rc=$?"
  GB_CUDA_HEAD_MULTI=0 timeout 100 "$BIN/bench_spec_cuda" "$f" --reps 15 --gen 0 > "$OUT/bench_${s}_headoff.md" 2>&1
  log "bench $s head multi off rc=$?"
done
cat "$OUT"/bench_*.md
