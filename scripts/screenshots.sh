#!/bin/sh
# Renders screenshots of the app's main views into docs/screenshots/ (PNG) under
# xvfb, with a canned engine (tests/ui/glassbox_screenshots.cpp) so they are
# the same everywhere, and every inspector panel into docs/screenshots/inspector/
# (glassbox-inspector-demo: synthetic token timings and speculative runs, a
# scripted chat workload on the real paged-KV scheduler; the model file, when
# present, for the Model and Tokenizer panels).
# Usage: [GLASSBOX_MODEL=file.gguf] scripts/screenshots.sh [build-dir]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
ninja -C "$build" glassbox-screenshots glassbox-inspector-demo
out=$root/docs/screenshots
mkdir -p "$out"
# Models shown in the library view: the default model (when installed) and small test files.
models=$root/tests/fixtures/gguf/v3_gguf_py.gguf:$root/tests/fixtures/tokenizer/spm_tiny.gguf
m=${GLASSBOX_MODEL:-$root/models/gemma-3-270m-q4_k_m.gguf}
if [ -f "$m" ]; then models=$m:$models; fi
QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1200x24" \
  "$build/tests/ui/glassbox-screenshots" "$out" "$models"
if [ -f "$m" ]; then set -- --model "$m"; else set --; fi
QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1200x24" \
  "$build/ui/glassbox-inspector-demo" "$@" --size 1100x760 --screenshot "$out/inspector"
ls -l "$out" "$out/inspector"
