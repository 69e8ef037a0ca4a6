// A GGUF file as a model: metadata → MoeConfig, llama.cpp tensor names → the engine's load plan, tokenizer.ggml.* →
// a tokenizer. The config goes through the same normaliser as config.json (built from the GGUF keys after they are
// checked here, so errors name the GGUF key); the plan uses the canonical entries of src/io/weights.ts.
//
// llama.cpp names (llama-arch.cpp), row-major shapes as the reader reports them:
//   token_embd [V, H], output_norm [H], output [V, H] (absent: tied), per layer blk.{l}.:
//   attn_norm, ffn_norm [H]; attn_q [nH·d, H], attn_k/attn_v [nKV·d, H], attn_output [H, nH·d] (+ .bias);
//   attn_q_norm/attn_k_norm; ffn_gate_inp [E, H]; ffn_gate_exps/ffn_up_exps [E, I, H], ffn_down_exps [E, H, I];
//   Qwen2-MoE shared expert ffn_{gate,up,down}_shexp, ffn_gate_inp_shexp [1, H]; dense layers ffn_{gate,up,down}.
//   deepseek2 (MLA): attn_q [nH·(nope + rope), H] or attn_q_a [r, H], attn_q_a_norm [r], attn_q_b [nH·(nope + rope), r];
//   attn_kv_a_mqa [R + rope, H], attn_kv_a_norm [R]; attn_kv_b [nH·(nope + v), R] or (newer) attn_k_b [nH, R, nope]
//   (transposed per head) with attn_v_b [nH, v, R]; attn_output [H, nH·v]; exp_probs_b.bias [E] (sigmoid routing);
//   ffn_{gate,up,down}_shexp for the shared experts (n_shared·I wide) and ffn_{gate,up,down} in leading dense layers.
//   gpt-oss: post_attention_norm (for ffn_norm), attn_{q,k,v,output}.bias, attn_sinks [nH], ffn_gate_inp.bias [E],
//   experts as ffn_gate_exps + ffn_up_exps or one ffn_gate_up_exps [E, 2I, H] (gate rows first; de-interleaved from
//   transformers' layout by convert_hf_to_gguf.py), their biases [E, I] / [E, 2I] and ffn_down_exps.bias [E, H].
// The `llama` architecture (Mixtral) and `granitemoe` store q/k rows permuted for interleaved RoPE
// (convert_hf_to_gguf.py LlamaModel.permute): the plan reads those rows back into rotate-half order, row by row.
import type { ModelFamily, MoeConfig } from '../model/config';
import { tensorBytes, type TensorFormat } from '../model/dtypes';
import { normalizeConfig } from './config';
import { ModelFileError, UnsupportedModelError, field, tensorField } from './errors';
import { ggufTensorFormat, readGgufHeader, type GgufHeader, type GgufTensor, type GgufValue } from './gguf';
import type { ModelFolder } from './source';
import { ggufTokenizer } from './gguf-tokenizer';
import type { ModelTokenizer } from './tokenizer';
import type { LoadPlan, PlanEntry, TensorPart, TensorRole } from './weights';

/** llama.cpp architecture → the family whose engine path runs it. */
const ARCHITECTURES: Readonly<Record<string, ModelFamily>> = {
  llama: 'mixtral', qwen2moe: 'qwen2_moe', qwen3moe: 'qwen3_moe', olmoe: 'olmoe', granitemoe: 'granitemoe', 'gpt-oss': 'gpt_oss',
  deepseek2: 'deepseek_v2', // deepseek_v3 where the gating is sigmoid (familyOf)
};
/** Whether the chosen experts' weights are renormalised (llama.cpp: per architecture unless expert_weights_norm). */
const NORM_TOPK: Readonly<Record<string, boolean>> = {
  llama: true, qwen2moe: false, qwen3moe: true, olmoe: false, granitemoe: true, 'gpt-oss': true, deepseek2: false,
};
/** llama.cpp's expert_gating_func values. */
const GATING_SIGMOID = 2;
/** Architectures whose converter permutes q/k rows for interleaved RoPE. */
const PERMUTED_QK = new Set(['llama', 'granitemoe']);

/** Typed reads of GGUF metadata with errors naming the file and key. */
class Meta {
  constructor(readonly h: GgufHeader) {}

