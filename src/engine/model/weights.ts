// The model's weights as the decoder binds them: one GPU buffer per load-plan entry, expert banks possibly split into
// buffers of whole experts (src/engine/routing/expert-bank.ts). src/loading/upload-weights.ts fills them.
import type { TensorFormat } from '../../model/dtypes';
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
