#!/usr/bin/env python3
"""llama.cpp logits for a short prompt on gemma-3-270m-q4_k_m.gguf (the oracle of
tests/engine/tst_model_gemma.cpp): for each position, the top-20 token ids and
their logits. Needs llama-cpp-python. Usage: scripts/make_forward_fixtures.py [models-dir]"""
import hashlib, json, pathlib, sys

import llama_cpp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODEL = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "models") / "gemma-3-270m-q4_k_m.gguf"
OUT = ROOT / "tests/fixtures/llamacpp/gemma3_270m_logits.json"
TOKENS = [2, 818, 5279, 529, 7001, 563, 9079, 236761]  # <bos> "The capital of France is" + 2 more
TOP = 20

llm = llama_cpp.Llama(str(MODEL), n_ctx=64, n_threads=2, logits_all=True, verbose=False)
llm.eval(TOKENS)
scores = np.array(llm.scores[: len(TOKENS)], dtype=np.float32)
positions = []
for row in scores:
    top = np.argsort(-row)[:TOP]
    positions.append({"ids": [int(i) for i in top], "logits": [round(float(row[i]), 4) for i in top]})
OUT.write_text(json.dumps({
    "generator": "scripts/make_forward_fixtures.py",
    "llama_cpp_python": llama_cpp.__version__,
    "model_sha256": hashlib.sha256(MODEL.read_bytes()).hexdigest(),
    "tokens": TOKENS,
    "positions": positions,
}, indent=1) + "\n")
print("wrote", OUT)
