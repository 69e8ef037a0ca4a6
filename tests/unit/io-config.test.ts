import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { countParameters } from '../../src/model/config';
import { declaredWeightDtype, normalizeConfig } from '../../src/io/config';
import { ModelFileError } from '../../src/io/errors';
import { RUNNABLE_FAMILIES, tinyConfig } from '../support/io-models';

// The config.json files of released checkpoints (architecture fields as published on the Hugging Face hub).
const MIXTRAL_8X7B = {
  architectures: ['MixtralForCausalLM'], attention_dropout: 0.0, bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu',
  hidden_size: 4096, initializer_range: 0.02, intermediate_size: 14336, max_position_embeddings: 32768, model_type: 'mixtral',
  num_attention_heads: 32, num_experts_per_tok: 2, num_hidden_layers: 32, num_key_value_heads: 8, num_local_experts: 8,
  output_router_logits: false, rms_norm_eps: 1e-5, rope_theta: 1e6, router_aux_loss_coef: 0.02, sliding_window: null,
  tie_word_embeddings: false, torch_dtype: 'bfloat16', transformers_version: '4.36.0.dev0', use_cache: true, vocab_size: 32000,
};
const QWEN15_MOE_A27B = {
  architectures: ['Qwen2MoeForCausalLM'], hidden_act: 'silu', hidden_size: 2048, intermediate_size: 5632,
  max_position_embeddings: 8192, max_window_layers: 21, model_type: 'qwen2_moe', num_attention_heads: 16, num_hidden_layers: 24,
  num_key_value_heads: 16, rms_norm_eps: 1e-6, rope_theta: 1e6, sliding_window: 32768, tie_word_embeddings: false,
  torch_dtype: 'bfloat16', use_sliding_window: false, vocab_size: 151936, decoder_sparse_step: 1, moe_intermediate_size: 1408,
  shared_expert_intermediate_size: 5632, num_experts_per_tok: 4, num_experts: 60, norm_topk_prob: false,
};
const QWEN3_30B_A3B = {
  architectures: ['Qwen3MoeForCausalLM'], attention_bias: false, head_dim: 128, hidden_act: 'silu', hidden_size: 2048,
  intermediate_size: 6144, max_position_embeddings: 40960, max_window_layers: 48, mlp_only_layers: [], model_type: 'qwen3_moe',
  moe_intermediate_size: 768, norm_topk_prob: true, num_attention_heads: 32, num_experts: 128, num_experts_per_tok: 8,
  num_hidden_layers: 48, num_key_value_heads: 4, rms_norm_eps: 1e-6, rope_scaling: null, rope_theta: 1e6, sliding_window: null,
  tie_word_embeddings: false, torch_dtype: 'bfloat16', use_sliding_window: false, vocab_size: 151936, decoder_sparse_step: 1,
};
const OLMOE_1B_7B = {
  architectures: ['OlmoeForCausalLM'], attention_bias: false, clip_qkv: null, eos_token_id: 50279, hidden_act: 'silu',
  hidden_size: 2048, intermediate_size: 1024, max_position_embeddings: 4096, model_type: 'olmoe', norm_topk_prob: false,
  num_attention_heads: 16, num_experts: 64, num_experts_per_tok: 8, num_hidden_layers: 16, num_key_value_heads: 16,
  pad_token_id: 1, rms_norm_eps: 1e-5, rope_scaling: null, rope_theta: 10000.0, tie_word_embeddings: false,
  torch_dtype: 'bfloat16', vocab_size: 50304,
};
const GRANITE_1B_A400M = {
  architectures: ['GraniteMoeForCausalLM'], attention_bias: false, attention_multiplier: 0.015625, embedding_multiplier: 12.0,
  hidden_act: 'silu', hidden_size: 1024, intermediate_size: 512, logits_scaling: 6.0, max_position_embeddings: 4096,
  model_type: 'granitemoe', num_attention_heads: 16, num_experts_per_tok: 8, num_hidden_layers: 24, num_key_value_heads: 8,
  num_local_experts: 32, residual_multiplier: 0.22, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: true,
  torch_dtype: 'bfloat16', vocab_size: 49155,
};
const DEEPSEEK_V2_LITE = {
  architectures: ['DeepseekV2ForCausalLM'], first_k_dense_replace: 1, hidden_act: 'silu', hidden_size: 2048,
  intermediate_size: 10944, kv_lora_rank: 512, max_position_embeddings: 163840, model_type: 'deepseek_v2',
  moe_intermediate_size: 1408, moe_layer_freq: 1, n_group: 1, n_routed_experts: 64, n_shared_experts: 2,
  norm_topk_prob: false, num_attention_heads: 16, num_experts_per_tok: 6, num_hidden_layers: 27, num_key_value_heads: 16,
  q_lora_rank: null, qk_nope_head_dim: 128, qk_rope_head_dim: 64, rms_norm_eps: 1e-6,
  rope_scaling: { beta_fast: 32, beta_slow: 1, factor: 40, mscale: 0.707, mscale_all_dim: 0.707, original_max_position_embeddings: 4096, type: 'yarn' },
  rope_theta: 10000, routed_scaling_factor: 1.0, scoring_func: 'softmax', tie_word_embeddings: false, topk_group: 1,
  topk_method: 'greedy', torch_dtype: 'bfloat16', v_head_dim: 128, vocab_size: 102400,
};
const DEEPSEEK_V3 = {
  architectures: ['DeepseekV3ForCausalLM'], attention_bias: false, bos_token_id: 0, eos_token_id: 1, first_k_dense_replace: 3,
  hidden_act: 'silu', hidden_size: 7168, intermediate_size: 18432, kv_lora_rank: 512, max_position_embeddings: 163840,
  model_type: 'deepseek_v3', moe_intermediate_size: 2048, moe_layer_freq: 1, n_group: 8, n_routed_experts: 256,
  n_shared_experts: 1, norm_topk_prob: true, num_attention_heads: 128, num_experts_per_tok: 8, num_hidden_layers: 61,
  num_key_value_heads: 128, num_nextn_predict_layers: 1, q_lora_rank: 1536, qk_nope_head_dim: 128, qk_rope_head_dim: 64,
  quantization_config: { activation_scheme: 'dynamic', fmt: 'e4m3', quant_method: 'fp8', weight_block_size: [128, 128] },
  rms_norm_eps: 1e-6,
  rope_scaling: { beta_fast: 32, beta_slow: 1, factor: 40, mscale: 1.0, mscale_all_dim: 1.0, original_max_position_embeddings: 4096, type: 'yarn' },
  rope_theta: 10000, routed_scaling_factor: 2.5, scoring_func: 'sigmoid', tie_word_embeddings: false, topk_group: 4,
  topk_method: 'noaux_tc', torch_dtype: 'bfloat16', v_head_dim: 128, vocab_size: 129280,
};

