#!/usr/bin/env python3
"""Produce llama.cpp reference results on the real model, for tests/engine/tst_model_llamacpp.cpp:
greedy continuations (64 tokens, EOS ignored) of several prompts with llama.cpp's top-1 / top-2
logit gap at each step and its own batch-vs-incremental logit difference, and the perplexity of
resources/text/perplexity_sample.txt computed the way llama-perplexity does (chunks of n_ctx,
BOS first, second half of each chunk scored).

Needs llama-cpp-python (pip install llama-cpp-python). Re-run to re-check:
    python3 scripts/make_llamacpp_fixtures.py [models/gemma-3-270m-q4_k_m.gguf]
"""
import hashlib
import json
import os
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf")
OUT = os.path.join(ROOT, "tests", "fixtures", "llamacpp", "gemma3_270m_q4_k_m.json")
PPL_TEXT = os.path.join(ROOT, "resources", "text", "perplexity_sample.txt")
N_GEN = 64
PPL_CTX = 512

PROMPTS = [
    ("The capital of France is", False),
    ("Once upon a time, in a small village by the sea,", False),
    ("def fibonacci(n):\n", False),
    ("Here is a list of five fruits:\n1.", False),
    ("The three laws of thermodynamics are", False),
    ("Translate to German: The weather is nice today.\nGerman:", False),
    ("<start_of_turn>user\nWrite a short poem about the moon.<end_of_turn>\n<start_of_turn>model\n", True),
    ("The quick brown fox", False),
    ("List three primary colors:", False),
    ("In 1969, Neil Armstrong", False),
    ("import numpy as np\n", False),
    ("Photosynthesis is the process by which green plants and some other organisms use sunlight to synthesize "
     "foods from carbon dioxide and water. Photosynthesis in plants generally involves the green pigment "
     "chlorophyll and generates oxygen as a byproduct. Explain this to a child:", False),
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def greedy(llm, prompt_ids, n):
    """Greedy continuation (prompt as one batch, then one token at a time); also
    the top-1 minus top-2 logit gap at each step and the logits of the chosen tokens."""
    llm.reset()
    llm.eval(prompt_ids)
    out, gaps, chosen = [], [], []
    for _ in range(n):
        logits = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        top2 = np.partition(logits, -2)[-2:]
        tok = int(np.argmax(logits))
        out.append(tok)
        gaps.append(float(top2[1] - top2[0]))
        chosen.append(float(logits[tok]))
        llm.eval([tok])
    return out, gaps, chosen


def batch_logit_diff(llm, prompt_ids, gen, chosen):
    """llama.cpp's own inconsistency: the logits of the chosen tokens when the whole
    sequence is evaluated as one batch, against the incremental run (max |diff|)."""
    llm.reset()
    seq = list(prompt_ids) + list(gen[:-1])
    llm.eval(seq)
    n0 = len(prompt_ids) - 1
    return max(abs(float(llm.scores[n0 + i][t]) - chosen[i]) for i, t in enumerate(gen))


def log_softmax_at(row, target):
    row = row.astype(np.float64)
    m = row.max()
    return row[target] - m - np.log(np.exp(row - m).sum())


def perplexity(llm_all, ids, n_ctx):
    bos = llm_all.token_bos()
    n_chunks = len(ids) // n_ctx
    nll, count = 0.0, 0
    for c in range(n_chunks):
        chunk = list(ids[c * n_ctx:(c + 1) * n_ctx])
        chunk[0] = bos
        llm_all.reset()
        llm_all.eval(chunk)
        scores = np.asarray(llm_all.scores[:n_ctx], dtype=np.float32)
        for j in range(n_ctx // 2, n_ctx - 1):
            nll -= log_softmax_at(scores[j], ids[c * n_ctx + j + 1])
            count += 1
    return float(np.exp(nll / count)), float(nll / count), count, n_chunks


def main():
    llm = Llama(model_path=MODEL, n_ctx=1024, n_batch=512, n_threads=2, logits_all=True, verbose=False)
    cases = []
    for text, special in PROMPTS:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=special)
        gen, gaps, chosen = greedy(llm, ids, N_GEN)
        diff = batch_logit_diff(llm, ids, gen, chosen)
        cases.append({
            "prompt": text,
            "parse_special": special,
            "prompt_ids": ids,
            "generated_ids": gen,
            "top2_gaps": [round(g, 5) for g in gaps],
            "batch_vs_incremental_max_logit_diff": round(diff, 5),
            "generated_text": llm.detokenize(gen).decode("utf-8", errors="replace"),
        })
        print(repr(text[:40]), "->", repr(cases[-1]["generated_text"][:60]), f"min gap {min(gaps):.4f}, batch diff {diff:.4f}",
              file=sys.stderr)
    del llm

    llm_all = Llama(model_path=MODEL, n_ctx=PPL_CTX, n_batch=PPL_CTX, n_threads=2, logits_all=True, verbose=False)
    with open(PPL_TEXT, "rb") as f:
        text = f.read()
    ids = llm_all.tokenize(text, add_bos=True, special=False)
    ppl, nll, count, n_chunks = perplexity(llm_all, ids, PPL_CTX)
    print(f"perplexity {ppl:.4f} over {count} tokens, {n_chunks} chunks", file=sys.stderr)

    out = {
        "generator": "scripts/make_llamacpp_fixtures.py",
        "llama_cpp_python": llama_cpp.__version__,
        "model_sha256": sha256(MODEL),
        "n_gen": N_GEN,
        "cases": cases,
        "perplexity": {
            "text": "resources/text/perplexity_sample.txt",
            "n_ctx": PPL_CTX,
            "n_tokens": len(ids),
            "n_chunks": n_chunks,
            "n_scored": count,
            "nll": nll,
            "ppl": ppl,
        },
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
