// config.json → MoeConfig, for every supported family, in one place.
//
// Field names and defaults follow transformers' configuration_<family>.py (v4 and v5 spellings: `rope_theta` or
// `rope_parameters.rope_theta`, `torch_dtype` or `dtype`). Sizes that define the architecture (vocab, hidden,
// layers, heads, expert counts and sizes, k) are required: a config.json missing one is an error naming the field,
// never a silent default. Everything transformers defaults per family is defaulted the same way here.
//
// Models the engine can draw but not run (RoPE scaling types it lacks, quantised checkpoints, …) are still normalised, with
// `unsupported` set to the reasons; config-only mode draws them, openModel refuses them.
import type { WeightDtype } from '../model/dtypes';
import type { MlaConfig, ModelFamily, MoeConfig, RouterConfig, SharedExpertConfig } from '../model/config';
import { MAX_EXPERTS, MAX_LAYERS } from '../model/limits';
import { deepseekSoftmaxMultiplier, type RopeScaling } from '../model/rope';
import { ModelFileError, TOP_LEVEL, field } from './errors';
import { parseRopeScaling } from './rope-config';

export const SUPPORTED_FAMILIES: readonly ModelFamily[] = [
  'mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'granitemoe', 'deepseek_v2', 'deepseek_v3', 'gpt_oss',
];

/** Reads typed fields of one config.json, with errors naming the file and the field. */
class Fields {
  constructor(readonly json: Record<string, unknown>, readonly source: string) {}

  /**
   * The first of `names` present in the file, else the first: transformers' attribute_map aliases (5.17 writes
   * qwen3_moe's expert count as num_local_experts, qwen2_moe's as num_experts).
   */
  name(...names: string[]): string {
    return names.find((n) => this.has(n)) ?? names[0];
  }

  has(name: string): boolean {
    return this.json[name] !== undefined && this.json[name] !== null;
  }

  fail(name: string, detail: string): never {
    throw new ModelFileError(this.source, field(name), detail);
  }

  private value(name: string): unknown {
    const v = this.json[name];
    return v === null ? undefined : v;
  }

  /** A positive integer; required unless a default is given. */
  int(name: string, fallback?: number): number {
    const v = this.value(name);
    if (v === undefined) {
      if (fallback === undefined) this.fail(name, 'missing');
      return fallback;
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) this.fail(name, `expected a positive integer, found ${JSON.stringify(v)}`);
    return v;
  }

