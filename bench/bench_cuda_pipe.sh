#!/usr/bin/env bash
# The streaming decode kernels (cuda/src/matvec_pipe.cu) against main's
# kernels (GB_CUDA_PIPE=0, same binary) and against llama.cpp built on the
# device, in two device calls on one warm machine (the llama.cpp build takes
# ~6 minutes, so it runs in the background of the first call):
#   phase "check"  : starts the llama.cpp build (detached, survives the call),
#                    synthesizes the files, runs the CUDA suites (+ memcheck of
#                    the streaming rows) and times tg128 with the streaming
#                    kernels on and off, default and precise decode, interleaved;
#   phase "compare": (call again within the machine's idle window) waits for
#                    the build, then alternates llama-bench and ours
#                    (pp512 + tg128, default and precise) twice per file.
# Prints markdown tables last. Logs in $OUT.
#
# usage: bench/bench_cuda_pipe.sh check|compare WORKDIR
#   WORKDIR/bin, bin.tgz or bin.txz: glassbox-cli, tst_cuda_kernels, tst_cuda_spec, tst_cuda_batch, tst_cuda_model
#   WORKDIR/lib.tgz: the Qt libraries the tests need; WORKDIR/lcpp.tgz: llama.cpp sources
# env: GB_MODELS (shape:type list, default the 8B, 1B and gemma3-270m shapes in Q4_K_M)
set -u
PHASE=${1:?check or compare}
. "$(dirname "$0")/cuda_kit.sh"
kit_init "${2:-.cudawork}" 580
kit_gpu_info
MODELS=${GB_MODELS:-"llama-8b:Q4_K_M llama-1b:Q4_K_M gemma3-270m:Q4_K_M"}
# tg128 (and pp512 with -p 512) of one file; extra flags after the file
ours() {
  local f=$1 p=$2; shift 2
  "$BIN/glassbox-cli" bench -m "$f" --backend cuda -p "$p" -n 128 -r 3 --json "$@" 2>/dev/null | tail -1 |
    python3 -c 'import json,sys; d=json.load(sys.stdin); pp=d.get("pp") or {}; print("%.1f %.1f" % (pp.get("tps", 0) if pp.get("n") else 0, d["tg"]["tps"]))' 2>/dev/null
}

if [ "$PHASE" = check ]; then
  if [ ! -d /tmp/lcpp/build ] && [ -f "$W/lcpp.tgz" ]; then
    tar xzf "$W/lcpp.tgz" -C /tmp
    setsid nohup bash -c 'cd /tmp/lcpp && cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF \
      -DLLAMA_CURL=OFF -DGGML_NATIVE=ON > /tmp/lcpp_build.log 2>&1 && nice cmake --build build --target llama-bench -j 12 >> /tmp/lcpp_build.log 2>&1;
      echo "build rc $?" >> /tmp/lcpp_build.log' > /dev/null 2>&1 &
    log "llama.cpp build started (detached)"
  fi
  for mt in $MODELS; do case $mt in llama-8b:*) ( kit_synth "${mt%%:*}" "${mt##*:}" 3 ) & ;; *) kit_synth "${mt%%:*}" "${mt##*:}" 2 ;; esac; done
  log "tests"
  timeout 90 compute-sanitizer --tool memcheck "$BIN/tst_cuda_kernels" pipe > "$OUT/memcheck_pipe.log" 2>&1
  log "memcheck (pipe rows) rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/memcheck_pipe.log")"
  for t in tst_cuda_kernels tst_cuda_spec tst_cuda_batch tst_cuda_model; do
    timeout 240 "$BIN/$t" > "$OUT/$t.log" 2>&1; log "$t rc=$? $(grep -E '^Totals' "$OUT/$t.log")"; grep -A3 '^FAIL' "$OUT/$t.log" | head -12
  done
  GB_CUDA_ACT16=1 timeout 90 "$BIN/tst_cuda_spec" > "$OUT/tst_cuda_spec_precise.log" 2>&1
  log "tst_cuda_spec (precise) rc=$? $(grep -E '^Totals' "$OUT/tst_cuda_spec_precise.log")"
  wait
  echo "| file | mode | streaming on, tg128 t/s | off |" > "$OUT/table.md"; echo "|---|---|---:|---:|" >> "$OUT/table.md"
  for mt in $MODELS; do
    f="$M/${mt%%:*}-${mt##*:}.gguf"
    for mode in default precise; do
      flag=(); [ $mode = precise ] && flag=(--precise-decode)
      on=""; off=""
      for rd in 1 2; do
        off="$off $(GB_CUDA_PIPE=0 ours "$f" 0 "${flag[@]}" | cut -d' ' -f2)"
        on="$on $(GB_CUDA_PIPE=1 ours "$f" 0 "${flag[@]}" | cut -d' ' -f2)"
      done
      echo "| $mt | $mode |$on |$off |" >> "$OUT/table.md"; log "$mt $mode: on$on, off$off"
    done
  done
  log "llama.cpp build: $(tail -1 /tmp/lcpp_build.log 2>/dev/null)"
  cat "$OUT/table.md"
  exit 0
fi

# ---- compare ----------------------------------------------------------------------
L=/tmp/lcpp/build/bin/llama-bench
while [ ! -x "$L" ] && [ "$(left)" -gt 120 ] && ! grep -q "build rc" /tmp/lcpp_build.log 2>/dev/null; do sleep 5; done
[ -x "$L" ] || { log "no llama-bench: $(tail -3 /tmp/lcpp_build.log 2>/dev/null)"; exit 1; }
lc() {
  "$L" -m "$1" -ngl 99 -p 512 -n 128 -r 3 -o json > "$OUT/lc.json" 2>> "$OUT/lc_err.log"
  python3 -c "import json; d=json.load(open('$OUT/lc.json')); r={(x['n_prompt'],x['n_gen']):x['avg_ts'] for x in d}; print('%.1f %.1f' % (r.get((512,0),0), r.get((0,128),0)))"
}
echo "| file | llama.cpp pp512 | tg128 | ours pp512 | tg128 | precise tg128 |" > "$OUT/compare.md"
echo "|---|---:|---:|---:|---:|---:|" >> "$OUT/compare.md"
for mt in $MODELS; do
  f="$M/${mt%%:*}-${mt##*:}.gguf"
  for rd in 1 2; do
    a=$(lc "$f"); b=$(ours "$f" 512); c=$(ours "$f" 512 --precise-decode | cut -d' ' -f2)
    echo "| $mt | ${a% *} | ${a#* } | ${b% *} | ${b#* } | $c |" >> "$OUT/compare.md"; log "$mt: llama.cpp $a, ours $b, precise $c"
  done
done
cat "$OUT/compare.md"