  fail(key: string, detail: string): never {
    throw new ModelFileError(this.h.file, field(key), detail);
  }

  has(key: string): boolean {
    return this.h.metadata.has(key);
  }

  num(key: string, fallback?: number): number {
    const v = this.h.metadata.get(key);
    if (v === undefined) {
      if (fallback === undefined) this.fail(key, 'missing');
      return fallback;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, `expected a number, found ${describe(v)}`);
    return v;
  }

  str(key: string, fallback?: string): string {
    const v = this.h.metadata.get(key);
    if (v === undefined) {
      if (fallback === undefined) this.fail(key, 'missing');
      return fallback;
    }
    if (typeof v !== 'string') this.fail(key, `expected a string, found ${describe(v)}`);
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.h.metadata.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') this.fail(key, `expected a bool, found ${describe(v)}`);
    return v;
  }

  /** An array whose elements all pass `check`. */
  list<T extends GgufValue>(key: string, what: string, check: (x: GgufValue) => x is T): T[] | null {
    const v = this.h.metadata.get(key);
    if (v === undefined) return null;
    if (!Array.isArray(v) || !v.every(check)) this.fail(key, `expected an array of ${what}`);
    return v as T[];
  }
}

const describe = (v: GgufValue): string => (Array.isArray(v) ? `an array of ${v.length}` : JSON.stringify(String(v)));
const isString = (x: GgufValue): x is string => typeof x === 'string';
const isNumber = (x: GgufValue): x is number => typeof x === 'number';

/** The model family of a GGUF file's architecture, or an UnsupportedModelError naming general.architecture. */
function familyOf(m: Meta): { arch: string; family: ModelFamily } {
  const arch = m.str('general.architecture');
  const family = Object.hasOwn(ARCHITECTURES, arch) ? ARCHITECTURES[arch] : undefined;
  if (!family) {
    throw new ModelFileError(m.h.file, field('general.architecture'),
      `"${arch}" is not a supported architecture (${Object.keys(ARCHITECTURES).join(', ')})`);
  }
  if (arch === 'llama' && m.num('llama.expert_count', 0) === 0) {
    throw new UnsupportedModelError(m.h.file, 'a llama GGUF without experts (llama.expert_count) is a dense model, not a MoE');
  }
  if (arch === 'deepseek2' && m.num('deepseek2.expert_gating_func', 1) === GATING_SIGMOID) return { arch, family: 'deepseek_v3' };
  return { arch, family };
}

