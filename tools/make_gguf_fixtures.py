#!/usr/bin/env python3
"""GGUF fixtures: quantised blocks with gguf-py's own dequantisation, and tiny whole-model GGUF files.

blocks  → tests/fixtures/gguf-blocks/
  <format>.bin        raw row-major blocks of a [rows, cols] tensor (the bytes a GGUF file stores)
  <format>.f32        gguf.quants.dequantize of those bytes, little-endian f32 [rows, cols]
  index.json          per format: ggml type id, rows, cols, how each row was made; generator versions
  Rows are quantised by gguf-py's own quantiser where it has one (Q8_0, MXFP4) from seeded normal data at several
  magnitudes, plus rows of seeded random bytes whose scale fields are overwritten with finite values (every code and
  scale bit pattern the layouts allow). gguf-py 0.19 has no K-quant quantiser (quantize raises for Q4_K/Q5_K/Q6_K), so
  their rows are random blocks only; the oracle either way is gguf-py's dequantisation. Columns give an odd number of
  blocks per row, so no row (and for 34-, 210- and 17-byte blocks no tensor) ends on a 4-byte boundary.
  Scales are kept where every dequantised value is a normal f32 (WGSL may flush f32 subnormals to zero).

Usage: python3 tools/make_gguf_fixtures.py blocks [--out tests/fixtures/gguf-blocks]
Needs: numpy, gguf (gguf-py from llama.cpp, written against 0.19).
"""
from __future__ import annotations

import argparse
import json
import os
from importlib.metadata import version

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGML_QUANT_SIZES, quants

FORMATS = {
    # name: (ggml type, block count per row, rows quantised by gguf-py, random-byte rows)
    "q8_0": (T.Q8_0, 5, 4, 4),
    "q4_k": (T.Q4_K, 3, 0, 5),
    "q5_k": (T.Q5_K, 3, 0, 5),
    "q6_k": (T.Q6_K, 3, 0, 5),
    "mxfp4": (T.MXFP4, 5, 4, 4),
}


def f16_bytes(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float16).view(np.uint8).reshape(-1, 2)


def random_blocks(qtype: T, n: int, rng: np.random.Generator) -> np.ndarray:
    """n blocks of random bytes whose f16 / e8m0 scale fields hold finite values of assorted sign and magnitude."""
    size = GGML_QUANT_SIZES[qtype][1]
    b = rng.integers(0, 256, size=(n, size), dtype=np.uint8)
    scale = rng.choice([-1, 1], n) * np.exp2(rng.uniform(-14, 4, n))  # f16-representable, normal after any product
    if qtype == T.Q8_0:
        b[:, 0:2] = f16_bytes(scale)
    elif qtype in (T.Q4_K, T.Q5_K):
        b[:, 0:2] = f16_bytes(scale)
        b[:, 2:4] = f16_bytes(rng.choice([-1, 1], n) * np.exp2(rng.uniform(-14, 4, n)))
    elif qtype == T.Q6_K:
        b[:, 208:210] = f16_bytes(scale)
    elif qtype == T.MXFP4:
        b[:, 0] = rng.integers(100, 150, n)  # 2^(e-127) from 2^-27 to 2^22
    return b


def make_blocks(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261129)
    index = {
        "generator": {"gguf": version("gguf"), "numpy": np.__version__, "script": "tools/make_gguf_fixtures.py blocks"},
        "formats": {},
    }
    for name, (qtype, blocks_per_row, quantised_rows, random_rows) in FORMATS.items():
        block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
        cols = blocks_per_row * block_elems
        rows, how = [], []
        for r in range(quantised_rows):
            magnitude = [1.0, 0.02, 30.0, 0.0][r % 4]
            data = (rng.standard_normal((1, cols)) * magnitude).astype(np.float32)
            rows.append(quants.quantize(data, qtype).reshape(-1))
            how.append(f"gguf-py quantize of N(0, {magnitude}^2)")
        for _ in range(random_rows):
            rows.append(random_blocks(qtype, blocks_per_row, rng).reshape(-1))
            how.append("random bytes, finite scales")
        raw = np.stack(rows).astype(np.uint8)
        assert raw.shape[1] == blocks_per_row * block_bytes
        values = quants.dequantize(raw, qtype).astype("<f4")
        assert values.shape == (len(rows), cols) and np.isfinite(values).all()
        nonzero = np.abs(values[values != 0])
        assert nonzero.size == 0 or nonzero.min() >= np.finfo(np.float32).tiny, "subnormal value in fixture"
        raw.tofile(os.path.join(out, f"{name}.bin"))
        values.tofile(os.path.join(out, f"{name}.f32"))
        index["formats"][name] = {"ggml_type": int(qtype), "rows": len(rows), "cols": cols, "rows_made_by": how}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["blocks"])
    p.add_argument("--out", default=None)
    a = p.parse_args()
    if a.what == "blocks":
        make_blocks(a.out or "tests/fixtures/gguf-blocks")


if __name__ == "__main__":
    main()