  /** A non-negative integer (counts that may be 0, like first_k_dense_replace). */
  count(name: string, fallback?: number): number {
    const v = this.value(name);
    if (v === undefined) {
      if (fallback === undefined) this.fail(name, 'missing');
      return fallback;
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.fail(name, `expected a non-negative integer, found ${JSON.stringify(v)}`);
    return v;
  }

  /** A finite number > 0. */
  positive(name: string, fallback?: number): number {
    const v = this.value(name);
    if (v === undefined) {
      if (fallback === undefined) this.fail(name, 'missing');
      return fallback;
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(name, `expected a positive number, found ${JSON.stringify(v)}`);
    return v;
  }

  /** `value` of field `name`, refused above `max` (sizes that arrays are made from). */
  atMost(name: string, value: number, max: number): number {
    if (value > max) this.fail(name, `${value} is more than this app handles (${max})`);
    return value;
  }

  bool(name: string, fallback: boolean): boolean {
    const v = this.value(name);
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') this.fail(name, `expected true or false, found ${JSON.stringify(v)}`);
    return v;
  }

  str(name: string, fallback: string): string {
    const v = this.value(name);
    if (v === undefined) return fallback;
    if (typeof v !== 'string') this.fail(name, `expected a string, found ${JSON.stringify(v)}`);
    return v;
  }

  /** A list of layer indices in [0, numLayers). */
  layerList(name: string, numLayers: number): number[] {
    const v = this.value(name);
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every((i) => Number.isSafeInteger(i) && i >= 0 && i < numLayers)) {
      this.fail(name, `expected a list of layer indices in [0, ${numLayers}), found ${JSON.stringify(v)}`);
    }
    return v as number[];
  }
}

/** A reason the engine cannot run a model, naming the config.json field it comes from. */
const because = (name: string, detail: string): string => `${field(name)}: ${detail}`;

/** The MoeConfig fields every family reads the same way (shapes, norms, RoPE, embeddings, dtype). */
type Common = Pick<
  MoeConfig,
  | 'vocabSize' | 'hiddenSize' | 'numLayers' | 'numHeads' | 'numKvHeads' | 'headDim' | 'rmsNormEps' | 'ropeTheta'
  | 'maxPositions' | 'tieWordEmbeddings' | 'weightDtype'
> & { ropeScaling: RopeScaling };

interface FamilyDefaults {
  rmsNormEps: number;
  ropeTheta: number;
  maxPositions: number;
}

const DEFAULTS: Record<ModelFamily, FamilyDefaults> = {
  mixtral: { rmsNormEps: 1e-5, ropeTheta: 1e6, maxPositions: 4096 * 32 },
  qwen2_moe: { rmsNormEps: 1e-6, ropeTheta: 10000, maxPositions: 32768 },
  qwen3_moe: { rmsNormEps: 1e-6, ropeTheta: 10000, maxPositions: 32768 },
  olmoe: { rmsNormEps: 1e-5, ropeTheta: 10000, maxPositions: 4096 },
  granitemoe: { rmsNormEps: 1e-6, ropeTheta: 10000, maxPositions: 2048 },
  deepseek_v2: { rmsNormEps: 1e-6, ropeTheta: 10000, maxPositions: 2048 },
  deepseek_v3: { rmsNormEps: 1e-6, ropeTheta: 10000, maxPositions: 4096 },
  gpt_oss: { rmsNormEps: 1e-5, ropeTheta: 150000, maxPositions: 131072 },
};

const TORCH_DTYPES: Record<string, WeightDtype> = {
  float32: 'f32', float: 'f32', float16: 'f16', half: 'f16', bfloat16: 'bf16',
};

/**
 * The weight dtype config.json declares (`torch_dtype`, or v5's `dtype`), or null if it declares none
 * (openModel then takes the checkpoint's own dtype). An unknown dtype string is an error naming the field.
 */
export function declaredWeightDtype(json: unknown, source: string): WeightDtype | null {
  const obj = asObject(json, source);
  for (const name of ['dtype', 'torch_dtype']) {
    const v = obj[name];
    if (v === undefined || v === null) continue;
    const s = typeof v === 'string' ? v.replace(/^torch\./, '') : '';
    const d = Object.hasOwn(TORCH_DTYPES, s) ? TORCH_DTYPES[s] : undefined;
    if (!d) {
      throw new ModelFileError(source, field(name), `${JSON.stringify(v)} is not a weight dtype the engine reads (float32, float16, bfloat16)`);
    }
    return d;
  }
  return null;
}

function asObject(json: unknown, source: string): Record<string, unknown> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ModelFileError(source, TOP_LEVEL, 'is not a JSON object');
  }
  return json as Record<string, unknown>;
}