/** MoeConfig from GGUF metadata (and tensor presence: tied output, dense layers). */
export function ggufConfig(h: GgufHeader): MoeConfig {
  const m = new Meta(h);
  const { arch, family } = familyOf(m);
  const k = (name: string) => `${arch}.${name}`;
  const layers = m.num(k('block_count'));
  const heads = m.num(k('attention.head_count'));
  const hidden = m.num(k('embedding_length'));
  // llama.cpp writes {arch}.vocab_size only when it differs from the token list's length.
  const tokens = m.list('tokenizer.ggml.tokens', 'strings', isString);
  const vocab = m.has(k('vocab_size')) || !tokens ? m.num(k('vocab_size')) : tokens.length;
  const json: Record<string, unknown> = {
    model_type: family,
    hidden_size: hidden,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: m.num(k('attention.head_count_kv'), heads),
    vocab_size: vocab,
    max_position_embeddings: m.num(k('context_length')),
    rms_norm_eps: m.num(k('attention.layer_norm_rms_epsilon')),
    rope_theta: m.num(k('rope.freq_base'), 10000),
    tie_word_embeddings: !h.tensors.has('output.weight'),
    num_experts: m.num(k('expert_count')),
    num_experts_per_tok: m.num(k('expert_used_count')),
    norm_topk_prob: m.bool(k('expert_weights_norm'), NORM_TOPK[arch]),
    torch_dtype: 'float32',
  };
  if (m.has(k('attention.key_length'))) json.head_dim = m.num(k('attention.key_length'));
  const rope = ropeScaling(m, arch);
  if (rope) json.rope_scaling = rope;
  const expertI = family === 'qwen2_moe' || family === 'qwen3_moe' || m.has(k('expert_feed_forward_length'))
    ? m.num(k('expert_feed_forward_length'))
    : m.num(k('feed_forward_length'));
  if (family === 'qwen2_moe' || family === 'qwen3_moe') {
    json.moe_intermediate_size = expertI;
    json.intermediate_size = m.num(k('feed_forward_length'), expertI);
    json.mlp_only_layers = [...Array(layers).keys()].filter((l) => !h.tensors.has(`blk.${l}.ffn_gate_inp.weight`));
    if (family === 'qwen2_moe') {
      json.shared_expert_intermediate_size = m.num(k('expert_shared_feed_forward_length'));
      json.qkv_bias = h.tensors.has('blk.0.attn_q.bias');
    }
  } else {
    json.intermediate_size = expertI;
  }
  if (m.has(k('attention.sliding_window'))) json.sliding_window = m.num(k('attention.sliding_window'));
  if (arch === 'deepseek2') {
    delete json.head_dim; // the MQA form's key_length; the per-head sizes are in deepseekFields
    Object.assign(json, deepseekFields(m, h, family));
  }
  if (family === 'gpt_oss') {
    json.layer_types = slidingPattern(m, k('attention.sliding_window_pattern'), layers)
      .map((slides) => (slides ? 'sliding_attention' : 'full_attention'));
    json.attention_bias = h.tensors.has('blk.0.attn_q.bias');
  }
  if (family === 'granitemoe') {
    json.embedding_multiplier = m.num(k('embedding_scale'), 1);
    json.residual_multiplier = m.num(k('residual_scale'), 1);
    json.attention_multiplier = m.num(k('attention.scale'), 1);
    json.logits_scaling = m.num(k('logit_scale'), 1);
  }
  return normalizeConfig(json, h.file);
}

/**
 * DeepSeek-V2/V3 (llama.cpp's deepseek2) as transformers' config fields. MLA dimensions: newer files describe the
 * attention as MQA over the latent (key_length = kv_lora_rank + rope, value_length = kv_lora_rank, head_count_kv 1)
 * with the per-head sizes in key_length_mla / value_length_mla; older ones give those in key_length / value_length.
 * Routing: expert_gating_func (1 softmax, 2 sigmoid with exp_probs_b as the correction bias), expert groups,
 * expert_weights_scale / _norm; leading_dense_block_count dense layers; expert_shared_count shared experts.
 */
function deepseekFields(m: Meta, h: GgufHeader, family: ModelFamily): Record<string, unknown> {
  const k = (name: string) => `deepseek2.${name}`;
  const rope = m.num(k('rope.dimension_count'));
  const mla = m.has(k('attention.key_length_mla'));
  const qk = m.num(k(mla ? 'attention.key_length_mla' : 'attention.key_length'));
  const groups = m.num(k('expert_group_count'), 1);
  const sigmoid = family === 'deepseek_v3';
  const fields: Record<string, unknown> = {
    kv_lora_rank: m.num(k('attention.kv_lora_rank')),
    qk_rope_head_dim: rope,
    qk_nope_head_dim: qk - rope,
    v_head_dim: m.num(k(mla ? 'attention.value_length_mla' : 'attention.value_length')),
    // MLA caches one latent per position; transformers' DeepSeek configs keep num_key_value_heads = heads.
    num_key_value_heads: m.num(k('attention.head_count')),
    n_shared_experts: m.num(k('expert_shared_count'), 0),
    first_k_dense_replace: m.num(k('leading_dense_block_count'), 0),
    moe_intermediate_size: m.num(k('expert_feed_forward_length')),
    intermediate_size: m.num(k('feed_forward_length')),
    routed_scaling_factor: m.num(k('expert_weights_scale'), 1),
    scoring_func: sigmoid ? 'sigmoid' : 'softmax',
    topk_method: sigmoid ? 'noaux_tc' : groups > 1 ? 'group_limited_greedy' : 'greedy',
    n_group: groups,
    topk_group: m.num(k('expert_group_used_count'), 1),
  };
  if (m.has(k('attention.q_lora_rank'))) fields.q_lora_rank = m.num(k('attention.q_lora_rank'));
  if (sigmoid && ![...h.tensors.keys()].some((n) => n.endsWith('.exp_probs_b.bias'))) {
    m.fail(k('expert_gating_func'), 'is sigmoid (DeepSeek-V3 routing) but no layer has an exp_probs_b correction bias');
  }
  return fields;
}

