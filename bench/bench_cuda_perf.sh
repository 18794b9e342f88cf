#!/usr/bin/env bash
# h5/cudaperf device call (build-free): checks (kernels incl. the cuBLAS and
# split-K glu rows, model, memcheck on the new paths), single-kernel glu
# timings per GB_CUDA_GLU_KS, then glassbox-cli bench A/B on synthetic files:
# prefill cuBLAS vs our kernels (GB_CUDA_CUBLAS=0, GB_CUDA_GEMM=cublas) and
# 8B decode per GB_CUDA_GLU_KS, against main's binary in the same call.
# usage: bench_cuda_perf.sh WORKDIR (bin.tgz: glassbox-cli glassbox-cli-main
#        tst_cuda_kernels tst_cuda_model bench_cuda_kernels; lib.tgz: Qt libs)
# env: GB_DEADLINE (s, default 420), GB_SKIP_CHECKS=1, GB_PHASE=1|2
set -u
W=$(cd "${1:-.cudawork-cudaperf}" && pwd)
OUT=${OUT:-/tmp/gb_out}; mkdir -p "$OUT"
T0=$(date +%s); DEADLINE=${GB_DEADLINE:-420}
elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( DEADLINE - $(elapsed) )); }
log() { echo "[$(elapsed)s] $*" | tee -a "$OUT/summary.log"; }
tar xzf "$W/lib.tgz" -C /tmp; export LD_LIBRARY_PATH="/tmp/gblib:${LD_LIBRARY_PATH:-}"
mkdir -p /tmp/gbbin; tar xzf "$W/bin.tgz" -C /tmp/gbbin; BIN=/tmp/gbbin
M=/tmp/gb_models; mkdir -p "$M"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
ls /usr/local/cuda*/lib*/libcublas.so* 2>/dev/null | head -3
synth() { local f="$M/$1-$2.gguf"; [ -f "$f" ] || "$BIN/glassbox-cli" synth --shape "$1" --type "$2" -o "$f" -t "$3" >> "$OUT/synth.log" 2>&1; }
( synth llama-8b Q4_K_M 8 ) & P8=$!
( synth llama-1b F16 2; synth llama-1b Q4_K_M 2; synth llama-1b BF16 2; synth llama-1b Q8_0 2 ) & P1=$!
timeout 150 "$BIN/tst_cuda_kernels" > "$OUT/tst_cuda_kernels.log" 2>&1; log "tst_cuda_kernels rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_kernels.log")"
grep -E "^FAIL|SKIP" -A2 "$OUT/tst_cuda_kernels.log" | head -20
grep -E "cuBLAS" "$OUT/tst_cuda_kernels.log" | cut -c1-150 | head -12
for ks in 1 2 4; do GB_CUDA_GLU_KS=$ks GB_CUDA_MV_KS=$ks "$BIN/bench_cuda_kernels" > "$OUT/kern_ks$ks.txt" 2>&1; log "kernels ks$ks: $(grep -E '8B' "$OUT/kern_ks$ks.txt" | grep -v output | cut -d'|' -f2,4,5 | tr '\n' ' ')"; done
bench() {  # tag file binary n env...
  local tag=$1 f=$2 b=$3 n=$4; shift 4
  [ "$(left)" -gt 15 ] || { log "$tag: skipped (deadline)"; return; }
  env "$@" "$BIN/$b" bench -m "$f" --backend cuda -p 512 -n "$n" -r 3 --json > "$OUT/b_$tag.json" 2>> "$OUT/bench_err.log"
  log "$tag: $(grep -o '"pp": {[^}]*}, "tg": {[^}]*}' "$OUT/b_$tag.json" | sed 's/"cpu_ms_per_tok": [0-9.]*//g; s/"ms_per_tok": [0-9.]*,//g')"
}
wait $P1
"$BIN/glassbox-cli" info -m $M/llama-1b-F16.gguf 2>&1 | grep -i -E "cuda|cublas" | head -3 | tee -a "$OUT/summary.log"
for ty in F16 BF16; do F=$M/llama-1b-$ty.gguf
  bench 1b_${ty}_cublas $F glassbox-cli 0 X=1; bench 1b_${ty}_ours $F glassbox-cli 0 GB_CUDA_CUBLAS=0; bench 1b_${ty}_main $F glassbox-cli-main 0 X=1; bench 1b_${ty}_cublas2 $F glassbox-cli 0 X=1
