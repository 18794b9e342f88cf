#!/usr/bin/env bash
# h5/cudaperf device call (build-free): checks (tst_cuda_kernels incl. the
# cuBLAS and split-K rows, tst_cuda_model with the defaults and with the
# split-K matvec forced, memcheck + racecheck on the new rows), then
# glassbox-cli bench A/B on synthetic files against main's binary in the same
# call: prefill cuBLAS vs our kernels (GB_CUDA_CUBLAS=0, GB_CUDA_CUBLAS_MIN_TOK)
# and 8B decode with the split-K q/k/v matvec (GB_CUDA_MV_KS*).
# usage: bench/bench_cuda_perf.sh WORKDIR (cuda_kit.sh: WORKDIR/bin or bin.tgz's
#        bin/ with glassbox-cli, glassbox-cli-main (main's, the baseline),
#        tst_cuda_kernels, tst_cuda_model; WORKDIR/lib.tgz: the Qt libraries)
# env: GB_DEADLINE (s, default 215). Logs: $OUT/logs.tgz, summary in $OUT/summary.log.
# (h5/cudaperf's call 2 ran this logic standalone, before cuda_kit.sh was merged.)
set -u
. "$(dirname "$0")/cuda_kit.sh"
# Everything is written under /tmp/gb_out and packed into $OUT/logs.tgz at exit
# (a device call returns at most 8 files).
kit_pack_on_exit
kit_init "${1:-.cudawork-cudaperf}" 215
kit_gpu_info
"$BIN/glassbox-cli" devices 2>&1 | head -2 | tee -a "$OUT/summary.log"
( kit_synth llama-8b Q4_K_M 8 ) & P8=$!
( kit_synth llama-1b F16 2; kit_synth llama-1b Q4_K_M 2 ) & P1=$!
timeout 60 "$BIN/tst_cuda_kernels" > "$OUT/tst_cuda_kernels.log" 2>&1; log "tst_cuda_kernels rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_kernels.log")"
grep -E "^FAIL" -A2 "$OUT/tst_cuda_kernels.log" | head -20
NEWROWS=("linear:F16 gemm x130 cublas" "linear:BF16 gemm x130 cublas" "linear:Q4_K gemm x130" "linear:Q6_K gemm x130 cublas" "linear:F16 gemm x37 cublas bias" "linear:Q4_K matvec x2 long rows ks2" "linear:Q6_K matvec x1 long rows ks4" "linear:Q8_0 matvec x3 ks4" "linear:F16 matvec x2 long rows ks2")
timeout 40 compute-sanitizer --tool memcheck --error-exitcode 3 "$BIN/tst_cuda_kernels" "${NEWROWS[@]}" > "$OUT/memcheck.log" 2>&1
log "memcheck new rows rc=$? $(grep -E 'ERROR SUMMARY|^Totals' "$OUT/memcheck.log" | tr '\n' ' ')"
timeout 40 compute-sanitizer --tool racecheck --error-exitcode 3 "$BIN/tst_cuda_kernels" "${NEWROWS[@]}" > "$OUT/racecheck.log" 2>&1
log "racecheck new rows rc=$? $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY|^Totals' "$OUT/racecheck.log" | tr '\n' ' ')"
timeout 75 "$BIN/tst_cuda_model" logits partial > "$OUT/tst_cuda_model.log" 2>&1; log "tst_cuda_model logits+partial rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_model.log")"
grep -E "^FAIL" -A3 "$OUT/tst_cuda_model.log" | cut -c1-200 | head -12
GB_CUDA_MV_KS=2 timeout 30 "$BIN/tst_cuda_model" "logits:tiny-llama Q4_K_M" "logits:tiny-llama F16" "logits:tiny-qwen2 Q4_K_M" > "$OUT/tst_cuda_model_ks.log" 2>&1
log "tst_cuda_model MV_KS=2 llama/qwen2 rows rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_model_ks.log")"
grep -E "^FAIL" -A3 "$OUT/tst_cuda_model_ks.log" | cut -c1-200 | head -12
bench() {  # tag file binary p n env...
  local tag=$1 f=$2 b=$3 p=$4 n=$5; shift 5
  [ "$(left)" -gt 8 ] || { log "$tag: skipped (deadline)"; return; }
  env "$@" "$BIN/$b" bench -m "$f" --backend cuda -p "$p" -n "$n" -r 3 --json > "$OUT/b_$tag.json" 2>> "$OUT/bench_err.log"
  log "$tag: $(grep -o '"pp": {[^}]*}, "tg": {[^}]*}' "$OUT/b_$tag.json" | sed 's/, "cpu_ms_per_tok": [0-9.]*//g; s/"n": //g')"
}
wait $P1
F=$M/llama-1b-F16.gguf
bench 1b_F16_new $F glassbox-cli 512 0 X=1; bench 1b_F16_main $F glassbox-cli-main 512 0 X=1
F=$M/llama-1b-Q4_K_M.gguf
bench 1b_Q4KM_new $F glassbox-cli 512 128 X=1; bench 1b_Q4KM_main $F glassbox-cli-main 512 128 X=1
bench 1b_Q4KM_p128_cublas $F glassbox-cli 128 0 X=1; bench 1b_Q4KM_p128_fused $F glassbox-cli 128 0 GB_CUDA_CUBLAS_MIN_TOK=100000
bench 1b_Q4KM_p64_cublas $F glassbox-cli 64 0 GB_CUDA_CUBLAS_MIN_TOK=1; bench 1b_Q4KM_p64_fused $F glassbox-cli 64 0 X=1
while kill -0 $P8 2>/dev/null && [ "$(left)" -gt 40 ]; do sleep 2; done
F8=$M/llama-8b-Q4_K_M.gguf
if [ -f "$F8" ] && ! kill -0 $P8 2>/dev/null; then
  bench 8b_new $F8 glassbox-cli 512 128 X=1
  bench 8b_main $F8 glassbox-cli-main 512 128 X=1
  bench 8b_ksrows4096 $F8 glassbox-cli 512 128 GB_CUDA_MV_KS_ROWS=4096
  bench 8b_ksoff $F8 glassbox-cli 512 128 GB_CUDA_MV_KS=1
  bench 8b_new_b $F8 glassbox-cli 512 128 X=1
  bench 8b_main_b $F8 glassbox-cli-main 512 128 X=1
  bench 8b_p128_cublas $F8 glassbox-cli 128 0 X=1
  bench 8b_p128_fused $F8 glassbox-cli 128 0 GB_CUDA_CUBLAS_MIN_TOK=100000
else log "8B synth not done: $(tail -2 $OUT/synth.log)"; fi
log "done"