/**
 * rope.scaling.* as transformers' rope_scaling (null without scaling). YaRN: factor, original context and betas from
 * the file; gpt-oss's YaRN does not truncate its correction range (transformers' GptOssConfig; llama.cpp always does).
 */
function ropeScaling(m: Meta, arch: string): Record<string, unknown> | null {
  const k = (name: string) => `${arch}.rope.scaling.${name}`;
  const type = m.str(k('type'), 'none');
  if (type === 'none') return null;
  if (type === 'linear') return { rope_type: 'linear', factor: m.num(k('factor')) };
  if (type !== 'yarn') return { rope_type: type };
  const yarn: Record<string, unknown> = {
    rope_type: 'yarn',
    factor: m.num(k('factor')),
    original_max_position_embeddings: m.num(k('original_context_length')),
    beta_fast: m.num(k('yarn_beta_fast'), 32),
    beta_slow: m.num(k('yarn_beta_slow'), 1),
    truncate: arch !== 'gpt-oss',
  };
  // deepseek2: yarn_log_multiplier is 0.1 · mscale_all_dim (convert_hf_to_gguf.py); DeepSeek's mscale equals it.
  if (arch === 'deepseek2' && m.has(k('yarn_log_multiplier'))) yarn.mscale = yarn.mscale_all_dim = m.num(k('yarn_log_multiplier')) / 0.1;
  return yarn;
}

/**
 * Which layers use the sliding window: `attention.sliding_window_pattern` as one bool per layer, or a period n (layer
 * l slides unless l % n == n − 1); absent, llama.cpp's gpt-oss pattern (even layers slide).
 */
function slidingPattern(m: Meta, key: string, layers: number): boolean[] {
  const list = m.list(key, 'bools', (x): x is boolean => typeof x === 'boolean');
  if (list) {
    if (list.length !== layers) m.fail(key, `has ${list.length} entries for ${layers} layers`);
    return list;
  }
  const n = m.num(key, 2);
  if (!Number.isInteger(n) || n < 1) m.fail(key, `expected a positive integer period, found ${n}`);
  return Array.from({ length: layers }, (_, l) => l % n < n - 1);
}

// ---------------------------------------------------------------------------------------------------------------
// Load plan

class GgufPlanBuilder {
  readonly entries: PlanEntry[] = [];
  readonly used = new Set<string>();

  constructor(readonly h: GgufHeader, readonly c: MoeConfig, readonly permutedQk: boolean) {}

  tensor(name: string, shape: number[], what: string): { t: GgufTensor; format: TensorFormat } {
    const t = this.h.tensors.get(name);
    if (!t) throw new ModelFileError(this.h.file, tensorField(name), `missing (${what})`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new ModelFileError(this.h.file, tensorField(name), `has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}] (${what})`);
    }
    this.used.add(name);
    return { t, format: ggufTensorFormat(this.h.file, t) };
  }

  /** One entry from whole tensors; with several (gate, up), expert e's rows of each follow one another. */
  add(entryName: string, role: TensorRole, layer: number | null, shape: number[], names: string[], what: string, rowOrder?: number[]): void {
    const experts = shape.length === 3 ? shape[0] : 1;
    const partShape = [...shape];
    partShape[partShape.length - 2] = shape.length === 1 ? shape[0] : shape[shape.length - 2] / names.length;
    const tensors = names.map((n) => this.tensor(n, shape.length === 1 ? shape : partShape, what));
    const format = tensors[0].format;
    for (const x of tensors) {
      if (x.format !== format) {
        throw new ModelFileError(this.h.file, tensorField(x.t.name), `is ${x.t.typeName} but "${tensors[0].t.name}" is ${tensors[0].t.typeName}; the engine fuses them into one ${role} buffer of one format`);
      }
    }
    const byteLength = tensorBytes(format, shape)!;
    const parts: TensorPart[] = [];
    let dst = 0;
    const push = (t: GgufTensor, start: number, bytes: number) => {
      parts.push({ file: t.file, tensor: t.name, byteStart: t.begin + start, byteEnd: t.begin + start + bytes, dstOffset: dst });
      dst += bytes;
    };
    if (rowOrder) {
      const rowBytes = byteLength / shape[0];
      for (const r of rowOrder) push(tensors[0].t, r * rowBytes, rowBytes);
    } else {
      for (let e = 0; e < experts; e++) {
        for (const { t } of tensors) {
          const each = (t.end - t.begin) / experts;
          push(t, e * each, each);
        }
      }
    }
    this.entries.push({ name: entryName, role, layer, shape, dtype: format, byteLength, parts });
  }

