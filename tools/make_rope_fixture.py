#!/usr/bin/env python3
"""RoPE scaling fixture: inv_freq tables and attention factors as transformers' rope init functions compute them.

For each case below (the types and parameter sets the supported families' published configs use, plus the edge
cases of each formula) this builds a LlamaConfig with the case's `rope_parameters`, calls
`transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS[rope_type]` exactly as the rotary-embedding modules do (dynamic:
with `seq_len` as the int64 tensor `dynamic_rope_update` passes) and records inv_freq (float32, 9 significant digits:
exact round trip) and the attention factor (float64). DeepSeek's softmax-scale multiplier (`yarn_apply_mscale`) is
recorded too. Output: tests/fixtures/rope/rope_scaling.json.

Usage: python3 tools/make_rope_fixture.py [--out tests/fixtures/rope/rope_scaling.json]
"""
from __future__ import annotations

import argparse
import json
import os

import torch
import transformers
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.deepseek_v3.modeling_deepseek_v3 import yarn_apply_mscale

# name -> (head_dim, max_position_embeddings, rope_parameters, dynamic seq_len or None)
CASES = {
    "default-qwen3": (128, 40960, {"rope_type": "default", "rope_theta": 1000000.0}, None),
    "linear-x4": (64, 8192, {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}, None),
    "linear-x2.5": (48, 4096, {"rope_type": "linear", "rope_theta": 500000.0, "factor": 2.5}, None),
    "dynamic-below": (32, 64, {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}, 40),
    "dynamic-past": (32, 64, {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}, 100),
    "dynamic-far": (64, 2048, {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 3.0}, 9001),
    # Qwen3-MoE's model card: factor 4 over 32768 positions
    "yarn-qwen3": (128, 131072, {"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0,
                                  "original_max_position_embeddings": 32768}, None),
    # DeepSeek-V2-Lite and DeepSeek-V3 config.json
    "yarn-deepseek-v2-lite": (64, 163840, {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0, "beta_fast": 32,
                                           "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707,
                                           "original_max_position_embeddings": 4096}, None),
    "yarn-deepseek-v3": (64, 163840, {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0, "beta_fast": 32,
                                      "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0,
                                      "original_max_position_embeddings": 4096}, None),
    "yarn-mscale-differs": (16, 4096, {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 8.0, "mscale": 1.0,
                                       "mscale_all_dim": 0.707, "original_max_position_embeddings": 512}, None),
    # gpt-oss config.json: no truncation of the correction range
    "yarn-gptoss": (64, 131072, {"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0, "beta_fast": 32.0,
                                 "beta_slow": 1.0, "truncate": False, "original_max_position_embeddings": 4096}, None),
    "yarn-attention-factor": (32, 1024, {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 2.0,
                                         "attention_factor": 0.9, "beta_fast": 16, "beta_slow": 2,
                                         "original_max_position_embeddings": 256}, None),
    # Llama 3.1's published values
    "llama3": (128, 131072, {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}, None),
    "llama3-small": (32, 2048, {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 4.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 8.0, "original_max_position_embeddings": 256}, None),
}


def f32(v: float) -> float:
    return float(f"{v:.9g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "rope",
                                                  "rope_scaling.json"))
    args = ap.parse_args()
    cases = []
    for name, (head_dim, max_pos, params, seq_len) in CASES.items():
        cfg = LlamaConfig(hidden_size=head_dim * 4, num_attention_heads=4, head_dim=head_dim,
                          max_position_embeddings=max_pos, rope_parameters=dict(params))
        rope_type = cfg.rope_parameters["rope_type"]
        if rope_type == "default":
            inv_freq = 1.0 / (params["rope_theta"] ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
            factor = 1.0
        else:
            sl = torch.tensor(seq_len, dtype=torch.int64) if seq_len is not None else None
            inv_freq, factor = ROPE_INIT_FUNCTIONS[rope_type](cfg, None, seq_len=sl)
        softmax_scale = yarn_apply_mscale(cfg.rope_parameters, 1.0)
        cases.append({
            "name": name,
            "head_dim": head_dim,
            "max_position_embeddings": max_pos,
            "rope_parameters": params,
            "seq_len": seq_len,
            "inv_freq": [f32(v) for v in inv_freq.tolist()],
            "attention_factor": float(factor),
            "deepseek_softmax_scale_multiplier": float(softmax_scale),
        })
    out = {
        "schema": "moescope-rope/1",
        "generator": {"transformers": transformers.__version__, "torch": torch.__version__},
        "cases": cases,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