function readCommon(f: Fields, family: ModelFamily, unsupported: string[]): Common {
  const d = DEFAULTS[family];
  const hiddenSize = f.int('hidden_size');
  const numHeads = f.int('num_attention_heads');
  const numKvHeads = f.int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    f.fail('num_key_value_heads', `${numKvHeads} does not divide num_attention_heads (${numHeads})`);
  }
  let headDim: number;
  if (f.has('head_dim')) headDim = f.int('head_dim');
  else {
    if (hiddenSize % numHeads !== 0) f.fail('hidden_size', `${hiddenSize} is not divisible by num_attention_heads (${numHeads}) and head_dim is not given`);
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) f.fail('head_dim', `${headDim} is odd; rotary embeddings need an even head dimension`);

  // RoPE: v4 writes rope_theta and rope_scaling; v5 writes rope_parameters {rope_type, rope_theta, …}.
  let ropeTheta = d.ropeTheta;
  const rp = f.json.rope_parameters;
  if (rp !== undefined && rp !== null && typeof rp === 'object' && !Array.isArray(rp)) {
    const theta = (rp as Record<string, unknown>).rope_theta;
    if (theta !== undefined) {
      if (typeof theta !== 'number' || !(theta > 0)) f.fail('rope_parameters.rope_theta', `expected a positive number, found ${JSON.stringify(theta)}`);
      ropeTheta = theta;
    }
  }
  if (f.has('rope_theta')) ropeTheta = f.positive('rope_theta');
  const maxPositions = f.int('max_position_embeddings', d.maxPositions);
  const rope = parseRopeScaling(f.json, f.source, maxPositions);
  if ('unsupported' in rope) unsupported.push(rope.unsupported);

  const act = f.str('hidden_act', 'silu');
  if (act !== 'silu') unsupported.push(because('hidden_act', `"${act}" is not implemented (only silu)`));
  if (f.has('quantization_config')) unsupported.push(because('quantization_config', 'quantized checkpoints are not supported'));

  return {
    vocabSize: f.int('vocab_size'),
    hiddenSize,
    numLayers: f.atMost('num_hidden_layers', f.int('num_hidden_layers'), MAX_LAYERS),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: f.positive('rms_norm_eps', d.rmsNormEps),
    ropeTheta,
    maxPositions,
    ropeScaling: 'scaling' in rope ? rope.scaling : { type: 'default' },
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    weightDtype: declaredWeightDtype(f.json, f.source) ?? 'f32',
  };
}

function router(partial: Partial<RouterConfig> & { topK: number }): RouterConfig {
  return {
    scoring: 'softmax', normTopK: false, hasBias: false, hasCorrectionBias: false,
    nGroup: 1, topkGroup: 1, routedScalingFactor: 1, capacityFactor: 0,
    ...partial,
  };
}

function checkTopK(f: Fields, topKName: string, topK: number, numExperts: number, expertsName: string): void {
  f.atMost(expertsName, numExperts, MAX_EXPERTS);
  if (topK > numExperts) f.fail(topKName, `${topK} experts per token but the model has only ${numExperts}`);
}

/** Bias on q/k/v *and* o (Llama-style attention_bias); the engine implements q/k/v bias only (Qwen2-MoE's). */
function llamaAttentionBias(f: Fields, unsupported: string[]): void {
  if (f.bool('attention_bias', false)) unsupported.push(because('attention_bias', 'true (a bias on q/k/v/o_proj) is not implemented for this family'));
}

function finish(
  f: Fields, family: ModelFamily, c: Common, unsupported: string[],
  rest: Omit<MoeConfig, keyof Common | 'family' | 'source' | 'unsupported'>,
): MoeConfig {
  const config: MoeConfig = { family, source: f.source, ...c, ...rest };
  if (unsupported.length > 0) config.unsupported = unsupported.join('; ');
  return config;
}

