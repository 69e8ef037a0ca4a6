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

models → tests/fixtures/gguf-<family>/ for the committed transformers fixtures mixtral, qwen3_moe, olmoe
  model.gguf          the fixture's weights quantised by gguf-py and written by gguf-py's GGUFWriter with llama.cpp's
                      architecture keys and tensor names (stacked ffn_{gate,up,down}_exps; llama's q/k rows permuted
                      for interleaved RoPE as convert_hf_to_gguf.py does), and the tokenizer as tokenizer.ggml.*
                      (byte-level BPE: "gpt2" with merges; Mixtral's byte-fallback BPE: "llama" with scores)
  golden.json         tools/make_fixtures.py's golden run (transformers, f32, eager) of the same model with every
                      weight replaced by gguf-py's dequantisation of the bytes in model.gguf
  Formats: Q8_0 where the row (K) is a multiple of 32, MXFP4 for Qwen3-MoE's expert gate/up, F16 or BF16 for rows of
  24 (expert down projections), F32 for norms and routers (llama.cpp never quantises ffn_gate_inp).
  The K-quants need rows of 256 and these models are 64 wide; their decoding is covered by the blocks fixtures.

(Random-weight GGUF files at published sizes, for benchmarks: src/cli/random-gguf.ts, which needs no Python.)

Usage: python3 tools/make_gguf_fixtures.py blocks|models [--out DIR]
Needs: numpy, gguf (gguf-py from llama.cpp, written against 0.19); models also torch, transformers 5.x.
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["blocks", "models"])
    p.add_argument("--out", default=None)
    a = p.parse_args()
    if a.what == "blocks":
        make_blocks(a.out or "tests/fixtures/gguf-blocks")
    else:
        make_models(a.out or "tests/fixtures")


if __name__ == "__main__":
    main()
