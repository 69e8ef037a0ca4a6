// countParameters against published model sizes. Expected values are worked out by hand from each model's
// config.json (shown per line), independently of the function under test.
import { describe, expect, it } from 'vitest';
import { countParameters, type MoeConfig } from '../../src/model/config';
import { makeConfig } from '../support/moe';

function model(o: Partial<MoeConfig> & Pick<MoeConfig, 'vocabSize' | 'hiddenSize' | 'numLayers' | 'numHeads' | 'numKvHeads' | 'headDim' | 'moeIntermediateSize' | 'numExperts'>, topK: number): MoeConfig {
  const base = makeConfig({ family: 'mixtral', H: o.hiddenSize, I: o.moeIntermediateSize, E: o.numExperts, k: topK, seed: 0 });
  return { ...base, sharedExpert: null, ...o, moeLayers: o.moeLayers ?? new Array(o.numLayers).fill(true) };
}

describe('countParameters', () => {
  it('Mixtral-8x7B: 46,702,792,704 total, 12,879,925,248 active', () => {
    const c = model({ vocabSize: 32000, hiddenSize: 4096, numLayers: 32, numHeads: 32, numKvHeads: 8, headDim: 128, moeIntermediateSize: 14336, numExperts: 8 }, 2);
    const p = countParameters(c);
    // embed + lm_head 2·32000·4096; attention 32·(2·4096² + 2·4096·1024); experts 32·8·3·4096·14336; router 32·8·4096; norms 65·4096
    expect(p.total).toBe(46_702_792_704);
    // the same with 2 of 8 experts per layer
    expect(p.activePerToken).toBe(12_879_925_248);
    expect(p.routedExperts).toBe(45_097_156_608);
    expect(p.router).toBe(1_048_576);
  });

  it('OLMoE-1B-7B: 6,919,161,856 total, 1,282,017,280 active (q/k norms over the full projections)', () => {
    const c = model({ vocabSize: 50304, hiddenSize: 2048, numLayers: 16, numHeads: 16, numKvHeads: 16, headDim: 128, moeIntermediateSize: 1024, numExperts: 64, qkNorm: 'full' }, 8);
    const p = countParameters(c);
    expect(p.total).toBe(6_919_161_856);
    expect(p.activePerToken).toBe(1_282_017_280);
  });

  it('Qwen1.5-MoE-A2.7B: 14,315,784,192 total, 2,689,173,504 active (qkv bias, gated shared expert)', () => {
    const c = model({
      vocabSize: 151936, hiddenSize: 2048, numLayers: 24, numHeads: 16, numKvHeads: 16, headDim: 128, moeIntermediateSize: 1408,
      numExperts: 60, attentionBias: true, sharedExpert: { intermediateSize: 5632, gated: true },
    }, 4);
    const p = countParameters(c);
    // shared expert 24·(3·2048·5632 + 2048 gate)
    expect(p.sharedExperts).toBe(830_521_344);
    expect(p.total).toBe(14_315_784_192);
    expect(p.activePerToken).toBe(2_689_173_504);
  });

  it('Qwen3-30B-A3B: 30,532,122,624 total, 3,353,032,704 active (per-head q/k norms)', () => {
    const c = model({ vocabSize: 151936, hiddenSize: 2048, numLayers: 48, numHeads: 32, numKvHeads: 4, headDim: 128, moeIntermediateSize: 768, numExperts: 128, qkNorm: 'head' }, 8);
    const p = countParameters(c);
    expect(p.total).toBe(30_532_122_624);
    expect(p.activePerToken).toBe(3_353_032_704);
  });

  it('dense layers mixed in (first_k_dense_replace) and tied embeddings', () => {
    const c = model({
      vocabSize: 100, hiddenSize: 8, numLayers: 3, numHeads: 2, numKvHeads: 1, headDim: 4, moeIntermediateSize: 6,
      numExperts: 4, intermediateSize: 20, tieWordEmbeddings: true, moeLayers: [false, true, true],
    }, 2);
    const p = countParameters(c);
    const attention = 3 * (8 * 8 + 2 * 8 * 4 + 8 * 8); // q, k, v, o
    const dense = 3 * 8 * 20;
    const experts = 2 * 4 * 3 * 8 * 6;
    const router = 2 * 4 * 8;
    const norms = 3 * 2 * 8 + 8;
    expect(p.lmHead).toBe(0);
    expect(p.dense).toBe(dense);
    expect(p.total).toBe(800 + attention + dense + experts + router + norms);
    expect(p.activePerToken).toBe(800 + attention + dense + 2 * (2 * 3 * 8 * 6 + 4 * 8) + norms);
  });
});