const SRC = 'models/x/config.json';
const within = (x: number, target: number, rel: number) => Math.abs(x - target) <= rel * target;

describe('normalizeConfig on released configs', () => {
  it('Mixtral-8x7B: 46.7B parameters, 12.9B active, all layers MoE, renormalised top-2', () => {
    const c = normalizeConfig(MIXTRAL_8X7B, SRC);
    expect(c).toMatchObject({
      family: 'mixtral', source: SRC, vocabSize: 32000, hiddenSize: 4096, numLayers: 32, numHeads: 32, numKvHeads: 8,
      headDim: 128, intermediateSize: 0, moeIntermediateSize: 14336, numExperts: 8, sharedExpert: null,
      rmsNormEps: 1e-5, ropeTheta: 1e6, maxPositions: 32768, slidingWindow: null, tieWordEmbeddings: false,
      qkNorm: 'none', attentionBias: false, weightDtype: 'bf16',
      router: { scoring: 'softmax', topK: 2, normTopK: true, hasBias: false, hasCorrectionBias: false, nGroup: 1, topkGroup: 1, routedScalingFactor: 1, capacityFactor: 0 },
    });
    expect(c.attentionScale).toBeCloseTo(1 / Math.sqrt(128), 15);
    expect(c.moeLayers).toEqual(new Array(32).fill(true));
    expect(c.unsupported).toBeUndefined();
    const p = countParameters(c);
    expect(p.total).toBe(46_702_792_704);
    expect(p.activePerToken).toBe(12_879_925_248);
  });

  it('Qwen1.5-MoE-A2.7B: gated shared expert, q/k/v bias, 14.3B / 2.7B', () => {
    const c = normalizeConfig(QWEN15_MOE_A27B, SRC);
    expect(c).toMatchObject({
      family: 'qwen2_moe', numExperts: 60, moeIntermediateSize: 1408, intermediateSize: 0, attentionBias: true,
      sharedExpert: { intermediateSize: 5632, gated: true }, slidingWindow: null, ropeTheta: 1e6,
      router: { topK: 4, normTopK: false, scoring: 'softmax' },
    });
    const p = countParameters(c);
    expect(within(p.total, 14.3e9, 0.005)).toBe(true);
    expect(within(p.activePerToken, 2.7e9, 0.01)).toBe(true);
  });

  it('Qwen3-30B-A3B: per-head q/k norm, head_dim from the config, 30.5B / 3.3B', () => {
    const c = normalizeConfig(QWEN3_30B_A3B, SRC);
    expect(c).toMatchObject({
      family: 'qwen3_moe', headDim: 128, numHeads: 32, numKvHeads: 4, qkNorm: 'head', sharedExpert: null, attentionBias: false,
      router: { topK: 8, normTopK: true }, numExperts: 128, moeIntermediateSize: 768,
    });
    expect(c.attentionScale).toBeCloseTo(1 / Math.sqrt(128), 15);
    const p = countParameters(c);
    expect(within(p.total, 30.5e9, 0.005)).toBe(true);
    expect(within(p.activePerToken, 3.3e9, 0.02)).toBe(true);
  });

  it('OLMoE-1B-7B: full q/k norm, experts sized by intermediate_size, 6.9B / 1.3B', () => {
    const c = normalizeConfig(OLMOE_1B_7B, SRC);
    expect(c).toMatchObject({ family: 'olmoe', qkNorm: 'full', moeIntermediateSize: 1024, numExperts: 64, router: { topK: 8, normTopK: false } });
    const p = countParameters(c);
    expect(within(p.total, 6.92e9, 0.005)).toBe(true);
    expect(within(p.activePerToken, 1.28e9, 0.01)).toBe(true);
  });

  it('Granite-3.0-1B-A400M: multipliers, attention scale = attention_multiplier, tied embeddings', () => {
    const c = normalizeConfig(GRANITE_1B_A400M, SRC);
    expect(c).toMatchObject({
      family: 'granitemoe', embeddingMultiplier: 12, residualMultiplier: 0.22, attentionScale: 0.015625, logitsScaling: 6,
      tieWordEmbeddings: true, moeIntermediateSize: 512, numExperts: 32, router: { topK: 8, normTopK: true },
    });
    const p = countParameters(c);
    expect(within(p.total, 1.33e9, 0.01)).toBe(true);
    expect(within(p.activePerToken, 0.4e9, 0.1)).toBe(true);
  });

  it('DeepSeek-V2-Lite: runnable (MLA without q_lora_rank, YaRN); greedy softmax routing, 1 dense layer, 15.7B', () => {
    const c = normalizeConfig(DEEPSEEK_V2_LITE, SRC);
    expect(c.unsupported).toBeUndefined();
    // yarn_apply_mscale: (0.1 · 0.707 · ln 40 + 1)² / sqrt(192)
    expect(c.attentionScale).toBeCloseTo((0.1 * 0.707 * Math.log(40) + 1) ** 2 / Math.sqrt(192), 12);
    expect(c.ropeScaling).toEqual({
      type: 'yarn', factor: 40, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1, attentionFactor: null, mscale: 0.707, mscaleAllDim: 0.707, truncate: true,
    });
    expect(c).toMatchObject({
      family: 'deepseek_v2', numExperts: 64, intermediateSize: 10944, moeIntermediateSize: 1408,
      sharedExpert: { intermediateSize: 2 * 1408, gated: false },
      router: { scoring: 'softmax', topK: 6, normTopK: false, nGroup: 1, topkGroup: 1, hasCorrectionBias: false, routedScalingFactor: 1 },
      mla: { qLoraRank: null, kvLoraRank: 512, qkNopeHeadDim: 128, qkRopeHeadDim: 64, vHeadDim: 128, ropeInterleave: true },
    });
    expect(c.moeLayers).toEqual([false, ...new Array(26).fill(true)]);
    expect(within(countParameters(c).total, 15.7e9, 0.005)).toBe(true);
  });

  it('DeepSeek-V3: sigmoid routing with correction bias and 8 groups, 3 dense layers, 671B / 37B', () => {
    const c = normalizeConfig(DEEPSEEK_V3, SRC);
    expect(c.unsupported).toBe('field "quantization_config": quantized checkpoints are not supported');
    expect(c).toMatchObject({
      family: 'deepseek_v3', numExperts: 256, headDim: 192,
      router: { scoring: 'sigmoid', topK: 8, normTopK: true, hasCorrectionBias: true, nGroup: 8, topkGroup: 4, routedScalingFactor: 2.5 },
      sharedExpert: { intermediateSize: 2048, gated: false },
    });
    expect(c.moeLayers.slice(0, 4)).toEqual([false, false, false, true]);
    expect(c.moeLayers.filter(Boolean).length).toBe(58);
    const p = countParameters(c);
    expect(within(p.total, 671e9, 0.002)).toBe(true);
    expect(within(p.activePerToken, 37e9, 0.03)).toBe(true);
  });
});

