// MoE test problems: small configs per family, random weights uploaded to the GPU, a layer run, and the float64
// reference of the same step.
import type { Gpu } from '../../src/engine/gpu';
import type { MoeConfig, RouterConfig, ModelFamily } from '../../src/model/config';
import type { RoutingPolicy } from '../../src/engine/session-api';
import { packWeights, type QuantFormat, type WeightDtype } from '../../src/model/dtypes';
import { dequantRef } from '../../src/reference/dequant';
import { padTo4, randomBlocks } from './gguf-blocks';
import { uploadBuffer } from '../../src/engine/kernels/common';
import { MoeLayer, applyRoutingPolicy, moeScratchShape, type MoeLayerWeights } from '../../src/engine/routing/moe-layer';
import { MoeScratch } from '../../src/engine/routing/scratch';
import { RoutingStats } from '../../src/engine/routing/stats';
import { uploadExpertBank } from '../../src/engine/routing/expert-bank';
import { defaultPolicy, effectiveTopK, expertCapacity } from '../../src/engine/routing/policy';
import type { ExpertVariant } from '../../src/engine/routing/moe-layer';
import type { TiledShape } from '../../src/engine/kernels/moe-expert';
import { moeLayerRef, type MoeRefOutput, type MoeRefWeights } from '../../src/reference/moe';
import { rmsnormRef } from '../../src/reference/rmsnorm';
import { randomF32 } from './random';
import { expect } from 'vitest';
import { readU32 } from '../../src/engine/kernels/common';
import { K_MAX } from '../../src/engine/routing-buffers';
import { expectClose, expectExact, poisonedBuffer, readF32 } from './gpu';

export type Family = 'olmoe' | 'mixtral' | 'qwen2_moe' | 'deepseek_v2' | 'deepseek_v3' | 'switch' | 'gpt_oss';

/** gpt-oss's experts: transformers' GptOssExperts clamp and alpha, (up + 1). */
const GPT_OSS_ACTIVATION = { limit: 7, alpha: 1.702, upOffset: 1 };

export interface ProblemSpec {
  family: Family;
  /** Give the router a bias term (x·Wᵀ + b). */
  routerBias?: boolean;
  H: number;
  I: number;
  E: number;
  k?: number;
  layers?: number;
  dtype?: WeightDtype;
  seed: number;
}

const ROUTERS: Record<Family, (E: number, k: number) => RouterConfig> = {
  olmoe: (_E, k) => router({ topK: k }),
  mixtral: (_E, k) => router({ topK: k, normTopK: true }),
  qwen2_moe: (_E, k) => router({ topK: k }),
  deepseek_v2: (_E, k) => router({ topK: k, nGroup: 4, topkGroup: 2, routedScalingFactor: 16 }),
  deepseek_v3: (_E, k) => router({ topK: k, scoring: 'sigmoid', normTopK: true, hasCorrectionBias: true, nGroup: 4, topkGroup: 2, routedScalingFactor: 2.5 }),
  switch: () => router({ topK: 1, capacityFactor: 1 }),
  gpt_oss: (_E, k) => router({ topK: k, normTopK: true, hasBias: true }),
};

function router(o: Partial<RouterConfig>): RouterConfig {
  return {
    scoring: 'softmax', topK: 2, normTopK: false, hasBias: false, hasCorrectionBias: false,
    nGroup: 1, topkGroup: 1, routedScalingFactor: 1, capacityFactor: 0, ...o,
  };
}

const MODEL_FAMILY: Record<Family, ModelFamily> = {
  olmoe: 'olmoe', mixtral: 'mixtral', qwen2_moe: 'qwen2_moe', deepseek_v2: 'deepseek_v2', deepseek_v3: 'deepseek_v3', switch: 'mixtral',
  gpt_oss: 'gpt_oss',
};

export function makeConfig(s: ProblemSpec): MoeConfig {
  const layers = s.layers ?? 2;
  const shared =
    s.family === 'qwen2_moe' ? { intermediateSize: s.I + 6, gated: true } :
    s.family === 'deepseek_v2' || s.family === 'deepseek_v3' ? { intermediateSize: 2 * s.I, gated: false } : null;
  const r = ROUTERS[s.family](s.E, s.k ?? 2);
  if (s.routerBias) r.hasBias = true;
  const gptOss = s.family === 'gpt_oss' ? { expertBias: true, expertActivation: GPT_OSS_ACTIVATION } : {};
  return {
    ...gptOss,
    family: MODEL_FAMILY[s.family], source: `test:${s.family}`, vocabSize: 64, hiddenSize: s.H, numLayers: layers,
    numHeads: 2, numKvHeads: 1, headDim: 8, intermediateSize: 0, moeIntermediateSize: s.I, numExperts: s.E,
    router: r, sharedExpert: shared, moeLayers: new Array(layers).fill(true),
    rmsNormEps: 1e-6, ropeTheta: 10000, maxPositions: 4096, slidingWindow: null, tieWordEmbeddings: false,
    qkNorm: 'none', attentionBias: false, embeddingMultiplier: 1, residualMultiplier: 1, attentionScale: 1 / Math.sqrt(8),
    logitsScaling: 1, weightDtype: s.dtype ?? 'f32',
  };
}

