// Will the model fit? GPU bytes a model needs (weights in their dtype, KV cache, activations, routing record) against
// what the adapter allows (largest buffer, largest storage binding, and a total budget), checked before any upload.
//
// WebGPU does not report how much memory a device has, so the total budget is the caller's (the app picks one,
// e.g. DEFAULT_BUDGET_BYTES, or what the user sets). Activations are an estimate of the engine's per-step scratch;
// weights are exact when a load plan is given, from the config's parameter count otherwise (config-only mode).
import { bytesPerElement } from '../model/dtypes';
import { countParameters } from '../model/config';
import type { MoeConfig } from '../model/config';
import { K_MAX } from '../model/limits';
import { OutOfMemoryError } from './errors';
import { bufferSize } from './weights';
import type { LoadPlan } from './weights';

/** A total the app may assume when it knows nothing better (integrated GPUs and browsers often allow less). */
export const DEFAULT_BUDGET_BYTES = 4 * 2 ** 30;

export interface GpuMemoryLimits {
  /** GPUSupportedLimits.maxBufferSize */
  maxBufferSize: number;
  /** GPUSupportedLimits.maxStorageBufferBindingSize: every weight buffer is bound whole as storage. */
  maxStorageBufferBindingSize: number;
  /** Total bytes the model may take on this device. */
  budgetBytes: number;
}

/** Limits from a GPUAdapter's or GPUDevice's `limits`, plus a total budget. */
export function limitsOf(limits: Pick<GPUSupportedLimits, 'maxBufferSize' | 'maxStorageBufferBindingSize'>, budgetBytes = DEFAULT_BUDGET_BYTES): GpuMemoryLimits {
  return { maxBufferSize: limits.maxBufferSize, maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize, budgetBytes };
}

export interface MemoryOptions {
  /** Token positions the KV cache holds. */
  contextLength: number;
  /** Positions the routing ring records (default: contextLength). */
  ringCapacity?: number;
  /** Tokens per forward step (prefill chunk) for the activation estimate (default 64). */
  stepTokens?: number;
  /** Bytes per KV-cache element (default 4: f32). */
  kvBytesPerElement?: number;
}

export interface BufferNeed {
  name: string;
  bytes: number;
}

export interface MemoryEstimate {
  weights: number;
  kvCache: number;
  activations: number;
  routing: number;
  total: number;
  /** The biggest single buffers (weights and the routing ring), biggest first. */
  largestBuffers: BufferNeed[];
}

/** Bytes of each routing buffer in the RoutingBuffers contract (src/engine/routing-buffers.ts). */
function routingBytes(c: MoeConfig, ring: number): { total: number; ringProbs: number } {
  const L = c.numLayers, E = c.numExperts;
  const perExpert = 6 * L * E * 4; // counts, stepCounts, probMass, gateSum, dropped, rerouted
  const zLoss = L * 4;
  const ringSlots = 3 * ring * L * K_MAX * 4; // ringChosen, ringAssigned, ringWeights
  const ringProbs = ring * L * E * 4;
  return { total: perExpert + zLoss + ringSlots + ringProbs, ringProbs };
}

/** The large weight buffers of a config without a checkpoint (same canonical shapes as the load plan). */
function configBuffers(c: MoeConfig): BufferNeed[] {
  const b = bytesPerElement(c.weightDtype), H = c.hiddenSize;
  const out: BufferNeed[] = [{ name: 'embed', bytes: c.vocabSize * H * b }];
  if (!c.tieWordEmbeddings) out.push({ name: 'lmHead', bytes: c.vocabSize * H * b });
  const l = c.moeLayers.indexOf(true);
  if (l >= 0) {
    out.push({ name: `layers.${l}.expertsGateUp`, bytes: c.numExperts * 2 * c.moeIntermediateSize * H * b });
    out.push({ name: `layers.${l}.expertsDown`, bytes: c.numExperts * c.moeIntermediateSize * H * b });
  }
  const d = c.moeLayers.indexOf(false);
  if (d >= 0) out.push({ name: `layers.${d}.denseGateUp`, bytes: 2 * c.intermediateSize * H * b });
  if (c.sharedExpert && l >= 0) out.push({ name: `layers.${l}.sharedGateUp`, bytes: 2 * c.sharedExpert.intermediateSize * H * b });
  return out;
}

/** MLA's per-token step scratch (src/engine/model/mla.ts): q_a rows, two [R + P] rows, q_lat and ctx, the values. */
function mlaScratchFloats(c: MoeConfig): number {
  const m = c.mla;
  if (!m) return 0;
  return 2 * (m.qLoraRank ?? 0) + 2 * (m.kvLoraRank + m.qkRopeHeadDim) + 2 * c.numHeads * m.kvLoraRank + c.numHeads * m.vHeadDim;
}

