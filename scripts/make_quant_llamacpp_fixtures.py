#!/usr/bin/env python3
"""Fixtures for tst_quant_llamacpp: llama.cpp's logits on files that Glassbox
quantizes. For each variant the script runs the same glassbox-cli commands as the
test (synth a tiny F16 llama, then `quantize` it: round-to-nearest Q4_0, GPTQ Q4_0,
Q8_0), loads the result in llama.cpp (llama-cpp-python) and stores the file's
SHA-256, the token ids and llama.cpp's logits for every position.

  scripts/make_quant_llamacpp_fixtures.py --cli build/app/glassbox-cli

The test rebuilds the files, checks the SHA-256 (so the fixture is about the same
bytes) and compares Glassbox's logits with llama.cpp's.
"""
import argparse
import hashlib
import json
import os
import subprocess
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "quant_llamacpp")
CALIB = os.path.join(ROOT, "resources", "text", "perplexity_sample.txt")
TEXT = "The history of the city begins with a small settlement on the river, where traders met"
N_TOKENS = 24  # keeps each fixture ~130 KB
# name -> quantize arguments (must equal tst_quant_llamacpp.cpp's table)
VARIANTS = {
    "q4_0_rtn": ["--type", "Q4_0"],
    "q4_0_gptq": ["--type", "Q4_0", "--gptq", "--calib", CALIB, "--group", "32"],
    "q8_0": ["--type", "Q8_0"],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    a = ap.parse_args()
    from llama_cpp import Llama
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        base = os.path.join(d, "base.gguf")
        subprocess.run([a.cli, "synth", "--shape", "tiny-llama", "--type", "F16", "-o", base], check=True, capture_output=True)
        for name, args in VARIANTS.items():
            path = os.path.join(d, name + ".gguf")
            subprocess.run([a.cli, "quantize", "-m", base, "-o", path] + args, check=True, capture_output=True)
            sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
            llm = Llama(model_path=path, n_ctx=128, n_threads=2, logits_all=True, verbose=False)
            toks = llm.tokenize(TEXT.encode(), add_bos=True, special=False)[:N_TOKENS]
            llm.eval(toks)
            nv = llm.n_vocab()
            logits = np.array([llm.scores[i][:nv] for i in range(len(toks))], dtype=np.float32)
            with open(os.path.join(OUT, name + ".json"), "w") as f:
                json.dump({"variant": name, "quantize_args": [x if x != CALIB else "CALIB" for x in args],
                           "sha256": sha, "n_vocab": nv, "tokens": toks,
                           "logits": [[float(f"{v:.6g}") for v in row] for row in logits]}, f)
            print(name, sha[:16], len(toks), "tokens")


if __name__ == "__main__":
    main()
