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
  mxfp4-hf.blocks / mxfp4-hf.scales / mxfp4-hf.f32: Hugging Face gpt-oss's MXFP4 layout (`*_blocks` [E, N, G, 16],
  `*_scales` [E, N, G], two codes per byte, element 2j in the low nibble) of random bytes, and transformers'
  `convert_moe_packed_tensors` (float32) of them, transposed back to [E, N, K] rows.

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
  gguf-gpt_oss: architecture "gpt-oss" as convert_hf_to_gguf.py GptOssModel writes it: transformers' interleaved,
  transposed gate_up_proj [E, H, 2I] de-interleaved into ffn_gate_exps / ffn_up_exps [E, I, H] (MXFP4, quantised by
  gguf-py), down_proj transposed to ffn_down_exps [E, H, I] (BF16: rows of 24), their biases split likewise (F32),
  attn_sinks, q/k/v (Q8_0) and o (F16: rows of 80) with biases, post_attention_norm, router with bias, YaRN keys.

  gguf-deepseek_v2: architecture "deepseek2" as convert_hf_to_gguf.py DeepseekV2Model writes it (MLA in the MQA
  form: head_count_kv 1, key/value_length of the latent, key/value_length_mla per head; YaRN log multiplier
  0.1·mscale_all_dim; softmax gating with expert groups; leading dense layer; shared experts). Layer 0 keeps
  attn_kv_b whole, layers 1–2 split it into attn_k_b (per head transposed) and attn_v_b as newer converters do, so
  both load paths run; kv_b stays F32 (the model's dtype: the MLA absorption reads it unpacked).

split → tests/fixtures/gguf-olmoe-split/
  model-0000{1,2,3}-of-00003.gguf   gguf-olmoe's model.gguf rewritten by gguf-py's GGUFWriter with split_max_tensors
                      (llama.cpp's gguf-split layout: every key in the first file, split.no / split.count /
                      split.tensors.count in each, tensors in order across the files); its golden is gguf-olmoe's.

(Random-weight GGUF files at published sizes, for benchmarks: src/cli/random-gguf.ts, which needs no Python.)

Usage: python3 tools/make_gguf_fixtures.py blocks|models|split [--out DIR] [--only NAME]
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


def make_mxfp4_hf(out: str, rng: np.random.Generator) -> dict:
    import torch
    import transformers
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors

    E, N, G = 2, 3, 5
    blocks = rng.integers(0, 256, size=(E, N, G, 16), dtype=np.uint8)
    scales = rng.integers(110, 140, size=(E, N, G), dtype=np.uint8)
    w = convert_moe_packed_tensors(torch.from_numpy(blocks), torch.from_numpy(scales), dtype=torch.float32)
    values = w.transpose(1, 2).contiguous().numpy().astype("<f4")  # [E, K, N] as gpt-oss uses it → [E, N, K]
    blocks.tofile(os.path.join(out, "mxfp4-hf.blocks"))
    scales.tofile(os.path.join(out, "mxfp4-hf.scales"))
    values.tofile(os.path.join(out, "mxfp4-hf.f32"))
    return {"experts": E, "rows": N, "groups": G, "transformers": transformers.__version__,
            "made_by": "random bytes, scales 110..139; transformers convert_moe_packed_tensors(dtype=float32)"}


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
    index["mxfp4_hf"] = make_mxfp4_hf(out, rng)
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")


GGUF_MODELS = {
    # fixture: (llama.cpp architecture, format of expert gate/up, format of expert down, token embedding format)
    "mixtral": ("llama", T.Q8_0, T.F32, T.F16),
    "qwen3_moe": ("qwen3moe", T.MXFP4, T.F16, T.Q8_0),
    "olmoe": ("olmoe", T.Q8_0, T.BF16, T.Q8_0),
}


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py LlamaModel.permute: rotate-half rows → interleaved pairs, per head."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def quantised(w: np.ndarray, qtype: T) -> tuple[np.ndarray, np.ndarray]:
    """(bytes or array as written to the GGUF, the values gguf-py dequantises them to) for a float32 tensor."""
    if qtype == T.F32:
        return w, w
    if qtype == T.F16:
        h = w.astype(np.float16)
        return h, h.astype(np.float32)
    raw = quants.quantize(w, qtype)
    return raw, quants.dequantize(raw, qtype).reshape(w.shape).astype(np.float32)


def tokenizer_metadata(writer, folder: str, arch: str) -> None:
    with open(os.path.join(folder, "tokenizer.json")) as f:
        tj = json.load(f)
    with open(os.path.join(folder, "tokenizer_config.json")) as f:
        tc = json.load(f)
    model = tj["model"]
    vocab = dict(model["vocab"])
    added = {t["content"]: t for t in tj["added_tokens"]}
    for content, t in added.items():
        vocab[content] = t["id"]
    tokens = [None] * (max(vocab.values()) + 1)
    for tok, i in vocab.items():
        tokens[i] = tok
    # token types: 1 normal, 3 control (special added tokens), 6 byte (<0xNN> of byte fallback)
    types = [3 if tok in added and added[tok]["special"] else 6 if model.get("byte_fallback") and len(tok) == 6
             and tok.startswith("<0x") else 1 for tok in tokens]
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if model.get("byte_fallback"):
        # SentencePiece-style vocabulary: merges are implied by scores (a merged piece's rank is its score).
        writer.add_tokenizer_model("llama")
        rank = {f"{a}{b}": r for r, (a, b) in enumerate(m.split(" ") if isinstance(m, str) else m for m in model["merges"])}
        writer.add_token_scores([-float(rank[t]) if t in rank else -1e9 for t in tokens])
    else:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("default")
        writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in model["merges"]])
    for key, adder in (("bos_token", writer.add_bos_token_id), ("eos_token", writer.add_eos_token_id),
                       ("pad_token", writer.add_pad_token_id)):
        if tc.get(key):
            adder(vocab[tc[key]])
    writer.add_add_bos_token(bool(tc.get("bos_token")) and model.get("byte_fallback", False))