  /** [E, 2·I] f32 biases from per-expert [E, I] gate and up tensors: expert e's gate biases, then its up biases. */
  addGateUpBias(entryName: string, layer: number, E: number, I: number, gate: string, up: string, what: string): void {
    const tensors = [gate, up].map((n) => this.tensor(n, [E, I], what).t);
    const parts: TensorPart[] = [];
    for (let e = 0; e < E; e++) {
      for (const t of tensors) {
        if (t.typeName !== 'F32') throw new ModelFileError(this.h.file, tensorField(t.name), `is ${t.typeName}; expert biases must be F32`);
        parts.push({ file: t.file, tensor: t.name, byteStart: t.begin + e * I * 4, byteEnd: t.begin + (e + 1) * I * 4, dstOffset: parts.length * I * 4 });
      }
    }
    this.entries.push({ name: entryName, role: 'expertsGateUpBias', layer, shape: [E, 2 * I], dtype: 'f32', byteLength: E * 2 * I * 4, parts });
  }

  /** DeepSeek's multi-head latent attention projections of layer l (MoeConfig.mla). */
  mla(l: number, m: NonNullable<MoeConfig['mla']>): void {
    const { c } = this;
    const H = c.hiddenSize, nH = c.numHeads, R = m.kvLoraRank, nope = m.qkNopeHeadDim, V = m.vHeadDim;
    const p = `layers.${l}`, g = `blk.${l}.`, at = `layer ${l}`;
    const qOut = nH * (nope + m.qkRopeHeadDim);
    if (m.qLoraRank === null) {
      this.add(`${p}.q`, 'q', l, [qOut, H], [`${g}attn_q.weight`], `${at} q`);
    } else {
      this.add(`${p}.qA`, 'qA', l, [m.qLoraRank, H], [`${g}attn_q_a.weight`], `${at} q_a`);
      this.add(`${p}.qANorm`, 'qANorm', l, [m.qLoraRank], [`${g}attn_q_a_norm.weight`], `${at} q_a norm`);
      this.add(`${p}.qB`, 'qB', l, [qOut, m.qLoraRank], [`${g}attn_q_b.weight`], `${at} q_b`);
    }
    this.add(`${p}.kvA`, 'kvA', l, [R + m.qkRopeHeadDim, H], [`${g}attn_kv_a_mqa.weight`], `${at} kv_a_mqa`);
    this.add(`${p}.kvANorm`, 'kvANorm', l, [R], [`${g}attn_kv_a_norm.weight`], `${at} kv_a norm`);
    if (this.h.tensors.has(`${g}attn_kv_b.weight`)) {
      this.add(`${p}.kvB`, 'kvB', l, [nH * (nope + V), R], [`${g}attn_kv_b.weight`], `${at} kv_b`);
    } else {
      // Per head: k_b [R, nope] (kv_b's first nope rows, transposed by the converter), then v_b [V, R].
      const kb = this.tensor(`${g}attn_k_b.weight`, [nH, R, nope], `${at} k_b (or attn_kv_b)`);
      const vb = this.tensor(`${g}attn_v_b.weight`, [nH, V, R], `${at} v_b`);
      for (const x of [kb, vb]) {
        if (x.format !== c.weightDtype) {
          throw new ModelFileError(this.h.file, tensorField(x.t.name), `is ${x.t.typeName}; the MLA absorption reads kv_b in the model's ${c.weightDtype.toUpperCase()}`);
        }
      }
      const bytes = c.weightDtype === 'f32' ? 4 : 2;
      const parts: TensorPart[] = [];
      let dst = 0;
      for (let h = 0; h < nH; h++) {
        for (const [{ t }, n] of [[kb, R * nope], [vb, V * R]] as const) {
          parts.push({ file: t.file, tensor: t.name, byteStart: t.begin + h * n * bytes, byteEnd: t.begin + (h + 1) * n * bytes, dstOffset: dst });
          dst += n * bytes;
        }
      }
      this.entries.push({
        name: `${p}.kvB`, role: 'kvB', layer: l, shape: [nH * (nope + V), R], dtype: c.weightDtype, byteLength: dst, parts,
        stored: { count: nH, rows: nope + V, cols: R, transposed: false, interleavedRows: false, transposedHead: nope },
      });
    }
    this.add(`${p}.o`, 'o', l, [H, nH * V], [`${g}attn_output.weight`], `${at} o`);
  }

