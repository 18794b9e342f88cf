#!/usr/bin/env python3
"""Fixtures for tst_quants: llama.cpp's reference quantizer bytes and gguf-py's
numpy dequantization of them, for seeded random rows.

Quantizes with ggml_quantize_chunk (imatrix=NULL => the *_ref quantizers) from
the ggml shared library shipped in the llama_cpp (llama-cpp-python) package,
dequantizes with gguf.quants.dequantize (an independent implementation).

Output: tests/fixtures/quants/quants.bin, little endian:
  "GBQF" u32 version(=1)
  u32 meta_len, meta (utf-8 text: versions, seed)
  u32 n_rows, u32 n_per_row, f32 input[n_rows * n_per_row]
  u32 n_types, then per type:
    u32 ggml type id, u32 n_bytes, u8 bytes[n_bytes] (llama.cpp quantized rows),
    f32 dequant[n_rows * n_per_row] (gguf-py dequantization of those bytes)
"""
import ctypes
import importlib.metadata
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants as gq

SEED = 20240611
N_PER_ROW = 512  # two k-quant super-blocks / sixteen 32-blocks per row
TYPES = [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
         T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]


def make_inputs(rng: np.random.Generator) -> np.ndarray:
    n = N_PER_ROW
    h = n // 2
    rows = []
    # 0: standard normal
    rows.append(rng.standard_normal(n))
    # 1: weight-like (small sigma) with a few large outliers
    r = rng.standard_normal(n) * 0.02
    idx = rng.choice(n, 6, replace=False)
    r[idx] = rng.standard_normal(6) * 1.5
    rows.append(r)
    # 2: uniform with a different magnitude per 16-group (exercises the scale packing)
    r = rng.uniform(-1, 1, n)
    r *= np.repeat(10.0 ** rng.uniform(-3, 1, n // 16), 16)
    rows.append(r)
    # 3: all zeros
    rows.append(np.zeros(n))
    # 4: tiny values: fp16 scale underflow / below GROUP_MAX_EPS
    rows.append(np.concatenate([rng.standard_normal(h) * 1e-7, rng.standard_normal(h) * 1e-17]))
    # 5: one-signed blocks (min/offset handling)
    rows.append(np.concatenate([rng.uniform(0.5, 2.0, h), -rng.uniform(0.1, 3.0, h)]))
    # 6: constant block, then a sparse block (mostly zeros)
    sparse = np.zeros(h)
    idx = rng.choice(h, 20, replace=False)
    sparse[idx] = rng.standard_normal(20)
    rows.append(np.concatenate([np.full(h, 3.0), sparse]))
    # 7: larger magnitudes, then exact multiples of 1/4 (rounding ties)
    ties = rng.integers(-40, 41, h) * 0.25
    rows.append(np.concatenate([rng.standard_normal(h) * 300.0, ties]))
    return np.ascontiguousarray(np.stack(rows).astype(np.float32))


def load_ggml():
    import llama_cpp
    lib_dir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    lib = ctypes.CDLL(os.path.join(lib_dir, "libggml-base.so"))
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    lib.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
    lib.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]
    lib.ggml_row_size.restype = ctypes.c_size_t
    lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
    return lib


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = os.path.join(root, "tests", "fixtures", "quants")
    os.makedirs(out_dir, exist_ok=True)

    rng = np.random.default_rng(SEED)
    x = make_inputs(rng)
    n_rows, n_per_row = x.shape
    lib = load_ggml()

    meta = (f"llama-cpp-python {importlib.metadata.version('llama_cpp_python')}; "
            f"gguf-py {importlib.metadata.version('gguf')}; numpy {np.__version__}; seed {SEED}; "
            f"ggml_quantize_chunk(imatrix=NULL)").encode()
    out = bytearray(b"GBQF")
    out += struct.pack("<II", 1, len(meta)) + meta
    out += struct.pack("<II", n_rows, n_per_row) + x.tobytes()
    out += struct.pack("<I", len(TYPES))
    for t in TYPES:
        assert not lib.ggml_quantize_requires_imatrix(int(t))
        row_size = lib.ggml_row_size(int(t), n_per_row)
        buf = np.zeros(n_rows * row_size, dtype=np.uint8)
        written = lib.ggml_quantize_chunk(int(t), x.ctypes.data, buf.ctypes.data, 0, n_rows, n_per_row, None)
        assert written == buf.size, (t.name, written, buf.size)
        # determinism check: a second run must give the same bytes
        buf2 = np.zeros_like(buf)
        lib.ggml_quantize_chunk(int(t), x.ctypes.data, buf2.ctypes.data, 0, n_rows, n_per_row, None)
        assert np.array_equal(buf, buf2), t.name
        deq = gq.dequantize(buf.reshape(n_rows, row_size), t).astype(np.float32)
        assert deq.shape == (n_rows, n_per_row), (t.name, deq.shape)
        out += struct.pack("<II", int(t), buf.size) + buf.tobytes() + np.ascontiguousarray(deq).tobytes()
        print(f"{t.name:5s} {buf.size:6d} bytes, max |x - deq| {np.nanmax(np.abs(deq - x)):.4g}")

    path = os.path.join(out_dir, "quants.bin")
    with open(path, "wb") as f:
        f.write(out)
    print(f"wrote {path} ({len(out)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
