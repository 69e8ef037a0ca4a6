// Benchmark operands: x, y and enough copies of W that repeated runs stream W from device memory rather than L2.
import type { Gpu } from '../engine/gpu';
import { packWeights, bytesPerElement, type WeightDtype } from '../model/dtypes';
import { storageBuffer } from '../engine/kernels/common';

/** Weights cycled per repetition add up to at least this many bytes (4× an H100's 50 MB L2). */
export const ROTATE_BYTES = 200 * 1024 * 1024;
const MAX_COPIES = 8;

/** mulberry32: seeded uniforms in [0, 1), the same sequence on every machine. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A block of deterministic pseudo-random values in [-1, 1), repeated to fill large buffers quickly. */
export function randomBlock(n: number, seed: number): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = next() * 2 - 1;
  return out;
}

// An odd block length so that rows of the matrices do not repeat each other exactly.
const BLOCK_WORDS = (1 << 20) + 7;
const blocks = new Map<string, { words: Uint32Array; rounded: Float32Array }>();

function block(kind: 'f32' | WeightDtype, seed: number): { words: Uint32Array; rounded: Float32Array } {
  const key = `${kind}:${seed}`;
  let b = blocks.get(key);
  if (!b) {
    const values = randomBlock(kind === 'f32' ? BLOCK_WORDS : 2 * BLOCK_WORDS, seed);
    b = packWeights(values, kind);
    blocks.set(key, b);
  }
  return b;
}

/** Element i of a buffer made by filledBuffer(…, kind, seed), as the GPU sees it (after f16/bf16 rounding). */
export function hostElement(kind: 'f32' | WeightDtype, seed: number): (i: number) => number {
  const { rounded } = block(kind, seed);
  if (kind === 'f32') return (i) => rounded[i % BLOCK_WORDS];
  return (i) => rounded[(((i >>> 1) % BLOCK_WORDS) << 1) | (i & 1)];
}

/** A storage buffer of `bytes` (rounded up to 16) filled with non-zero pseudo-random data of `kind`. */
export function filledBuffer(gpu: Gpu, label: string, bytes: number, kind: 'f32' | WeightDtype, seed: number): GPUBuffer {
  const buffer = storageBuffer(gpu, label, bytes);
  const { words } = block(kind, seed);
  for (let offset = 0; offset < buffer.size; offset += words.byteLength) {
    const n = Math.min(words.byteLength, buffer.size - offset);
    gpu.device.queue.writeBuffer(buffer, offset, words.buffer, words.byteOffset, n);
  }
  return buffer;
}

export const X_SEED = 1;
export const W_SEED = 2;

export interface Operands {
  M: number;
  K: number;
  N: number;
  dtype: WeightDtype;
  x: GPUBuffer;
  /** W copies; repetition i uses weights[i % weights.length]. */
  weights: GPUBuffer[];
  y: GPUBuffer;
  weightBytes: number;
  destroy(): void;
}

export function makeOperands(gpu: Gpu, label: string, M: number, K: number, N: number, dtype: WeightDtype): Operands {
  const weightBytes = N * K * bytesPerElement(dtype);
  const copies = Math.max(1, Math.min(MAX_COPIES, Math.ceil(ROTATE_BYTES / weightBytes)));
  const x = filledBuffer(gpu, `${label}.x`, M * K * 4, 'f32', X_SEED);
  const weights = Array.from({ length: copies }, (_, i) => filledBuffer(gpu, `${label}.w${i}`, weightBytes, dtype, W_SEED + i));
  const y = storageBuffer(gpu, `${label}.y`, M * N * 4);
  return {
    M,
    K,
    N,
    dtype,
    x,
    weights,
    y,
    weightBytes,
    destroy() {
      x.destroy();
      y.destroy();
      for (const w of weights) w.destroy();
    },
  };
}

export interface SampleCheck {
  samples: number;
  failures: number;
  /** Largest |got - ref| / Σ_k |x·w| over the samples (f32 rounding is ≲ 1e-6 of that). */
  worst: number;
  firstFailure: string | null;
}

/**
 * Compares sampled outputs y[m, n] (after one run with weights[0]) with float64 dot products computed from the
 * same pseudo-random data on the CPU. Corners included; NaN (an unwritten output) always fails.
 */
export function checkSamples(ops: Operands, layout: 'nk' | 'kn', y: Float32Array, samples = 64): SampleCheck {
  const { M, K, N } = ops;
  const xAt = hostElement('f32', X_SEED);
  const wAt = hostElement(ops.dtype, W_SEED);
  let a = 12345;
  const next = (n: number) => {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    return a % n;
  };
  const points: [number, number][] = [[0, 0], [M - 1, N - 1], [0, N - 1], [M - 1, 0]];
  while (points.length < samples) points.push([next(M), next(N)]);
  let failures = 0;
  let worst = 0;
  let firstFailure: string | null = null;
  for (const [m, n] of points) {
    let ref = 0;
    let abs = 0;
    for (let k = 0; k < K; k++) {
      const t = xAt(m * K + k) * wAt(layout === 'nk' ? n * K + k : k * N + n);
      ref += t;
      abs += Math.abs(t);
    }
    const got = y[m * N + n];
    const rel = Math.abs(got - ref) / (abs + 1e-30);
    if (!(rel <= 1e-5)) {
      failures++;
      firstFailure ??= `y[${m}, ${n}] = ${got}, float64 ${ref}`;
    }
    if (!(rel <= worst)) worst = Number.isNaN(rel) ? Infinity : rel;
  }
  return { samples: points.length, failures, worst, firstFailure };
}
