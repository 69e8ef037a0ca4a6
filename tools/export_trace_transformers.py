"""Records the routing of a Hugging Face transformers MoE model as a moescope trace (docs/trace-format.md).

Forward hooks on every router module capture each token's chosen experts, gate weights and router probabilities
during the prefill and during cached `generate` (where `output_router_logits` is not available). The model may be
spread over several GPUs: a checkpoint loads with `device_map="auto"`; a random-weight model built from a config
(nothing downloaded) is placed with an explicit layer → GPU device map. Per-device peak memory is recorded in the
trace's source note and printed.

    # a checkpoint, one or more prompts (each one sequence), greedy generation
    python3 tools/export_trace_transformers.py --model DIR --prompt "…" [--prompt "…"] --max-new-tokens 32 --out run.trace.safetensors
    # a random-weight model at a published config's width, random token ids, layers over every visible GPU
    python3 tools/export_trace_transformers.py --config tools/configs/qwen3-30b-a3b.json --random-weights \
        --dtype bfloat16 --random-tokens 2048 --max-new-tokens 64 --out qwen3-30b.trace.safetensors

Families: mixtral, qwen2_moe, qwen3_moe, olmoe, granitemoe, deepseek_v3 (their transformers 5 router classes).
Within each token's top-k the ids are in descending selection score, ties to the lower id (the engine's order).
The last generated token is forwarded once more so that every token has routing (`--no-route-last` keeps it unknown,
as serving engines do). Needs torch, transformers 5.x, safetensors, numpy.
"""
from __future__ import annotations

import argparse
import json
import os
import time
import zlib

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file
from transformers import AutoConfig, AutoModelForCausalLM