export interface Problem {
  config: MoeConfig;
  layer: MoeLayer;
  stats: RoutingStats;
  scratch: MoeScratch;
  /** Weights as the GPU sees them (dtype-rounded), for the reference. */
  ref: MoeRefWeights;
  gpuWeights: MoeLayerWeights;
  residualScale?: number;
  /** The folded input norm: its weight as the GPU sees it, and the normalised rows the router writes. */
  inputNorm?: { weight: GPUBuffer; rounded: Float32Array; eps: number; normed: GPUBuffer };
}

export interface BuildOptions {
  layerIndex?: number;
  maxTokens?: number;
  ringCapacity?: number;
  expertMode?: ExpertVariant | 'auto';
  /** The tiled expert kernels' workgroup shape (MoeLayerOptions.tiledShape; 'tiled-narrow' takes WG_M 8 of it). */
  tiledShape?: TiledShape;
  /** Force expert banks to split over buffers of this many bytes. */
  maxBindingBytes?: number;
  /** Replace the random router weight (f32 [E, H]), expert weights ([E, 2I, H], [E, H, I]), correction bias [E]. */
  routerWeight?: Float32Array;
  gateUpWeight?: Float32Array;
  downWeight?: Float32Array;
  correctionBias?: Float32Array;
  /** Expert banks as random blocks of this format (one buffer each; H and I whole blocks) instead of dtype words. */
  quantExperts?: QuantFormat;
  stats?: RoutingStats;
  scratch?: MoeScratch;
  /** The residual add fused into the combine (MoeLayerOptions.residualScale). */
  residualScale?: number;
  /** The input RMSNorm folded into the router (MoeLayerOptions.inputNorm), with a random weight in the spec's dtype. */
  inputNorm?: boolean;
  /** MoeLayerOptions.record (default true). */
  record?: boolean;
  /** MoeLayerOptions.fusedDecode (default true): false runs one-token steps on the down GEMV and the combine. */
  fusedDecode?: boolean;
}