  /** GGUF row of each rotate-half row: row t·d/2 + j of a head is the file's row 2j + t of that head. */
  unpermute(rows: number, headDim: number): number[] {
    const order: number[] = [];
    for (let h = 0; h < rows / headDim; h++) {
      for (let t = 0; t < 2; t++) for (let j = 0; j < headDim / 2; j++) order.push(h * headDim + 2 * j + t);
    }
    return order;
  }
}

/** The load plan of a GGUF file for `config` (from ggufConfig). */
export function buildGgufLoadPlan(h: GgufHeader, c: MoeConfig): LoadPlan {
  const arch = new Meta(h).str('general.architecture');
  const b = new GgufPlanBuilder(h, c, PERMUTED_QK.has(arch));
  const H = c.hiddenSize;
  const d = c.headDim;
  const qDim = c.numHeads * d;
  const kvDim = c.numKvHeads * d;
  const E = c.numExperts;
  const I = c.moeIntermediateSize;
  b.add('embed', 'embed', null, [c.vocabSize, H], ['token_embd.weight'], 'token embedding');
  for (let l = 0; l < c.numLayers; l++) {
    const p = `layers.${l}`;
    const g = `blk.${l}.`;
    const at = `layer ${l}`;
    b.add(`${p}.inputNorm`, 'inputNorm', l, [H], [`${g}attn_norm.weight`], `${at} attention norm`);
    if (c.mla) {
      b.mla(l, c.mla);
    } else {
      b.add(`${p}.q`, 'q', l, [qDim, H], [`${g}attn_q.weight`], `${at} q`, b.permutedQk ? b.unpermute(qDim, d) : undefined);
      b.add(`${p}.k`, 'k', l, [kvDim, H], [`${g}attn_k.weight`], `${at} k`, b.permutedQk ? b.unpermute(kvDim, d) : undefined);
      b.add(`${p}.v`, 'v', l, [kvDim, H], [`${g}attn_v.weight`], `${at} v`);
      b.add(`${p}.o`, 'o', l, [H, qDim], [`${g}attn_output.weight`], `${at} o`);
      if (c.attentionBias) {
        b.add(`${p}.qBias`, 'qBias', l, [qDim], [`${g}attn_q.bias`], `${at} q bias`);
        b.add(`${p}.kBias`, 'kBias', l, [kvDim], [`${g}attn_k.bias`], `${at} k bias`);
        b.add(`${p}.vBias`, 'vBias', l, [kvDim], [`${g}attn_v.bias`], `${at} v bias`);
      }
      if (c.outputBias) b.add(`${p}.oBias`, 'oBias', l, [H], [`${g}attn_output.bias`], `${at} o bias`);
      if (c.attentionSinks) b.add(`${p}.attnSinks`, 'attnSinks', l, [c.numHeads], [`${g}attn_sinks.weight`], `${at} attention sinks`);
      if (c.qkNorm !== 'none') {
        const full = c.qkNorm === 'full';
        b.add(`${p}.qNorm`, 'qNorm', l, [full ? qDim : d], [`${g}attn_q_norm.weight`], `${at} q norm`);
        b.add(`${p}.kNorm`, 'kNorm', l, [full ? kvDim : d], [`${g}attn_k_norm.weight`], `${at} k norm`);
      }
    }
    const postNorm = arch === 'gpt-oss' ? 'post_attention_norm' : 'ffn_norm';
    b.add(`${p}.postAttnNorm`, 'postAttnNorm', l, [H], [`${g}${postNorm}.weight`], `${at} FFN norm`);
    if (c.moeLayers[l]) {
      b.add(`${p}.router`, 'router', l, [E, H], [`${g}ffn_gate_inp.weight`], `${at} router`);
      if (c.router.hasCorrectionBias) b.add(`${p}.routerCorrectionBias`, 'routerCorrectionBias', l, [E], [`${g}exp_probs_b.bias`], `${at} router correction bias`);
      if (c.router.hasBias) b.add(`${p}.routerBias`, 'routerBias', l, [E], [`${g}ffn_gate_inp.bias`], `${at} router bias`);
      // One fused gate/up tensor (newer llama.cpp) or gate and up apart.
      const fused = h.tensors.has(`${g}ffn_gate_up_exps.weight`);
      const gateUp = fused ? [`${g}ffn_gate_up_exps`] : [`${g}ffn_gate_exps`, `${g}ffn_up_exps`];
      b.add(`${p}.expertsGateUp`, 'expertsGateUp', l, [E, 2 * I, H], gateUp.map((n) => `${n}.weight`), `${at} experts gate/up`);
      b.add(`${p}.expertsDown`, 'expertsDown', l, [E, H, I], [`${g}ffn_down_exps.weight`], `${at} experts down`);
      if (c.expertBias) {
        if (fused) b.add(`${p}.expertsGateUpBias`, 'expertsGateUpBias', l, [E, 2 * I], [`${g}ffn_gate_up_exps.bias`], `${at} experts gate/up bias`);
        else b.addGateUpBias(`${p}.expertsGateUpBias`, l, E, I, `${g}ffn_gate_exps.bias`, `${g}ffn_up_exps.bias`, `${at} experts gate/up bias`);
        b.add(`${p}.expertsDownBias`, 'expertsDownBias', l, [E, H], [`${g}ffn_down_exps.bias`], `${at} experts down bias`);
      }
      if (c.sharedExpert) {
        const Is = c.sharedExpert.intermediateSize;
        b.add(`${p}.sharedGateUp`, 'sharedGateUp', l, [2 * Is, H], [`${g}ffn_gate_shexp.weight`, `${g}ffn_up_shexp.weight`], `${at} shared expert gate/up`);
        b.add(`${p}.sharedDown`, 'sharedDown', l, [H, Is], [`${g}ffn_down_shexp.weight`], `${at} shared expert down`);
        if (c.sharedExpert.gated) b.add(`${p}.sharedGate`, 'sharedGate', l, [1, H], [`${g}ffn_gate_inp_shexp.weight`], `${at} shared expert gate`);
      }
    } else {
      const Id = c.intermediateSize;
      b.add(`${p}.denseGateUp`, 'denseGateUp', l, [2 * Id, H], [`${g}ffn_gate.weight`, `${g}ffn_up.weight`], `${at} MLP gate/up`);
      b.add(`${p}.denseDown`, 'denseDown', l, [H, Id], [`${g}ffn_down.weight`], `${at} MLP down`);
    }
  }
  b.add('finalNorm', 'finalNorm', null, [H], ['output_norm.weight'], 'final norm');
  if (!c.tieWordEmbeddings) b.add('lmHead', 'lmHead', null, [c.vocabSize, H], ['output.weight'], 'output projection');
  return {
    family: c.family,
    dtype: c.weightDtype,
    ffnOnly: false,
    entries: b.entries,
    totalBytes: b.entries.reduce((s, e) => s + e.byteLength, 0),
    tiedLmHead: c.tieWordEmbeddings,
    expertLayouts: c.moeLayers.map((moe) => (moe ? 'fused' : null)),
    unused: [...h.tensors.keys()].filter((n) => !b.used.has(n)).sort(),
  };
}

