#!/usr/bin/env python3
"""Baseline for src/cli/bench-moe.ts: transformers' MixtralSparseMoeBlock in f32 on the GPU, with its experts run
by each available experts implementation ("eager" and "grouped_mm"), at the same shapes and token counts; plus the
device's copy bandwidth and cuBLAS f32 rate (TF32 off) measured in the same process, for the floor; and, for the
steps the engine runs on its tiled expert kernels (over 16 rows per expert), cuBLAS on the dense products of the
same FLOPs as the step's experts: [k·T, H]·[H, 2I] and [k·T, I]·[I, H] ("dense" in the output).

    python3 tools/bench_moe_torch.py --out torch.json [--shapes small,mixtral] [--tokens 1,16,256,4096]

Times are wall clock per forward (CUDA synchronised), median of 5 trials of enough repetitions for ~200 ms:
the eager implementation synchronises with the host inside the forward (expert_hit), so GPU events alone would
miss its idle time.
"""
import argparse
import json
import statistics
import time

import torch
import transformers
from transformers import MixtralConfig
from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

SHAPES = {"tiny": (64, 96), "small": (1024, 2048), "mixtral": (4096, 14336)}


def wall_us(fn, target_ms=200.0, trials=5, max_reps=500):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    each = time.perf_counter() - t0
    reps = int(max(2, min(max_reps, target_ms / 1000.0 / max(each, 1e-6))))
    samples = []
    for _ in range(trials):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - t0) / reps)
    return 1e6 * statistics.median(samples)


def copy_gbs():
    n = 1 << 28  # 1 GiB of f32
    a = torch.empty(n, dtype=torch.float32, device="cuda")
    b = torch.empty_like(a)
    us = wall_us(lambda: b.copy_(a), target_ms=300)
    return 2 * 4 * n / (us * 1e-6) / 1e9  # bytes read + bytes written


def cublas_tflops():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    n = 8192
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    us = wall_us(lambda: a @ b, target_ms=500)
    return 2 * n**3 / (us * 1e-6) / 1e12


def dense_same_flops(T, H, I, k=2):
    """cuBLAS f32 (TF32 off) on the step's expert FLOPs as two dense products; µs each and TFLOP/s."""
    torch.backends.cuda.matmul.allow_tf32 = False
    M = k * T
    x = torch.randn(M, H, device="cuda")
    w_up = torch.randn(H, 2 * I, device="cuda")
    h = torch.randn(M, I, device="cuda")
    w_down = torch.randn(I, H, device="cuda")
    up = wall_us(lambda: x @ w_up)
    down = wall_us(lambda: h @ w_down)
    return {"upUs": up, "downUs": down, "tflops": 6 * T * k * H * I / ((up + down) * 1e-6) / 1e12}


def set_impl(block, config, impl):
    """Selects the experts implementation of a built block; returns False if this transformers has no such switch."""
    for target in (config, getattr(block.experts, "config", None)):
        if target is not None:
            setattr(target, "_experts_implementation", impl)
    return hasattr(config, "_experts_implementation")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--shapes", default="small,mixtral")
    ap.add_argument("--tokens", default="1,16,256,4096")
    args = ap.parse_args()
    torch.manual_seed(0)
    result = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "copyGBs": copy_gbs(),
        "cublasTflops": cublas_tflops(),
        "experts_implementations": [],
        "cases": [],
        "dense": [],
    }
    print(f"{result['device']} torch {result['torch']} transformers {result['transformers']}: "
          f"copy {result['copyGBs']:.0f} GB/s, cuBLAS f32 {result['cublasTflops']:.1f} TFLOP/s", flush=True)
    tokens = [int(t) for t in args.tokens.split(",")]
    for shape in args.shapes.split(","):
        H, I = SHAPES[shape]
        for T in tokens:
            if T * 2 / 8 > 16:  # the engine's tiled expert kernels (MoeLayer.modeFor)
                d = dense_same_flops(T, H, I)
                result["dense"].append({"shape": shape, "T": T, **d})
                print(f"{shape} T={T} cuBLAS on the same FLOPs: {d['tflops']:.1f} TFLOP/s", flush=True)
                torch.cuda.empty_cache()
        config = MixtralConfig(hidden_size=H, intermediate_size=I, num_local_experts=8, num_experts_per_tok=2,
                               router_jitter_noise=0.0, hidden_act="silu")
        with torch.no_grad():
            block = MixtralSparseMoeBlock(config).to(device="cuda", dtype=torch.float32).eval()
            for name, p in block.named_parameters():
                std = 3.0 / H**0.5 if "gate" in name and p.dim() == 2 and p.shape[0] == 8 else 1.0 / H**0.5
                torch.nn.init.normal_(p, std=std)
            for impl in ("eager", "grouped_mm"):
                switched = set_impl(block, config, impl)
                if impl not in result["experts_implementations"]:
                    result["experts_implementations"].append(impl if switched else f"{impl} (no switch: default)")
                for T in tokens:
                    x = torch.rand(1, T, H, device="cuda") - 0.5
                    case = {"shape": shape, "T": T, "impl": impl, "us": None}
                    try:
                        case["us"] = wall_us(lambda: block(x))
                    except Exception as e:  # record, keep going
                        case["error"] = f"{type(e).__name__}: {e}"[:300]
                    result["cases"].append(case)
                    print(f"{shape} T={T} {impl}: {case['us'] if case['us'] is None else round(case['us'], 1)} µs"
                          f"{' ' + case['error'] if 'error' in case else ''}", flush=True)
            del block
            torch.cuda.empty_cache()
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