export function estimateMemory(c: MoeConfig, options: MemoryOptions, plan?: LoadPlan): MemoryEstimate {
  const ctx = options.contextLength;
  const ring = options.ringCapacity ?? ctx;
  const T = options.stepTokens ?? 64;
  const kvBytes = options.kvBytesPerElement ?? 4;

  const weights = plan
    ? plan.entries.reduce((s, e) => s + bufferSize(e), 0)
    : countParameters(c).total * bytesPerElement(c.weightDtype);

  // MLA caches one latent (kv_lora_rank + rope dims) per token and layer; standard attention caches K and V per head.
  const kvPerTokenLayer = c.mla ? c.mla.kvLoraRank + c.mla.qkRopeHeadDim : 2 * c.numKvHeads * c.headDim;
  const kvCache = c.numLayers * ctx * kvPerTokenLayer * kvBytes;

  // Per-step scratch, f32: residual/normed/attention-out rows, q/k/v, attention scores, router logits and
  // probabilities, the k routed experts' gate/up/act rows, the shared expert or dense MLP rows, and logits.
  const H = c.hiddenSize, qDim = c.numHeads * c.headDim, kvDim = c.mla ? 0 : c.numKvHeads * c.headDim;
  const ffnRow = Math.max(
    c.router.topK * 3 * c.moeIntermediateSize + (c.sharedExpert ? 3 * c.sharedExpert.intermediateSize : 0),
    3 * c.intermediateSize,
  );
  const perToken = 4 * H + qDim + 2 * kvDim + c.numHeads * ctx + 2 * c.numExperts + ffnRow + c.vocabSize + mlaScratchFloats(c);
  const activations = T * perToken * 4;

  const r = routingBytes(c, ring);
  const buffers: BufferNeed[] = plan ? plan.entries.map((e) => ({ name: e.name, bytes: bufferSize(e) })) : configBuffers(c);
  buffers.push({ name: 'routing.ringProbs', bytes: r.ringProbs });
  buffers.sort((a, b) => b.bytes - a.bytes);
  return {
    weights, kvCache, activations, routing: r.total,
    total: weights + kvCache + activations + r.total,
    largestBuffers: buffers.slice(0, 5),
  };
}

/** Human-readable bytes in decimal units: 93.4 GB, 512.0 MB, 12.3 kB. */
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} bytes`;
}

export interface MemoryCheck {
  fits: boolean;
  estimate: MemoryEstimate;
  /** One line per limit exceeded. */
  problems: string[];
  /** All problems as one message for the user, or null when it fits. */
  message: string | null;
}

/**
 * Checks a model against the adapter's limits. `modelName` heads the message ("Mixtral-8x7B needs 93.4 GB of GPU
 * memory; this adapter allows ~4.3 GB; try config-only mode").
 */
export function checkMemory(
  c: MoeConfig, limits: GpuMemoryLimits, options: MemoryOptions, modelName: string, plan?: LoadPlan,
): MemoryCheck {
  const est = estimateMemory(c, options, plan);
  const problems: string[] = [];
  if (est.total > limits.budgetBytes) {
    problems.push(
      `${modelName} needs ${formatBytes(est.total)} of GPU memory (weights ${formatBytes(est.weights)}, ` +
      `KV cache ${formatBytes(est.kvCache)} for ${options.contextLength} tokens, activations ~${formatBytes(est.activations)}, ` +
      `routing record ${formatBytes(est.routing)}); this adapter allows ~${formatBytes(limits.budgetBytes)}; try config-only mode`,
    );
  }
  const perBuffer = Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize);
  const which = limits.maxStorageBufferBindingSize <= limits.maxBufferSize ? 'maxStorageBufferBindingSize' : 'maxBufferSize';
  for (const b of est.largestBuffers) {
    if (b.bytes > perBuffer) {
      problems.push(`${modelName}: ${b.name} needs one ${formatBytes(b.bytes)} buffer; this adapter's ${which} is ${formatBytes(perBuffer)}; try config-only mode`);
    }
  }
  return { fits: problems.length === 0, estimate: est, problems, message: problems.length ? problems.join('\n') : null };
}

/** checkMemory that throws an OutOfMemoryError with the message; returns the estimate when it fits. */
export function assertFitsInMemory(
  c: MoeConfig, limits: GpuMemoryLimits, options: MemoryOptions, modelName: string, plan?: LoadPlan,
): MemoryEstimate {
  const check = checkMemory(c, limits, options, modelName, plan);
  if (!check.fits) throw new OutOfMemoryError(check.message!);
  return check.estimate;
}