describe('gpt-oss', () => {
  const published = (file: string) => JSON.parse(readFileSync(join(__dirname, '..', '..', 'public', 'configs', file), 'utf8'));

  it('gpt-oss-20b and -120b as published: 20.9B / 116.8B parameters, alternating windows of 128, YaRN; drawn only (MXFP4)', () => {
    for (const [file, layers, experts, total] of [['gpt-oss-20b.json', 24, 32, 20.9e9], ['gpt-oss-120b.json', 36, 128, 116.8e9]] as const) {
      const c = normalizeConfig(published(file), file);
      expect(c).toMatchObject({
        family: 'gpt_oss', numLayers: layers, numExperts: experts, hiddenSize: 2880, moeIntermediateSize: 2880, headDim: 64,
        numHeads: 64, numKvHeads: 8, slidingWindow: 128, attentionBias: true, outputBias: true, attentionSinks: true, expertBias: true,
        expertActivation: { limit: 7, alpha: 1.702, upOffset: 1 }, ropeTheta: 150000, rmsNormEps: 1e-5,
        router: { scoring: 'softmax', topK: 4, normTopK: true, hasBias: true },
      });
      expect(c.slidingLayers).toEqual(Array.from({ length: layers }, (_, l) => l % 2 === 0));
      expect(within(countParameters(c).total, total, 0.005)).toBe(true);
      expect(c.ropeScaling).toEqual({
        type: 'yarn', factor: 32, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1, attentionFactor: null, mscale: null, mscaleAllDim: null, truncate: false,
      });
      expect(c.unsupported).toBe('field "quantization_config": quantized checkpoints are not supported');
    }
  });

  it('layer_types default to alternating (even layers slide) and must name each layer', () => {
    const { layer_types: _, ...noTypes } = tinyConfig('gpt_oss');
    expect(normalizeConfig(noTypes, SRC).slidingLayers).toEqual([true, false, true]);
    expect(() => normalizeConfig({ ...tinyConfig('gpt_oss'), layer_types: ['sliding_attention'] }, SRC)).toThrow(
      `${SRC}: field "layer_types": expected num_hidden_layers (3) entries of "sliding_attention" or "full_attention"`,
    );
    const full = normalizeConfig({ ...tinyConfig('gpt_oss'), layer_types: new Array(3).fill('full_attention') }, SRC);
    expect(full.slidingWindow).toBeNull();
    expect(normalizeConfig({ ...tinyConfig('gpt_oss'), attention_bias: false }, SRC)).toMatchObject({ attentionBias: false, outputBias: false });
  });
});

