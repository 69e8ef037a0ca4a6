// The attention-flow view's GPU side: one buffer holding every layer's probe range (shaders/lib/online_softmax),
// attached to the decoder's attention bindings while open, so that each later step records its last token's attention
// weights per layer and head, taken from the attention kernels' own softmax (split-K merge and sinks included).
// Closed, the bindings run the pipelines without the probe writes again.
import type { Gpu } from '../gpu';
import { readF32, storageBuffer } from '../kernels/common';
import type { ProbeTarget } from '../kernels/split-attention';
import type { AttentionFlow } from '../session-api';

/** Storage-buffer offsets must be multiples of this (WebGPU's default minStorageBufferOffsetAlignment). */
const OFFSET_ALIGN = 256;

export class AttentionProbe {
  private readonly buffer: GPUBuffer;
  private readonly heads: number;
  private readonly stride: number;
  /** Bytes per layer range. */
  private readonly slab: number;

  constructor(
    private readonly gpu: Gpu,
    private readonly targets: ProbeTarget[],
  ) {
    this.heads = targets[0]?.heads ?? 0;
    this.stride = targets[0]?.stride ?? 0;
    if (targets.some((t) => t.heads !== this.heads || t.stride !== this.stride)) {
      throw new Error('AttentionProbe: every layer must have the same heads and cache length');
    }
    this.slab = Math.ceil((this.heads * this.stride * 4) / OFFSET_ALIGN) * OFFSET_ALIGN;
    // [layers, slab]: layer l's [heads, stride] f32 at byte l·slab.
    this.buffer = storageBuffer(gpu, 'AttentionProbe.weights', targets.length * this.slab);
    targets.forEach((t, l) => t.attach(this.buffer, l * this.slab));
  }

  /** The weights the last step recorded for its last token, which sat at `position`. */
  async read(position: number): Promise<AttentionFlow> {
    const keys = position + 1;
    if (keys >= this.stride) throw new RangeError(`AttentionProbe: position ${position} is past the cache (${this.stride - 1} rows)`);
    const all = await readF32(this.gpu, this.buffer);
    const L = this.targets.length, H = this.heads;
    const weights = new Float32Array(L * H * keys);
    const sink = new Float32Array(L * H);
    for (let l = 0; l < L; l++) {
      for (let h = 0; h < H; h++) {
        const row = (l * this.slab) / 4 + h * this.stride;
        sink[l * H + h] = all[row];
        weights.set(all.subarray(row + 1, row + 1 + keys), (l * H + h) * keys);
      }
    }
    return { position, layers: L, heads: H, weights, sink };
  }

  /** Detaches from every layer and frees the buffer. */
  close(): void {
    for (const t of this.targets) t.detach();
    this.buffer.destroy();
  }
}
