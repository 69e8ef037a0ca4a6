// The model's weights as the decoder binds them: one GPU buffer per load-plan entry, expert banks possibly split into
// buffers of whole experts (src/engine/routing/expert-bank.ts). src/loading/upload-weights.ts fills them.
import type { Gpu } from '../gpu';
import type { TensorFormat } from '../../model/dtypes';
import { storageBuffer } from '../kernels/common';
import type { ExpertBank } from '../routing/moe-layer';

export interface UploadedWeights {
  /** Plan entry name → buffer (expert banks: the first buffer of the bank). */
  buffers: Map<string, GPUBuffer>;
  banks: Map<string, ExpertBank>;
  /** Plan entry name → the format its buffer holds (absent: the config's weight dtype). */
  formats: Map<string, TensorFormat>;
  /** f32 entries decoded on the way (tiny vectors the kernels read as f32, and any the loader was asked to keep). */
  f32: Map<string, Float32Array>;
  bytes: number;
}

/**
 * One buffer holding `parts` back to back (the first `bytes` of each, multiples of 4), copied on the GPU at load time:
 * the decoder's fused q/k/v weight [q rows | k rows | v rows] and its concatenated biases and q/k norm weights.
 */
export function concatBuffers(gpu: Gpu, label: string, parts: { buffer: GPUBuffer; bytes: number }[]): GPUBuffer {
  const out = storageBuffer(gpu, label, parts.reduce((n, p) => n + p.bytes, 0));
  const encoder = gpu.device.createCommandEncoder({ label: `${label}.concat` });
  let at = 0;
  for (const p of parts) {
    if (p.bytes % 4 !== 0) throw new Error(`${label}: a part of ${p.bytes} bytes cannot be copied (4-byte multiples only)`);
    encoder.copyBufferToBuffer(p.buffer, 0, out, at, p.bytes);
    at += p.bytes;
  }
  gpu.device.queue.submit([encoder.finish()]);
  return out;
}