done
for ty in Q4_K_M Q8_0; do F=$M/llama-1b-$ty.gguf
  bench 1b_${ty}_fused $F glassbox-cli 0 X=1; bench 1b_${ty}_cublasslab $F glassbox-cli 0 GB_CUDA_GEMM=cublas; bench 1b_${ty}_fused2 $F glassbox-cli 0 X=1
done
while kill -0 $P8 2>/dev/null && [ "$(left)" -gt 60 ]; do sleep 2; done
F8=$M/llama-8b-Q4_K_M.gguf
if [ -f "$F8" ] && ! kill -0 $P8 2>/dev/null; then
  bench 8b_main $F8 glassbox-cli-main 128 X=1
  bench 8b_g1m1 $F8 glassbox-cli 128 X=1
  bench 8b_g4m1 $F8 glassbox-cli 128 GB_CUDA_GLU_KS=4
  bench 8b_g2m1 $F8 glassbox-cli 128 GB_CUDA_GLU_KS=2
  bench 8b_g1m2 $F8 glassbox-cli 128 GB_CUDA_MV_KS=2
  bench 8b_g1m4 $F8 glassbox-cli 128 GB_CUDA_MV_KS=4
  bench 8b_g4m2 $F8 glassbox-cli 128 GB_CUDA_GLU_KS=4 GB_CUDA_MV_KS=2
  bench 8b_g2m2 $F8 glassbox-cli 128 GB_CUDA_GLU_KS=2 GB_CUDA_MV_KS=2
  bench 8b_cublasslab $F8 glassbox-cli 0 GB_CUDA_GEMM=cublas
  bench 8b_main_b $F8 glassbox-cli-main 128 X=1
  bench 8b_g1m1_b $F8 glassbox-cli 128 X=1
  bench 8b_g4m2_b $F8 glassbox-cli 128 GB_CUDA_GLU_KS=4 GB_CUDA_MV_KS=2
  bench 8b_g2m2_b $F8 glassbox-cli 128 GB_CUDA_GLU_KS=2 GB_CUDA_MV_KS=2
else log "8B synth not done: $(tail -2 $OUT/synth.log)"; fi
if [ "${GB_SKIP_CHECKS:-0}" != 1 ]; then
  timeout $(( $(left) > 20 ? $(left) / 2 : 10 )) "$BIN/tst_cuda_model" > "$OUT/tst_cuda_model.log" 2>&1; log "tst_cuda_model rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_model.log")"
  grep -E "^FAIL" -A3 "$OUT/tst_cuda_model.log" | cut -c1-200 | head -20
  NEWROWS=(glu "linear:F16 gemm x130 cublas" "linear:BF16 gemm x130 cublas" "linear:Q4_K gemm x130 cublas" "linear:F16 gemm x37 cublas bias" "linear:Q4_K matvec x2 long rows ks2" "linear:Q6_K matvec x1 long rows ks4" "linear:Q8_0 matvec x3 ks4" "linear:F16 matvec x2 long rows ks2")
  timeout $(( $(left) > 20 ? $(left) / 2 : 10 )) compute-sanitizer --tool memcheck --error-exitcode 3 "$BIN/tst_cuda_kernels" "${NEWROWS[@]}" > "$OUT/memcheck.log" 2>&1
  log "memcheck new rows rc=$? $(grep -E 'ERROR SUMMARY|^Totals' "$OUT/memcheck.log" | tr '\n' ' ')"
  GB_CUDA_GLU_KS=4 GB_CUDA_MV_KS=2 timeout $(( $(left) > 20 ? $(left) / 2 : 10 )) "$BIN/tst_cuda_model" > "$OUT/tst_cuda_model_ks.log" 2>&1; log "tst_cuda_model GLU_KS=4 MV_KS=2 rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_model_ks.log")"
  grep -E "^FAIL" -A3 "$OUT/tst_cuda_model_ks.log" | cut -c1-200 | head -20
  GB_CUDA_MV_KS=4 "$BIN/tst_cuda_kernels" linear_mixed > "$OUT/mixed_ks4.log" 2>&1; log "linear_mixed MV_KS=4 rc=$? $(grep -E '^Totals' "$OUT/mixed_ks4.log")"
  timeout $(( $(left) > 10 ? $(left) - 5 : 5 )) compute-sanitizer --tool racecheck --error-exitcode 3 "$BIN/tst_cuda_kernels" "${NEWROWS[@]}" > "$OUT/racecheck.log" 2>&1
  log "racecheck new rows rc=$? $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY|^Totals' "$OUT/racecheck.log" | tr '\n' ' ')"
fi
log "done"
