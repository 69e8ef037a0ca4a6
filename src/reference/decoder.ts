// Naive float64 forward pass of a whole decoder, composed of the per-kernel references: embedding → per layer
// (RMSNorm, q/k/v with optional biases, RoPE with f32 angles as transformers forms them, causal attention with
// grouped KV heads and an optional window, o-projection, residual, RMSNorm, MoE block or dense SwiGLU, residual) →
// final RMSNorm → LM head. For whole-model checks of the analyses (ablation, merging) against the engine.
// Families with q/k norms are not covered (the analyses are checked on Mixtral-format fixtures).
import type { MoeConfig } from '../model/config';
import { embeddingRef } from './embedding';
import { rmsnormRef } from './rmsnorm';
import { matmulRef } from './matmul';
import { ropeRef } from './rope';
import { attentionRef, attentionWeightsRef } from './attention';
import { moeLayerRef, swigluRef } from './moe';

/** Canonical tensors by load-plan name (`embed`, `layers.3.q`, `layers.3.expertsGateUp`, …), decoded to numbers. */
export type ReferenceWeights = ReadonlyMap<string, ArrayLike<number>>;

export interface DecoderRefOptions {
  /** u8 [layers, experts]: 1 = ablated (the router never chooses it), as the engine's routing policy. */
  ablated?: ArrayLike<number>;
  /** Called per layer with the last token's attention weights (attentionWeightsRef's [heads, T + 1] layout). */
  onAttention?: (layer: number, weights: Float64Array) => void;
}

/** RoPE inverse frequencies in f32, as transformers computes them: 1 / θ^(2i/d). */
function invFreq(theta: number, d: number): Float64Array {
  return Float64Array.from({ length: d / 2 }, (_, i) => Math.fround(1 / Math.pow(theta, (2 * i) / d)));
}

/** Logits [T, vocab] of the tokens `ids` at positions 0…T−1. */
export function decoderRef(c: MoeConfig, weights: ReferenceWeights, ids: readonly number[], options: DecoderRefOptions = {}): Float64Array {
  if (c.qkNorm !== 'none') throw new Error(`decoderRef: q/k norms (${c.family}) are not covered`);
  const w = (name: string) => {
    const t = weights.get(name);
    if (!t) throw new Error(`decoderRef: no tensor "${name}"`);
    return t;
  };
  const T = ids.length;
  const H = c.hiddenSize;
  const d = c.headDim;
  const qDim = c.numHeads * d;
  const kvDim = c.numKvHeads * d;
  const freq = invFreq(c.ropeTheta, d);
  const x = embeddingRef(ids, w('embed'), c.vocabSize, H, c.embeddingMultiplier);
  const addBranch = (branch: ArrayLike<number>) => {
    for (let i = 0; i < x.length; i++) x[i] += c.residualMultiplier * branch[i];
  };
  for (let l = 0; l < c.numLayers; l++) {
    const p = `layers.${l}`;
    const normed = rmsnormRef(x, w(`${p}.inputNorm`), T, H, c.rmsNormEps);
    const proj = (role: string, N: number) => {
      const y = matmulRef(normed, w(`${p}.${role}`), T, H, N, 'nk');
      const bias = weights.get(`${p}.${role}Bias`);
      if (bias) for (let i = 0; i < y.length; i++) y[i] += bias[i % N];
      return y;
    };
    const q = ropeRef(proj('q', qDim), T, c.numHeads, d, 0, freq, { f32Angles: true });
    const k = ropeRef(proj('k', kvDim), T, c.numKvHeads, d, 0, freq, { f32Angles: true });
    const v = proj('v', kvDim);
    const shape = {
      tokens: T, startPos: 0, heads: c.numHeads, kvHeads: c.numKvHeads, headDim: d, scale: c.attentionScale, window: c.slidingWindow ?? 0,
    };
    const attn = attentionRef(q, k, v, shape);
    options.onAttention?.(l, attentionWeightsRef(q, k, shape, T - 1));
    addBranch(matmulRef(attn, w(`${p}.o`), T, qDim, H, 'nk'));
    const post = rmsnormRef(x, w(`${p}.postAttnNorm`), T, H, c.rmsNormEps);
    if (c.moeLayers[l]) {
      const E = c.numExperts;
      const shared = c.sharedExpert
        ? { gateUp: w(`${p}.sharedGateUp`), down: w(`${p}.sharedDown`), gate: weights.get(`${p}.sharedGate`), intermediate: c.sharedExpert.intermediateSize }
        : undefined;
      const moe = moeLayerRef({
        T, H, I: c.moeIntermediateSize, E, x: post, router: c.router, layer: l, position: 0, k: c.router.topK,
        noiseStd: 0, noiseSeed: 0, temperature: 1, capacity: 0, overflow: 'drop',
        ablated: options.ablated ? Array.from({ length: E }, (_, e) => options.ablated![l * E + e]) : undefined,
        weights: { router: w(`${p}.router`), correction: weights.get(`${p}.routerCorrectionBias`), gateUp: w(`${p}.expertsGateUp`), down: w(`${p}.expertsDown`), shared },
      });
      addBranch(moe.out);
    } else {
      const branch = new Float64Array(T * H);
      for (let t = 0; t < T; t++) branch.set(swigluRef(post, t * H, w(`${p}.denseGateUp`), 0, w(`${p}.denseDown`), 0, H, c.intermediateSize), t * H);
      addBranch(branch);
    }
  }
  const final = rmsnormRef(x, w('finalNorm'), T, H, c.rmsNormEps);
  const logits = matmulRef(final, weights.get('lmHead') ?? w('embed'), T, H, c.vocabSize, 'nk');
  for (let i = 0; i < logits.length; i++) logits[i] /= c.logitsScaling;
  return logits;
}
