#!/usr/bin/env bash
# Matmul/GEMV benchmark on the lent NVIDIA machine: our WGSL kernels and TensorFlow.js's WebGPU backend (one Dawn
# process), then PyTorch/cuBLAS f32 (TF32 off) on the same shapes, with copy bandwidth from both, and the ratios.
#
# Here (development machine), once after changing the code:
#   bash tools/gpu-bench.sh bundle            # esbuild the Node entries (bench, bench-moe, bench-model, the moescope CLI)
#                                             # -> .gpu/*.mjs; `webgpu` stays external
# On the device (repository root, `.gpu` carried, see ../shared/gpu/prepare.sh):
#   source .gpu/remote.sh && bash tools/gpu-bench.sh run [--tune [--tune-spec bench/x.json]] [other npm run bench flags]
#   source .gpu/remote.sh && bash tools/gpu-bench.sh diagnose bench/diagnose.json   # same points, robustness off
#   source .gpu/remote.sh && bash tools/gpu-bench.sh quant [LAYERS]
#       quantised weights: decode GEMV and expert GEMV bandwidth on Q4_K, Q6_K, Q8_0, MXFP4 beside bf16
#       (src/cli/bench-quant.ts), then tokens/s of a random Qwen3-30B-A3B-shaped Q4_K GGUF (src/cli/random-gguf.ts,
#       LAYERS of 48, default 48) through bench-model
#   source .gpu/remote.sh && bash tools/gpu-bench.sh moe [SHAPES [TOKENS]]     # default small,mixtral 1,16,256,4096
#       one MoE layer (src/cli/bench-moe.ts --tune) beside transformers' MixtralSparseMoeBlock and cuBLAS on the same
#       FLOPs (tools/bench_moe_torch.py): moe.md holds both tables, the tiled steps' TFLOP/s against the 0.75× target
#   source .gpu/remote.sh && bash tools/gpu-bench.sh model demo granite-1b-a400m qwen3-30b-a3b:8
#       whole models (src/cli/bench-model.ts) beside transformers (tools/bench_model_torch.py): `demo` is the bundled
#       model, other names are tools/random_model.py shapes (random bf16 weights), `:N` keeps the first N layers
# Results go to $OUT (or bench/results/): webgpu.json, torch.json, table.md and the logs.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
shift || true
case "$mode" in
  bundle)
    mkdir -p .gpu
    for entry in bench bench-moe bench-model bench-quant random-gguf moescope; do
      npx esbuild "src/cli/$entry.ts" --bundle --platform=node --format=esm --external:webgpu \
        --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" \
        --log-level=warning --outfile=".gpu/$entry.mjs"
    done
    ls -la .gpu/*.mjs
    ;;
  model)
    out=${OUT:-bench/results}
    mkdir -p "$out" /tmp/models
    [ -f .gpu/bench-model.mjs ] || { echo "gpu-bench.sh: .gpu/bench-model.mjs missing: run 'bash tools/gpu-bench.sh bundle' first" >&2; exit 1; }
    for spec in "${@:-demo}"; do
      name=${spec%%:*}; layers=${spec#*:}; [ "$layers" = "$spec" ] && layers=""
      if [ "$name" = demo ]; then dir=public/models/moescope-demo; dtypes=f32; prompt=256  # its context is 512
      else
        dir=/tmp/models/$name${layers:+-$layers}; dtypes=f32,bf16; prompt=512
        [ -d "$dir" ] || python3 tools/random_model.py --shape "$name" ${layers:+--layers $layers} --dtype bf16 --out "$dir"
      fi
      tag=$(basename "$dir")
      PYTHONUNBUFFERED=1 python3 tools/bench_model_torch.py --model "$dir" --dtypes "$dtypes" --prompt-tokens $prompt --out "$out/$tag.torch.json" 2>&1 | tail -5
      node .gpu/bench-model.mjs --model "$dir" --prompt-tokens $prompt --memory 120GB --torch "$out/$tag.torch.json" --out "$out/$tag.json" \
        --markdown "$out/$tag.md" || echo "gpu-bench.sh: bench-model failed on $dir" >&2
    done
    cat "$out"/*.md > "$out/model-table.md" 2>/dev/null || true
    ;;
  moe)
    out=${OUT:-bench/results}
    mkdir -p "$out"
    [ -f .gpu/bench-moe.mjs ] || { echo "gpu-bench.sh: .gpu/bench-moe.mjs missing: run 'bash tools/gpu-bench.sh bundle' first" >&2; exit 1; }
    shapes=${1:-small,mixtral}; tokens=${2:-1,16,256,4096}
    rm -f "$out/moe-torch.json"
    PYTHONUNBUFFERED=1 python3 tools/bench_moe_torch.py --shapes "$shapes" --tokens "$tokens" --out "$out/moe-torch.json" 2>&1 \
      | tee "$out/moe-torch.log" || echo "gpu-bench.sh: the torch baseline failed; ours alone" >&2
    torch=(); [ -f "$out/moe-torch.json" ] && torch=(--torch "$out/moe-torch.json")
    node .gpu/bench-moe.mjs --shapes "$shapes" --tokens "$tokens" --tune "${torch[@]}" --out "$out/moe.json" \
      --markdown "$out/moe.md" 2>&1 | tee "$out/moe.log"
    ;;
  quant)
    out=${OUT:-bench/results}
    mkdir -p "$out" /tmp/models
    [ -f .gpu/bench-quant.mjs ] || { echo "gpu-bench.sh: .gpu/bench-quant.mjs missing: run 'bash tools/gpu-bench.sh bundle' first" >&2; exit 1; }
    node .gpu/bench-quant.mjs --trials 7 --out "$out/quant.json" 2>&1 | tee "$out/quant.md"
    layers=${1:-48}; dir=/tmp/models/qwen3-30b-a3b-q4_k-$layers
    [ -f "$dir/model.gguf" ] || node .gpu/random-gguf.mjs --out "$dir" --layers "$layers"
    node .gpu/bench-model.mjs --model "$dir" --prompt-tokens 512 --memory 120GB --out "$out/qwen3-30b-a3b-q4_k.json" \
      --markdown "$out/qwen3-30b-a3b-q4_k.md" || echo "gpu-bench.sh: bench-model failed on $dir" >&2
    ;;
  run)
    out=${OUT:-bench/results}
    mkdir -p "$out"
    [ -f .gpu/bench.mjs ] || { echo "gpu-bench.sh: .gpu/bench.mjs missing: run 'bash tools/gpu-bench.sh bundle' first" >&2; exit 1; }
    nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv 2>/dev/null | tee "$out/nvidia-smi.txt" || true
    node .gpu/bench.mjs --out "$out/webgpu.json" "$@" 2>&1 | tee "$out/webgpu.log" || echo "gpu-bench.sh: WebGPU bench exited with an error" >&2
    [ -f "$out/webgpu.json" ] || { echo "gpu-bench.sh: no $out/webgpu.json, skipping torch" >&2; exit 1; }
    PYTHONUNBUFFERED=1 python3 tools/bench_torch.py --ours "$out/webgpu.json" --out "$out/torch.json" \
      --markdown "$out/table.md" 2>&1 | tee "$out/torch.log"
    ;;
  diagnose)
    # The tuning points of a spec again with Dawn's robustness (bounds clamping) off, in a separate process.
    out=${OUT:-bench/results}
    mkdir -p "$out"
    node .gpu/bench.mjs --diagnose --tune-spec "${1:?diagnose needs a tune spec (bench/*.json)}" 2>&1 | tee "$out/diagnose.log"
    ;;
  *)
    echo "usage: bash tools/gpu-bench.sh bundle | run [bench flags] | diagnose SPEC.json | moe [SHAPES [TOKENS]] | model NAME[:LAYERS]... | quant [LAYERS]" >&2
    exit 2
    ;;
esac