const NORMALISERS: Record<ModelFamily, (f: Fields, family: ModelFamily) => MoeConfig> = {
  mixtral(f, family) {
    const unsupported: string[] = [];
    const c = readCommon(f, family, unsupported);
    const expertsName = f.name('num_local_experts', 'num_experts');
    const numExperts = f.int(expertsName);
    const topK = f.int('num_experts_per_tok');
    checkTopK(f, 'num_experts_per_tok', topK, numExperts, expertsName);
    return finish(f, family, c, unsupported, {
      intermediateSize: 0,
      moeIntermediateSize: f.int('intermediate_size'),
      numExperts,
      router: router({ topK, normTopK: true }), // Mixtral always renormalises the top-k weights
      sharedExpert: null,
      moeLayers: new Array(c.numLayers).fill(true),
      slidingWindow: f.has('sliding_window') ? f.int('sliding_window') : null,
      qkNorm: 'none',
      attentionBias: false,
      embeddingMultiplier: 1, residualMultiplier: 1, logitsScaling: 1,
      attentionScale: 1 / Math.sqrt(c.headDim),
    });
  },

  qwen2_moe: (f, family) => qwen(f, family),
  qwen3_moe: (f, family) => qwen(f, family),

  olmoe(f, family) {
    const unsupported: string[] = [];
    const c = readCommon(f, family, unsupported);
    llamaAttentionBias(f, unsupported);
    if (f.has('clip_qkv')) unsupported.push(because('clip_qkv', `${JSON.stringify(f.json.clip_qkv)} is not implemented`));
    const expertsName = f.name('num_experts', 'num_local_experts');
    const numExperts = f.int(expertsName);
    const topK = f.int('num_experts_per_tok');
    checkTopK(f, 'num_experts_per_tok', topK, numExperts, expertsName);
    return finish(f, family, c, unsupported, {
      intermediateSize: 0,
      moeIntermediateSize: f.int('intermediate_size'), // OLMoE's experts use intermediate_size
      numExperts,
      router: router({ topK, normTopK: f.bool('norm_topk_prob', false) }),
      sharedExpert: null,
      moeLayers: new Array(c.numLayers).fill(true),
      slidingWindow: null,
      qkNorm: 'full', // q_norm over num_heads·head_dim, k_norm over num_kv_heads·head_dim
      attentionBias: false,
      embeddingMultiplier: 1, residualMultiplier: 1, logitsScaling: 1,
      attentionScale: 1 / Math.sqrt(c.headDim),
    });
  },

  granitemoe(f, family) {
    const unsupported: string[] = [];
    const c = readCommon(f, family, unsupported);
    llamaAttentionBias(f, unsupported);
    const expertsName = f.name('num_local_experts', 'num_experts');
    const numExperts = f.int(expertsName);
    const topK = f.int('num_experts_per_tok');
    checkTopK(f, 'num_experts_per_tok', topK, numExperts, expertsName);
    return finish(f, family, c, unsupported, {
      intermediateSize: 0,
      moeIntermediateSize: f.int('intermediate_size'), // GraniteMoeMoE's experts use intermediate_size
      numExperts,
      // Top-k over logits then softmax over those k: the same as softmax over all, then renormalised.
      router: router({ topK, normTopK: true }),
      sharedExpert: null,
      moeLayers: new Array(c.numLayers).fill(true),
      slidingWindow: null,
      qkNorm: 'none',
      attentionBias: false,
      embeddingMultiplier: f.positive('embedding_multiplier', 1),
      residualMultiplier: f.positive('residual_multiplier', 1),
      // GraniteMoeAttention.scaling = attention_multiplier: it replaces 1/sqrt(head_dim), it does not multiply it.
      attentionScale: f.positive('attention_multiplier', 1),
      logitsScaling: f.positive('logits_scaling', 1),
    });
  },

  deepseek_v2: (f, family) => deepseek(f, family),
  deepseek_v3: (f, family) => deepseek(f, family),
  gpt_oss: (f, family) => gptOss(f, family),
};

