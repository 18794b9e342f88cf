#!/usr/bin/env bash
# h6/cudadec device call (build-free): checks (tst_cuda_kernels, tst_cuda_spec,
# tst_cuda_batch, tst_cuda_model rows, memcheck on the matvec/glu rows), kernel
# timings under env variants (GB_KVARIANTS), then 1B and 8B Q4_K_M decode
# (synthetic files made there) A/B against main's binary in the same call.
# usage: bench/bench_cuda_pf.sh WORKDIR   (WORKDIR/bin or bin.tgz: glassbox-cli, glassbox-cli-main,
#        tst_cuda_*, bench_cuda_kernels; WORKDIR/lib.tgz). env: GB_DEADLINE (s), GB_KGREP (kernel
#        table lines to keep, default "8B|1B"), GB_VARIANTS
#        (extra "tag:ENV=V,ENV=V" decode runs, after new/main; GB_VARIANTS_B after the
#        second new/main), GB_KVARIANTS (kernel-timing runs, same form), GB_CHECKS=0 skips the checks,
#        GB_CHECK_ENV=ENV=V,... reruns tst_cuda_spec and tst_cuda_model logits under it.
set -u
. "$(dirname "$0")/cuda_kit.sh"
kit_pack_on_exit
kit_init "${1:-.cudawork-cudadec}" 300
kit_gpu_info
( kit_synth llama-8b Q4_K_M 12 ) & P8=$!
( kit_synth llama-1b Q4_K_M 2 ) & P1=$!
if [ "${GB_CHECKS:-1}" = 1 ]; then
  timeout 150 "$BIN/tst_cuda_kernels" > "$OUT/tst_cuda_kernels.log" 2>&1; log "tst_cuda_kernels rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_kernels.log")"
  grep -E "^FAIL" -A2 "$OUT/tst_cuda_kernels.log" | head -20
  timeout 60 "$BIN/tst_cuda_spec" > "$OUT/tst_cuda_spec.log" 2>&1; log "tst_cuda_spec rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_spec.log")"
  grep -E "^FAIL" -A2 "$OUT/tst_cuda_spec.log" | head -10
  timeout 60 "$BIN/tst_cuda_batch" > "$OUT/tst_cuda_batch.log" 2>&1; log "tst_cuda_batch rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_batch.log")"
  grep -E "^FAIL" -A2 "$OUT/tst_cuda_batch.log" | head -10
  ROWS=("linear:Q6_K matvec x1 stream" "linear:Q4_K matvec x2 long rows stream" "headMulti:Q6_K k4352 stream" "headMulti:F16 k4352 stream" "linear:Q4_K matvec x1" "linear:Q6_K matvec x3" "linear:Q4_K matvec x2 long rows" "linear:Q6_K matvec x2 long rows ks2" "linear:Q8_0 matvec x3 ks4" "linear:F16 matvec x2 long rows" linear_mixed glu headMulti)
  timeout 90 compute-sanitizer --tool memcheck --error-exitcode 3 "$BIN/tst_cuda_kernels" "${ROWS[@]}" > "$OUT/memcheck.log" 2>&1
  log "memcheck matvec/glu rows rc=$? $(grep -E 'ERROR SUMMARY|^Totals' "$OUT/memcheck.log" | tr '\n' ' ')"
  timeout 60 compute-sanitizer --tool racecheck --error-exitcode 3 "$BIN/tst_cuda_kernels" "glu:Q4_K silu x1" "glu:Q4_K silu x2, 4096 cols" "glu:Q6_K/Q4_K gelu x3" "linear:Q4_K matvec x2 long rows" > "$OUT/racecheck.log" 2>&1
  log "racecheck glu/matvec rc=$? $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY|^Totals' "$OUT/racecheck.log" | tr '\n' ' ')"
  timeout 120 "$BIN/tst_cuda_model" logits "partial:tiny-llama Q4_K_M" > "$OUT/tst_cuda_model.log" 2>&1
  log "tst_cuda_model rows rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_model.log")"
  grep -E "^FAIL" -A3 "$OUT/tst_cuda_model.log" | cut -c1-200 | head -12
  if [ -n "${GB_CHECK_ENV:-}" ]; then  # the spec and model checks again under an opt-in path (ENV=V,ENV=V)
    env $(echo "$GB_CHECK_ENV" | tr ',' ' ') timeout 60 "$BIN/tst_cuda_spec" > "$OUT/tst_cuda_spec_env.log" 2>&1
    log "tst_cuda_spec ($GB_CHECK_ENV) rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_spec_env.log")"
    env $(echo "$GB_CHECK_ENV" | tr ',' ' ') timeout 90 "$BIN/tst_cuda_model" logits > "$OUT/tst_cuda_model_env.log" 2>&1
    log "tst_cuda_model logits ($GB_CHECK_ENV) rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_model_env.log")"
    grep -E "^FAIL" -A3 "$OUT/tst_cuda_spec_env.log" "$OUT/tst_cuda_model_env.log" | cut -c1-200 | head -12
  fi
fi
# kernel timings: GB_KVARIANTS = "tag:ENV=V,ENV=V ..." (default: this build's defaults only)
for v in ${GB_KVARIANTS:-default:X=1}; do
  env $(echo "${v#*:}" | tr ',' ' ') "$BIN/bench_cuda_kernels" > "$OUT/kernels_${v%%:*}.log" 2>&1; log "kernels ${v}"
  grep -E "${GB_KGREP:-8B|1B}" "$OUT/kernels_${v%%:*}.log" | tee -a "$OUT/summary.log"
done
bench() {  # tag binary env...
  local tag=$1 b=$2; shift 2
  [ "$(left)" -gt 12 ] || { log "$tag: skipped (deadline)"; return; }
  env "$@" "$BIN/$b" bench -m "$F8" --backend cuda -p 512 -n 128 -r 3 --json > "$OUT/b_$tag.json" 2>> "$OUT/bench_err.log"
  log "$tag: $(grep -o '"tg": {[^}]*}' "$OUT/b_$tag.json" | sed 's/, "cpu_ms_per_tok": [0-9.]*//g; s/"n": //g')"
}
wait $P1
F1=$M/llama-1b-Q4_K_M.gguf
if [ -f "$F1" ]; then
  for b in glassbox-cli glassbox-cli-main; do
    "$BIN/$b" bench -m "$F1" --backend cuda -p 512 -n 128 -r 3 --json > "$OUT/b1_$b.json" 2>> "$OUT/bench_err.log"
    log "1B $b: $(grep -o '"tg": {[^}]*}' "$OUT/b1_$b.json" | sed 's/, "cpu_ms_per_tok": [0-9.]*//g; s/"n": //g')"
  done
fi
while kill -0 $P8 2>/dev/null && [ "$(left)" -gt 60 ]; do sleep 2; done
F8=$M/llama-8b-Q4_K_M.gguf
if [ -f "$F8" ] && ! kill -0 $P8 2>/dev/null; then
  bench new glassbox-cli X=1
  bench main glassbox-cli-main X=1
  for v in ${GB_VARIANTS:-}; do bench "${v%%:*}" glassbox-cli $(echo "${v#*:}" | tr ',' ' '); done
  bench new_b glassbox-cli X=1
  bench main_b glassbox-cli-main X=1
  for v in ${GB_VARIANTS_B:-}; do bench "${v%%:*}" glassbox-cli $(echo "${v#*:}" | tr ',' ' '); done
else log "8B synth not done: $(tail -2 $OUT/synth.log)"; fi
log "done"