ROUTERS = {"MixtralTopKRouter", "Qwen2MoeTopKRouter", "Qwen3MoeTopKRouter", "OlmoeTopKRouter",
           "GraniteMoeTopKRouter", "DeepseekV3TopkRouter"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def layer_of(name: str) -> int:
    parts = name.split(".")
    return int(parts[parts.index("layers") + 1])


def scores_of(router, logits: torch.Tensor) -> torch.Tensor:
    """What the router ranks experts by, and what the trace stores as probabilities: softmax of the logits, or
    DeepSeek-V3's sigmoid scores (the correction bias only affects the choice, not the stored score)."""
    if type(router).__name__ == "DeepseekV3TopkRouter":
        return logits.float().sigmoid()
    return torch.softmax(logits.float(), dim=-1)


class Recorder:
    """Forward hooks on the routers; each model call appends [tokens, k] ids/weights and [tokens, E] probs per layer."""

    def __init__(self, model):
        self.calls: dict[int, list] = {}
        self.handles = []
        for name, module in model.named_modules():
            if type(module).__name__ in ROUTERS:
                self.handles.append(module.register_forward_hook(self._hook(layer_of(name))))
        if not self.handles:
            raise SystemExit("no router module of a known class found (supported: " + ", ".join(sorted(ROUTERS)) + ")")

    def _hook(self, layer: int):
        def hook(module, _inputs, output):
            if type(module).__name__ == "GraniteMoeTopKRouter":
                ids, weights, logits = output
            else:
                logits, weights, ids = output
            probs = scores_of(module, logits)
            rank = probs if type(module).__name__ != "GraniteMoeTopKRouter" else logits.float()
            if type(module).__name__ == "DeepseekV3TopkRouter":
                rank = probs + module.e_score_correction_bias.float()
            chosen = rank.gather(1, ids)
            # Descending score, ties to the lower id: sort by id first, then stably by score.
            by_id = ids.argsort(dim=1, stable=True)
            ids, weights, chosen = ids.gather(1, by_id), weights.float().gather(1, by_id), chosen.gather(1, by_id)
            order = (-chosen).argsort(dim=1, stable=True)
            self.calls.setdefault(layer, []).append((ids.gather(1, order).cpu().numpy().astype(np.int32),
                                                     weights.gather(1, order).cpu().numpy().astype(np.float32),
                                                     probs.cpu().numpy().astype(np.float32)))
        return hook

    def take(self):
        """Per MoE layer (ascending): ids [T, k], weights [T, k], probs [T, E] of everything since the last take."""
        layers = sorted(self.calls)
        out = {l: tuple(np.concatenate([c[i] for c in self.calls[l]]) for i in range(3)) for l in layers}
        self.calls = {}
        return out


def spread_random_model(config, dtype, seed: int, devices: list[str] | None = None):
    """Builds the model on the meta device, gives each decoder layer a GPU (contiguous blocks, as even as the layer
    count allows; the CPU when there is no GPU, for trying the script out), materialises every parameter on its GPU with seeded random values and moves activations across
    devices with pre-forward hooks. Returns the model and the device map used."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    devices = devices or [f"cuda:{d}" for d in range(torch.cuda.device_count())] or ["cpu"]
    G, L = len(devices), config.num_hidden_layers
    # The rotary embedding's buffers are computed, not stored: build it again, for real, on the first device.
    model.model.rotary_emb = type(model.model.rotary_emb)(config).to(devices[0])
    device_map = {"model.embed_tokens": devices[0],
                  **{f"model.layers.{i}": devices[i * G // L] for i in range(L)},
                  "model.norm": devices[-1], "lm_head": devices[-1]}
    for name, dev in device_map.items():
        module = model.get_submodule(name)
        module.to_empty(device=dev)
        gen = torch.Generator(device=dev).manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
        with torch.no_grad():
            for pname, p in module.named_parameters():
                if p.dim() == 1:
                    p.fill_(1.0) if "norm" in pname or "layernorm" in pname else p.zero_()
                else:
                    p.normal_(0.0, p.shape[-1] ** -0.5, generator=gen)
            for b in module.buffers():
                if b.is_floating_point():
                    b.zero_()

        def to_device(_m, args, kwargs, dev=dev):
            move = lambda v: v.to(dev) if isinstance(v, torch.Tensor) else (type(v)(move(x) for x in v) if isinstance(v, tuple) else v)
            return tuple(move(a) for a in args), {k: move(v) for k, v in kwargs.items()}
        module.register_forward_pre_hook(to_device, with_kwargs=True)
    # Logits back on the first device, where generate() keeps the ids it appends to.
    model.lm_head.register_forward_hook(lambda _m, _i, out: out.to(devices[0]))
    model.eval()
    return model, device_map


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a Hugging Face model folder (loaded with device_map)")
    src.add_argument("--config", help="a config.json; with --random-weights builds the model without weights")
    ap.add_argument("--random-weights", action="store_true")
    ap.add_argument("--prompt", action="append", default=[])
    ap.add_argument("--text", action="append", default=[], help="a text file, one sequence")
    ap.add_argument("--random-tokens", type=int, default=0, help="one sequence of N uniform random token ids")
    ap.add_argument("--max-new-tokens", type=int, default=0)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    ap.add_argument("--device-map", default=None, help='for --model: "auto" (default with GPUs) or "cpu"')
    ap.add_argument("--devices", help="--random-weights: comma-separated devices to spread the layers over (default: every GPU)")
    ap.add_argument("--num-layers", type=int, default=0, help="--random-weights: keep only the first N decoder layers (a slice)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-route-last", action="store_true")
    ap.add_argument("--no-probs", action="store_true", help="leave out router probabilities ([tokens, layers, experts] f32: large)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    dtype = DTYPES[args.dtype]
    t0 = time.time()
    if args.model:
        with open(os.path.join(args.model, "config.json")) as f:
            config_json = json.load(f)
        device_map = args.device_map or ("auto" if torch.cuda.is_available() else "cpu")
        # device_map needs the accelerate package; on the CPU the model loads without one.
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype, device_map=None if device_map == "cpu" else device_map,
                                                     attn_implementation="eager", experts_implementation="eager")
        model.eval()
        placement = getattr(model, "hf_device_map", None) or {"": device_map}
        tok = transformers.AutoTokenizer.from_pretrained(args.model)
    else:
        if not args.random_weights:
            raise SystemExit("--config needs --random-weights (nothing is downloaded)")
        with open(args.config) as f:
            config_json = json.load(f)
        if args.num_layers:
            config_json = {**config_json, "num_hidden_layers": args.num_layers}
        config = AutoConfig.for_model(**config_json)
        model, placement = spread_random_model(config, dtype, args.seed, args.devices.split(",") if args.devices else None)
        tok = None
    load_s = time.time() - t0
    sequences = [tok(p, return_tensors="pt")["input_ids"][0].tolist() for p in args.prompt] if args.prompt else []
    for path in args.text:
        with open(path) as f:
            sequences.append(tok(f.read(), return_tensors="pt")["input_ids"][0].tolist())
    if args.random_tokens:
        g = torch.Generator().manual_seed(args.seed)
        sequences.append(torch.randint(0, model.config.vocab_size, (args.random_tokens,), generator=g).tolist())
    if not sequences:
        raise SystemExit("give --prompt, --text or --random-tokens")
    if (args.prompt or args.text) and tok is None:
        raise SystemExit("prompts need a tokenizer: use --model, or --random-tokens")

    recorder = Recorder(model)
    first_device = next(model.parameters()).device
    per_seq, meta_seqs, start = [], [], 0
    t1 = time.time()
    with torch.no_grad():
        for i, ids in enumerate(sequences):
            input_ids = torch.tensor([ids], device=first_device)
            if args.max_new_tokens > 0:
                # Random token ids come with a random model: generate the full count, whatever it samples.
                out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=args.max_new_tokens,
                                     min_new_tokens=args.max_new_tokens if args.random_tokens else 0,
                                     do_sample=False, return_dict_in_generate=True, pad_token_id=model.config.eos_token_id)
                all_ids = out.sequences[0].tolist()
                if not args.no_route_last and len(all_ids) > len(ids):
                    last = out.sequences[:, -1:]
                    model(input_ids=last, past_key_values=out.past_key_values, use_cache=True,
                          position_ids=torch.tensor([[len(all_ids) - 1]], device=first_device))
            else:
                model(input_ids=input_ids, use_cache=True)
                all_ids = ids
            rec = recorder.take()
            per_seq.append((all_ids, rec))
            meta_seqs.append({"id": str(i), "start": start, "length": len(all_ids), "promptLength": len(ids)})
            start += len(all_ids)
    run_s = time.time() - t1

    moe_layers = sorted(per_seq[0][1])
    k = per_seq[0][1][moe_layers[0]][0].shape[1]
    E = per_seq[0][1][moe_layers[0]][2].shape[1]
    T = start
    experts = np.full((T, len(moe_layers), k), -1, dtype=np.int32)
    weights = np.zeros((T, len(moe_layers), k), dtype=np.float32)
    probs = np.zeros((T, len(moe_layers), E), dtype=np.float32)
    for (all_ids, rec), s in zip(per_seq, meta_seqs):
        for m, layer in enumerate(moe_layers):
            ids_l, w_l, p_l = rec[layer]
            n = ids_l.shape[0]
            experts[s["start"]:s["start"] + n, m] = ids_l
            weights[s["start"]:s["start"] + n, m] = w_l
            probs[s["start"]:s["start"] + n, m] = p_l
    token_ids = np.array([t for all_ids, _ in per_seq for t in all_ids], dtype=np.int32)
    tensors = {"experts": (experts.astype(np.uint8) if E < 255 else experts.astype(np.uint16) if E < 65535 else experts),
               "token_ids": token_ids, "weights": weights}
    if not args.no_probs:
        tensors["router_probs"] = probs
    if E < 65535:
        tensors["experts"][experts < 0] = 255 if E < 255 else 65535
    memory = {}
    if torch.cuda.is_available():
        for d in range(torch.cuda.device_count()):
            memory[f"cuda:{d}"] = {"peak_allocated_GiB": round(torch.cuda.max_memory_allocated(d) / 2**30, 2),
                                   "peak_reserved_GiB": round(torch.cuda.max_memory_reserved(d) / 2**30, 2)}
    devices = sorted(set(str(v) for v in placement.values()))
    note = {"memory": memory, "load_seconds": round(load_s, 1), "run_seconds": round(run_s, 1),
            "weights": "random (seeded)" if args.random_weights else args.model, "torch": torch.__version__}
    if tok is not None:
        texts = [tok.decode([t]) for t in token_ids.tolist()]
        enc = [t.encode("utf-8") for t in texts]
        offsets = np.zeros(len(enc) + 1, dtype=np.uint32)
        offsets[1:] = np.cumsum([len(b) for b in enc])
        tensors["token_text"] = np.frombuffer(b"".join(enc), dtype=np.uint8).copy()
        tensors["token_text_offsets"] = offsets
    meta = {
        "format": "moescope-trace", "version": 1, "config": config_json,
        "tokenizer": args.model if tok is not None else None,
        "source": {"engine": "transformers", "version": transformers.__version__, "dtype": args.dtype,
                   "parallelism": f"device_map over {', '.join(devices)}: {json.dumps(placement)}",
                   "note": json.dumps(note)},
        "moeLayers": moe_layers, "numExperts": E, "topK": k, "numTokens": T, "sequences": meta_seqs,
        "recorded": {"tokenIds": True, "tokenTexts": tok is not None, "weights": True, "router": None if args.no_probs else "probs"},
        "countSteps": 0,
    }
    save_file(tensors, args.out, metadata={"moescope_trace": json.dumps(meta)})
    print(json.dumps({"out": args.out, "tokens": T, "moe_layers": len(moe_layers), "experts": E, "top_k": k,
                      "devices": devices, **note}))


if __name__ == "__main__":
    main()
