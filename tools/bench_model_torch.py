#!/usr/bin/env python3
"""transformers' side of the whole-model benchmark (src/cli/bench-model.ts), on the same GPU and the same token ids.

For each dtype: prefill = one forward over the prompt (no cache); decode = per token of a greedy `generate` with the
KV cache, from (t(generate N) - t(generate 1)) / (N - 1), so the prefill inside generate cancels. Each figure is the
median of >= 5 interleaved trials with min and max. Also the machine's floors: device-to-device copy bandwidth and
cuBLAS f32 matmul throughput (TF32 off), measured here.

Token ids: id_i = (7919 i + 13) mod min(vocab, 32768), as in bench-model.ts.

Usage: python3 tools/bench_model_torch.py --model DIR [--prompt-tokens 512] [--decode-tokens 64] [--trials 5]
                                          [--dtypes f32,bf16] --out FILE
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import transformers


def stat(xs: list[float]) -> dict:
    return {'median': statistics.median(xs), 'min': min(xs), 'max': max(xs), 'n': len(xs)}


def timed(fn) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3, out


def copy_bandwidth() -> float:
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device='cuda')
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    xs = []
    for _ in range(10):
        ms, _ = timed(lambda: b.copy_(a))
        xs.append(2 * n / (ms / 1e3))  # read + write
    return statistics.median(xs)


def f32_flops() -> float:
    torch.backends.cuda.matmul.allow_tf32 = False
    n = 8192
    a = torch.randn(n, n, device='cuda')
    b = torch.randn(n, n, device='cuda')
    for _ in range(3):
        a @ b
    xs = []
    for _ in range(5):
        ms, _ = timed(lambda: a @ b)
        xs.append(2 * n ** 3 / (ms / 1e3))
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', required=True)
    ap.add_argument('--prompt-tokens', type=int, default=512)
    ap.add_argument('--decode-tokens', type=int, default=64)
    ap.add_argument('--trials', type=int, default=5)
    ap.add_argument('--dtypes', default='f32,bf16')
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    result = {'copyBandwidth': copy_bandwidth(), 'f32Flops': f32_flops(), 'runs': [],
              'transformers': transformers.__version__, 'torch': torch.__version__,
              'gpu': torch.cuda.get_device_name(0)}
    for name in args.dtypes.split(','):
        dtype = {'f32': torch.float32, 'bf16': torch.bfloat16}[name]
        model = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype, device_map='cuda')
        model.eval()
        vocab = model.config.vocab_size
        ids = torch.tensor([[(7919 * i + 13) % min(vocab, 32768) for i in range(args.prompt_tokens)]], device='cuda')
        n = args.decode_tokens
        gen = dict(do_sample=False, use_cache=True, pad_token_id=0, eos_token_id=None)
        with torch.no_grad():
            def prefill():
                return model(ids, use_cache=False)

            def generate(k):
                return model.generate(ids, max_new_tokens=k, min_new_tokens=k, **gen)
            for _ in range(2):  # warm-up
                prefill(); generate(2)
            pre, dec = [], []
            greedy = None
            for _ in range(max(5, args.trials)):
                pre.append(timed(prefill)[0])
                t1, _ = timed(lambda: generate(1))
                tn, out = timed(lambda: generate(n))
                dec.append((tn - t1) / (n - 1))
                greedy = out[0, args.prompt_tokens:].tolist()
        result['runs'].append({'dtype': name, 'prefillMs': stat(pre), 'decodeMs': stat(dec), 'greedyIds': greedy})
        print(json.dumps({'dtype': name, 'prefill_ms': statistics.median(pre), 'decode_ms': statistics.median(dec)}),
              flush=True)
        del model
        torch.cuda.empty_cache()
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
