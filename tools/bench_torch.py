#!/usr/bin/env python3
"""PyTorch / cuBLAS baseline for `npm run bench`: times the shapes listed in our results JSON and prints ratios.

    python3 tools/bench_torch.py --ours bench/results/<device>.json [--out torch.json] [--markdown table.md]

f32 shapes run F.linear(x, W) (= x @ W.T, W [N, K]) or x @ W (W [K, N]) in float32 with TF32 disabled (plain FP32
cuBLAS). Our bf16-weight shapes have no f32-activation counterpart in cuBLAS; they run F.linear in bf16 (bf16
activations too) as a bandwidth reference. Timing: CUDA events around a batch of repetitions, median of 5 trials,
weights rotated over >= 200 MiB as in our benchmark. Also measures device-to-device copy bandwidth
(dst.copy_(src), 1 GiB, bytes read + written).
"""
import argparse
import json
import statistics
import sys

import torch
import torch.nn.functional as F

ROTATE_BYTES = 200 * 1024 * 1024


def time_cuda(fn, target_ms=40.0, trials=5, max_reps=400):
    """Median per-call milliseconds of fn() over `trials` batches, measured with CUDA events."""
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    fn()
    end.record()
    end.synchronize()
    each = start.elapsed_time(end) / 2
    reps = max(2, min(max_reps, round(target_ms / max(each, 1e-3))))
    samples = []
    for _ in range(trials):
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / reps)
    return statistics.median(samples), reps


def copy_bandwidth(nbytes=1 << 30):
    src = torch.rand(nbytes // 4, device="cuda")
    dst = torch.empty_like(src)
    ms, _ = time_cuda(lambda: dst.copy_(src))
    return {"bytes": nbytes, "ms": ms, "gbps": 2 * nbytes / ms / 1e6}


def bench_case(case):
    M, K, N, layout = case["M"], case["K"], case["N"], case["layout"]
    dtype = torch.float32 if case["dtype"] == "f32" else torch.bfloat16
    elem = 4 if dtype == torch.float32 else 2
    copies = max(1, min(8, -(-ROTATE_BYTES // (N * K * elem))))
    x = torch.randn(M, K, device="cuda", dtype=dtype)
    shape = (N, K) if layout == "nk" else (K, N)
    ws = [torch.randn(*shape, device="cuda", dtype=dtype) for _ in range(copies)]
    out = torch.empty(M, N, device="cuda", dtype=dtype)
    state = {"i": 0}

    def run():
        w = ws[state["i"] % copies]
        state["i"] += 1
        if layout == "nk":
            torch.matmul(x, w.t(), out=out)
        else:
            torch.matmul(x, w, out=out)

    # Correctness spot check against float64 on one weight copy (catches a silently wrong configuration).
    ref = (x.double() @ (ws[0].double().t() if layout == "nk" else ws[0].double()))
    got = (x @ (ws[0].t() if layout == "nk" else ws[0])).double()
    rel = ((got - ref).norm() / ref.norm()).item()
    ms, reps = time_cuda(run)
    flops = 2 * M * N * K
    nbytes = N * K * elem + elem * (M * K + M * N)
    del x, ws, out
    torch.cuda.empty_cache()
    return {
        "name": case["name"],
        "torch_dtype": str(dtype).replace("torch.", ""),
        "ms": ms,
        "reps": reps,
        "gflops": flops / ms / 1e6,
        "gbps": nbytes / ms / 1e6,
        "rel_err_vs_f64": rel,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True, help="JSON written by npm run bench")
    ap.add_argument("--out", help="write torch results here")
    ap.add_argument("--markdown", help="write a markdown table here")
    args = ap.parse_args()

    if not torch.cuda.is_available():
        sys.exit("bench_torch.py: no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    with open(args.ours) as f:
        ours = json.load(f)

    device = torch.cuda.get_device_name()
    copy = copy_bandwidth()
    print(f"torch {torch.__version__}, {device}; TF32 off; CUDA events, median of 5")
    print(f"torch copy_ 1 GiB: {copy['gbps']:.0f} GB/s (read + write); "
          f"WebGPU copyBufferToBuffer: {ours['copy']['gbps']:.0f} GB/s")
    results = [bench_case(c) for c in ours["results"]]

    lines = []
    head = ("| shape (M×K→N) | W | ours ms | ours GFLOP/s | ours GB/s | TF.js ms (wall) | ours vs TF.js | "
            "cuBLAS ms | cuBLAS GFLOP/s | ours / cuBLAS | GB/s % of copy (WebGPU / torch) |")
    lines.append(head)
    lines.append("|" + "|".join(["---"] * (head.count("|") - 1)) + "|")
    for c, t in zip(ours["results"], results):
        o = c["ours"]
        ours_ms = o["gpuMs"] if o["gpuMs"] is not None else o["wallMs"]
        tf = c.get("tfjs")
        tf_ms = f"{tf['wallMs']:.3f}" if tf else "—"
        vs_tf = f"{tf['wallMs'] / o['wallMs']:.2f}× faster" if tf else "—"
        ratio = t["ms"] / ours_ms
        cublas_label = f"{t['ms']:.3f}" + ("" if t["torch_dtype"] == "float32" else " (bf16)")
        pct = ""
        if c["kind"] == "gemv":
            pct = f"{100 * o['gbps'] / ours['copy']['gbps']:.0f}% / {100 * o['gbps'] / copy['gbps']:.0f}%"
        lines.append(
            f"| {c['M']}×{c['K']}→{c['N']} | {c['dtype']} {c['layout']} | {ours_ms:.3f} | {o['gflops']:.0f} | "
            f"{o['gbps']:.0f} | {tf_ms} | {vs_tf} | {cublas_label} | {t['gflops']:.0f} | {ratio:.2f} | {pct} |"
        )
    table = "\n".join(lines)
    print(table)
    for t in results:
        if t["rel_err_vs_f64"] > (1e-5 if t["torch_dtype"] == "float32" else 1e-2):
            print(f"warning: torch {t['name']} relative error {t['rel_err_vs_f64']:.2e} vs float64 (TF32 on?)")

    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": device, "torch": torch.__version__, "copy": copy, "results": results}, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