/** Qwen2-MoE and Qwen3-MoE: decoder_sparse_step and mlp_only_layers pick the MoE layers. */
function qwen(f: Fields, family: ModelFamily): MoeConfig {
  const unsupported: string[] = [];
  const c = readCommon(f, family, unsupported);
  const isQwen2 = family === 'qwen2_moe';
  if (!isQwen2) llamaAttentionBias(f, unsupported);
  const expertsName = f.name('num_experts', 'num_local_experts');
  const numExperts = f.count(expertsName);
  const topK = f.int('num_experts_per_tok');
  const step = f.int('decoder_sparse_step', 1);
  const mlpOnly = new Set(f.layerList('mlp_only_layers', c.numLayers));
  // Qwen2MoeDecoderLayer: MoE where layer ∉ mlp_only_layers and num_experts > 0 and (layer + 1) % step == 0.
  const moeLayers = Array.from({ length: c.numLayers }, (_, l) => !mlpOnly.has(l) && numExperts > 0 && (l + 1) % step === 0);
  f.atMost(expertsName, numExperts, MAX_EXPERTS);
  if (numExperts > 0) checkTopK(f, 'num_experts_per_tok', topK, numExperts, expertsName);
  const hasDense = moeLayers.some((m) => !m);
  let slidingWindow: number | null = null;
  const layerTypes = f.json.layer_types;
  if (isQwen2 && Array.isArray(layerTypes) && layerTypes.some((t) => t !== 'full_attention')) {
    unsupported.push(because('layer_types', 'sliding-window layers are not implemented for Qwen2-MoE (one attention kind for all layers)'));
  } else if (f.bool('use_sliding_window', false)) {
    if (isQwen2) {
      // Qwen2-MoE slides only on some layers (layer_types); the engine has one window for all layers.
      unsupported.push(because('use_sliding_window', 'true (sliding window on some layers only) is not implemented for Qwen2-MoE'));
    } else {
      slidingWindow = f.int('sliding_window');
    }
  }
  let sharedExpert: SharedExpertConfig | null = null;
  if (isQwen2) {
    const size = f.count('shared_expert_intermediate_size');
    if (size > 0) sharedExpert = { intermediateSize: size, gated: true };
  }
  return finish(f, family, c, unsupported, {
    intermediateSize: hasDense ? f.int('intermediate_size') : 0,
    moeIntermediateSize: f.int('moe_intermediate_size'),
    numExperts,
    router: router({ topK, normTopK: f.bool('norm_topk_prob', false) }),
    sharedExpert,
    moeLayers,
    slidingWindow,
    qkNorm: isQwen2 ? 'none' : 'head',
    // Qwen2-MoE: bias on q, k, v (qkv_bias, True unless set; v4 configs lack the field and always had it), none on o.
    attentionBias: isQwen2 ? f.bool('qkv_bias', true) : false,
    embeddingMultiplier: 1, residualMultiplier: 1, logitsScaling: 1,
    attentionScale: 1 / Math.sqrt(c.headDim),
  });
}

/**
 * DeepSeek-V2/V3: multi-head latent attention (MlaConfig), YaRN with mscale on the softmax, first_k_dense_replace dense
 * layers, and the family's routing. Group-limited routing differs: V2's group_limited_greedy ranks groups by their best
 * expert, V3's noaux_tc by the sum of their two best (bias-corrected) sigmoid scores.
 */
