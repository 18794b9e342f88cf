#!/usr/bin/env python3
"""Writes small GGUF files for tst_gguf: a v3 file made by gguf-py (the
reference writer) and a v2 file assembled by hand with struct (gguf-py only
writes v3). The values here are repeated as expectations in tests/engine/tst_gguf.cpp.

Usage: python3 scripts/make_gguf_fixtures.py   (writes tests/fixtures/gguf/)
"""
import struct
from pathlib import Path

import numpy as np
import gguf
from gguf import GGUFValueType as VT

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "gguf"


def q8_0_bytes(n_blocks: int) -> np.ndarray:
    # Arbitrary but recognisable bytes: byte i = (7 * i + 3) % 256.
    return ((np.arange(n_blocks * 34) * 7 + 3) % 256).astype(np.uint8).reshape(-1, 34)


def write_v3(path: Path) -> None:
    w = gguf.GGUFWriter(str(path), arch="fixture")
    w.add_custom_alignment(64)
    w.add_name("gguf-py fixture")
    w.add_uint8("fx.u8", 200)
    w.add_int8("fx.i8", -100)
    w.add_uint16("fx.u16", 60000)
    w.add_int16("fx.i16", -30000)
    w.add_uint32("fx.u32", 4000000000)
    w.add_int32("fx.i32", -2000000000)
    w.add_uint64("fx.u64", 2**63 + 5)
    w.add_int64("fx.i64", -(2**62) - 7)
    w.add_float32("fx.f32", 1.5)
    w.add_float64("fx.f64", -2.25e100)
    w.add_bool("fx.true", True)
    w.add_bool("fx.false", False)
    w.add_string("fx.str", "h\u00e9llo\nworld")
    w.add_array("fx.arr_str", ["a", "", "ccc"])
    w.add_array("fx.arr_i32", [1, -2, 3])
    w.add_array("fx.arr_f32", [0.5, -1.0])
    w.add_key_value("fx.arr_u8", [1, 2, 255], VT.ARRAY, sub_type=VT.UINT8)
    w.add_key_value("fx.arr_u64", [2**64 - 1, 0], VT.ARRAY, sub_type=VT.UINT64)
    w.add_array("fx.nested", [[1, 2], [3], [4, 5, 6]])
    w.add_array("fx.nested_str", [["x", "yy"], ["zzz"]])
    w.add_tensor("t.f32", np.arange(12, dtype=np.float32).reshape(3, 4))  # ne = [4, 3]
    w.add_tensor("t.f16", (np.arange(8, dtype=np.float16) - 4) / 2)       # ne = [8]
    w.add_tensor("t.q8_0", q8_0_bytes(2), raw_dtype=gguf.GGMLQuantizationType.Q8_0)  # ne = [32, 2]
    w.add_tensor("t.i32", np.array([5, -6, 7], dtype=np.int32))             # ne = [3]
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gguf_str(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def write_v2(path: Path) -> None:
    """GGUF v2 by hand: same layout as v3 for little-endian files, 64-bit counts."""
    kv = [
        (b"general.architecture", struct.pack("<I", 8) + gguf_str(b"handmade")),
        (b"hm.count", struct.pack("<I", 4) + struct.pack("<I", 42)),
        (b"hm.ratio", struct.pack("<I", 6) + struct.pack("<f", 0.25)),
        (b"hm.words", struct.pack("<IIQ", 9, 8, 2) + gguf_str(b"one") + gguf_str(b"two")),
    ]
    # One F32 tensor ne = [2, 2] and one Q8_0 tensor ne = [32], data 32-aligned.
    f32 = np.array([1.0, -2.0, 3.5, 4.0], dtype=np.float32).tobytes()
    q8 = q8_0_bytes(1).tobytes()
    tensors = [(b"hm.a", [2, 2], 0, f32), (b"hm.b", [32], 8, q8)]
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 2, len(tensors), len(kv)))
    for key, val in kv:
        out += gguf_str(key) + val
    offset = 0
    offsets = []
    for name, ne, ty, data in tensors:
        out += gguf_str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        out += struct.pack("<IQ", ty, offset)
        offsets.append(offset)
        offset += (len(data) + 31) // 32 * 32
    out += b"\0" * (-len(out) % 32)
    data_start = len(out)
    for (name, ne, ty, data), off in zip(tensors, offsets):
        assert len(out) == data_start + off
        out += data + b"\0" * (-len(data) % 32)
    path.write_bytes(bytes(out))


def check(path: Path) -> None:
    # Read back with gguf-py's reader as a sanity check of both files.
    r = gguf.GGUFReader(str(path))
    print(path.name, "kv:", len(r.fields), "tensors:", [(t.name, t.tensor_type.name, list(t.shape)) for t in r.tensors])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write_v3(OUT / "v3_gguf_py.gguf")
    write_v2(OUT / "v2_handmade.gguf")
    for p in sorted(OUT.glob("*.gguf")):
        check(p)


if __name__ == "__main__":
    main()