export interface OpenedGguf {
  folder: ModelFolder;
  file: string;
  header: GgufHeader;
  config: MoeConfig;
  plan: LoadPlan;
  tokenizer: ModelTokenizer;
}

/** llama.cpp's gguf-split names: PREFIX-00001-of-00003.gguf (1-based part, part count). */
const SPLIT_NAME = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/i;

function splitName(file: string): { prefix: string; part: number; count: number } | null {
  const m = SPLIT_NAME.exec(file);
  return m ? { prefix: m[1], part: Number(m[2]), count: Number(m[3]) } : null;
}

const partName = (prefix: string, part: number, count: number) =>
  `${prefix}-${String(part).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.gguf`;

/**
 * The GGUF file a model folder (or a set of dropped files) holds — for a split GGUF its first part — or null when it
 * is a transformers folder (it has a config.json) or has no .gguf file. Several GGUF files that are not the parts of
 * one split model are an error naming them; so is a split model with a part missing.
 */
export async function findGguf(folder: ModelFolder): Promise<string | null> {
  if (await folder.has('config.json')) return null;
  const files = (await folder.list()).filter((f) => f.toLowerCase().endsWith('.gguf'));
  if (files.length === 0) return null;
  const split = files.map(splitName);
  const first = split[0];
  const oneSet = first !== null && split.every((s) => s !== null && s.prefix === first.prefix && s.count === first.count);
  if (!oneSet) {
    if (files.length === 1) return files[0];
    throw new ModelFileError(files[0], null, `one GGUF model per folder is supported; ${folder.location} has ${files.length} GGUF files that are not the parts of one split model (${files.join(', ')})`);
  }
  const have = new Set(split.map((s) => s!.part));
  for (let part = 1; part <= first.count; part++) {
    if (!have.has(part)) {
      throw new ModelFileError(partName(first.prefix, part, first.count), null,
        `missing: part ${part} of the ${first.count}-part GGUF model ${first.prefix} (${folder.location} has ${files.length})`);
    }
  }
  return files[split.findIndex((s) => s!.part === 1)];
}

