#!/usr/bin/env python3
"""Reference blocks for sqlora's GGUF block formats (crates/sqlora-model/tests/kquant.rs).

Needs only numpy and the `gguf` package (gguf==0.19.0, numpy==2.4.6; any Python 3.10+):

    python3 -m pip install gguf==0.19.0 numpy==2.4.6
    python3 tools/reference/make_kquant_fixtures.py --out tests/fixtures/reference/kquant

For each of Q4_K, Q5_0, Q6_K, Q8_0 and Q4_1 it writes, for a seeded [8, 512] tensor:

* `<FORMAT>.blocks`: the raw ggml blocks, row-major, exactly as a GGUF file stores them;
* `<FORMAT>.f32`: the `gguf` package's own dequantization of those bytes
  (`gguf.quants.dequantize`, a numpy port of ggml's `dequantize_row_*`), little-endian f32;
* `manifest.json`: shapes, byte counts, sha256 of both files, and the package versions.

Rows 0..4 quantize seeded normal values (with a few outliers, an all-zero sub-block and a
constant sub-block); rows 4..8 keep the f16 scales of real blocks but fill every other byte with
seeded random bits, so every nibble, high-bit and packed-scale pattern occurs (negative Q6_K
scales and 6-bit Q4_K scales/mins above 15 included).

`gguf.quants.quantize` implements Q5_0, Q8_0 and Q4_1 but not the K-quants (it raises
NotImplementedError in gguf 0.19.0), so Q4_K and Q6_K blocks are made by the simple
round-to-nearest quantizers below (one scale per sub-block, ggml's packing). They are not
ggml's optimising quantizers, and need not be: the fixtures test how blocks are *read*, and
the reference values come from the `gguf` package's dequantizer, not from this script.
"""

import argparse
import hashlib
import importlib.metadata
import json
import os

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

ROWS, COLS = 8, 512
QK_K = 256
FORMATS = ["Q4_K", "Q5_0", "Q6_K", "Q8_0", "Q4_1"]


def f16_bytes(v):
    return np.asarray(v, dtype=np.float16).reshape(-1).view(np.uint8)


def quantize_q4_k(x):
    """[n, 256] f32 -> [n, 144] uint8 Q4_K blocks (d, dmin, 12 bytes scales, 128 bytes qs)."""
    out = []
    for blk in x.reshape(-1, QK_K):
        sub = blk.reshape(8, 32)
        lo = np.minimum(sub.min(axis=1), 0.0)
        hi = sub.max(axis=1)
        scale = (hi - lo) / 15.0
        mins = -lo
        d = np.float16(scale.max() / 63.0)
        dmin = np.float16(mins.max() / 63.0)
        sc = np.zeros(8, np.uint8) if d == 0 else np.clip(np.rint(scale / np.float32(d)), 0, 63).astype(np.uint8)
        m = np.zeros(8, np.uint8) if dmin == 0 else np.clip(np.rint(mins / np.float32(dmin)), 0, 63).astype(np.uint8)
        q = np.zeros((8, 32), np.uint8)
        for j in range(8):
            dj = np.float32(d) * np.float32(sc[j])
            mj = np.float32(dmin) * np.float32(m[j])
            if dj > 0:
                q[j] = np.clip(np.rint((sub[j] + mj) / dj), 0, 15).astype(np.uint8)
        packed = np.zeros(12, np.uint8)
        for j in range(4):
            packed[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6)
            packed[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6)
            packed[j + 8] = (sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4)
        qs = np.zeros(128, np.uint8)
        for p in range(4):
            qs[32 * p : 32 * p + 32] = q[2 * p] | (q[2 * p + 1] << 4)
        out.append(np.concatenate([f16_bytes(d), f16_bytes(dmin), packed, qs]))
    return np.stack(out)


