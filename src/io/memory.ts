// Will the model fit? GPU bytes a model needs (weights in their dtype, KV cache, activations, routing record) against
// what the adapter allows (largest buffer, largest storage binding, and a total budget), checked before any upload.
//
// WebGPU does not report how much memory a device has. The total budget (memoryBudget) is the person's setting
// (--memory, the app's GPU-memory field) when given, else most of the largest device-local memory heap where the
// browser exposes heaps, else DEFAULT_BUDGET_BYTES; the refusal message says where the budget came from and how to
// raise it. Activations are an estimate of the engine's per-step scratch; weights are exact when a load plan is
// given, from the config's parameter count otherwise (config-only mode).
import { bytesPerElement } from '../model/dtypes';
import { countParameters } from '../model/config';
import type { MoeConfig } from '../model/config';
import { allocatedBytes, routingRecordBytes } from '../model/routing-record';
import { OutOfMemoryError } from './errors';
import { bufferSize } from './weights';
import type { LoadPlan } from './weights';

/** A total the app may assume when it knows nothing better (integrated GPUs and browsers often allow less). */
export const DEFAULT_BUDGET_BYTES = 4 * 2 ** 30;
/** Share of the largest device-local heap a model may take (the rest for the browser, the display, the driver). */
export const HEAP_SHARE = 0.9;

/** A memory heap of the adapter (see GpuAdapterSummary.memoryHeaps). */
export interface MemoryHeap {
  size: number;
  deviceLocal: boolean;
}

export interface MemoryBudget {
  bytes: number;
  /** Where the number came from, for messages ("set with --memory", "a default: the adapter reports no memory size"). */
  origin: string;
}

/**
 * The total a model may take: `setting` (the person's, with the words that name it) wins; else HEAP_SHARE of the
 * largest device-local heap (any heap if none is marked device-local); else DEFAULT_BUDGET_BYTES.
 */
export function memoryBudget(heaps: readonly MemoryHeap[], setting?: { bytes: number; origin: string }): MemoryBudget {
  if (setting) return { bytes: setting.bytes, origin: setting.origin };
  const local = heaps.filter((h) => h.deviceLocal);
  const largest = Math.max(0, ...(local.length ? local : heaps).map((h) => h.size));
  if (largest > 0) {
    return { bytes: Math.floor(largest * HEAP_SHARE), origin: `${HEAP_SHARE * 100}% of the adapter's ${formatBytes(largest)} memory heap` };
  }
  return { bytes: DEFAULT_BUDGET_BYTES, origin: 'a default: the adapter reports no memory size' };
}

const UNIT_BYTES: Readonly<Record<string, number>> = {
  '': 1, B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40,
};

/**
 * "40GB", "40 GiB", "512MB", "1.5TB", "2e9" → bytes (decimal units as formatBytes writes them, binary with "iB").
 * `what` names the setting in the error ("--memory", "GPU memory").
 */
export function parseMemorySize(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmgt]i?b|b)?\s*$/i.exec(text);
  const unit = m ? (m[2] ?? '').toUpperCase() : '';
  if (!m || !(unit in UNIT_BYTES)) throw new Error(`${what}: "${text}" is not a size (examples: 40GB, 512MiB, 2e9)`);
  const bytes = Number(m[1]) * UNIT_BYTES[unit];
  if (!(bytes > 0) || !Number.isFinite(bytes)) throw new Error(`${what}: "${text}" must be a positive size`);
  return Math.round(bytes);
}

export interface GpuMemoryLimits {
  /** GPUSupportedLimits.maxBufferSize */
  maxBufferSize: number;
  /** GPUSupportedLimits.maxStorageBufferBindingSize: every weight buffer is bound whole as storage. */
  maxStorageBufferBindingSize: number;
  /** Total bytes the model may take on this device. */
  budgetBytes: number;
  /** Where budgetBytes came from (MemoryBudget.origin), for the refusal message. */
  budgetOrigin?: string;
  /** How the person raises the budget, given the bytes needed ("run with --memory 61GB"); none: config-only. */
  raiseBudget?: (neededBytes: number) => string;
}

