#!/usr/bin/python3
"""Writes tests/data/safetensors_fixture.safetensors with an independent writer (struct + json +
numpy only; the safetensors package is not installed here), so tests/test_safetensors.cpp can check
that our reader gets the exact values. Deliberately unlike our writer: the data buffer holds the
tensors in reverse name order, the JSON uses Python's default separators and puts __metadata__
last. Run: /usr/bin/python3 scripts/make_safetensors_fixture.py

With `--check FILE` it instead reads FILE with the same independent code (a test uses this on a
file our writer made) and prints {"metadata": .., "tensors": {name: {dtype, shape, values}}} as JSON.
"""
import json
import math
import os
import struct
import sys

import numpy as np


def bf16_bytes(values):
    # BF16 = the upper 16 bits of a float32; the values chosen are exact in bf16.
    bits = np.array(values, dtype="<f4").view("<u4") >> 16
    return bits.astype("<u2").tobytes()


# name -> (dtype, shape, little-endian bytes); the C++ test repeats these values.
TENSORS = {
    "a_f32": ("F32", [2, 3], np.array([-1.5, 0.0, 0.25, 2.0, 1024.5, -3.75], "<f4").tobytes()),
    "b_f64": ("F64", [3], np.array([1.0 / 3.0, math.pi, -1e300], "<f8").tobytes()),
    "c_f16": ("F16", [4], np.array([0.5, -2.0, 65504.0, 1.0 / 1024.0], "<f2").tobytes()),
    "d_bf16": ("BF16", [2, 2], bf16_bytes([1.0, -0.5, 3.0, 256.0])),
    "e_i64": ("I64", [3], np.array([-(2**63), 0, 2**63 - 1], "<i8").tobytes()),
    "f_i32": ("I32", [2], np.array([-7, 123456789], "<i4").tobytes()),
    "g_i16": ("I16", [2], np.array([-32768, 32767], "<i2").tobytes()),
    "h_i8": ("I8", [3], np.array([-128, 0, 127], "i1").tobytes()),
    "i_u8": ("U8", [4], np.array([0, 1, 254, 255], "u1").tobytes()),
    "j_bool": ("BOOL", [3], np.array([True, False, True], "?").tobytes()),
    "k_scalar": ("F32", [], np.array(42.0, "<f4").tobytes()),
    "l_empty": ("F32", [2, 0], b""),
}
METADATA = {"format": "pt", "source": "make_safetensors_fixture.py"}


NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
                "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


def check(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    buffer = data[8 + n:]
    metadata = header.pop("__metadata__", {})
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1]) for v in header.values())
    cursor = 0
    for begin, end in spans:
        assert begin == cursor, f"gap or overlap at {begin}"
        cursor = end
    assert cursor == len(buffer), "buffer not covered exactly"
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = buffer[begin:end]
        if info["dtype"] == "BF16":
            values = (np.frombuffer(raw, "<u2").astype("<u4") << 16).view("<f4")
        else:
            values = np.frombuffer(raw, NUMPY_DTYPES[info["dtype"]])
        assert values.size == int(np.prod(info["shape"])), name
        out[name] = {"dtype": info["dtype"], "shape": info["shape"], "values": values.tolist()}
    print(json.dumps({"metadata": metadata, "tensors": out}))


def main():
    header = {}
    buffer = b""
    for name in sorted(TENSORS, reverse=True):
        dtype, shape, data = TENSORS[name]
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(buffer), len(buffer) + len(data)]}
        buffer += data
    header["__metadata__"] = METADATA
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                       "safetensors_fixture.safetensors")
    with open(out + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + buffer)
    os.replace(out + ".tmp", out)
    print(f"wrote {os.path.normpath(out)}: {8 + len(text) + len(buffer)} bytes")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(sys.argv[2])
    else:
        main()