describe('normalizeConfig: defaults, variants and derived fields', () => {
  it('tiny configs of every runnable family normalise and are runnable', () => {
    for (const family of RUNNABLE_FAMILIES) {
      const c = normalizeConfig(tinyConfig(family), SRC);
      expect(c.family).toBe(family);
      expect(c.unsupported).toBeUndefined();
      expect(c.moeLayers.length).toBe(3);
    }
  });

  it('Qwen layer selection: mlp_only_layers and decoder_sparse_step', () => {
    const q2 = normalizeConfig(tinyConfig('qwen2_moe'), SRC);
    expect(q2.moeLayers).toEqual([true, false, true]);
    expect(q2.intermediateSize).toBe(10);
    const q3 = normalizeConfig(tinyConfig('qwen3_moe'), SRC);
    expect(q3.moeLayers).toEqual([false, true, false]); // (l + 1) % 2 == 0
    expect(q3.headDim).toBe(6);
    expect(q3.ropeTheta).toBe(5e5); // transformers 5 rope_parameters
    const noExperts = normalizeConfig({ ...tinyConfig('qwen3_moe'), num_experts: 0 }, SRC);
    expect(noExperts.moeLayers).toEqual([false, false, false]);
  });

  it('family defaults where transformers has them', () => {
    const { rms_norm_eps: _a, rope_theta: _b, max_position_embeddings: _c, tie_word_embeddings: _d, sliding_window: _e, ...bare } = MIXTRAL_8X7B;
    const c = normalizeConfig(bare, SRC);
    expect(c).toMatchObject({ rmsNormEps: 1e-5, ropeTheta: 1e6, maxPositions: 131072, tieWordEmbeddings: false, slidingWindow: null });
    const { num_key_value_heads: _f, ...noKv } = OLMOE_1B_7B;
    expect(normalizeConfig(noKv, SRC).numKvHeads).toBe(16);
    const { qkv_bias: _g, ...q2 } = { ...QWEN15_MOE_A27B, qkv_bias: true };
    expect(normalizeConfig(q2, SRC).attentionBias).toBe(true);
    expect(normalizeConfig({ ...QWEN15_MOE_A27B, qkv_bias: false }, SRC).attentionBias).toBe(false);
    const { attention_multiplier: _h, ...graniteNoMult } = GRANITE_1B_A400M;
    expect(normalizeConfig(graniteNoMult, SRC).attentionScale).toBe(1); // transformers' default multiplier, not 1/sqrt(d)
  });

  it('expert counts under either name transformers uses (attribute_map aliases)', () => {
    const { num_experts: n, ...q3 } = QWEN3_30B_A3B;
    expect(normalizeConfig({ ...q3, num_local_experts: n }, SRC).numExperts).toBe(128); // as transformers 5.17 writes it
    const { num_local_experts: m, ...mx } = MIXTRAL_8X7B;
    expect(normalizeConfig({ ...mx, num_experts: m }, SRC).numExperts).toBe(8);
    const { num_experts: o, ...ol } = OLMOE_1B_7B;
    expect(normalizeConfig({ ...ol, num_local_experts: o }, SRC).numExperts).toBe(64);
    const { n_routed_experts: r, ...v3 } = DEEPSEEK_V3;
    expect(normalizeConfig({ ...v3, num_local_experts: r }, SRC).numExperts).toBe(256);
  });

  it('transformers 5 spellings: head_dim null, rope_parameters, dtype, layer_types', () => {
    const c = normalizeConfig({ ...MIXTRAL_8X7B, head_dim: null, rope_theta: undefined, torch_dtype: undefined, dtype: 'float32',
      rope_parameters: { rope_theta: 123456, rope_type: 'default' } }, SRC);
    expect(c).toMatchObject({ headDim: 128, ropeTheta: 123456, weightDtype: 'f32' });
    const full = new Array(24).fill('full_attention');
    expect(normalizeConfig({ ...QWEN15_MOE_A27B, layer_types: full, sliding_window: 0 }, SRC).unsupported).toBeUndefined();
    expect(normalizeConfig({ ...QWEN15_MOE_A27B, layer_types: ['sliding_attention', ...full.slice(1)] }, SRC).unsupported).toMatch(/layer_types/);
  });

  it('weight dtype from torch_dtype or v5 dtype', () => {
    expect(normalizeConfig({ ...tinyConfig('mixtral'), torch_dtype: undefined, dtype: 'float16' }, SRC).weightDtype).toBe('f16');
    expect(declaredWeightDtype({ model_type: 'mixtral' }, SRC)).toBeNull();
    expect(() => normalizeConfig({ ...tinyConfig('mixtral'), torch_dtype: 'int8' }, SRC)).toThrow(
      `${SRC}: field "torch_dtype": "int8" is not a weight dtype the engine reads`,
    );
    expect(() => declaredWeightDtype({ dtype: 'constructor' }, SRC)).toThrow('field "dtype"');
  });

  it('Mixtral sliding window; Qwen3 window only with use_sliding_window', () => {
    expect(normalizeConfig({ ...MIXTRAL_8X7B, sliding_window: 4096 }, SRC).slidingWindow).toBe(4096);
    expect(normalizeConfig({ ...QWEN3_30B_A3B, sliding_window: 512 }, SRC).slidingWindow).toBeNull();
    expect(normalizeConfig({ ...QWEN3_30B_A3B, sliding_window: 512, use_sliding_window: true }, SRC).slidingWindow).toBe(512);
  });

  it('runs what it can, and says why not for what it cannot, naming the field of every reason', () => {
    const why = (json: Record<string, unknown>) => normalizeConfig(json, SRC).unsupported;
    const cases: [Record<string, unknown>, string][] = [
      [{ ...QWEN15_MOE_A27B, use_sliding_window: true }, 'field "use_sliding_window": true (sliding window on some layers only)'],
      [{ ...QWEN15_MOE_A27B, layer_types: ['sliding_attention', 'full_attention'] }, 'field "layer_types": sliding-window layers'],
      [{ ...OLMOE_1B_7B, clip_qkv: 8 }, 'field "clip_qkv": 8 is not implemented'],
      [{ ...OLMOE_1B_7B, attention_bias: true }, 'field "attention_bias": true (a bias on q/k/v/o_proj)'],
      [{ ...MIXTRAL_8X7B, hidden_act: 'gelu' }, 'field "hidden_act": "gelu" is not implemented'],
      [{ ...MIXTRAL_8X7B, rope_scaling: { type: 'longrope', factor: 2 } }, 'field "rope_scaling.type": RoPE scaling "longrope"'],
      [{ ...QWEN3_30B_A3B, rope_parameters: { rope_type: 'longrope', rope_theta: 1e6, factor: 4 } }, 'field "rope_parameters.rope_type": RoPE scaling "longrope"'],
      [{ ...QWEN3_30B_A3B, rope_parameters: { rope_type: 'default', rope_theta: 1e6, partial_rotary_factor: 0.5 } },
        'field "rope_parameters.partial_rotary_factor": 0.5 (rotary embedding on part of the head)'],
      [{ ...MIXTRAL_8X7B, quantization_config: { quant_method: 'mxfp4' } }, 'field "quantization_config": quantized checkpoints'],
      [{ ...DEEPSEEK_V2_LITE, kv_lora_rank: 1024 }, 'field "kv_lora_rank": 1024 above 512 is not implemented'],
      [{ ...DEEPSEEK_V2_LITE, attention_bias: true }, 'field "attention_bias": true (biases on q_a_proj'],
      [{ ...tinyConfig('gpt_oss'), swiglu_limit: 10 }, 'field "swiglu_limit": 10: transformers\' GptOssExperts clamps at 7'],
    ];
    for (const [json, reason] of cases) expect(why(json)).toContain(reason);
    // With several reasons, each one names its field.
    const many = why({ ...MIXTRAL_8X7B, hidden_act: 'gelu', quantization_config: {}, rope_scaling: { type: 'longrope' } })!;
    expect(many.split('; ').map((r) => r.match(/^field "([^"]+)"/)?.[1])).toEqual(['rope_scaling.type', 'hidden_act', 'quantization_config']);
    expect(why({ ...MIXTRAL_8X7B, rope_scaling: { type: 'linear', factor: 2 } })).toBeUndefined();
    expect(why({ ...QWEN3_30B_A3B, rope_parameters: { rope_type: 'yarn', rope_theta: 1e6, factor: 4 } })).toBeUndefined();
    expect(why({ ...QWEN3_30B_A3B, rope_parameters: { rope_type: 'default', rope_theta: 1e6 } })).toBeUndefined();
  });
});

describe('normalizeConfig: bad configs name the file and the field', () => {
  const bad = (json: unknown) => () => normalizeConfig(json, SRC);

  it('unknown or missing model_type', () => {
    expect(bad({ ...MIXTRAL_8X7B, model_type: 'llama' })).toThrow(
      `${SRC}: field "model_type": unknown model type "llama" (supported: mixtral, qwen2_moe, qwen3_moe, olmoe, granitemoe, deepseek_v2, deepseek_v3, gpt_oss)`,
    );
    expect(bad({ ...MIXTRAL_8X7B, model_type: 'toString' })).toThrow('unknown model type "toString"');
    const { model_type: _, ...none } = MIXTRAL_8X7B;
    expect(bad(none)).toThrow(`${SRC}: field "model_type": missing`);
    expect(bad([1, 2])).toThrow(`${SRC}: top level: is not a JSON object`);
    expect(bad(null)).toThrow(ModelFileError);
  });

  it('layer and expert counts past the limits are refused before any per-layer array is made (found by fuzzing)', () => {
    // Before: new Array(2 ** 40) threw a RangeError, and 1e8 layers filled the heap until the process died.
    expect(bad({ ...MIXTRAL_8X7B, num_hidden_layers: 2 ** 40 })).toThrow(`${SRC}: field "num_hidden_layers": ${2 ** 40} is more than this app handles (1024)`);
    expect(bad({ ...MIXTRAL_8X7B, num_local_experts: 1e8 })).toThrow(`${SRC}: field "num_local_experts": 100000000 is more than this app handles (4096)`);
    expect(bad({ ...QWEN15_MOE_A27B, num_experts: 1e8 })).toThrow(`${SRC}: field "num_experts"`);
  });

  it('missing architecture fields are errors, never defaults', () => {
    const drop = (json: Record<string, unknown>, key: string) => {
      const copy = { ...json };
      delete copy[key];
      return copy;
    };
    const cases: [Record<string, unknown>, string][] = [
      [MIXTRAL_8X7B, 'num_local_experts'], [MIXTRAL_8X7B, 'num_experts_per_tok'], [MIXTRAL_8X7B, 'hidden_size'],
      [MIXTRAL_8X7B, 'vocab_size'], [MIXTRAL_8X7B, 'num_hidden_layers'], [MIXTRAL_8X7B, 'intermediate_size'],
      [QWEN15_MOE_A27B, 'moe_intermediate_size'], [QWEN15_MOE_A27B, 'shared_expert_intermediate_size'], [QWEN15_MOE_A27B, 'num_experts'],
      [OLMOE_1B_7B, 'num_experts'], [GRANITE_1B_A400M, 'num_local_experts'], [DEEPSEEK_V3, 'n_routed_experts'],
      [DEEPSEEK_V3, 'moe_intermediate_size'], [QWEN3_30B_A3B, 'num_attention_heads'],
    ];
    for (const [json, key] of cases) expect(bad(drop(json, key))).toThrow(`${SRC}: field "${key}": missing`);
  });

  it('invalid values', () => {
    expect(bad({ ...MIXTRAL_8X7B, hidden_size: '4096' })).toThrow(`${SRC}: field "hidden_size": expected a positive integer, found "4096"`);
    expect(bad({ ...MIXTRAL_8X7B, num_local_experts: 0 })).toThrow(`${SRC}: field "num_local_experts": expected a positive integer, found 0`);
    expect(bad({ ...MIXTRAL_8X7B, num_experts_per_tok: 9 })).toThrow(`${SRC}: field "num_experts_per_tok": 9 experts per token but the model has only 8`);
    expect(bad({ ...MIXTRAL_8X7B, num_key_value_heads: 5 })).toThrow(`${SRC}: field "num_key_value_heads": 5 does not divide num_attention_heads (32)`);
    expect(bad({ ...MIXTRAL_8X7B, hidden_size: 4100 })).toThrow(`${SRC}: field "hidden_size": 4100 is not divisible by num_attention_heads`);
    expect(bad({ ...MIXTRAL_8X7B, rms_norm_eps: -1 })).toThrow(`${SRC}: field "rms_norm_eps": expected a positive number`);
    expect(bad({ ...MIXTRAL_8X7B, tie_word_embeddings: 'no' })).toThrow(`${SRC}: field "tie_word_embeddings": expected true or false`);
    expect(bad({ ...QWEN15_MOE_A27B, mlp_only_layers: [24] })).toThrow(`${SRC}: field "mlp_only_layers": expected a list of layer indices in [0, 24)`);
    expect(bad({ ...MIXTRAL_8X7B, rope_parameters: { rope_theta: 'big' } })).toThrow(`${SRC}: field "rope_parameters.rope_theta"`);
    expect(bad({ ...DEEPSEEK_V3, n_group: 7 })).toThrow(`${SRC}: field "n_group": 7 groups do not divide n_routed_experts (256)`);
    expect(bad({ ...DEEPSEEK_V3, topk_method: 'magic' })).toThrow(`${SRC}: field "topk_method": unknown top-k method "magic"`);
    expect(bad({ ...MIXTRAL_8X7B, head_dim: 127 })).toThrow(`${SRC}: field "head_dim": 127 is odd`);
  });
});
