#!/usr/bin/env python3
"""Checks that synthetic GGUF models (glassbox-cli synth) load and run in llama.cpp
(llama-cpp-python): for each file, load, tokenize a sentence, eval a few tokens,
and check the logits are finite and not all equal.

  scripts/check_synth_llamacpp.py --cli build/app/glassbox-cli                # tiny presets x types
  scripts/check_synth_llamacpp.py --cli build/app/glassbox-cli --shape llama-1b --type Q4_K_M
  scripts/check_synth_llamacpp.py FILE.gguf ...                               # files made elsewhere
  scripts/check_synth_llamacpp.py --cli build/app/glassbox-cli --compare-mix   # type mix vs llama-quantize
--compare-mix: llama.cpp quantizes our F32 file to Q4_K_M / Q5_K_M / Q6_K / Q8_0 and
the tensor types (and how many tensors have identical bytes) are compared with ours.
Files are written under /tmp (never commit .gguf files).
"""
import argparse
import math
import os
import subprocess
import sys
import time

TINY = ["tiny-llama", "tiny-qwen2", "tiny-gemma3"]
TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
         "Q4_K_M", "Q5_K_M"]


def check_file(path, n_threads):
    import llama_cpp
    from llama_cpp import Llama
    llm = Llama(model_path=path, n_ctx=128, n_threads=n_threads, logits_all=True, verbose=False)
    text = b"Hello world, the quick brown fox jumps over the lazy dog"
    toks = llm.tokenize(text, add_bos=True)
    assert toks[0] == llm.token_bos(), f"first token {toks[0]} is not bos {llm.token_bos()}"
    assert len(toks) > 3, toks
    detok = llm.detokenize(toks[1:])
    assert detok.strip() == text, f"detokenized {detok!r}"
    toks = toks[:12]
    llm.eval(toks)
    n_vocab = llm.n_vocab()
    for i in range(len(toks)):
        row = llm.scores[i][:n_vocab]
        assert all(math.isfinite(float(x)) for x in row), f"non-finite logits at token {i}"
        assert float(row.max()) > float(row.min()), f"constant logits at token {i}"
    nxt = int(llm.scores[len(toks) - 1][:n_vocab].argmax())
    arch = llm.metadata.get("general.architecture")
    return f"{arch}, n_vocab {n_vocab}, {len(toks)} tokens {toks}, argmax next {nxt}"


def tensor_table(path):
    from gguf import GGUFReader
    r = GGUFReader(path)
    return {t.name: (t.tensor_type.name, [int(x) for x in t.shape], bytes(t.data.tobytes())) for t in r.tensors}


def compare_mix(cli, shape, ftype, outdir):
    import llama_cpp
    ours = os.path.join(outdir, f"{shape}-{ftype}.gguf")
    f32 = os.path.join(outdir, f"{shape}-F32.gguf")
    theirs = os.path.join(outdir, f"{shape}-{ftype}-llamacpp.gguf")
    for ty, out in (("F32", f32), (ftype, ours)):
        subprocess.run([cli, "synth", "--shape", shape, "--type", ty, "-o", out], check=True, stdout=subprocess.DEVNULL)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype}")
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(f32.encode(), theirs.encode(), params)
    assert rc == 0, f"llama_model_quantize returned {rc}"
    a, b = tensor_table(ours), tensor_table(theirs)
    assert sorted(a) == sorted(b), f"tensor names differ: {sorted(set(a) ^ set(b))}"
    diff = [f"{n}: ours {a[n][0]} llama.cpp {b[n][0]}" for n in a if a[n][:2] != b[n][:2]]
    same_bytes = sum(1 for n in a if a[n][2] == b[n][2])
    for p in (ours, f32, theirs):
        os.remove(p)
    if diff:
        raise AssertionError("; ".join(diff[:8]))
    return f"{len(a)} tensors, same types and shapes; {same_bytes} with identical bytes"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*")
    ap.add_argument("--cli", help="glassbox-cli to generate files with")
    ap.add_argument("--shape", action="append", help="preset(s) to generate (default: the tiny ones)")
    ap.add_argument("--type", action="append", help="type(s) to generate (default: all)")
    ap.add_argument("--outdir", default="/tmp/glassbox-synth")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep generated files")
    ap.add_argument("--compare-mix", action="store_true", help="compare type mixes with llama.cpp's quantizer")
    args = ap.parse_args()

    if args.compare_mix:
        if not args.cli:
            ap.error("--compare-mix needs --cli")
        os.makedirs(args.outdir, exist_ok=True)
        failed = 0
        for shape in args.shape or TINY:
            for ty in args.type or ["Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"]:
                try:
                    print(f"OK   {shape} {ty}: {compare_mix(args.cli, shape, ty, args.outdir)}", flush=True)
                except Exception as e:  # noqa: BLE001
                    failed += 1
                    print(f"FAIL {shape} {ty}: {e}", flush=True)
        return 1 if failed else 0

    jobs = [(f, False) for f in args.files]
    if args.cli:
        os.makedirs(args.outdir, exist_ok=True)
        for shape in args.shape or TINY:
            for ty in args.type or TYPES:
                out = os.path.join(args.outdir, f"{shape}-{ty}.gguf")
                t0 = time.time()
                subprocess.run([args.cli, "synth", "--shape", shape, "--type", ty, "-o", out], check=True,
                               stdout=subprocess.DEVNULL)
                print(f"wrote {out}: {os.path.getsize(out)} bytes in {time.time() - t0:.1f} s", flush=True)
                jobs.append((out, not args.keep))
    if not jobs:
        ap.error("give files or --cli")

    failed = 0
    for path, remove in jobs:
        try:
            print(f"OK   {os.path.basename(path)}: {check_file(path, args.threads)}", flush=True)
        except Exception as e:  # noqa: BLE001 - report every file
            failed += 1
            print(f"FAIL {os.path.basename(path)}: {e}", flush=True)
        if remove:
            os.remove(path)
    print(f"{len(jobs) - failed}/{len(jobs)} files loaded and ran in llama.cpp")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