def quant_tensor(w, name: str, x: np.ndarray, qtype: T) -> np.ndarray:
    """Adds `x` to the GGUF writer in `qtype`; returns gguf-py's dequantisation (what transformers will run)."""
    raw, deq = quantised(np.ascontiguousarray(x, dtype=np.float32), qtype)
    w.add_tensor(name, raw, raw_dtype=qtype if qtype not in (T.F32, T.F16) else None)
    return deq


def finish_fixture(w, model, sd: dict, new_sd: dict, src: str, out: str, name: str, arch: str, num_experts: int,
                   formats: dict, generator: dict, decode_steps: int | None = None) -> None:
    """Writes the GGUF, loads the dequantised weights into the transformers model and saves its golden run."""
    import sys

    import torch
    import transformers
    from transformers import PreTrainedTokenizerFast

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_fixtures import SCHEMA, golden_run

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    missing = set(sd) - set(new_sd)
    assert not missing, missing
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in new_sd.items()})
    tok = PreTrainedTokenizerFast.from_pretrained(src)
    cfg = model.config
    run = golden_run(model, tok, cfg.num_experts_per_tok, **({} if decode_steps is None else {"decode_steps": decode_steps}))
    run["prefill"].pop("moe_io", None)
    golden = {
        "schema": SCHEMA, "family": cfg.model_type, "gguf_architecture": arch, "weights_dtype": "float32",
        "compute_dtype": "float32", "num_layers": cfg.num_hidden_layers, "num_experts": num_experts,
        "top_k": cfg.num_experts_per_tok, "vocab_size": cfg.vocab_size, "formats": formats,
        "generator": {"script": generator["script"], "from": src, "gguf": version("gguf"),
                      "transformers": transformers.__version__, "torch": torch.__version__, "device": "cpu",
                      "attn_implementation": "eager", **{k: v for k, v in generator.items() if k != "script"}},
        **run,
    }
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(name, {f: os.path.getsize(os.path.join(out, f)) for f in sorted(os.listdir(out))}, run["generated_text"])