def quantize_q6_k(x):
    """[n, 256] f32 -> [n, 210] uint8 Q6_K blocks (ql 128, qh 64, 16 i8 scales, f16 d)."""
    out = []
    for blk in x.reshape(-1, QK_K):
        sub = blk.reshape(16, 16)
        # Like ggml: the scale carries the sign of the largest-magnitude value, q in [-32, 31].
        amax_idx = np.abs(sub).argmax(axis=1)
        scale = sub[np.arange(16), amax_idx] / -32.0
        d = np.float16(np.abs(scale).max() / 127.0)
        sc = np.zeros(16, np.int8) if d == 0 else np.clip(np.rint(scale / np.float32(d)), -128, 127).astype(np.int8)
        q = np.zeros((16, 16), np.int32)
        for j in range(16):
            dj = np.float32(d) * np.float32(sc[j])
            if dj != 0:
                q[j] = np.clip(np.rint(sub[j] / dj), -32, 31).astype(np.int32)
        q = (q.reshape(256) + 32).astype(np.uint8)
        ql = np.zeros(128, np.uint8)
        qh = np.zeros(64, np.uint8)
        for n in range(2):
            for l in range(32):
                q1, q2, q3, q4 = (q[128 * n + l + 32 * k] for k in range(4))
                ql[64 * n + l] = (q1 & 0x0F) | ((q3 & 0x0F) << 4)
                ql[64 * n + l + 32] = (q2 & 0x0F) | ((q4 & 0x0F) << 4)
                qh[32 * n + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
        out.append(np.concatenate([ql, qh, sc.view(np.uint8), f16_bytes(d)]))
    return np.stack(out)


def quantize(x, name):
    if name == "Q4_K":
        return quantize_q4_k(x).reshape(x.shape[0], -1)
    if name == "Q6_K":
        return quantize_q6_k(x).reshape(x.shape[0], -1)
    return quants.quantize(x, getattr(T, name))


def scale_byte_ranges(name, block_bytes):
    """Byte ranges of the f16 scales inside one block (kept when randomising the rest)."""
    return {
        "Q4_K": [(0, 4)],
        "Q6_K": [(block_bytes - 2, block_bytes)],
        "Q5_0": [(0, 2)],
        "Q8_0": [(0, 2)],
        "Q4_1": [(0, 4)],
    }[name]


def source(rng):
    x = rng.standard_normal((ROWS, COLS)).astype(np.float32) * 0.05
    x[0, 7] = 0.9  # outliers
    x[1, 300] = -1.1
    x[2, 32:64] = 0.0  # an all-zero (sub-)block
    x[3, 256:288] = 0.02  # a constant one
    return x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/reference/kquant")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20261206)
    x = source(rng)
    manifest = {
        "rows": ROWS,
        "cols": COLS,
        "versions": {"gguf": importlib.metadata.version("gguf"), "numpy": np.__version__},
        "formats": {},
    }
    for name in FORMATS:
        qtype = getattr(T, name)
        block_len, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        q = np.ascontiguousarray(quantize(x, name), dtype=np.uint8)
        assert q.shape == (ROWS, COLS // block_len * block_bytes), (name, q.shape)
        # Rows 4.. : random bits everywhere but the f16 scales.
        blocks = q[ROWS // 2 :].reshape(-1, block_bytes)
        noise = rng.integers(0, 256, size=blocks.shape, dtype=np.uint8)
        keep = np.zeros(block_bytes, bool)
        for a, b in scale_byte_ranges(name, block_bytes):
            keep[a:b] = True
        blocks[:, ~keep] = noise[:, ~keep]
        q[ROWS // 2 :] = blocks.reshape(ROWS // 2, -1)
        deq = quants.dequantize(q, qtype).astype(np.float32)
        assert deq.shape == (ROWS, COLS), (name, deq.shape)
        assert np.isfinite(deq).all(), name
        err = float(np.abs(deq[: ROWS // 2] - x[: ROWS // 2]).max())
        # The quantizers above are crude but must be right: errors well below the data's range.
        assert err < 0.2, (name, err)
        raw, ref = q.tobytes(), deq.astype("<f4").tobytes()
        with open(os.path.join(args.out, f"{name}.blocks"), "wb") as f:
            f.write(raw)
        with open(os.path.join(args.out, f"{name}.f32"), "wb") as f:
            f.write(ref)
        manifest["formats"][name] = {
            "block_len": block_len,
            "block_bytes": block_bytes,
            "blocks_sha256": hashlib.sha256(raw).hexdigest(),
            "f32_sha256": hashlib.sha256(ref).hexdigest(),
            "max_abs_error_quantized_rows": err,
        }
        print(f"{name}: {len(raw)} bytes of blocks, max |error| on quantized rows {err:.4f}")
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