export function buildProblem(gpu: Gpu, spec: ProblemSpec, o: BuildOptions = {}): Problem {
  const config = makeConfig(spec);
  const { H, I, E } = spec;
  const dtype = spec.dtype ?? 'f32';
  const seed = spec.seed;
  const pack = (label: string, v: Float32Array) => {
    const p = packWeights(v, dtype);
    return { buffer: uploadBuffer(gpu, label, p.words), rounded: p.rounded };
  };
  // Router rows scaled so the softmax is neither flat nor one-hot.
  const router = pack('test.router', o.routerWeight ?? randomF32(E * H, seed + 1, 1.5 / Math.sqrt(H)));
  // gpt-oss: gate/up pre-activations of std ~8, so many pass the ±7 clamp on either side.
  const gateUpScale = (config.expertActivation ? 8 : 1) / Math.sqrt(H);
  const quantBank = (label: string, rows: number, cols: number, s: number) => {
    // Scales 2^-13 .. 2^-9 (Q6_K, whose int8 sub-scales and 6-bit codes multiply to 8× more: 2^-16 .. 2^-12; Q5_K,
    // whose codes reach 31: 2^-14 .. 2^-10): weights of a few tenths at most, as in trained layers.
    const minExp = o.quantExperts === 'q6_k' ? -16 : o.quantExperts === 'q5_k' ? -14 : -13;
    const blocks = randomBlocks(o.quantExperts!, rows, cols, s, minExp, 4);
    return {
      bank: { buffers: [uploadBuffer(gpu, label, padTo4(blocks))], expertsPerBuffer: E, format: o.quantExperts },
      rounded: Float32Array.from(dequantRef(o.quantExperts!, blocks, rows * cols)),
    };
  };
  const gateUp = o.quantExperts
    ? quantBank('test.gateUp', E * 2 * I, H, seed + 2)
    : uploadExpertBank(gpu, 'test.gateUp', o.gateUpWeight ?? randomF32(E * 2 * I * H, seed + 2, gateUpScale), E, dtype, o.maxBindingBytes);
  const down = o.quantExperts
    ? quantBank('test.down', E * H, I, seed + 3)
    : uploadExpertBank(gpu, 'test.down', o.downWeight ?? randomF32(E * H * I, seed + 3, 1 / Math.sqrt(I)), E, dtype, o.maxBindingBytes);
  const ref: MoeRefWeights = { router: router.rounded, gateUp: gateUp.rounded, down: down.rounded };
  const gpuWeights: MoeLayerWeights = { router: router.buffer, gateUp: gateUp.bank, down: down.bank };
  if (config.router.hasBias) {
    const bias = randomF32(E, seed + 8, 0.5);
    ref.bias = bias;
    gpuWeights.routerBias = uploadBuffer(gpu, 'test.routerBias', bias);
  }
  if (config.expertBias) {
    const gub = randomF32(E * 2 * I, seed + 9, 2), db = randomF32(E * H, seed + 10, 0.5);
    ref.gateUpBias = gub;
    ref.downBias = db;
    gpuWeights.gateUpBias = uploadBuffer(gpu, 'test.gateUpBias', gub);
    gpuWeights.downBias = uploadBuffer(gpu, 'test.downBias', db);
  }
  if (config.router.hasCorrectionBias) {
    const corr = o.correctionBias ?? randomF32(E, seed + 4, 0.05);
    ref.correction = corr;
    gpuWeights.correctionBias = uploadBuffer(gpu, 'test.correction', corr);
  }
  if (config.sharedExpert) {
    const Is = config.sharedExpert.intermediateSize;
    const sgu = pack('test.sharedGateUp', randomF32(2 * Is * H, seed + 5, 1 / Math.sqrt(H)));
    const sd = pack('test.sharedDown', randomF32(H * Is, seed + 6, 1 / Math.sqrt(Is)));
    ref.shared = { gateUp: sgu.rounded, down: sd.rounded, intermediate: Is };
    gpuWeights.shared = { gateUp: sgu.buffer, down: sd.buffer };
    if (config.sharedExpert.gated) {
      const g = pack('test.sharedGate', randomF32(H, seed + 7, 1 / Math.sqrt(H)));
      ref.shared.gate = g.rounded;
      gpuWeights.shared.gate = g.buffer;
    }
  }
  const stats = o.stats ?? new RoutingStats(gpu, config, { ringCapacity: o.ringCapacity ?? 128 });
  const scratch = o.scratch ?? new MoeScratch(gpu, moeScratchShape(config, { maxTokens: o.maxTokens ?? 64 }));
  let inputNorm: Problem['inputNorm'];
  if (o.inputNorm) {
    const weight = pack('test.inputNorm', randomF32(H, seed + 11, 1));
    inputNorm = { weight: weight.buffer, rounded: weight.rounded, eps: 1e-5, normed: poisonedBuffer(gpu, 'test.normed', (o.maxTokens ?? 64) * H) };
  }
  const layer = new MoeLayer(gpu, {
    layer: o.layerIndex ?? 1, config, weights: gpuWeights, stats, scratch, expertMode: o.expertMode, tiledShape: o.tiledShape, residualScale: o.residualScale,
    record: o.record, fusedDecode: o.fusedDecode,
    ...(inputNorm ? { inputNorm } : {}),
  });
  return { config, layer, stats, scratch, ref, gpuWeights, residualScale: o.residualScale, inputNorm };
}

/** Sets the policy on the layer and the ablation mask on its stats. */
export function applyPolicy(p: Problem, policy: RoutingPolicy): void {
  applyRoutingPolicy(policy, [p.layer], p.stats);
}

export function policyWith(config: MoeConfig, o: Partial<RoutingPolicy>): RoutingPolicy {
  return { ...defaultPolicy(config), ...o };
}

/** Runs one step on the GPU: returns the output buffer (poisoned before the run). */
export function runStep(gpu: Gpu, p: Problem, x: GPUBuffer, T: number, position: number, out?: GPUBuffer): GPUBuffer {
  out ??= poisonedBuffer(gpu, 'test.out', T * p.config.hiddenSize);
  const enc = gpu.device.createCommandEncoder({ label: 'test.moe' });
  p.layer.encode(enc, x, out, T, position);
  gpu.device.queue.submit([enc.finish()]);
  return out;
}

/** The reference of the same step. */
export function refStep(p: Problem, x: Float32Array, T: number, position: number, policy: RoutingPolicy): MoeRefOutput {
  const c = p.config;
  const k = effectiveTopK(c, policy);
  const layer = p.layer.layer;
  const E = c.numExperts;
  return moeLayerRef({
    T, H: c.hiddenSize, I: c.moeIntermediateSize, E, x, weights: p.ref, router: c.router, layer, position, k,
    noiseStd: policy.noiseStd, noiseSeed: policy.noiseSeed, temperature: policy.temperature,
    ablated: policy.ablated.subarray(layer * E, (layer + 1) * E),
    capacity: expertCapacity(policy.capacityFactor, T, k, E), overflow: policy.overflow, activation: c.expertActivation,
  });
}

