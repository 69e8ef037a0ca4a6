// Uploading per-expert weight matrices as an ExpertBank: one buffer if the whole bank fits in one storage binding,
// else consecutive experts per buffer (Mixtral-8x7B's f32 gate_up is 3.76 GB, over most binding limits).
import type { Gpu } from '../gpu';
import { packWeights, tensorBytes, type TensorFormat, type WeightDtype } from '../../model/dtypes';
import type { ExpertBank } from './moe-layer';

/** Experts per buffer so that each buffer stays within `maxBindingBytes` (and maxBufferSize). */
export function expertsPerBinding(gpu: Gpu, elementsPerExpert: number, dtype: TensorFormat, maxBindingBytes?: number): number {
  const limit = Math.min(maxBindingBytes ?? Infinity, gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  // Round each expert up to whole 16-byte units, as packed below (quantised experts: whole blocks, same rounding).
  const bytes = Math.ceil((tensorBytes(dtype, [elementsPerExpert]) ?? NaN) / 16) * 16;
  const n = Math.floor(limit / bytes);
  if (n < 1) throw new RangeError(`one expert (${bytes} bytes) is over the device's storage binding limit ${limit}`);
  return n;
}

/**
 * values: f32 [E, rows, cols] (the checkpoint layout); stored in `dtype` words, split into buffers of
 * expertsPerBinding() experts. Returns the bank and the values as the GPU sees them (after dtype rounding).
 */
export function uploadExpertBank(
  gpu: Gpu,
  label: string,
  values: Float32Array,
  experts: number,
  dtype: WeightDtype,
  maxBindingBytes?: number,
): { bank: ExpertBank; rounded: Float32Array } {
  const per = values.length / experts;
  if (!Number.isInteger(per)) throw new RangeError(`${label}: ${values.length} values do not split into ${experts} experts`);
  const n = Math.min(experts, expertsPerBinding(gpu, per, dtype, maxBindingBytes));
  const rounded = new Float32Array(values.length);
  const buffers: GPUBuffer[] = [];
  for (let first = 0, i = 0; first < experts; first += n, i++) {
    const slice = values.subarray(first * per, Math.min(experts, first + n) * per);
    const packed = packWeights(slice, dtype);
    rounded.set(packed.rounded, first * per);
    const buffer = gpu.createBuffer({
      label: `${label}${buffers.length ? `.${i}` : ''}`,
      size: Math.max(16, Math.ceil(packed.words.byteLength / 16) * 16),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
    gpu.device.queue.writeBuffer(buffer, 0, packed.words);
    buffers.push(buffer);
  }
  return { bank: { buffers, expertsPerBuffer: n }, rounded };
}
