"""Small routing records written the way each serving engine writes them, for the importer tests
(tests/unit/trace-import.test.ts). Deterministic (seeded numpy); run from the repository root:

    python3 tools/make_trace_fixtures.py

Writes tests/fixtures/traces/*. Models: tests/fixtures/qwen3_moe (2 MoE layers, 16 experts, top-4) and
tests/fixtures/qwen2_moe (3 layers, layer 1 dense, 8 experts, top-3). Every file states the engine version whose
documented format it follows; the values are random ids, not a real model's routing.
"""
import base64
import io
import json
import os
import subprocess
import sys

import numpy as np
import torch

OUT = "tests/fixtures/traces"
rng = np.random.default_rng(13)


def routes(tokens, layers, k, experts):
    """[tokens, layers, k] distinct expert ids per (token, layer)."""
    return np.stack([np.stack([rng.choice(experts, k, replace=False) for _ in range(layers)]) for _ in range(tokens)])


def npy_b64(a):
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def write_json(name, doc):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


os.makedirs(OUT, exist_ok=True)

# vLLM 0.21, offline LLM.generate: RequestOutput.prompt_routed_experts, int16 [tokens, moe_layers, k]; the first
# 3 prompt tokens were served from the prefix cache (-1). Saved with np.save.
offline = routes(9, 2, 4, 16).astype(np.int16)
offline[:3] = -1
np.save(os.path.join(OUT, "vllm-0.21-offline.npy"), offline, allow_pickle=False)

# vLLM 0.21, /v1/completions with n=2, return_token_ids=true: prompt_routed_experts at the response level, each
# choice's routed_experts for its generated tokens but the last (never forwarded), as nested JSON lists.
prompt_ids = [5, 17, 33, 2, 41, 9]
prompt = routes(6, 2, 4, 16)
prompt[:2] = -1  # prefix-cached
gen = [[7, 8, 9, 10], [11, 12, 13]]
write_json("vllm-0.21-completions.json", {
    "id": "cmpl-8f2c", "object": "text_completion", "created": 1780000000, "model": "qwen3-moe-tiny",
    "choices": [
        {"index": j, "text": "", "logprobs": None, "finish_reason": "length", "stop_reason": None,
         "prompt_logprobs": None, "token_ids": g, "routed_experts": routes(len(g) - 1, 2, 4, 16).tolist()}
        for j, g in enumerate(gen)
    ],
    "service_tier": None, "system_fingerprint": None,
    "usage": {"prompt_tokens": 6, "total_tokens": 13, "completion_tokens": 7, "prompt_tokens_details": None},
    "prompt_logprobs": None, "prompt_token_ids": prompt_ids, "prompt_routed_experts": prompt.tolist(),
    "kv_transfer_params": None,
})

# vLLM 0.22 generate endpoint: routed_experts as base64 of np.save bytes, int16 [prompt + generated - 1, layers, k].
p2, g2 = [3, 4, 5, 6, 7], [20, 21, 22]
write_json("vllm-0.22-generate.json", {
    "request_id": "gen-1", "prompt_token_ids": p2,
    "choices": [{"index": 0, "token_ids": g2, "finish_reason": "length",
                 "routed_experts": npy_b64(routes(len(p2) + len(g2) - 1, 2, 4, 16).astype(np.int16))}],
})

# SGLang 0.5, --enable-return-routed-experts, two /generate requests: meta_info.routed_experts is base64 of int32,
# flattened [prompt + completion - 1, num_hidden_layers, k] (qwen2_moe: 3 layers, the dense one included).
def sglang_response(rid, prompt_tokens, output_ids):
    n = prompt_tokens + len(output_ids) - 1
    flat = routes(n, 3, 3, 8).astype(np.int32).reshape(-1)
    return {"text": "", "output_ids": output_ids,
            "meta_info": {"id": rid, "finish_reason": {"type": "length", "length": len(output_ids)},
                          "prompt_tokens": prompt_tokens, "completion_tokens": len(output_ids), "cached_tokens": 0,
                          "routed_experts": base64.b64encode(flat.tobytes()).decode("ascii")}}

write_json("sglang-0.5-generate.json", [sglang_response("a1", 5, [30, 31, 32]), sglang_response("b2", 4, [40, 41])])

# SGLang 0.5 expert-distribution recorder, per_token mode, as torch.save writes its dump: records with
# topk_ids_of_layer [layers, tokens, k] (int32; -1 pads), one extend pass (forward_mode 1) and one decode pass (2).
def record(pass_id, mode, ids):
    topk = torch.from_numpy(routes(len(ids), 2, 4, 16).transpose(1, 0, 2).astype(np.int32).copy())
    return {"forward_pass_id": pass_id, "rank": 0, "forward_mode": mode, "input_ids": torch.tensor(ids),
            "topk_ids_of_layer": topk, "misc_objects": []}

dump = {"records": [record(0, 1, [1, 2, 3, 4]), record(1, 2, [5])],
        "last_physical_to_logical_map": torch.arange(16).repeat(2, 1)}
pt = os.path.join(OUT, "sglang-0.5-per-token.pt")
torch.save(dump, pt)
subprocess.run([sys.executable, "tools/convert_sglang_dump.py", pt, "--out", os.path.join(OUT, "sglang-0.5-per-token.json")], check=True)
os.remove(pt)

# stat mode: logical_count [steps, layers, experts] (counts only).
stat = {"logical_count": torch.from_numpy(rng.integers(0, 9, size=(3, 2, 16)).astype(np.int64))}
pt = os.path.join(OUT, "sglang-0.5-stat.pt")
torch.save(stat, pt)
subprocess.run([sys.executable, "tools/convert_sglang_dump.py", pt, "--out", os.path.join(OUT, "sglang-0.5-stat.json")], check=True)
os.remove(pt)

# Megatron-core 0.16 RouterTracer, inference mode, two data-parallel ranks, two steps, layers 0 and 1 of qwen3_moe.
for rank in range(2):
    with open(os.path.join(OUT, f"megatron-0.16-router_trace_rank{rank}.jsonl"), "w") as f:
        for step, tokens in enumerate([3 + rank, 1]):
            for layer in range(2):
                idx = routes(tokens, 1, 4, 16)[:, 0, :]
                f.write(json.dumps({"step": step, "stage": "pre_dispatch", "block": "decoder", "layer": layer,
                                    "rank": rank, "num_tokens": tokens, "topk": 4, "top_indices": idx.tolist()}) + "\n")
            # An MTP record shares layer numbers with the decoder and must be skipped.
            f.write(json.dumps({"step": step, "stage": "pre_dispatch", "block": "mtp", "mtp_idx": 0, "layer": 0,
                                "rank": rank, "num_tokens": tokens, "topk": 4,
                                "top_indices": routes(tokens, 1, 4, 16)[:, 0, :].tolist()}) + "\n")
print("wrote", sorted(os.listdir(OUT)))
