#!/usr/bin/env python3
"""Golden fixtures for the engine's whole-model tests, computed by Hugging Face transformers.

For every supported family this builds a tiny decoder from a config (random, seeded weights; nothing is downloaded),
trains a small tokenizer with the `tokenizers` library on the paragraphs below, runs a fixed prompt through
transformers (prefill, then greedy decode steps with the KV cache) and records the logits and every MoE layer's
routing exactly as transformers computes it (forward hooks on the router modules).

Output, one folder per fixture under tests/fixtures/<name>/:
  config.json, model.safetensors      as `save_pretrained` writes them (transformers' own key names and layout)
  tokenizer.json, tokenizer_config.json
  golden.json                         prompt, ids, logits, routing; schema in tests/fixtures/README.md

Everything is computed on the CPU in float32 (bf16 fixture: golden.json in bf16 as saved, golden.f32.json from the
checkpoint loaded in float32), eager attention, eager experts,
TF32 off: the numbers are deterministic and the same on any machine with the same library versions.

Usage: python3 tools/make_fixtures.py [--out tests/fixtures] [--only mixtral,olmoe]
Needs: torch, transformers (5.x, written against 5.17), tokenizers, safetensors, numpy.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import zlib

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    DeepseekV2Config,
    DeepseekV3Config,
    GraniteMoeConfig,
    MixtralConfig,
    OlmoeConfig,
    PreTrainedTokenizerFast,
    Qwen2MoeConfig,
    Qwen3MoeConfig,
)

SCHEMA = "moescope-golden/1"
DECODE_STEPS = 4

# The prompt every fixture runs: prose, code, digits, and characters outside a small tokenizer's alphabet (é, the
# emoji) so byte-level and byte-fallback decoding both get exercised.
PROMPT = 'The expert said "café": route(x, k=2) 🙂'

# Tokenizer training text (written for this file). A few paragraphs of prose and code.
TRAINING_TEXT = """
The river ran low that autumn, and the mill stood quiet for the first time in twenty years. People from the village
walked down in the evenings to look at the stones on the riverbed, which nobody had seen since they were children.
Some of them said the water would come back with the rain; others were not so sure, and they spoke of selling the land.

A mixture of experts is a layer that holds many small feed-forward networks. For every token a router computes a
score for each expert, keeps the best few, and adds their outputs together, weighted by the normalised scores.
Only the chosen experts run, so the model can be large while each token costs little. The routing decides which
expert learns what: some take punctuation, some take names, some take the keywords of a programming language.

She opened the letter at the kitchen table. It was short, and it said that the house would be sold in the spring,
that the furniture could be kept or given away, and that the key should be left with the neighbours. She read it
twice, folded it, and put it back into the envelope before anyone else came down for breakfast.