function deepseek(f: Fields, family: ModelFamily): MoeConfig {
  const unsupported: string[] = [];
  const c = readCommon(f, family, unsupported);
  const v3 = family === 'deepseek_v3';
  const qLoraRank = f.has('q_lora_rank') ? f.int('q_lora_rank') : null;
  const mla: MlaConfig = {
    qLoraRank,
    kvLoraRank: f.int('kv_lora_rank', 512),
    qkNopeHeadDim: f.int('qk_nope_head_dim', 128),
    qkRopeHeadDim: f.int('qk_rope_head_dim', 64),
    vHeadDim: f.int('v_head_dim', 128),
    // V2 rotates (2i, 2i + 1) pairs (complex form); V3 too unless rope_interleave is false.
    ropeInterleave: v3 ? f.bool('rope_interleave', true) : true,
  };
  if (mla.qkRopeHeadDim % 2) f.fail('qk_rope_head_dim', `${mla.qkRopeHeadDim} is odd; rotary embeddings need an even dimension`);
  // The latent-space attention kernel reads cache rows as vec4 and accumulates up to 512 latent dimensions per head.
  if (mla.kvLoraRank % 4 || mla.qkRopeHeadDim % 4) {
    unsupported.push(because('kv_lora_rank', `${mla.kvLoraRank} and qk_rope_head_dim ${mla.qkRopeHeadDim} must be multiples of 4 for MLA attention`));
  }
  if (mla.kvLoraRank > 512) unsupported.push(because('kv_lora_rank', `${mla.kvLoraRank} above 512 is not implemented`));
  if (f.bool('attention_bias', false)) unsupported.push(because('attention_bias', 'true (biases on q_a_proj, kv_a_proj_with_mqa, o_proj) is not implemented'));
  const expertsName = f.name('n_routed_experts', 'num_local_experts', 'num_experts');
  const numExperts = f.int(expertsName);
  const topK = f.int('num_experts_per_tok');
  checkTopK(f, 'num_experts_per_tok', topK, numExperts, expertsName);
  const firstDense = f.count('first_k_dense_replace', v3 ? 3 : 0);
  const freq = f.int('moe_layer_freq', 1);
  const moeLayers = Array.from({ length: c.numLayers }, (_, l) => l >= firstDense && l % freq === 0);
  const topkMethod = f.str('topk_method', v3 ? 'noaux_tc' : 'greedy');
  const scoringName = f.str('scoring_func', v3 ? 'sigmoid' : 'softmax');
  if (scoringName !== 'softmax' && scoringName !== 'sigmoid') f.fail('scoring_func', `unknown scoring function "${scoringName}"`);
  const scoring: RouterConfig['scoring'] = scoringName;
  let nGroup = 1, topkGroup = 1;
  if (topkMethod === 'group_limited_greedy' || topkMethod === 'noaux_tc') {
    nGroup = f.int('n_group', v3 ? 8 : undefined);
    topkGroup = f.int('topk_group', v3 ? 4 : undefined);
    if (numExperts % nGroup !== 0) f.fail('n_group', `${nGroup} groups do not divide n_routed_experts (${numExperts})`);
    if (topkGroup > nGroup) f.fail('topk_group', `${topkGroup} exceeds n_group (${nGroup})`);
  } else if (topkMethod !== 'greedy') {
    f.fail('topk_method', `unknown top-k method "${topkMethod}" (greedy, group_limited_greedy, noaux_tc)`);
  }
  const nShared = f.count('n_shared_experts', v3 ? 1 : 2);
  const moeI = f.int('moe_intermediate_size');
  // headDim: the query/key head (nope + rope parts); MLA caches a latent, not per-head K/V.
  const common = { ...c, headDim: mla.qkNopeHeadDim + mla.qkRopeHeadDim };
  const config = finish(f, family, common, unsupported, {
    intermediateSize: moeLayers.some((m) => !m) ? f.int('intermediate_size') : 0,
    moeIntermediateSize: moeI,
    numExperts,
    router: router({
      topK,
      scoring,
      // transformers' DeepseekV2TopkRouter never renormalises (it ignores norm_topk_prob); V3 follows the config.
      normTopK: v3 ? f.bool('norm_topk_prob', true) : false,
      hasCorrectionBias: topkMethod === 'noaux_tc',
      nGroup,
      topkGroup,
      routedScalingFactor: f.positive('routed_scaling_factor', v3 ? 2.5 : 1),
    }),
    sharedExpert: nShared > 0 ? { intermediateSize: nShared * moeI, gated: false } : null,
    moeLayers,
    slidingWindow: null,
    qkNorm: 'none',
    attentionBias: false,
    embeddingMultiplier: 1, residualMultiplier: 1, logitsScaling: 1,
    // yarn_apply_mscale: YaRN's mscale(factor, mscale_all_dim)² multiplies the softmax scale.
    attentionScale: deepseekSoftmaxMultiplier(c.ropeScaling) / Math.sqrt(mla.qkNopeHeadDim + mla.qkRopeHeadDim),
  });
  config.mla = mla;
  return config;
}

