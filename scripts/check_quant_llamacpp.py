#!/usr/bin/env python3
"""Checks that GGUF files written by `glassbox-cli quantize` load in llama.cpp
(llama-cpp-python) and give the same logits as Glassbox: for each file, Glassbox's
all-token logits (`glassbox-cli logits`) are compared with llama.cpp's on the same
token ids. The source file is checked the same way as a baseline (both engines
differ slightly in float order even on identical weights).

  scripts/check_quant_llamacpp.py --cli build/app/glassbox-cli FILE.gguf [FILE.gguf ...]

Pass: every file loads, top-1 tokens agree on >= 90% of positions and the relative
RMS logit difference is below --tol (default 0.06). Prints one line per file.
The tolerance is set by the baseline: gemma-3-270m-q4_k_m.gguf itself (not written by
us) differs by 0.041 relative RMS between Glassbox and llama.cpp (llama.cpp rounds
activations to 8 bits in its quantized dot products; Glassbox's kernels differ).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

TEXT = ("The history of the city begins with a small settlement on the river, where traders "
        "exchanged salt, grain and wool. Over the centuries the town grew")


def glassbox_logits(cli, path, threads):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.f32")
        r = subprocess.run([cli, "logits", "-m", path, "-p", TEXT, "-o", out, "-t", str(threads)],
                           check=True, capture_output=True, text=True)
        toks = [int(t) for t in r.stdout.split()]
        logits = np.fromfile(out, dtype=np.float32).reshape(len(toks), -1)
    return toks, logits


def llamacpp_logits(path, toks, threads):
    from llama_cpp import Llama
    llm = Llama(model_path=path, n_ctx=max(64, len(toks) + 8), n_threads=threads, logits_all=True, verbose=False)
    llm.eval(toks)
    n_vocab = llm.n_vocab()
    return np.array([llm.scores[i][:n_vocab] for i in range(len(toks))], dtype=np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--tol", type=float, default=0.06)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    ok = True
    for f in a.files:
        toks, g = glassbox_logits(a.cli, f, a.threads)
        l = llamacpp_logits(f, toks, a.threads)
        g = g.astype(np.float64)
        rel = float(np.sqrt(((g - l) ** 2).sum() / (l ** 2).sum()))
        top = float((g.argmax(1) == l.argmax(1)).mean() * 100)
        mad = float(np.abs(g - l).max())
        good = rel < a.tol and top >= 90.0
        ok &= good
        print(f"{'PASS' if good else 'FAIL'} {os.path.basename(f)}: {len(toks)} tokens, relative RMS diff {rel:.5f}, "
              f"max |diff| {mad:.4f}, same top-1 {top:.1f}%")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
