// Attention-probe helpers for the attention and MLA kernel tests: a poisoned probe range attached at a nonzero
// offset, and the check of its recorded weights against a float64 reference laid out as [heads, width] (slot 0 the
// sink's share, key j at 1 + j; width = keys + 1 <= the probe's stride).
import type { Gpu } from '../../src/engine/gpu';
import type { ProbeTarget } from '../../src/engine/kernels/split-attention';
import { expectClose, poisonedBuffer, readF32 } from './gpu';

/** The bound for weights read from the kernel's own softmax. */
const PROBE_ATOL = 1e-5;
/** Bytes before the probe range (the engine packs several layers' ranges into one buffer). */
const OFFSET = 256;

export interface AttachedProbe {
  buffer: GPUBuffer;
  heads: number;
  stride: number;
}

export function attachProbe(gpu: Gpu, target: ProbeTarget): AttachedProbe {
  const buffer = poisonedBuffer(gpu, 'test.probe', OFFSET / 4 + target.heads * target.stride);
  target.attach(buffer, OFFSET);
  return { buffer, heads: target.heads, stride: target.stride };
}

export async function expectProbe(gpu: Gpu, p: AttachedProbe, ref: Float64Array, what: string): Promise<void> {
  const all = await readF32(gpu, p.buffer, OFFSET / 4 + p.heads * p.stride);
  const width = ref.length / p.heads;
  const got = new Float32Array(ref.length);
  for (let h = 0; h < p.heads; h++) got.set(all.subarray(OFFSET / 4 + h * p.stride, OFFSET / 4 + h * p.stride + width), h * width);
  expectClose(got, ref, { atol: PROBE_ATOL, rtol: 0 }, what);
}
