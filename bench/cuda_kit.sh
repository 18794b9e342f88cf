# Shared set-up of the build-free device scripts (bench/bench_cuda*.sh,
# bench_serve_cuda.sh, bench_spec_cuda.sh): sourced, not run.
#
#   . "$(dirname "$0")/cuda_kit.sh"
#   kit_init WORKDIR DEFAULT_DEADLINE_S
#
# kit_init sets W (the carried work folder, absolute), BIN (W/bin, or the bin/ of
# W/bin.tgz or W/bin.txz unpacked to /tmp/gbkit), M (/tmp/gb_models, for synthetic files), OUT
# (what the device call returns; default /tmp/gb_out), T0 and DEADLINE (GB_DEADLINE
# or the default), unpacks W/lib.tgz (the Qt libraries the test binaries need) to
# /tmp/gblib and puts it (and W/lib) on LD_LIBRARY_PATH.

kit_init() {
  W=$(cd "$1" && pwd) || { echo "no work folder $1" >&2; exit 2; }
  OUT=${OUT:-/tmp/gb_out}
  mkdir -p "$OUT"
  T0=$(date +%s)
  DEADLINE=${GB_DEADLINE:-$2}
  if [ -f "$W/lib.tgz" ]; then tar xzf "$W/lib.tgz" -C /tmp; export LD_LIBRARY_PATH="/tmp/gblib:${LD_LIBRARY_PATH:-}"; fi
  [ -d "$W/lib" ] && export LD_LIBRARY_PATH="$W/lib:${LD_LIBRARY_PATH:-}"
  BIN=$W/bin
  if [ -f "$W/bin.tgz" ]; then mkdir -p /tmp/gbkit && tar xzf "$W/bin.tgz" -C /tmp/gbkit && BIN=/tmp/gbkit/bin; fi
  if [ -f "$W/bin.txz" ]; then mkdir -p /tmp/gbkit && tar xJf "$W/bin.txz" -C /tmp/gbkit && BIN=/tmp/gbkit/bin; fi  # (xz: smaller carries)
  M=/tmp/gb_models
  mkdir -p "$M"
}

# kit_pack_on_exit (before kit_init): the script writes everything under
# /tmp/gb_out, and at exit the summary and a logs.tgz of it go to the call's
# $OUT (FINAL_OUT): a device call returns at most 8 files.
kit_pack_on_exit() {
  FINAL_OUT=${OUT:-/tmp/gb_final}; OUT=/tmp/gb_out; mkdir -p "$FINAL_OUT" "$OUT"
  trap 'cp "$OUT/summary.log" "$FINAL_OUT/"; (cd "$OUT" && tar czf "$FINAL_OUT/logs.tgz" .)' EXIT
}

elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( DEADLINE - $(elapsed) )); }
log() { echo "[$(elapsed)s] $*" | tee -a "$OUT/summary.log"; }

# The card, its memory, driver and clocks, into $OUT/gpu.txt and the summary.
kit_gpu_info() {
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader \
    | tee "$OUT/gpu.txt" | tee -a "$OUT/summary.log"
}

# kit_synth SHAPE TYPE [THREADS]: $M/SHAPE-TYPE.gguf made by glassbox-cli synth
# unless it is there already.
kit_synth() {
  local f="$M/$1-$2.gguf"
  [ -f "$f" ] || "$BIN/glassbox-cli" synth --shape "$1" --type "$2" -o "$f" -t "${3:-4}" >> "$OUT/synth.log" 2>&1
}

# kit_lcpp_build JOBS: llama.cpp's llama-bench built with CUDA (sm_90) from
# W/lcpp.tgz in the background (~7.5 minutes); sets LCPP_PID (empty without the
# sources). The log goes to $OUT/lcpp_build.log; the binary to
# /tmp/lcpp/build/bin/llama-bench.
kit_lcpp_build() {
  LCPP_PID=
  [ -f "$W/lcpp.tgz" ] || return 0
  tar xzf "$W/lcpp.tgz" -C /tmp
  ( cmake -S /tmp/lcpp -B /tmp/lcpp/build -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
      -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=ON \
    && nice cmake --build /tmp/lcpp/build --target llama-bench -j "${1:-10}" ) > "$OUT/lcpp_build.log" 2>&1 &
  LCPP_PID=$!
  log "llama.cpp build started"
}
