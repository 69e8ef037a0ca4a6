#!/usr/bin/env python3
"""Trains the bundled demo model: a small Mixtral-format MoE on Brown-corpus prose and JS/TS source code.

Input: .data/demo/{train,val}.jsonl.gz from `node tools/prepare_demo_data.mjs`.
Output: public/models/<name>/ and public/models/<name>-early/ (config.json, model.safetensors in bf16,
tokenizer.json, tokenizer_config.json) and <work>/train-log.json. README.md and samples.json are written by
tools/analyze_demo_model.py.

Reproducible: one seed sets the tokenizer's input order, the initial weights (created on the CPU, so the untrained
model can be rebuilt anywhere with `build_model`), and every batch (batch `s` is drawn from a generator seeded with
(seed, s), so a resumed run sees the same batches). GPU kernels are not bit-deterministic, so a rerun matches closely,
not bit for bit.

Training: AdamW, linear warm-up then cosine decay to 10%, bf16 autocast, gradient clipping 1.0, and the Switch /
Mixtral load-balancing loss (E · Σ_e f_e · P_e, f = fraction of top-k assignments, P = mean router probability) from
the router logits transformers returns with `output_router_logits`, weighted by `router_aux_loss_coef`. It is computed
for each layer separately and averaged: transformers' own `load_balancing_loss_func` (5.x) pools the counts of all
layers before multiplying, which only balances the experts' totals over the layers and left single layers sending
75% of their tokens to one expert in a first run. Random 512-token windows from the training
documents concatenated with <|endoftext|> between them. The validation loss is measured every `--eval-every` steps
on fixed validation windows; the weights saved at the end are those of the lowest such loss (the data is small
enough that many passes could overfit; the log says which step was kept). The early checkpoint is saved after
`--early-fraction` of the steps.

Usage (GPU machine): python3 tools/train_demo_model.py        (the defaults made the bundled model: 1300 steps of
                     64 x 512 tokens, load-balancing coefficient 0.003; about 2 minutes on one H100)
      resume:        python3 tools/train_demo_model.py --resume   (from <work>/state.pt, after a --stop-after)
      smoke test:    python3 tools/train_demo_model.py --smoke                 (tiny model, a few steps, CPU is fine)
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import time

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import MixtralConfig, MixtralForCausalLM, PreTrainedTokenizerFast

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NAME = "moescope-demo"
SEED = 20240611
VOCAB = 4096
EOS = "<|endoftext|>"
PAD = "<|pad|>"


def model_config(vocab_size: int, eos_id: int, pad_id: int, smoke: bool = False, aux_coef: float = 0.003) -> MixtralConfig:
    """6 layers x 8 experts (top-2) of hidden 256 and expert width 160: 9.2 M parameters, 18.4 MB in bf16."""
    return MixtralConfig(
        vocab_size=vocab_size,
        hidden_size=64 if smoke else 256,
        intermediate_size=32 if smoke else 160,
        num_hidden_layers=2 if smoke else 6,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=8,
        num_experts_per_tok=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        sliding_window=None,
        tie_word_embeddings=False,
        initializer_range=0.02,
        router_aux_loss_coef=aux_coef,
        output_router_logits=True,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )


def build_model(config: MixtralConfig, seed: int = SEED, attn: str = "sdpa", experts: str | None = None):
    """The model with its initial weights: transformers' own initialisation under `torch.manual_seed(seed)`, on the
    CPU in float32. Called with the same config and seed, it returns the same untrained model anywhere."""
    torch.manual_seed(seed)
    kwargs = {"attn_implementation": attn}
    if experts:
        kwargs["experts_implementation"] = experts
    return MixtralForCausalLM._from_config(config, dtype=torch.float32, **kwargs)


def read_docs(path: str) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE (GPT-2 style): every byte is representable, code whitespace survives."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def fast_tokenizer(tok: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token=EOS, pad_token=PAD)


def save_tokenizer(tok: Tokenizer, out_dir: str) -> None:
    fast_tokenizer(tok).save_pretrained(out_dir)
    for extra in ("special_tokens_map.json", "chat_template.jinja"):
        if os.path.exists(os.path.join(out_dir, extra)):
            os.remove(os.path.join(out_dir, extra))


def token_stream(tok: Tokenizer, docs: list[dict], eos_id: int) -> torch.Tensor:
    ids: list[int] = []
    for enc in tok.encode_batch([d["text"] for d in docs]):
        ids.append(eos_id)
        ids.extend(enc.ids)
    return torch.tensor(ids, dtype=torch.int32)


def batch_at(stream: torch.Tensor, step: int, batch: int, seq: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, len(stream) - seq, (batch,), generator=g)
    return torch.stack([stream[s:s + seq] for s in starts.tolist()]).long()


def load_balancing_loss(router_logits: tuple, num_experts: int, top_k: int) -> torch.Tensor:
    """Mean over layers of E · Σ_e f_e · P_e; equals top_k when a layer's load and probabilities are uniform."""
    losses = []
    for logits in router_logits:
        probs = torch.softmax(logits.float(), dim=-1)
        chosen = torch.topk(probs, top_k, dim=-1).indices
        f = torch.bincount(chosen.reshape(-1), minlength=num_experts).float() / logits.shape[0]
        losses.append(num_experts * (f * probs.mean(dim=0)).sum())
    return torch.stack(losses).mean()


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@torch.no_grad()
def evaluate(model, val: torch.Tensor, device: str, seq: int, batches: int, batch: int) -> float:
    """Mean next-token loss on fixed windows spread evenly over the validation stream (no aux loss)."""
    model.eval()
    n = batches * batch
    starts = torch.linspace(0, len(val) - seq - 1, n).long().tolist()
    total, count = 0.0, 0
    for i in range(0, n, batch):
        x = torch.stack([val[s:s + seq] for s in starts[i:i + batch]]).long().to(device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(input_ids=x, output_router_logits=False).logits.float()
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        total += loss.item() * x[:, 1:].numel()
        count += x[:, 1:].numel()
    model.train()
    return total / count


def save_model(model, config: MixtralConfig, tok: Tokenizer, out_dir: str) -> None:
    """bf16 checkpoint as transformers writes Mixtral (per-expert w1/w2/w3 names), plus the tokenizer."""
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    cfg = MixtralConfig.from_dict(config.to_dict())
    cfg.output_router_logits = False
    clone = MixtralForCausalLM._from_config(cfg, dtype=torch.bfloat16)
    clone.load_state_dict({k: v.detach().to("cpu", torch.bfloat16) for k, v in model.state_dict().items()})
    clone.save_pretrained(out_dir)
    if os.path.exists(os.path.join(out_dir, "generation_config.json")):
        os.remove(os.path.join(out_dir, "generation_config.json"))
    save_tokenizer(tok, out_dir)


def param_groups(model, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and "norm" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(ROOT, ".data", "demo"))
    ap.add_argument("--work", default=os.path.join(ROOT, ".data", "demo-run"))
    ap.add_argument("--out", default=os.path.join(ROOT, "public", "models"))
    ap.add_argument("--name", default=NAME)
    ap.add_argument("--steps", type=int, default=1300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--early-fraction", type=float, default=0.05)
    ap.add_argument("--aux-coef", type=float, default=0.003, help="load-balancing loss weight (router_aux_loss_coef)")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-batches", type=int, default=8)
    ap.add_argument("--experts", default=None, help="transformers experts_implementation (default: its choice)")
    ap.add_argument("--stop-after", type=float, default=0, help="seconds; save state.pt and stop (resume later)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny model and data, for checking the script")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True  # training only; the analysis and fixtures run without TF32
    os.makedirs(args.work, exist_ok=True)
    t0 = time.time()

    train_docs = read_docs(os.path.join(args.data, "train.jsonl.gz"))
    val_docs = read_docs(os.path.join(args.data, "val.jsonl.gz"))
    if args.smoke:
        train_docs, val_docs = train_docs[::20], val_docs[::10]
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(train_docs))  # tokenizer input order, fixed by the seed
    tok_path = os.path.join(args.work, "tokenizer.json")
    if args.resume and os.path.exists(tok_path):
        tok = Tokenizer.from_file(tok_path)
    else:
        tok = train_tokenizer([train_docs[i]["text"] for i in order], 512 if args.smoke else VOCAB)
        tok.save(tok_path)
    eos_id, pad_id = tok.token_to_id(EOS), tok.token_to_id(PAD)
    train = token_stream(tok, train_docs, eos_id)
    val = token_stream(tok, val_docs, eos_id)
    t_data = time.time() - t0
    print(f"data: {len(train_docs)} train docs -> {len(train):,} tokens, {len(val_docs)} val docs -> {len(val):,} "
          f"tokens, vocab {tok.get_vocab_size()} ({t_data:.1f} s)", flush=True)

    config = model_config(tok.get_vocab_size(), eos_id, pad_id, smoke=args.smoke, aux_coef=args.aux_coef)
    model = build_model(config, args.seed, experts=args.experts).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.95), eps=1e-8,
                            fused=device == "cuda")
    state_path = os.path.join(args.work, "state.pt")
    log = {"seed": args.seed, "steps": args.steps, "aux_coef": args.aux_coef, "batch": args.batch, "seq": args.seq, "lr": args.lr,
           "warmup": args.warmup, "weight_decay": args.weight_decay, "params": n_params,
           "train_tokens": len(train), "val_tokens": len(val), "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
           "torch": torch.__version__, "experts_implementation": model.config._experts_implementation,
           "history": [], "evals": []}
    start = 0
    if args.resume and os.path.exists(state_path):
        state = torch.load(state_path, map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, log = state["step"], state["log"]
        print(f"resumed at step {start}", flush=True)
    early_step = max(1, round(args.steps * args.early_fraction))
    print(f"model: {n_params:,} parameters; {args.steps} steps of {args.batch}x{args.seq} tokens; early checkpoint "
          f"after step {early_step}; experts implementation {model.config._experts_implementation}", flush=True)

    model.train()
    t_train = time.time()
    step = start
    best = None  # (val loss, step, weights on the CPU); not kept across a resume, the resumed run re-measures
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        x = batch_at(train, step, args.batch, args.seq, args.seed).to(device, non_blocking=True)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            out = model(input_ids=x, output_router_logits=True)
        ce = torch.nn.functional.cross_entropy(out.logits[:, :-1].float().reshape(-1, out.logits.shape[-1]),
                                               x[:, 1:].reshape(-1))
        aux = load_balancing_loss(out.router_logits, config.num_local_experts, config.num_experts_per_tok)
        loss = ce + config.router_aux_loss_coef * aux
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if step % 25 == 0 or step == 1 or step == args.steps:
            ce, aux = ce.item(), aux.item()
            elapsed = time.time() - t_train
            log["history"].append({"step": step, "loss": round(ce, 4), "aux": round(aux, 4),
                                   "grad_norm": round(float(grad_norm), 3), "lr": opt.param_groups[0]["lr"],
                                   "seconds": round(elapsed, 1)})
            print(f"step {step:5d} loss {ce:.4f} aux {aux:.4f} |g| {float(grad_norm):.2f} "
                  f"{elapsed / max(1, step - start):.3f} s/step", flush=True)
        if step % args.eval_every == 0 or step == args.steps or step == early_step:
            v = evaluate(model, val, device, args.seq, args.eval_batches, args.batch)
            log["evals"].append({"step": step, "val_loss": round(v, 4)})
            print(f"step {step:5d} val loss {v:.4f} (ppl {math.exp(v):.1f})", flush=True)
            if step > early_step and (best is None or v < best[0]):
                best = (v, step, {k: t.detach().to("cpu", copy=True) for k, t in model.state_dict().items()})
        if step == early_step:
            save_model(model, config, tok, os.path.join(args.out, f"{args.name}-early"))
            log["early_step"] = step
        if args.stop_after and time.time() - t0 > args.stop_after and step < args.steps:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "log": log},
                       state_path)
            print(f"stopped at step {step} (time limit); resume with --resume", flush=True)
            return
    log["train_seconds"] = round(time.time() - t_train, 1)
    if best is not None and best[1] != step:
        model.load_state_dict(best[2])
    log["kept_step"] = best[1] if best is not None else step
    save_model(model, config, tok, os.path.join(args.out, args.name))
    with open(os.path.join(args.work, "train-log.json"), "w") as f:
        json.dump(log, f, indent=1)
    print(f"done: {step} steps in {log['train_seconds']} s; saved {args.out}/{args.name} and -early", flush=True)


if __name__ == "__main__":
    main()
