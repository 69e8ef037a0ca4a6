#!/usr/bin/env python3
"""A random-weight model at a published width, run by transformers and by `moescope run --memory`: same greedy ids?

For each shape (tools/random_model.py's names, `:N` keeps the first N layers):
  1. builds the checkpoint with tools/random_model.py (bf16 weights, seeded; nothing is downloaded; skipped when the
     folder already holds one),
  2. transformers: the same bf16 weights upcast to float32, computed in float32 on the GPU (TF32 off), greedy
     `generate` of --tokens tokens from the prompt's ids, with every step's logits,
  3. the engine: `moescope run --model DIR --prompt-ids IDS --max-tokens N --memory SIZE --json --logits-top 8`
     (f32 compute on the bf16 weights, so both sides compute in f32 from identical weights),
  4. compares: the generated ids must be equal, and at every step the engine's 8 largest logits must match
     transformers' logits at those ids within --rtol of the step's largest |logit|. A mismatching id is reported
     with transformers' top-2 gap at that step (a near-tie explains a flip; anything else is a bug).
Prints, per shape, load time, time to first token (prompt fed and first token sampled), peak GPU memory
(nvidia-smi, polled while the engine runs), the engine's own allocation and the host's peak resident memory, and
writes everything to --out as JSON. Exit status 1 when any shape disagrees.

On the lent GPU machine (repository root; `.gpu` made by shared/gpu/prepare.sh and `bash tools/gpu-bench.sh bundle`),
one call per step if a call's time limit is short (checkpoints stay in --models while the machine is held):
  source .gpu/remote.sh && python3 tools/check_large_model.py --shapes qwen3-30b-a3b:24 --build-only
  source .gpu/remote.sh && python3 tools/check_large_model.py --shapes qwen3-30b-a3b:24,granite-3b-a800m \\
      --memory 60GB --cli "node .gpu/moescope.mjs" --out $OUT/check-large.json
Here (no GPU; a tiny shape on SwiftShader and transformers on the CPU, to test this script):
  /work/pyenv/bin/python tools/check_large_model.py --shapes tiny --memory 1GB --models /tmp/moescope-check
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time

import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROMPT = 'The router sends each token to a few experts: function route(x, k) { return topK(gate(x), k); }'
LOGITS_TOP = 8


def build(shape: str, layers: int | None, out: str) -> None:
    if os.path.exists(os.path.join(out, 'config.json')):
        print(f'{out}: already built', flush=True)
        return
    cmd = [sys.executable, os.path.join(HERE, 'random_model.py'), '--shape', shape, '--dtype', 'bf16', '--out', out]
    if layers:
        cmd += ['--layers', str(layers)]
    subprocess.run(cmd, check=True)


@torch.no_grad()
def transformers_side(model_dir: str, ids: list[int], tokens: int, device: str) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    t0 = time.time()
    # Loaded in bf16 on the host (no accelerate needed), upcast to f32 on the device.
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    model = model.to(device).float().eval()
    load = time.time() - t0
    inp = torch.tensor([ids], device=device)
    t1 = time.time()
    out = model.generate(inp, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, output_logits=True,
                         return_dict_in_generate=True, pad_token_id=0)
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    seconds = time.time() - t1
    logits = [row[0].float().cpu() for row in out.logits]
    generated = out.sequences[0, len(ids):].tolist()
    gaps = [float(v[0] - v[1]) for v in (l.topk(2).values for l in logits)]
    del model
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
    return {'generated_ids': generated, 'logits': logits, 'top2_gaps': gaps, 'load_seconds': load,
            'generate_seconds': seconds}


def gpu_used_mib() -> int | None:
    try:
        out = subprocess.run(['nvidia-smi', '--query-gpu=memory.used', '--format=csv,noheader,nounits'],
                             capture_output=True, text=True, timeout=10)
        return max(int(x) for x in out.stdout.split()) if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def engine_side(cli: str, model_dir: str, ids: list[int], tokens: int, memory: str) -> dict:
    cmd = shlex.split(cli) + ['run', '--model', model_dir, '--prompt-ids', ','.join(map(str, ids)),
                              '--max-tokens', str(tokens), '--context', str(len(ids) + tokens + 8),
                              '--memory', memory, '--json', '--logits-top', str(LOGITS_TOP)]
    print('$', ' '.join(shlex.quote(c) for c in cmd), flush=True)
    before = gpu_used_mib()
    peak = [before]
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.5):
            used = gpu_used_mib()
            if used is not None:
                peak[0] = max(peak[0] or 0, used)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.time() - t0
    done.set()
    poller.join()
    sys.stderr.write(proc.stderr[-2000:])
    if proc.returncode != 0:
        raise RuntimeError(f'moescope run exited with {proc.returncode}')
    summary = json.loads(proc.stdout)
    summary['wall_seconds'] = wall
    summary['gpu_used_mib'] = {'before': before, 'peak': peak[0]}
    return summary


def compare(torch_run: dict, engine: dict, rtol: float) -> dict:
    ours, theirs = engine['generatedIds'], torch_run['generated_ids']
    first_diff = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
    if first_diff is None and len(ours) != len(theirs):
        first_diff = min(len(ours), len(theirs))
    worst = 0.0
    steps = len(engine['stepLogits']) if first_diff is None else first_diff + 1
    for i in range(min(steps, len(torch_run['logits']))):
        ref = torch_run['logits'][i]
        top = engine['stepLogits'][i]
        scale = float(ref.abs().max())
        for tid, value in zip(top['ids'], top['values']):
            worst = max(worst, abs(value - float(ref[tid])) / scale)
    return {'ids_equal': first_diff is None, 'first_difference': first_diff,
            'top2_gap_there': None if first_diff is None or first_diff >= len(torch_run['top2_gaps'])
            else torch_run['top2_gaps'][first_diff],
            'max_logit_error_rel': worst, 'logits_within_tolerance': worst <= rtol, 'rtol': rtol}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--shapes', default='qwen3-30b-a3b:24,granite-3b-a800m')
    ap.add_argument('--models', default='/tmp/models', help='where checkpoints are built (and reused)')
    ap.add_argument('--tokens', type=int, default=32)
    ap.add_argument('--memory', default='60GB', help="the engine's --memory")
    ap.add_argument('--cli', default='node bin/moescope.mjs', help='how to start the moescope CLI')
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--rtol', type=float, default=1e-3, help="logit error allowed, relative to the step's max |logit|")
    ap.add_argument('--out', default='')
    ap.add_argument('--build-only', action='store_true', help='only build the checkpoints (to split the work over calls)')
    args = ap.parse_args()

    results, ok = [], True
    for spec in args.shapes.split(','):
        name, _, layers = spec.partition(':')
        model_dir = os.path.join(args.models, name + (f'-{layers}' if layers else ''))
        build(name, int(layers) if layers else None, model_dir)
        if args.build_only:
            continue
        tok = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, 'tokenizer.json'))
        ids = tok(PROMPT)['input_ids']
        theirs = transformers_side(model_dir, ids, args.tokens, args.device)
        ours = engine_side(args.cli, model_dir, ids, args.tokens, args.memory)
        verdict = compare(theirs, ours, args.rtol)
        ok = ok and verdict['ids_equal'] and verdict['logits_within_tolerance']
        t = ours['timings']
        row = {
            'shape': spec, 'model_dir': model_dir, 'prompt_tokens': len(ids), 'tokens': args.tokens,
            'parameters': ours['parameters'], 'verdict': verdict,
            'engine': {'load_seconds': t['loadSeconds'], 'first_token_seconds': t['firstTokenSeconds'],
                       'generate_seconds': t['generateSeconds'], 'peak_host_bytes': t['peakHostBytes'],
                       'gpu_allocated_bytes': sum(m['bytes'] for m in ours['gpuMemory']),
                       'gpu_used_mib': ours['gpu_used_mib'], 'wall_seconds': ours['wall_seconds']},
            'transformers': {'load_seconds': theirs['load_seconds'], 'generate_seconds': theirs['generate_seconds'],
                             'dtype': 'float32 on the bf16 weights', 'version': transformers.__version__,
                             'torch': torch.__version__, 'device': args.device},
            'generated_ids': {'engine': ours['generatedIds'], 'transformers': theirs['generated_ids']},
        }
        results.append(row)
        e = row['engine']
        print(f"{spec}: {ours['parameters']['total'] / 1e9:.2f}B parameters; ids {'EQUAL' if verdict['ids_equal'] else 'DIFFER at ' + str(verdict['first_difference'])}"
              f" over {args.tokens} tokens; logits max rel. error {verdict['max_logit_error_rel']:.2e} (tolerance {args.rtol:g}); "
              f"load {e['load_seconds']:.1f} s, first token {e['first_token_seconds']:.2f} s, "
              f"engine GPU allocation {e['gpu_allocated_bytes'] / 1e9:.2f} GB, GPU used peak {e['gpu_used_mib']['peak']} MiB, "
              f"host peak {e['peak_host_bytes'] / 1e9:.2f} GB", flush=True)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=1)
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