/**
 * The headers of a split GGUF's parts as one: metadata from the first part, tensors from all (each naming its file).
 * Each part must say it is part i of n (split.no, split.count), and the tensors must add up to split.tensors.count.
 */
function joinSplit(parts: GgufHeader[]): GgufHeader {
  const [first] = parts;
  const tensors = new Map<string, GgufTensor>();
  parts.forEach((h, i) => {
    const m = new Meta(h);
    if (m.num('split.count') !== parts.length) m.fail('split.count', `is ${m.num('split.count')}, but the file name says ${parts.length} parts`);
    if (m.num('split.no') !== i) m.fail('split.no', `is ${m.num('split.no')} (part ${m.num('split.no') + 1}), but the file name says part ${i + 1}`);
    for (const [name, t] of h.tensors) {
      if (tensors.has(name)) throw new ModelFileError(h.file, tensorField(name), `is also in ${tensors.get(name)!.file}`);
      tensors.set(name, t);
    }
  });
  const total = new Meta(first).num('split.tensors.count');
  if (total !== tensors.size) new Meta(first).fail('split.tensors.count', `is ${total}, but the ${parts.length} parts hold ${tensors.size} tensors`);
  return { ...first, fileSize: parts.reduce((s, h) => s + h.fileSize, 0), tensors };
}

async function readHeader(folder: ModelFolder, file: string): Promise<GgufHeader> {
  const src = await folder.open(file);
  try {
    return await readGgufHeader(src);
  } finally {
    await src.close();
  }
}

/**
 * Opens a GGUF file of a folder (or of dropped files; a split model's first part, with the others beside it):
 * header(s), config, load plan with every tensor's type and shape checked, tokenizer. Reads only headers, never tensor
 * data. An architecture the engine cannot run is an error naming general.architecture.
 */
export async function openGguf(folder: ModelFolder, file: string): Promise<OpenedGguf> {
  const split = splitName(file);
  const header = split && split.count > 1
    ? joinSplit(await Promise.all(Array.from({ length: split.count }, (_, i) => readHeader(folder, partName(split.prefix, i + 1, split.count)))))
    : await readHeader(folder, file);
  const config = ggufConfig(header);
  if (config.unsupported) throw new UnsupportedModelError(file, config.unsupported);
  const plan = buildGgufLoadPlan(header, config);
  const tokenizer = ggufTokenizer(header);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new ModelFileError(file, field('tokenizer.ggml.tokens'), `has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${config.vocabSize}`);
  }
  return { folder, file, header, config, plan, tokenizer };
}