/** transformers' GptOssExperts fixes its clamped SwiGLU at these (config.json's swiglu_limit is not read). */
const GPT_OSS_ACTIVATION = { limit: 7.0, alpha: 1.702, upOffset: 1 };

/**
 * gpt-oss: layer_types alternate sliding_attention / full_attention (default: even layers slide), attention sinks,
 * biases on q/k/v/o (attention_bias) and on every expert, a router with a bias whose top-k logits are softmaxed
 * (the same as softmax over all experts renormalised over the k), and the clamped SwiGLU of GPT_OSS_ACTIVATION.
 */
function gptOss(f: Fields, family: ModelFamily): MoeConfig {
  const unsupported: string[] = [];
  const c = readCommon(f, family, unsupported);
  const expertsName = f.name('num_local_experts', 'num_experts');
  const numExperts = f.int(expertsName);
  const topKName = f.name('num_experts_per_tok', 'experts_per_token');
  const topK = f.int(topKName);
  checkTopK(f, topKName, topK, numExperts, expertsName);
  const types = f.json.layer_types ?? Array.from({ length: c.numLayers }, (_, l) => (l % 2 === 0 ? 'sliding_attention' : 'full_attention'));
  if (!Array.isArray(types) || types.length !== c.numLayers || !types.every((t) => t === 'sliding_attention' || t === 'full_attention')) {
    f.fail('layer_types', `expected num_hidden_layers (${c.numLayers}) entries of "sliding_attention" or "full_attention", found ${JSON.stringify(types)}`);
  }
  const slidingLayers = types.map((t) => t === 'sliding_attention');
  const limit = f.positive('swiglu_limit', GPT_OSS_ACTIVATION.limit);
  if (limit !== GPT_OSS_ACTIVATION.limit) {
    unsupported.push(because('swiglu_limit', `${limit}: transformers' GptOssExperts clamps at ${GPT_OSS_ACTIVATION.limit} whatever the config says`));
  }
  const attentionBias = f.bool('attention_bias', true);
  const config = finish(f, family, c, unsupported, {
    intermediateSize: 0,
    moeIntermediateSize: f.int('intermediate_size'), // GptOssExperts use intermediate_size
    numExperts,
    router: router({ topK, normTopK: true, hasBias: true }),
    sharedExpert: null,
    moeLayers: new Array(c.numLayers).fill(true),
    slidingWindow: slidingLayers.some(Boolean) ? f.int('sliding_window', 128) : null,
    qkNorm: 'none',
    attentionBias,
    embeddingMultiplier: 1, residualMultiplier: 1, logitsScaling: 1,
    attentionScale: 1 / Math.sqrt(c.headDim),
  });
  config.slidingLayers = slidingLayers;
  config.attentionSinks = true;
  config.outputBias = attentionBias;
  config.expertBias = true;
  config.expertActivation = { ...GPT_OSS_ACTIVATION };
  return config;
}

/**
 * Normalises a parsed config.json into a MoeConfig. `source` names the file in errors (a path, URL or
 * "config.json"). Throws a ModelFileError naming the file and field for an unknown model_type or a missing or
 * invalid field. Models the engine cannot run come back with `unsupported` set; sizes are not limited, so configs
 * of huge models (Mixtral-8x7B, DeepSeek-V3) normalise fine for config-only drawing.
 */
export function normalizeConfig(json: unknown, source: string): MoeConfig {
  const obj = asObject(json, source);
  const f = new Fields(obj, source);
  const type = obj.model_type;
  if (type === undefined || type === null) f.fail('model_type', 'missing');
  if (typeof type !== 'string' || !(SUPPORTED_FAMILIES as readonly string[]).includes(type)) {
    f.fail('model_type', `unknown model type ${JSON.stringify(type)} (supported: ${SUPPORTED_FAMILIES.join(', ')})`);
  }
  return NORMALISERS[type as ModelFamily](f, type as ModelFamily);
}
