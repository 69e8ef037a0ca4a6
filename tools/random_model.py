#!/usr/bin/env python3
"""A random-weight checkpoint at the real width of a published MoE model, for benchmarks and large-model checks.

Nothing is downloaded: the model is built by transformers from the published architecture numbers below (each with
the config.json it was taken from), its weights drawn from a seeded normal (std 0.02, norms 1), and written with
`save_pretrained` (safetensors, sharded) plus a small byte-level BPE tokenizer trained on a few sentences (so the
config's vocabulary is larger than the tokenizer's, as in real checkpoints).

Usage:
  python3 tools/random_model.py --shape granite-1b-a400m --out /tmp/granite [--layers N] [--dtype bf16|f32]
         [--device cuda] [--seed 0]
Shapes: granite-1b-a400m, granite-3b-a800m, qwen3-30b-a3b, deepseek-v2-lite, tiny (a small Qwen3-MoE for testing this
script).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

# Published architecture numbers (ibm-granite/granite-3.1-1b-a400m-instruct, granite-3.1-3b-a800m-instruct,
# Qwen/Qwen3-30B-A3B and deepseek-ai/DeepSeek-V2-Lite config.json; the last is public/configs/deepseek-v2-lite.json).
SHAPES = {
    'granite-1b-a400m': dict(
        model_type='granitemoe', hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=8,
        intermediate_size=512, num_local_experts=32, num_experts_per_tok=8, vocab_size=49155,
        max_position_embeddings=131072, rope_theta=1500000.0, rms_norm_eps=1e-6, embedding_multiplier=12.0,
        attention_multiplier=0.015625, residual_multiplier=0.22, logits_scaling=6.0, tie_word_embeddings=True,
    ),
    'granite-3b-a800m': dict(
        model_type='granitemoe', hidden_size=1536, num_hidden_layers=32, num_attention_heads=24, num_key_value_heads=8,
        intermediate_size=512, num_local_experts=40, num_experts_per_tok=8, vocab_size=49155,
        max_position_embeddings=131072, rope_theta=10000000.0, rms_norm_eps=1e-6, embedding_multiplier=12.0,
        attention_multiplier=0.015625, residual_multiplier=0.22, logits_scaling=6.0, tie_word_embeddings=True,
    ),
    'qwen3-30b-a3b': dict(
        model_type='qwen3_moe', hidden_size=2048, num_hidden_layers=48, num_attention_heads=32, num_key_value_heads=4,
        head_dim=128, intermediate_size=6144, moe_intermediate_size=768, num_experts=128, num_experts_per_tok=8,
        norm_topk_prob=True, vocab_size=151936, max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=False, decoder_sparse_step=1, mlp_only_layers=[],
    ),
    'deepseek-v2-lite': dict(
        model_type='deepseek_v2', hidden_size=2048, num_hidden_layers=27, num_attention_heads=16, num_key_value_heads=16,
        intermediate_size=10944, moe_intermediate_size=1408, n_routed_experts=64, n_shared_experts=2,
        num_experts_per_tok=6, first_k_dense_replace=1, moe_layer_freq=1, topk_method='greedy', n_group=1, topk_group=1,
        norm_topk_prob=False, routed_scaling_factor=1.0, scoring_func='softmax', q_lora_rank=None, kv_lora_rank=512,
        qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, vocab_size=102400, max_position_embeddings=163840,
        rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
        rope_scaling=dict(type='yarn', factor=40, beta_fast=32, beta_slow=1, mscale=0.707, mscale_all_dim=0.707,
                          original_max_position_embeddings=4096),
    ),
    # The dashboard at 64 layers × 256 experts with small widths (≈100M parameters): frame time and stepping at scale.
    'wide-64x256': dict(
        model_type='qwen3_moe', hidden_size=64, num_hidden_layers=64, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, intermediate_size=96, moe_intermediate_size=32, num_experts=256, num_experts_per_tok=8,
        norm_topk_prob=True, vocab_size=600, max_position_embeddings=4096, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=False, decoder_sparse_step=1, mlp_only_layers=[],
    ),
    'tiny': dict(
        model_type='qwen3_moe', hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, intermediate_size=96, moe_intermediate_size=32, num_experts=8, num_experts_per_tok=2,
        norm_topk_prob=True, vocab_size=600, max_position_embeddings=4096, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=False, decoder_sparse_step=1, mlp_only_layers=[],
    ),
}

CORPUS = [
    'The router sends each token to a few experts, and the experts that were chosen do the work.',
    'A mixture of experts keeps many feed-forward networks and uses only some of them for each token.',
    'function route(x, k) { return topK(softmax(gate(x)), k); }',
    'Load balance matters: an expert that receives every token becomes the bottleneck of the step.',
]


def train_tokenizer(vocab: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=['<|endoftext|>'],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer)
    return tok


def build_config(shape: str, layers: int | None) -> transformers.PretrainedConfig:
    spec = dict(SHAPES[shape])
    model_type = spec.pop('model_type')
    if layers:
        spec['num_hidden_layers'] = layers
    spec.update(bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return transformers.AutoConfig.for_model(model_type, **spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--shape', required=True, choices=sorted(SHAPES))
    ap.add_argument('--out', required=True)
    ap.add_argument('--layers', type=int, default=None, help='keep the first N layers (default: all)')
    ap.add_argument('--dtype', default='bf16', choices=['bf16', 'f32'])
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args()

    t0 = time.time()
    torch.manual_seed(args.seed)
    config = build_config(args.shape, args.layers)
    dtype = torch.bfloat16 if args.dtype == 'bf16' else torch.float32
    with torch.device(args.device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    # Seeded weights: N(0, 0.02) for matrices, 1 for norm weights (from_config's own init is not seeded the same way
    # on every device). Experts stored as 3D tensors by transformers 5 are drawn like any other matrix.
    gen = torch.Generator(device=args.device).manual_seed(args.seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(1.0) if 'norm' in name else p.normal_(0.0, 0.02, generator=gen)
            else:
                p.normal_(0.0, 0.02, generator=gen)
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True, max_shard_size='4GB')
    tok = train_tokenizer(min(512, config.vocab_size))
    tok.save(os.path.join(args.out, 'tokenizer.json'))
    with open(os.path.join(args.out, 'tokenizer_config.json'), 'w') as f:
        json.dump({'tokenizer_class': 'PreTrainedTokenizerFast', 'bos_token': None, 'eos_token': '<|endoftext|>',
                   'add_bos_token': False}, f)
    params = sum(p.numel() for p in model.parameters())
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out) if f.endswith('.safetensors'))
    print(json.dumps({'shape': args.shape, 'layers': config.num_hidden_layers, 'dtype': args.dtype, 'parameters': params,
                      'bytes': size, 'seconds': round(time.time() - t0, 1), 'transformers': transformers.__version__,
                      'torch': torch.__version__}))


if __name__ == '__main__':
    main()