export const OUT_TOL = { atol: 3e-5, rtol: 3e-4 };

/** Chosen/assigned experts and weights of `layer` for ring positions [position, position + T). */
async function ringRows(gpu: Gpu, p: Problem, position: number, T: number) {
  const L = p.config.numLayers;
  const n = (position + T) * L * K_MAX;
  const chosen = await readU32(gpu, p.stats.buffers.ringChosen, n);
  const assigned = await readU32(gpu, p.stats.buffers.ringAssigned, n);
  const weights = await readF32(gpu, p.stats.buffers.ringWeights, n);
  return { chosen, assigned, weights, at: (t: number, s: number) => ((position + t) * L + p.layer.layer) * K_MAX + s };
}

/** Runs one step and checks output, routing ids and weights against the reference. */
export async function checkStep(gpu: Gpu, p: Problem, T: number, policy: RoutingPolicy, seed: number, position = 0) {
  applyPolicy(p, policy);
  const H = p.config.hiddenSize;
  const x = randomF32(T * H, seed, 1);
  const xBuffer = uploadBuffer(gpu, 'test.x', x);
  // With the residual add fused, out is the residual stream (an input, so not poisoned): out0 + scale · output. With
  // the norm folded in too, x is that stream, as in the decoder: one buffer for both.
  const out0 = p.residualScale === undefined ? null : p.inputNorm ? x : randomF32(T * H, seed + 1, 1);
  const outBuffer = !out0 ? undefined : p.inputNorm ? xBuffer : uploadBuffer(gpu, 'test.residual', out0);
  const out = runStep(gpu, p, xBuffer, T, position, outBuffer);
  const normedRef = p.inputNorm ? rmsnormRef(x, p.inputNorm.rounded, T, H, p.inputNorm.eps) : null;
  const ref = refStep(p, normedRef ? Float32Array.from(normedRef) : x, T, position, policy);
  if (out0) ref.out = ref.out.map((v, i) => out0[i] + p.residualScale! * v);
  if (p.inputNorm && normedRef) expectClose(await readF32(gpu, p.inputNorm.normed, T * H), normedRef, { atol: 1e-6, rtol: 1e-5 }, `${p.config.source} T=${T} normed`);
  const k = ref.chosen.length / T;
  const ring = await ringRows(gpu, p, position, T);
  const got = { chosen: [] as number[], assigned: [] as number[], weights: [] as number[] };
  for (let t = 0; t < T; t++) {
    for (let s = 0; s < k; s++) {
      got.chosen.push(ring.chosen[ring.at(t, s)]);
      got.assigned.push(ring.assigned[ring.at(t, s)]);
      got.weights.push(ring.weights[ring.at(t, s)]);
    }
  }
  const what = `${p.config.source} T=${T}`;
  expectExact(got.chosen, ref.chosen, `${what} chosen (min gap ${Math.min(...ref.gap).toExponential(2)})`);
  expectExact(got.assigned, ref.assigned, `${what} assigned`);
  expectClose(got.weights, ref.weights, { atol: 1e-6, rtol: 1e-5 }, `${what} weights`);
  expectClose(await readF32(gpu, out, T * p.config.hiddenSize), ref.out, OUT_TOL, `${what} output`);
  expect(gpu.recentErrors).toEqual([]);
  return ref;
}

/** The layer's statistics after its first step (the buffers start at zero) against that step's reference. */
export async function checkStepStats(gpu: Gpu, p: Problem, ref: Awaited<ReturnType<typeof checkStep>>) {
  const E = p.config.numExperts;
  const l = p.layer.layer;
  const b = p.stats.buffers;
  const row = async <A extends Uint32Array | Float32Array>(read: Promise<A>) => (await read).subarray(l * E, (l + 1) * E);
  const n = p.config.numLayers * E;
  const what = `${p.config.source} statistics`;
  expectExact(await row(readU32(gpu, b.counts, n)), ref.counts, `${what} counts`);
  expectExact(await row(readU32(gpu, b.stepCounts, n)), ref.counts, `${what} stepCounts`);
  expectExact(await row(readU32(gpu, b.dropped, n)), ref.dropped, `${what} dropped`);
  const SUM_TOL = { atol: 1e-4, rtol: 1e-5 };
  expectClose(await row(readF32(gpu, b.probMass, n)), ref.probMass, SUM_TOL, `${what} probMass`);
  expectClose(await row(readF32(gpu, b.gateSum, n)), ref.gateSum, SUM_TOL, `${what} gateSum`);
  expectClose([(await readF32(gpu, b.zLossSum, p.config.numLayers))[l]], [ref.zLossSum], SUM_TOL, `${what} zLossSum`);
  expect(gpu.recentErrors).toEqual([]);
}