def make_gpt_oss(out_root: str) -> None:
    from gguf import GGUFWriter, RopeScalingType
    from transformers import AutoModelForCausalLM

    src = os.path.join("tests", "fixtures", "gpt_oss")
    out = os.path.join(out_root, "gguf-gpt_oss")
    os.makedirs(out, exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(src, attn_implementation="eager")
    cfg = model.config
    rope = cfg.rope_parameters
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    new_sd = {}
    w = GGUFWriter(os.path.join(out, "model.gguf"), "gpt-oss")
    w.add_name("moescope gpt_oss fixture")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_rope_freq_base(rope["rope_theta"])
    w.add_rope_scaling_type(RopeScalingType.YARN)
    w.add_rope_scaling_factor(rope["factor"])
    w.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
    w.add_rope_scaling_yarn_beta_fast(rope["beta_fast"])
    w.add_rope_scaling_yarn_beta_slow(rope["beta_slow"])
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_expert_count(cfg.num_local_experts)
    w.add_expert_used_count(cfg.num_experts_per_tok)
    w.add_expert_feed_forward_length(cfg.intermediate_size)
    w.add_sliding_window(cfg.sliding_window)
    w.add_vocab_size(cfg.vocab_size)
    tokenizer_metadata(w, src, "gpt-oss")
    assert cfg.layer_types == ["sliding_attention" if l % 2 == 0 else "full_attention" for l in range(cfg.num_hidden_layers)]

    def put(gguf_name: str, hf_name: str, qtype: T):
        new_sd[hf_name] = quant_tensor(w, gguf_name, sd[hf_name], qtype)

    put("token_embd.weight", "model.embed_tokens.weight", T.Q8_0)
    for l in range(cfg.num_hidden_layers):
        p, b = f"model.layers.{l}.", f"blk.{l}."
        put(b + "attn_norm.weight", p + "input_layernorm.weight", T.F32)
        put(b + "post_attention_norm.weight", p + "post_attention_layernorm.weight", T.F32)
        for hf, gg, qtype in (("q_proj", "attn_q", T.Q8_0), ("k_proj", "attn_k", T.Q8_0), ("v_proj", "attn_v", T.Q8_0),
                              ("o_proj", "attn_output", T.F16)):
            put(b + gg + ".weight", p + f"self_attn.{hf}.weight", qtype)
            put(b + gg + ".bias", p + f"self_attn.{hf}.bias", T.F32)
        put(b + "attn_sinks.weight", p + "self_attn.sinks", T.F32)
        put(b + "ffn_gate_inp.weight", p + "mlp.router.weight", T.F32)
        put(b + "ffn_gate_inp.bias", p + "mlp.router.bias", T.F32)
        gate_up = sd[p + "mlp.experts.gate_up_proj"]  # [E, H, 2I], gate in even columns, up in odd
        gate = quant_tensor(w, b + "ffn_gate_exps.weight", gate_up[:, :, 0::2].transpose(0, 2, 1), T.MXFP4)
        up = quant_tensor(w, b + "ffn_up_exps.weight", gate_up[:, :, 1::2].transpose(0, 2, 1), T.MXFP4)
        new = np.empty_like(gate_up)
        new[:, :, 0::2] = gate.transpose(0, 2, 1)
        new[:, :, 1::2] = up.transpose(0, 2, 1)
        new_sd[p + "mlp.experts.gate_up_proj"] = new
        bias = sd[p + "mlp.experts.gate_up_proj_bias"]  # [E, 2I] interleaved the same way
        new_bias = np.empty_like(bias)
        new_bias[:, 0::2] = quant_tensor(w, b + "ffn_gate_exps.bias", bias[:, 0::2], T.F32)
        new_bias[:, 1::2] = quant_tensor(w, b + "ffn_up_exps.bias", bias[:, 1::2], T.F32)
        new_sd[p + "mlp.experts.gate_up_proj_bias"] = new_bias
        down = sd[p + "mlp.experts.down_proj"]  # [E, I, H]
        new_sd[p + "mlp.experts.down_proj"] = quant_tensor(w, b + "ffn_down_exps.weight", down.transpose(0, 2, 1), T.BF16).transpose(0, 2, 1)
        put(b + "ffn_down_exps.bias", p + "mlp.experts.down_proj_bias", T.F32)
    put("output_norm.weight", "model.norm.weight", T.F32)
    put("output.weight", "lm_head.weight", T.Q8_0)
    # The same prompt and decode length as tests/fixtures/gpt_oss (windows of 6 passed by both).
    finish_fixture(w, model, sd, new_sd, src, out, "gpt_oss", "gpt-oss", cfg.num_local_experts,
                   {"token_embd": "Q8_0", "attn_qkv": "Q8_0", "attn_output": "F16", "ffn_gate_up_exps": "MXFP4",
                    "ffn_down_exps": "BF16", "output": "Q8_0", "norms_biases_sinks_router": "F32"},
                   {"script": "tools/make_gguf_fixtures.py models --only gpt_oss"}, decode_steps=10)


def make_deepseek_v2(out_root: str) -> None:
    from gguf import ExpertGatingFuncType, GGUFWriter, RopeScalingType
    from transformers import AutoModelForCausalLM

    src = os.path.join("tests", "fixtures", "deepseek_v2")
    out = os.path.join(out_root, "gguf-deepseek_v2")
    os.makedirs(out, exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(src, attn_implementation="eager", experts_implementation="eager")
    cfg = model.config
    rope = cfg.rope_parameters
    nh, R, nope, P, V = cfg.num_attention_heads, cfg.kv_lora_rank, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    new_sd = {}
    w = GGUFWriter(os.path.join(out, "model.gguf"), "deepseek2")
    w.add_name("moescope deepseek_v2 fixture")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(nh)
    w.add_head_count_kv(1)
    w.add_rope_freq_base(rope["rope_theta"])
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_expert_count(cfg.n_routed_experts)
    w.add_expert_used_count(cfg.num_experts_per_tok)
    w.add_leading_dense_block_count(cfg.first_k_dense_replace)
    w.add_vocab_size(cfg.vocab_size)
    w.add_kv_lora_rank(R)
    w.add_key_length(R + P)
    w.add_value_length(R)
    w.add_key_length_mla(nope + P)
    w.add_value_length_mla(V)
    w.add_expert_feed_forward_length(cfg.moe_intermediate_size)
    w.add_expert_shared_count(cfg.n_shared_experts)
    w.add_expert_weights_scale(cfg.routed_scaling_factor)
    w.add_expert_gating_func(ExpertGatingFuncType.SOFTMAX)
    w.add_expert_group_count(cfg.n_group)
    w.add_expert_group_used_count(cfg.topk_group)
    w.add_rope_dimension_count(P)
    w.add_rope_scaling_type(RopeScalingType.YARN)
    w.add_rope_scaling_factor(rope["factor"])
    w.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
    w.add_rope_scaling_yarn_beta_fast(rope["beta_fast"])
    w.add_rope_scaling_yarn_beta_slow(rope["beta_slow"])
    w.add_rope_scaling_yarn_log_mul(0.1 * rope["mscale_all_dim"])
    assert rope["mscale"] == rope["mscale_all_dim"] and cfg.topk_method == "group_limited_greedy" and not cfg.norm_topk_prob
    tokenizer_metadata(w, src, "deepseek2")

    def put(gguf_name: str, hf_name: str, qtype: T):
        new_sd[hf_name] = quant_tensor(w, gguf_name, sd[hf_name], qtype)

    put("token_embd.weight", "model.embed_tokens.weight", T.Q8_0)
    for l in range(cfg.num_hidden_layers):
        p, b = f"model.layers.{l}.", f"blk.{l}."
        a = p + "self_attn."
        put(b + "attn_norm.weight", p + "input_layernorm.weight", T.F32)
        put(b + "ffn_norm.weight", p + "post_attention_layernorm.weight", T.F32)
        put(b + "attn_q.weight", a + "q_proj.weight", T.Q8_0)
        put(b + "attn_kv_a_mqa.weight", a + "kv_a_proj_with_mqa.weight", T.Q8_0)
        put(b + "attn_kv_a_norm.weight", a + "kv_a_layernorm.weight", T.F32)
        kv_b = sd[a + "kv_b_proj.weight"]  # [nH·(nope + V), R]
        if l == 0:
            put(b + "attn_kv_b.weight", a + "kv_b_proj.weight", T.F32)
        else:  # convert_hf_to_gguf.py: view [nH, nope + V, R], split, k_b transposed to [nH, R, nope]
            per_head = kv_b.reshape(nh, nope + V, R)
            quant_tensor(w, b + "attn_k_b.weight", per_head[:, :nope].transpose(0, 2, 1), T.F32)
            quant_tensor(w, b + "attn_v_b.weight", per_head[:, nope:], T.F32)
            new_sd[a + "kv_b_proj.weight"] = kv_b
        put(b + "attn_output.weight", a + "o_proj.weight", T.F16)
        if l < cfg.first_k_dense_replace:
            put(b + "ffn_gate.weight", p + "mlp.gate_proj.weight", T.Q8_0)
            put(b + "ffn_up.weight", p + "mlp.up_proj.weight", T.Q8_0)
            put(b + "ffn_down.weight", p + "mlp.down_proj.weight", T.F16)
            continue
        put(b + "ffn_gate_inp.weight", p + "mlp.gate.weight", T.F32)
        gate_up = sd[p + "mlp.experts.gate_up_proj"]  # [E, 2I, H], gate rows first
        I = gate_up.shape[1] // 2
        gate = quant_tensor(w, b + "ffn_gate_exps.weight", gate_up[:, :I], T.Q8_0)
        up = quant_tensor(w, b + "ffn_up_exps.weight", gate_up[:, I:], T.Q8_0)
        new_sd[p + "mlp.experts.gate_up_proj"] = np.concatenate([gate, up], axis=1)
        put(b + "ffn_down_exps.weight", p + "mlp.experts.down_proj", T.BF16)
        put(b + "ffn_gate_shexp.weight", p + "mlp.shared_experts.gate_proj.weight", T.Q8_0)
        put(b + "ffn_up_shexp.weight", p + "mlp.shared_experts.up_proj.weight", T.Q8_0)
        put(b + "ffn_down_shexp.weight", p + "mlp.shared_experts.down_proj.weight", T.F16)
    put("output_norm.weight", "model.norm.weight", T.F32)
    put("output.weight", "lm_head.weight", T.Q8_0)
    finish_fixture(w, model, sd, new_sd, src, out, "deepseek_v2", "deepseek2", cfg.n_routed_experts,
                   {"token_embd": "Q8_0", "attn_q_kv_a": "Q8_0", "attn_kv_b": "F32 (layer 0 whole, 1-2 as k_b/v_b)",
                    "attn_output": "F16", "ffn_gate_up_exps_shexp_dense": "Q8_0", "ffn_down_exps": "BF16",
                    "ffn_down_shexp_dense": "F16", "output": "Q8_0", "norms_router": "F32"},
                   {"script": "tools/make_gguf_fixtures.py models --only deepseek_v2", "experts_implementation": "eager"},
                   decode_steps=8)  # as tests/fixtures/deepseek_v2


def make_models(out_root: str, only: str | None = None) -> None:
    from gguf import GGUFWriter
    from transformers import AutoModelForCausalLM

    if only in (None, "gpt_oss"):
        make_gpt_oss(out_root)
    if only in (None, "deepseek_v2"):
        make_deepseek_v2(out_root)
    for name, (arch, gate_up_fmt, down_fmt, embed_fmt) in GGUF_MODELS.items():
        if only not in (None, name):
            continue
        src = os.path.join("tests", "fixtures", name)
        out = os.path.join(out_root, f"gguf-{name}")
        os.makedirs(out, exist_ok=True)
        model = AutoModelForCausalLM.from_pretrained(src, attn_implementation="eager", experts_implementation="eager")
        cfg = model.config
        sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
        new_sd = {}
        w = GGUFWriter(os.path.join(out, "model.gguf"), arch)
        w.add_name(f"moescope {name} fixture")
        nh, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // nh
        w.add_context_length(cfg.max_position_embeddings)
        w.add_embedding_length(cfg.hidden_size)
        w.add_block_count(cfg.num_hidden_layers)
        w.add_feed_forward_length(cfg.intermediate_size)
        w.add_head_count(nh)
        w.add_head_count_kv(nkv)
        w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
        w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
        num_experts = getattr(cfg, "num_local_experts", None) or cfg.num_experts
        w.add_expert_count(num_experts)
        w.add_expert_used_count(cfg.num_experts_per_tok)
        if arch != "llama":
            w.add_expert_feed_forward_length(getattr(cfg, "moe_intermediate_size", None) or cfg.intermediate_size)
        if arch == "qwen3moe":
            w.add_key_length(head_dim)
            w.add_value_length(head_dim)
        if getattr(cfg, "sliding_window", None):
            w.add_sliding_window(cfg.sliding_window)
        w.add_vocab_size(cfg.vocab_size)
        tokenizer_metadata(w, src, arch)

        def put(gguf_name: str, hf_name: str, qtype: T, transform=None):
            x = sd[hf_name]
            x = transform(x) if transform else x
            raw, deq = quantised(np.ascontiguousarray(x), qtype)
            w.add_tensor(gguf_name, raw, raw_dtype=qtype if qtype not in (T.F32, T.F16) else None)
            if transform is None:
                new_sd[hf_name] = deq
            return deq

        put("token_embd.weight", "model.embed_tokens.weight", embed_fmt)
        for l in range(cfg.num_hidden_layers):
            p, b = f"model.layers.{l}.", f"blk.{l}."
            put(b + "attn_norm.weight", p + "input_layernorm.weight", T.F32)
            put(b + "ffn_norm.weight", p + "post_attention_layernorm.weight", T.F32)
            for hf, gg in (("q_proj", "attn_q"), ("k_proj", "attn_k"), ("v_proj", "attn_v"), ("o_proj", "attn_output")):
                key = p + f"self_attn.{hf}.weight"
                if arch == "llama" and hf in ("q_proj", "k_proj"):
                    heads = nh if hf == "q_proj" else nkv
                    deq = put(b + gg + ".weight", key, T.Q8_0, lambda x, h=heads: llama_permute(x, h))
                    # Undo the permutation on the dequantised values: what transformers runs.
                    inv = deq.reshape(heads, deq.shape[0] // heads // 2, 2, -1).swapaxes(1, 2).reshape(deq.shape)
                    new_sd[key] = inv
                else:
                    put(b + gg + ".weight", key, T.Q8_0)
            for hf, gg in (("q_norm", "attn_q_norm"), ("k_norm", "attn_k_norm")):
                if p + f"self_attn.{hf}.weight" in sd:
                    put(b + gg + ".weight", p + f"self_attn.{hf}.weight", T.F32)
            put(b + "ffn_gate_inp.weight", p + "mlp.gate.weight", T.F32)
            gate_up = sd[p + "mlp.experts.gate_up_proj"]  # [E, 2I, H], gate rows first
            I = gate_up.shape[1] // 2
            _, gate = quantised(np.ascontiguousarray(gate_up[:, :I]), gate_up_fmt)
            _, up = quantised(np.ascontiguousarray(gate_up[:, I:]), gate_up_fmt)
            for gg, part in (("ffn_gate_exps", gate_up[:, :I]), ("ffn_up_exps", gate_up[:, I:])):
                raw, _ = quantised(np.ascontiguousarray(part), gate_up_fmt)
                w.add_tensor(b + gg + ".weight", raw, raw_dtype=gate_up_fmt if gate_up_fmt not in (T.F32, T.F16) else None)
            new_sd[p + "mlp.experts.gate_up_proj"] = np.concatenate([gate, up], axis=1)
            put(b + "ffn_down_exps.weight", p + "mlp.experts.down_proj", down_fmt)
        put("output_norm.weight", "model.norm.weight", T.F32)
        put("output.weight", "lm_head.weight", T.Q8_0)
        finish_fixture(w, model, sd, new_sd, src, out, name, arch, num_experts,
                       {"token_embd": embed_fmt.name, "attention": "Q8_0", "ffn_gate_up_exps": gate_up_fmt.name,
                        "ffn_down_exps": down_fmt.name, "output": "Q8_0", "norms_and_router": "F32"},
                       {"script": "tools/make_gguf_fixtures.py models", "experts_implementation": "eager"})


def make_split(out: str, parts: int = 3) -> None:
    from gguf import GGUFReader, GGUFValueType, GGUFWriter, Keys

    reader = GGUFReader(os.path.join("tests", "fixtures", "gguf-olmoe", "model.gguf"))
    os.makedirs(out, exist_ok=True)
    arch = reader.fields[Keys.General.ARCHITECTURE].contents()
    per_file = -(-len(reader.tensors) // parts)
    w = GGUFWriter(os.path.join(out, "model.gguf"), arch, split_max_tensors=per_file)
    for field in reader.fields.values():
        if field.name == Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        vtype = field.types[0]
        w.add_key_value(field.name, field.contents(), vtype, sub_type=field.types[-1] if vtype == GGUFValueType.ARRAY else None)
    for t in reader.tensors:
        w.add_tensor(t.name, t.data, raw_dtype=t.tensor_type if t.tensor_type not in (T.F32, T.F16) else None)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print({f: os.path.getsize(os.path.join(out, f)) for f in sorted(os.listdir(out))})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["blocks", "models", "split"])
    p.add_argument("--out", default=None)
    p.add_argument("--only", default=None, help="models: just this fixture (gpt_oss, deepseek_v2 or a GGUF_MODELS name)")
    a = p.parse_args()
    if a.what == "blocks":
        make_blocks(a.out or "tests/fixtures/gguf-blocks")
    elif a.what == "split":
        make_split(a.out or "tests/fixtures/gguf-olmoe-split")
    else:
        make_models(a.out or "tests/fixtures", a.only)


if __name__ == "__main__":
    main()