function route(scores, k) {
  const order = scores.map((s, i) => [s, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  return order.slice(0, k).map(([, i]) => i);
}

def route(x, k=2):
    scores = softmax(x @ w_gate)
    top = scores.argsort()[::-1][:k]
    return top, scores[top] / scores[top].sum()

export class Expert {
  constructor(hidden, intermediate) { this.hidden = hidden; this.intermediate = intermediate; }
  forward(x) { return this.down(silu(this.gate(x)) * this.up(x)); }
}

In 1961 the committee met on the 3rd of May, at 10:30 in the morning, to discuss the report. The chairman noted
that the figures for the second quarter were 12 per cent higher than expected, and that the new road would be
finished before the winter. There were questions about the cost; the answers were given in writing a week later.
"""


# ----------------------------------------------------------------------------------------------------------------
# Tokenizers


def byte_level_tokenizer(vocab_size: int) -> Tokenizer:
    """GPT-2 style byte-level BPE (as used by Qwen, OLMoE, Granite): every byte is in the vocabulary."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TRAINING_TEXT.strip().split("\n\n"), trainer=trainer)
    return tok


BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]


def byte_fallback_tokenizer(vocab_size: int) -> Tokenizer:
    """SentencePiece-style BPE with byte fallback (as used by Mixtral/Llama): '▁' marks spaces, characters outside
    the learned alphabet become <0xXX> byte tokens, and the post-processor prepends <s>."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=["<unk>", "<s>", "</s>"] + BYTE_TOKENS,
        limit_alphabet=64,  # keeps rare characters (é, emoji) out of the alphabet so they fall back to bytes
        show_progress=False,
    )
    tok.train_from_iterator(TRAINING_TEXT.strip().split("\n\n"), trainer=trainer)
    # In Llama-style tokenizer.json files the byte tokens are ordinary vocabulary entries, not added tokens:
    # drop them from added_tokens (their ids stay the same).
    spec = json.loads(tok.to_str())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] not in BYTE_TOKENS]
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return tok


def save_tokenizer(tok: Tokenizer, out_dir: str, bos: str | None, eos: str, pad: str | None) -> None:
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad, unk_token=None)
    fast.save_pretrained(out_dir)
    for extra in ("special_tokens_map.json", "chat_template.jinja"):
        path = os.path.join(out_dir, extra)
        if os.path.exists(path):
            os.remove(path)


# ----------------------------------------------------------------------------------------------------------------
# Models

HIDDEN = 64
HEADS = 4
KV_HEADS = 2
MOE_INTERMEDIATE = 24  # deliberately not a multiple of common tile sizes


def family_specs(vocab_bl: int, vocab_bf: int) -> dict:
    """name -> (family, config, tokenizer kind, weights dtype, expert layout[, options]). Expert layout 'original' is
    what save_pretrained writes by default (the checkpoint's legacy names); 'fused' is transformers' in-memory 3D
    layout. Options: decode_steps (default DECODE_STEPS)."""
    common = dict(hidden_size=HIDDEN, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
                  max_position_embeddings=512, output_router_logits=False)
    mixtral = MixtralConfig(
        vocab_size=vocab_bf, intermediate_size=MOE_INTERMEDIATE, num_hidden_layers=2, num_local_experts=8,
        num_experts_per_tok=2, rms_norm_eps=1e-5, sliding_window=12,  # window shorter than prompt + decode
        rope_parameters={"rope_type": "default", "rope_theta": 1e6}, bos_token_id=1, eos_token_id=2, **common)
    qwen2 = Qwen2MoeConfig(
        vocab_size=vocab_bl + 13,  # embedding rows beyond the tokenizer's vocabulary, as real Qwen checkpoints have
        intermediate_size=40, moe_intermediate_size=MOE_INTERMEDIATE, shared_expert_intermediate_size=48,
        num_hidden_layers=3, mlp_only_layers=[1], decoder_sparse_step=1, num_experts=8, num_experts_per_tok=3,
        norm_topk_prob=False, qkv_bias=True, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, bos_token_id=None, eos_token_id=0, **common)
    qwen3 = Qwen3MoeConfig(
        vocab_size=vocab_bl, intermediate_size=40, moe_intermediate_size=MOE_INTERMEDIATE, num_hidden_layers=2,
        head_dim=32,  # q/k/v width 128 != hidden 64, as in real Qwen3-MoE
        num_experts=16, num_experts_per_tok=4, norm_topk_prob=True, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6}, bos_token_id=None, eos_token_id=0, **common)
    # Dynamic NTK RoPE past max_position_embeddings (16 < the 28-token prompt): transformers recomputes inv_freq for
    # the prefill's length and again at every decode step.
    qwen3_dynamic = Qwen3MoeConfig(**{**qwen3.to_dict(), "max_position_embeddings": 16,
                                      "rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e6, "factor": 2.0}})
    olmoe = OlmoeConfig(
        vocab_size=vocab_bl, intermediate_size=MOE_INTERMEDIATE, num_hidden_layers=2, num_experts=8,
        num_experts_per_tok=2, norm_topk_prob=False, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, bos_token_id=None, eos_token_id=0,
        pad_token_id=1, **common)
    granite = GraniteMoeConfig(
        vocab_size=vocab_bl, intermediate_size=MOE_INTERMEDIATE, num_hidden_layers=2, num_local_experts=8,
        num_experts_per_tok=2, embedding_multiplier=2.5, residual_multiplier=0.6, attention_multiplier=0.2,
        logits_scaling=1.7, tie_word_embeddings=True, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, bos_token_id=None, eos_token_id=0,
        pad_token_id=1, **common)
    # DeepSeek-V3: MLA with a q_lora_rank (q_a_proj, q_a_layernorm, q_b_proj), interleaved rope pairs, YaRN whose
    # mscale differs from mscale_all_dim (cos/sin scaled by their ratio, the softmax by mscale_all_dim's square).
    # golden.json also carries the MoE blocks' inputs and outputs, so the routing can be tested alone.
    deepseek = DeepseekV3Config(
        vocab_size=vocab_bl, hidden_size=HIDDEN, intermediate_size=40, moe_intermediate_size=MOE_INTERMEDIATE,
        num_hidden_layers=2, first_k_dense_replace=1, num_attention_heads=HEADS, num_key_value_heads=HEADS,
        n_routed_experts=16, n_group=4, topk_group=2, num_experts_per_tok=4, n_shared_experts=1,
        routed_scaling_factor=2.5, norm_topk_prob=True, q_lora_rank=32, kv_lora_rank=16, qk_rope_head_dim=8,
        qk_nope_head_dim=16, v_head_dim=16, max_position_embeddings=512, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 8.0, "original_max_position_embeddings": 64,
                         "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.8},
        bos_token_id=None, eos_token_id=0)
    # DeepSeek-V2 (V2-Lite's attention: no q_lora_rank, plain q_proj; YaRN with mscale = mscale_all_dim as V2-Lite
    # ships), softmax routing limited to the best groups by their best expert (group_limited_greedy), no
    # renormalisation, two shared experts, v_head_dim != qk_nope_head_dim, three layers (first dense).
    deepseek_v2 = DeepseekV2Config(
        vocab_size=vocab_bl, hidden_size=HIDDEN, intermediate_size=40, moe_intermediate_size=MOE_INTERMEDIATE,
        num_hidden_layers=3, first_k_dense_replace=1, num_attention_heads=HEADS, num_key_value_heads=HEADS,
        n_routed_experts=16, topk_method="group_limited_greedy", n_group=4, topk_group=2, num_experts_per_tok=3,
        n_shared_experts=2, routed_scaling_factor=1.5, q_lora_rank=None, kv_lora_rank=32, qk_rope_head_dim=8,
        qk_nope_head_dim=16, v_head_dim=12, max_position_embeddings=512, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 128,
                         "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
        bos_token_id=None, eos_token_id=0)
    return {
        "mixtral": ("mixtral", mixtral, "byte_fallback", torch.float32, "original"),
        "mixtral-fused": ("mixtral", mixtral, "byte_fallback", torch.float32, "fused"),
        "mixtral-bf16": ("mixtral", mixtral, "byte_fallback", torch.bfloat16, "original"),
        "qwen2_moe": ("qwen2_moe", qwen2, "byte_level", torch.float32, "original"),
        "qwen3_moe": ("qwen3_moe", qwen3, "byte_level", torch.float32, "original"),
        "qwen3_moe-dynamic": ("qwen3_moe", qwen3_dynamic, "byte_level", torch.float32, "original"),
        "olmoe": ("olmoe", olmoe, "byte_level", torch.float32, "original"),
        "granitemoe": ("granitemoe", granite, "byte_level", torch.float32, "original"),
        "deepseek_v3": ("deepseek_v3", deepseek, "byte_level", torch.float32, "original", {"decode_steps": 8}),
        "deepseek_v2": ("deepseek_v2", deepseek_v2, "byte_level", torch.float32, "original", {"decode_steps": 8}),
    }


def seed_for(family: str) -> int:
    return zlib.crc32(family.encode()) & 0x7FFFFFFF


@torch.no_grad()
def init_weights(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial random weights (transformers' default std 0.02 makes attention and experts nearly invisible in the
    logits, which would let a broken kernel pass): matrices ~ N(0, 1/fan_in), embeddings ~ N(0, 1), norm weights in
    [0.8, 1.2], biases ~ N(0, 0.1). Parameter order is the module order, so the result depends only on the seed."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        shape = p.shape
        if name.endswith("norm.weight") or "layernorm" in name:
            p.copy_(0.8 + 0.4 * torch.rand(shape, generator=g))
        elif name.endswith("bias"):
            p.copy_(0.1 * torch.randn(shape, generator=g))
        elif "embed_tokens" in name:
            p.copy_(torch.randn(shape, generator=g))
        else:
            p.copy_(torch.randn(shape, generator=g) / math.sqrt(shape[-1]))
    for name, b in model.named_buffers():
        if name.endswith("e_score_correction_bias"):
            b.copy_(0.05 * torch.randn(b.shape, generator=g))


# ----------------------------------------------------------------------------------------------------------------
# Capturing routing


ROUTER_CLASSES = {"MixtralTopKRouter", "Qwen2MoeTopKRouter", "Qwen3MoeTopKRouter", "OlmoeTopKRouter",
                  "GraniteMoeTopKRouter", "DeepseekV2TopkRouter", "DeepseekV3TopkRouter"}
MOE_BLOCK_CLASSES = {"MixtralSparseMoeBlock", "Qwen2MoeSparseMoeBlock", "Qwen3MoeSparseMoeBlock",
                     "OlmoeSparseMoeBlock", "GraniteMoeMoE", "DeepseekV2Moe", "DeepseekV3MoE"}


def layer_of(module_name: str) -> int:
    parts = module_name.split(".")
    return int(parts[parts.index("layers") + 1])


def selection_scores(router: torch.nn.Module, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The score each router ranks experts by, recomputed with transformers' own operations: softmax probabilities
    (Mixtral, Qwen, OLMoE), raw logits (Granite: top-k of logits, then softmax over the k), or DeepSeek-V3's
    sigmoid + correction bias with the experts of unselected groups at -inf, or DeepSeek-V2's softmax with the
    experts of unselected groups at 0 (group_limited_greedy). Also DeepSeek's group scores."""
    cls = type(router).__name__
    if cls == "GraniteMoeTopKRouter":
        return logits.float(), None
    if cls == "DeepseekV2TopkRouter" and router.topk_method == "group_limited_greedy":
        scores = logits.softmax(dim=-1, dtype=torch.float32)
        n_group, per_group = router.num_group, router.num_experts // router.num_group
        group_scores = scores.view(-1, n_group, per_group).max(dim=-1).values
        group_idx = torch.topk(group_scores, k=router.topk_group, dim=-1, sorted=False)[1]
        group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
        score_mask = group_mask.unsqueeze(-1).expand(-1, n_group, per_group).reshape(-1, router.num_experts)
        return scores.masked_fill(~score_mask.bool(), 0.0), group_scores
    if cls == "DeepseekV3TopkRouter":
        scores = logits.sigmoid() + router.e_score_correction_bias
        n_group, per_group = router.num_group, router.num_experts // router.num_group
        group_scores = scores.view(-1, n_group, per_group).topk(2, dim=-1)[0].sum(dim=-1)
        group_idx = torch.topk(group_scores, k=router.topk_group, dim=-1, sorted=False)[1]
        group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
        score_mask = group_mask.unsqueeze(-1).expand(-1, n_group, per_group).reshape(-1, router.num_experts)
        return scores.masked_fill(~score_mask.bool(), float("-inf")), group_scores
    return torch.softmax(logits.float(), dim=-1), None


def kth_gap(scores: torch.Tensor, k: int) -> tuple[list[float], list[float]]:
    """Per token: score[k-1] - score[k] of the descending scores (how close the k-th choice came to losing), and the
    smallest gap between neighbours among the first k+1 (how close the order inside the top-k came to changing)."""
    s = scores.sort(dim=-1, descending=True).values.double()
    gap = (s[:, k - 1] - s[:, k])
    diffs = s[:, :k] - s[:, 1:k + 1]
    min_gap = diffs.min(dim=-1).values
    to_list = lambda t: [finite(v) for v in t.tolist()]
    return to_list(gap), to_list(min_gap)


def finite(v: float) -> float | None:
    """JSON has no Infinity: a gap to a masked (-inf) expert is written as null, meaning 'no competitor'."""
    return None if not math.isfinite(v) else v


class RoutingRecorder:
    """Forward hooks on every router and MoE block. Each model call appends one record per MoE layer."""

    def __init__(self, model: torch.nn.Module, top_k: int):
        self.top_k = top_k
        self.calls: list[dict] = []
        self.blocks: list[dict] = []
        self.handles = []
        for name, module in model.named_modules():
            cls = type(module).__name__
            if cls in ROUTER_CLASSES:
                self.handles.append(module.register_forward_hook(self._router_hook(layer_of(name))))
            elif cls in MOE_BLOCK_CLASSES:
                self.handles.append(module.register_forward_hook(self._block_hook(layer_of(name))))

    def _router_hook(self, layer: int):
        def hook(module, _inputs, output):
            if type(module).__name__ == "GraniteMoeTopKRouter":
                ids, weights, logits = output
            else:
                logits, weights, ids = output
            scores, group_scores = selection_scores(module, logits)
            # Canonical order inside the top-k: descending selection score, ties to the lower expert id (DeepSeek's
            # topk is unsorted; for the others this is already transformers' order).
            chosen = scores.gather(1, ids)
            order = sorted_order(chosen, ids)
            ids = ids.gather(1, order)
            weights = weights.float().gather(1, order)
            gap, min_gap = kth_gap(scores, self.top_k)
            rec = {"layer": layer, "ids": ids.tolist(), "weights": f32_list(weights),
                   "router_logits": f32_list(logits.float()), "gap": gap, "min_gap": min_gap}
            if group_scores is not None:
                group_gap, _ = kth_gap(group_scores, module.topk_group)
                rec["group_scores"] = f32_list(group_scores)
                rec["group_gap"] = group_gap
            self.calls.append(rec)
        return hook

    def _block_hook(self, layer: int):
        def hook(_module, inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            self.blocks.append({"layer": layer, "input": f32_list(inputs[0].reshape(-1, inputs[0].shape[-1]).float()),
                                "output": f32_list(out.reshape(-1, out.shape[-1]).float())})
        return hook

    def take(self) -> tuple[list[dict], list[dict]]:
        calls, blocks = sorted(self.calls, key=lambda r: r["layer"]), sorted(self.blocks, key=lambda r: r["layer"])
        self.calls, self.blocks = [], []
        return calls, blocks


def sorted_order(chosen: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    rows = []
    for s_row, i_row in zip(chosen.tolist(), ids.tolist()):
        rows.append(sorted(range(len(i_row)), key=lambda j: (-s_row[j], i_row[j])))
    return torch.tensor(rows, dtype=torch.long)


def f32(v: float) -> float:
    """Round-trip-exact decimal for a float32 value, in at most 9 significant digits."""
    return float(f"{v:.9g}")


def f32_list(t: torch.Tensor):
    if t.dim() == 0:
        return f32(t.item())
    return [f32_list(x) for x in t] if t.dim() > 1 else [f32(v) for v in t.tolist()]


# ----------------------------------------------------------------------------------------------------------------
# Golden run


@torch.no_grad()
def golden_run(model, tok: PreTrainedTokenizerFast, top_k: int, prompt: str = PROMPT,
               logits_positions: list[int] | None = None, decode_steps: int = DECODE_STEPS) -> dict:
    """Prefill `prompt`, then `decode_steps` greedy steps. With `logits_positions`, the prefill logits are kept only
    at those positions (for models with a large vocabulary) and listed in `prefill.logits_positions`."""
    model.eval()
    recorder = RoutingRecorder(model, top_k)
    enc = tok(prompt, return_tensors="pt")
    input_ids = enc["input_ids"]
    out = model(input_ids=input_ids, use_cache=True)
    routing, blocks = recorder.take()
    logits = out.logits[0].float()
    next_id = int(logits[-1].argmax())
    prefill = {"logits": f32_list(logits), "next_id": next_id, "top2_logit_gap": top2_gap(logits[-1]),
               "routing": routing, "moe_io": blocks}
    if logits_positions is not None:
        positions = [p % logits.shape[0] for p in logits_positions]
        prefill = {"logits_positions": positions, "logits": f32_list(logits[positions]), **{
            k: v for k, v in prefill.items() if k != "logits"}}
    cache = out.past_key_values
    decode, generated, pos = [], [], input_ids.shape[1]
    token = next_id
    for step in range(decode_steps):
        generated.append(token)
        out = model(input_ids=torch.tensor([[token]]), past_key_values=cache, use_cache=True,
                    position_ids=torch.tensor([[pos]]))
        cache = out.past_key_values
        routing, _ = recorder.take()
        step_logits = out.logits[0, -1].float()
        nxt = int(step_logits.argmax())
        decode.append({"step": step, "input_id": token, "position": pos, "logits": f32_list(step_logits),
                       "next_id": nxt, "top2_logit_gap": top2_gap(step_logits), "routing": routing})
        token, pos = nxt, pos + 1
    generated.append(token)
    for h in recorder.handles:
        h.remove()
    ids = input_ids[0].tolist()
    return {
        "prompt": prompt,
        "input_ids": ids,
        "tokens": tok.convert_ids_to_tokens(ids),
        "token_texts": [tok.decode([i]) for i in ids],
        "prefill": prefill,
        "decode": decode,
        "generated_ids": generated,
        "generated_text": tok.decode(generated),
    }


def top2_gap(row: torch.Tensor) -> float:
    top = row.double().topk(2).values
    return float(top[0] - top[1])


def moe_layers(family: str, cfg) -> list[int]:
    n = cfg.num_hidden_layers
    if family in ("qwen2_moe", "qwen3_moe"):
        return [i for i in range(n) if i not in cfg.mlp_only_layers and (i + 1) % cfg.decoder_sparse_step == 0]
    if family in ("deepseek_v2", "deepseek_v3"):
        return list(range(cfg.first_k_dense_replace, n))
    return list(range(n))


def build_fixture(name: str, spec: tuple, tokenizers_by_kind: dict, out_root: str) -> dict:
    family, cfg, tok_kind, dtype, layout = spec[:5]
    decode_steps = (spec[5] if len(spec) > 5 else {}).get("decode_steps", DECODE_STEPS)
    out_dir = os.path.join(out_root, name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    tok = tokenizers_by_kind[tok_kind]
    seed = seed_for(family)  # the same weights for every fixture of one family (mixtral, -fused, -bf16)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", experts_implementation="eager")
    init_weights(model, seed)
    model = model.to(dtype)
    model.save_pretrained(out_dir, save_original_format=(layout == "original"))
    for extra in ("generation_config.json",):
        path = os.path.join(out_dir, extra)
        if os.path.exists(path):
            os.remove(path)
    save_tokenizer(tok["tokenizer"], out_dir, **tok["special"])
    fast = PreTrainedTokenizerFast.from_pretrained(out_dir)

    top_k = cfg.num_experts_per_tok
    num_experts = getattr(cfg, "num_local_experts", None) or getattr(cfg, "num_experts", None) \
        or getattr(cfg, "n_routed_experts")
    meta = {
        "schema": SCHEMA,
        "family": family,
        "weights_dtype": str(dtype).removeprefix("torch."),
        "engine_support": "full",
        "num_layers": cfg.num_hidden_layers,
        "moe_layers": moe_layers(family, cfg),
        "num_experts": num_experts,
        "top_k": top_k,
        "vocab_size": cfg.vocab_size,
        "generator": {"script": "tools/make_fixtures.py", "transformers": transformers.__version__,
                      "torch": torch.__version__, "device": "cpu", "attn_implementation": "eager",
                      "experts_implementation": "eager", "seed": seed},
    }
    goldens = {}
    # The model as transformers runs it from this checkpoint (for bf16 weights: bf16 compute)...
    run = golden_run(model, fast, top_k, decode_steps=decode_steps)
    goldens["golden.json"] = {**meta, "compute_dtype": str(dtype).removeprefix("torch."), **run}
    if dtype != torch.float32:
        # ...and, for bf16 weights, the checkpoint loaded from disk in f32 (its tensors upcast exactly) and computed in
        # f32, which is what an engine that decodes bf16 weights and computes in f32 should match tightly. Loading, not
        # `model.to(torch.float32)`: casting the bf16 model in memory also rounds buffers that are never saved (RoPE's
        # inv_freq, computed in f32 at construction), which the checkpoint and the engine both keep exact.
        model32 = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32, attn_implementation="eager",
                                                       experts_implementation="eager")
        run32 = golden_run(model32, fast, top_k, decode_steps=decode_steps)
        goldens["golden.f32.json"] = {**meta, "compute_dtype": "float32", "loaded_from": "model.safetensors", **run32}
    for file, data in goldens.items():
        with open(os.path.join(out_dir, file), "w") as f:
            json.dump(data, f, separators=(",", ":"), allow_nan=False)
            f.write("\n")
    sizes = {f: os.path.getsize(os.path.join(out_dir, f)) for f in sorted(os.listdir(out_dir))}
    return {"name": name, "prompt_tokens": len(run["input_ids"]), "generated": run["generated_text"],
            "min_prefill_gap": min_gap_of(run), "sizes": sizes}


def min_gap_of(run: dict) -> float:
    gaps = [g for r in run["prefill"]["routing"] for g in r["gap"] if g is not None]
    gaps += [g for d in run["decode"] for r in d["routing"] for g in r["gap"] if g is not None]
    return min(gaps) if gaps else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    ap.add_argument("--only", default="", help="comma-separated fixture names (default: all)")
    args = ap.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    bl = byte_level_tokenizer(400)
    bf = byte_fallback_tokenizer(512)
    tokenizers_by_kind = {
        "byte_level": {"tokenizer": bl, "special": {"bos": None, "eos": "<|endoftext|>", "pad": "<|pad|>"}},
        "byte_fallback": {"tokenizer": bf, "special": {"bos": "<s>", "eos": "</s>", "pad": None}},
    }
    specs = family_specs(bl.get_vocab_size(), bf.get_vocab_size())
    wanted = [n for n in args.only.split(",") if n] or list(specs)
    unknown = [n for n in wanted if n not in specs]
    if unknown:
        sys.exit(f"make_fixtures: unknown fixture(s) {unknown}; known: {list(specs)}")
    for name in wanted:
        summary = build_fixture(name, specs[name], tokenizers_by_kind, args.out)
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
