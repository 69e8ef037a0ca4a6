// Random block-quantised weights (benchmarks and tests): random bytes with finite scale fields, so every code and
// every packing bit pattern occurs while the decoded values stay in a chosen range.
import { QUANT_BLOCKS, f32ToF16, type QuantFormat } from '../model/dtypes';
import { storageBuffer } from '../engine/kernels/common';
import type { Gpu } from '../engine/gpu';
import { mulberry32 } from './operands';


/**
 * `blocks` seeded random blocks of `format`: random bytes whose scale fields hold finite values of both signs between
 * 2^minExp and 2^(minExp + spanExp) (f16 scales; MXFP4 exponents 2^minExp .. 2^(minExp + spanExp − 1)).
 */
export function randomQuantBlocks(format: QuantFormat, blocks: number, seed: number, minExp = -10, spanExp = 12): Uint8Array {
  const size = QUANT_BLOCKS[format].bytes;
  const r = mulberry32(seed);
  const out = new Uint8Array(blocks * size);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(r() * 256);
  const view = new DataView(out.buffer);
  const scale = () => f32ToF16((r() < 0.5 ? -1 : 1) * 2 ** (minExp + spanExp * r()));
  for (let b = 0; b < blocks; b++) {
    const at = b * size;
    if (format === 'q8_0' || format === 'q4_k' || format === 'q5_k') view.setUint16(at, scale(), true);
    if (format === 'q4_k' || format === 'q5_k') view.setUint16(at + 2, scale(), true);
    if (format === 'q6_k') view.setUint16(at + 208, scale(), true);
    if (format === 'mxfp4') out[at] = 127 + minExp + Math.floor(r() * spanExp);
  }
  return out;
}

/** A storage buffer of `bytes` (rounded up to 16) filled with one chunk of random `format` blocks, repeated. */
export function filledQuantBuffer(gpu: Gpu, label: string, bytes: number, format: QuantFormat, seed: number): GPUBuffer {
  const buffer = storageBuffer(gpu, label, bytes);
  // 4 blocks of every size make a chunk of whole words; ~4 MB per chunk.
  const chunk = randomQuantBlocks(format, 4 * Math.floor((4 << 20) / (4 * QUANT_BLOCKS[format].bytes)), seed, -12, 6);
  for (let offset = 0; offset < buffer.size; offset += chunk.byteLength) {
    gpu.device.queue.writeBuffer(buffer, offset, chunk, 0, Math.min(chunk.byteLength, buffer.size - offset));
  }
  return buffer;
}
