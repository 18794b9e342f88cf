#!/usr/bin/env python3
"""Writes tokenizer fixtures from llama.cpp (through llama-cpp-python):

  tests/fixtures/tokenizer/gemma3.json   ids for a corpus of hard strings with the
                                         real gemma-3 SPM vocab (add_bos x special)
  tests/fixtures/tokenizer/bpe_tiny.gguf a tiny byte-level BPE vocab trained here
  tests/fixtures/tokenizer/bpe_tiny.json ids of the same corpus for several
                                         tokenizer.ggml.pre values
  tests/fixtures/tokenizer/spm_tiny.*    the same for a tiny SPM vocab (space prefix on)
  tests/fixtures/tokenizer/utf8_stream.json  byte strings and their lossy decoding

Texts are stored as hex (they may be invalid UTF-8); decoded pieces too.
Usage: python3 scripts/make_tokenizer_fixtures.py [path/to/gemma-3-270m-q4_k_m.gguf]
"""
import collections
import ctypes
import json
import os
import re
import sys
import tempfile

import gguf
import llama_cpp
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")

CORPUS = [
    ("empty", b""),
    ("space", b" "),
    ("spaces", b"   "),
    ("hello", b"Hello world"),
    ("hello_lead", b" Hello world"),
    ("lead2", b"  two leading spaces"),
    ("trail", b"trailing spaces   "),
    ("ws_runs", b"a  b   c    d\t\te\t \tf"),
    ("newlines", b"line1\nline2\n\nline3\r\nline4\n\n\n"),
    ("only_newlines", b"\n\n"),
    ("tabs", b"\tindented\n\t\tmore\n    spaces"),
    ("contractions", b"I'm sure you'll see they've done it, isn't it? We'd WON'T THEY'RE"),
    ("quotes", b"'s 't 're 've 'm 'll 'd ' '' x'"),
    ("numbers", b"1 12 123 1234 12345 3.14159 -42 1,000,000 0x1F 2024-01-01"),
    ("math", b"E = mc^2; a+b<=c>=d != e && f || g ~ h $5 100%"),
    ("code", b"def f(x):\n    return x**2  # square\n\nif __name__ == '__main__':\n\tprint(f(3))\n"),
    ("cpp", b"int main() { std::vector<int> v{1,2,3}; for (auto& x : v) x <<= 1; }"),
    ("json", b'{"key": [1, 2, {"nested": null}], "s": "a\\"b"}'),
    ("url", b"https://example.com/path?q=1&r=two#frag <a href=\"x\">link</a>"),
    ("accents", "café naïve résumé Ångström façade".encode()),
    ("combining", "e\u0301 a\u0308 n\u0303 \u0915\u093f \u0e01\u0e34\u0e4a".encode()),
    ("cjk", "日本語のテキストです。中文文本，还有한국어 텍스트".encode()),
    ("cjk_mixed", "Tokyo東京2024年 and 北京Beijing".encode()),
    ("emoji", "I ❤️ 🍕 and 👍🏽!".encode()),
    ("emoji_zwj", "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👩🏽‍💻 coder".encode()),
    ("rtl", "مرحبا بالعالم שלום עולם".encode()),
    ("greek_cyrillic", "Γειά σου Κόσμε — Привет, мир!".encode()),
    ("math_symbols", "∀x∈ℝ: x² ≥ 0 ⇒ √x ∈ ℂ ∑∫∂ ≠ ≈ ∞".encode()),
    ("fullwidth", "ＡＢＣ１２３！？　全角".encode()),
    ("nbsp", "a\u00a0b\u2003c\u3000d\u200be".encode()),
    ("roman_numerals", "Ⅻ ⅳ ½ ² ٣ ৫".encode()),
    ("special_text", b"<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n"),
    ("special_bos", b"<bos>text<eos>"),
    ("special_adjacent", b"<start_of_turn><end_of_turn> <start_of_turn>"),
    ("special_partial", b"<start_of_turn <end_of_turn>> <start_of_tur>"),
    ("chatml", b"<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>"),
    ("bpe_specials", b"<|begin|>a<|stop|>b<tool>c<|eom_id|>d<|fim_pad|>"),
    ("html", b"<div class='x'>&amp; &lt;tag&gt;</div>"),
    ("repeat", b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    ("punct_runs", b"!!!??? ... --- *** ___ ((( ))) ,,, ;;;"),
    ("underscores", b"snake_case_name and CamelCaseName and kebab-case-name"),
    ("invalid_lone_cont", b"abc\x80def"),
    ("invalid_lead", b"x\xc3y"),
    ("invalid_trunc", b"end\xe2\x82"),
    ("invalid_ff", b"\xff\xfe bytes"),
    ("invalid_overlong", b"\xc0\xaf over"),
    ("control_chars", b"a\x00b\x01c\x1bd\x7fe"),
    ("mixed_long", "The quick brown fox (狐狸) jumps over 13 lazy dogs 🐕🐕 at 3:45pm — naïvely!\n".encode() * 3),
]


def random_corpus(n, seed=7):
    """Random mixes of fragments that stress the splitters and special tokens."""
    import random
    rng = random.Random(seed)
    frags = [b"a", b"bc", b"Word", b" ", b"  ", b"\n", b"\r\n", b"\t", b"'s", b"'T", b"'ll", b"1", b"23", b"4567",
             b"<start_of_turn>", b"<end_of_turn>", b"<|im_end|>", b"<tool>", b"<|stop|>", b"<s>", b"</s>", b"<",
             "日本".encode(), "é".encode(), "e\u0301".encode(), "👍".encode(), "\u200d".encode(), "\u00a0".encode(),
             "\u3000".encode(), b"\xff", b"\xe2\x82", b"\x80", b"!", b"...", b">", b"|", b"_", b"$", b"+",
             "Ω".encode(), "٣".encode(), "½".encode(), "—".encode(), b"x=1;", b"(", b")"]
    return [("random_%d" % i, b"".join(rng.choice(frags) for _ in range(rng.randint(1, 24)))) for i in range(n)]


RANDOM = random_corpus(60)
RANDOM_FLAGS = [(False, True)]


def piece(vocab, tok, special):
    buf = ctypes.create_string_buffer(1024)
    n = llama_cpp.llama_token_to_piece(vocab, tok, buf, len(buf), 0, special)
    assert n >= 0
    return buf.raw[:n]


def tokenize_all(llm, flag_sets):
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    cases = []
    for name, text, flags in [(n, t, flag_sets) for n, t in CORPUS] + [(n, t, RANDOM_FLAGS) for n, t in RANDOM]:
        for add_bos, special in flags:
            ids = llm.tokenize(text, add_bos=add_bos, special=special)
            cases.append({
                "name": name, "text_hex": text.hex(), "add_bos": add_bos, "special": special,
                "ids": ids,
                "pieces_hex": b"".join(piece(vocab, t, False) for t in ids).hex(),
                "pieces_special_hex": b"".join(piece(vocab, t, True) for t in ids).hex(),
            })
    return cases


def vocab_facts(llm, sample_ids):
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    return {
        "n_vocab": n,
        "bos": llama_cpp.llama_vocab_bos(vocab),
        "eos": llama_cpp.llama_vocab_eos(vocab),
        "eot": llama_cpp.llama_vocab_eot(vocab),
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
        "eog": [i for i in range(n) if llama_cpp.llama_vocab_is_eog(vocab, i)],
        "attrs": [[i, int(llama_cpp.llama_vocab_get_attr(vocab, i))] for i in sample_ids if i < n],
    }


# ---------------------------------------------------------------------------
# gemma3 (SPM)

def make_gemma(model_path):
    llm = Llama(model_path=model_path, vocab_only=True, verbose=False)
    flags = [(False, False), (False, True), (True, False), (True, True)]
    sample = list(range(0, 12)) + [105, 106, 107, 108, 138, 212, 236, 237, 238, 239, 493, 494, 2364,
                                   255999, 256000, 256001, 262143]
    data = {"model": os.path.basename(model_path), "facts": vocab_facts(llm, sample),
            "cases": tokenize_all(llm, flags)}
    with open(os.path.join(OUT, "gemma3.json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")


# ---------------------------------------------------------------------------
# tiny byte-level BPE

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


TRAIN_TEXT = """
The quick brown fox jumps over the lazy dog. It's a truth universally acknowledged
that a single man in possession of a good fortune must be in want of a wife. We're
going to the market, and they've said they'll be there. I'm sure you'd agree.
def tokenize(text): return [token for token in text.split() if token]
for (int i = 0; i < n; ++i) { sum += values[i] * weights[i]; }
Numbers like 1234567890 and 3.14159 appear in 2024 and 1999, also 42 and 100%.
Hello world! Hello there, hello again. The the the and and and of of to to in in.
café naïve résumé. 日本語のテキスト 中文文本 Привет мир Γειά σου κόσμε مرحبا
    indented lines\n\twith tabs\n\nand blank lines
""" * 3


def train_bpe(text, n_merges):
    b2u = bytes_to_unicode()
    words = re.findall(r"'s|'t|'re|'ve|'m|'ll|'d| ?\w+| ?\d+| ?[^\s\w\d]+|\s+", text)
    counts = collections.Counter(tuple(b2u[b] for b in w.encode()) for w in words)
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in counts.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        (a, b), c = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        if c < 2:
            break
        merges.append((a, b))
        new = collections.Counter()
        for w, cnt in counts.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += cnt
        counts = new
    return merges


SPECIALS = [  # text, token type
    ("<|begin|>", 3), ("<|stop|>", 3), ("<|im_start|>", 3), ("<|im_end|>", 3),
    ("<|eom_id|>", 3), ("<|fim_pad|>", 3), ("<tool>", 4), ("<|unused_7|>", 3),
]


def write_bpe_gguf(path, pre, tokens, types, merges, bos, eos):
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(128)
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_feed_forward_length(16)
    w.add_head_count(1)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([a + " " + b for a, b in merges])
    w.add_bos_token_id(bos)
    w.add_eos_token_id(eos)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_bpe():
    b2u = bytes_to_unicode()
    merges = train_bpe(TRAIN_TEXT, 400)
    tokens = []
    # byte tokens (one is left out on purpose: exercises the missing-token path)
    for b in range(256):
        if b != 0xBD:
            tokens.append(b2u[b])
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
    types = [1] * len(tokens)
    for text, t in SPECIALS:
        tokens.append(text)
        types.append(t)
    bos = tokens.index("<|begin|>")
    eos = tokens.index("<|stop|>")
    gguf_path = os.path.join(OUT, "bpe_tiny.gguf")
    write_bpe_gguf(gguf_path, "gpt-2", tokens, types, merges, bos, eos)

    flags = [(False, False), (True, True), (False, True)]
    results = {}
    for pre in ["gpt-2", "llama-bpe", "qwen2", "default"]:
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "v.gguf")
            write_bpe_gguf(p, pre, tokens, types, merges, bos, eos)
            llm = Llama(model_path=p, vocab_only=True, verbose=False)
            results[pre] = {"facts": vocab_facts(llm, list(range(len(tokens) - len(SPECIALS) - 2, len(tokens)))),
                            "cases": tokenize_all(llm, flags)}
            del llm
    with open(os.path.join(OUT, "bpe_tiny.json"), "w") as f:
        json.dump({"gguf": "bpe_tiny.gguf", "n_merges": len(merges), "pre": results}, f, separators=(",", ":"))
        f.write("\n")


# ---------------------------------------------------------------------------
# tiny SPM vocab (add_space_prefix at its default: true)

def make_spm():
    u2b = {c: b for b, c in bytes_to_unicode().items()}
    merges = train_bpe(TRAIN_TEXT, 300)
    tokens = [("<unk>", 2, 0.0), ("<s>", 3, 0.0), ("</s>", 3, 0.0)]
    tokens += [("<0x%02X>" % b, 6, 0.0) for b in range(256)]
    seen = set()
    pieces = []
    for ch in sorted(set(TRAIN_TEXT)):
        if ord(ch) < 128 and ch not in " \n":
            pieces.append(ch)
    pieces.append("\u2581")
    for a, b in merges:
        try:
            text = bytes(u2b[c] for c in a + b).decode("utf-8")
        except UnicodeDecodeError:
            continue
        pieces.append(text.replace(" ", "\u2581"))
    for i, p in enumerate(pieces):
        if p not in seen:
            seen.add(p)
            tokens.append((p, 1, -float(i)))
    tokens += [("<start_of_turn>", 3, 0.0), ("<end_of_turn>", 3, 0.0), ("<tool>", 4, 0.0), ("\n", 4, 0.0)]

    path = os.path.join(OUT, "spm_tiny.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(128)
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_feed_forward_length(16)
    w.add_head_count(1)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list([t[0] for t in tokens])
    w.add_token_types([t[1] for t in tokens])
    w.add_token_scores([t[2] for t in tokens])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    llm = Llama(model_path=path, vocab_only=True, verbose=False)
    data = {"gguf": "spm_tiny.gguf", "facts": vocab_facts(llm, list(range(0, 8)) + list(range(len(tokens) - 6, len(tokens)))),
            "cases": tokenize_all(llm, [(False, False), (True, True), (False, True)])}
    with open(os.path.join(OUT, "spm_tiny.json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")


# ---------------------------------------------------------------------------
# streaming UTF-8: Python's errors="replace" (maximal subparts) as the oracle

def make_utf8_stream():
    import random
    rng = random.Random(1234)
    cases = [b"", b"abc", "h\u00e9llo \U0001F44D\u200d".encode(), b"\xff", b"\xf0\x9f", b"\xf0\x9fa",
             b"\xe2\x82\xac\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\x80\x80",
             b"\xe0\x80\x80", b"\xf0\x9f\x91\x8d\xf0\x9f\x91"]
    alphabet = [b"a", b" ", b"\xc3", b"\xa9", b"\xe2", b"\x82", b"\xac", b"\xf0", b"\x9f", b"\x91", b"\x8d",
                b"\xed", b"\xa0", b"\xff", b"\xc0", b"\xf4", b"\x90", b"\xe0", b"\x80", b"\xbf"]
    for _ in range(200):
        cases.append(b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))))
    data = [{"hex": c.hex(), "decoded_hex": c.decode("utf-8", errors="replace").encode().hex()} for c in cases]
    with open(os.path.join(OUT, "utf8_stream.json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    model = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf")
    if not os.path.exists(model):
        model = "/work/main/models/gemma-3-270m-q4_k_m.gguf"
    make_gemma(model)
    make_bpe()
    make_spm()
    make_utf8_stream()


if __name__ == "__main__":
    main()