/** Limits from a GPUAdapter's or GPUDevice's `limits`, plus a total budget and how to raise it. */
export function limitsOf(
  limits: Pick<GPUSupportedLimits, 'maxBufferSize' | 'maxStorageBufferBindingSize'>,
  budget: MemoryBudget = memoryBudget([]),
  raiseBudget?: (neededBytes: number) => string,
): GpuMemoryLimits {
  return {
    maxBufferSize: limits.maxBufferSize, maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    budgetBytes: budget.bytes, budgetOrigin: budget.origin, raiseBudget,
  };
}

/** A size for "set at least N" hints: the need rounded up to whole GB (to 0.1 GB below 10 GB). */
export function roundUpGB(bytes: number): string {
  const gb = bytes / 1e9;
  return gb >= 10 ? `${Math.ceil(gb)}GB` : `${Math.ceil(gb * 10) / 10}GB`;
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
  /** The biggest single buffers (weights, one expert of each bank, the routing ring), biggest first. */
  largestBuffers: BufferNeed[];
}

/** Bytes of the routing record as the engine allocates it (src/model/routing-record.ts), and of its largest buffer. */
function routingBytes(c: MoeConfig, ring: number): { total: number; ringProbs: number } {
  const bytes = routingRecordBytes(c.numLayers, c.numExperts, ring);
  const total = Object.values(bytes).reduce((s, b) => s + allocatedBytes(b), 0);
  return { total, ringProbs: allocatedBytes(bytes.ringProbs) };
}

/**
 * The large weight buffers of a config without a checkpoint (same canonical shapes as the load plan). Expert banks
 * are split over as many buffers as the binding limit needs (src/loading/upload-weights.ts): one expert is the need.
 */
function configBuffers(c: MoeConfig): BufferNeed[] {
  const b = bytesPerElement(c.weightDtype), H = c.hiddenSize;
  const out: BufferNeed[] = [{ name: 'embed', bytes: c.vocabSize * H * b }];
  if (!c.tieWordEmbeddings) out.push({ name: 'lmHead', bytes: c.vocabSize * H * b });
  const l = c.moeLayers.indexOf(true);
  if (l >= 0) {
    out.push({ name: `layers.${l}.expertsGateUp (one expert)`, bytes: 2 * c.moeIntermediateSize * H * b });
    out.push({ name: `layers.${l}.expertsDown (one expert)`, bytes: c.moeIntermediateSize * H * b });
  }
  const d = c.moeLayers.indexOf(false);
  if (d >= 0) out.push({ name: `layers.${d}.denseGateUp`, bytes: 2 * c.intermediateSize * H * b });
  if (c.sharedExpert && l >= 0) out.push({ name: `layers.${l}.sharedGateUp`, bytes: 2 * c.sharedExpert.intermediateSize * H * b });
  return out;
}

/** The buffer a plan entry needs at least: one expert of a bank (banks split by expert), else the whole entry. */
function planBuffer(e: LoadPlan['entries'][number]): BufferNeed {
  if (e.role === 'expertsGateUp' || e.role === 'expertsDown') {
    return { name: `${e.name} (one expert)`, bytes: Math.ceil(e.byteLength / e.shape[0] / 4) * 4 };
  }
  return { name: e.name, bytes: bufferSize(e) };
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
  const buffers: BufferNeed[] = plan ? plan.entries.map(planBuffer) : configBuffers(c);
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
 * memory (…); the memory budget is ~4.3 GB (a default: …); run with --memory 94GB or more, or try config-only mode").
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
      `routing record ${formatBytes(est.routing)}); the memory budget is ~${formatBytes(limits.budgetBytes)}` +
      (limits.budgetOrigin ? ` (${limits.budgetOrigin})` : '') +
      (limits.raiseBudget ? `; ${limits.raiseBudget(est.total)}, or try config-only mode` : '; try config-only mode'),
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
