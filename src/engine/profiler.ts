// Per-pass GPU timings from timestamp queries. Degrades to a no-op where 'timestamp-query' is missing.
//
// Usage per step: `const pass = encoder.beginComputePass(profiler.passDescriptor('Layer0.attention'))`, …, then
// `profiler.resolve(encoder)` before finishing the encoder. Reading the results (`read()`) maps a buffer, so it belongs
// to the throttled snapshot path, never to the per-token path.
//
// Resolution: browsers quantise timestamps (Chrome: 100 µs unless WebGPU developer features are on); Dawn in Node is
// created with timestamp quantisation disabled (src/engine/node/device-node.ts). `resolutionNote` says which applies.
import type { Gpu } from './gpu';

export interface PassTiming {
  name: string;
  /** Mean GPU time per recorded step, microseconds. */
  micros: number;
  /** Steps averaged. */
  samples: number;
  /** GPU time per token: the summed time over the summed tokens of the steps averaged, microseconds. */
  microsPerToken: number;
}

export class Profiler {
  readonly enabled: boolean;
  private readonly querySet: GPUQuerySet | null = null;
  private readonly resolveBuffer: GPUBuffer | null = null;
  private readonly readBuffer: GPUBuffer | null = null;
  private names: string[] = [];
  /** Tokens the current step processes. */
  private stepTokens = 1;
  private pending = false;
  private readonly totals = new Map<string, { micros: number; samples: number; tokens: number }>();

  constructor(
    private readonly gpu: Gpu,
    /** Timed passes per step at most. */
    private readonly maxPasses = 256,
    readonly resolutionNote = 'timestamp queries; resolution set by the browser or Dawn',
  ) {
    this.enabled = gpu.features.timestampQuery;
    if (!this.enabled) return;
    const count = maxPasses * 2;
    this.querySet = gpu.device.createQuerySet({ label: 'Profiler.queries', type: 'timestamp', count });
    this.resolveBuffer = gpu.createBuffer({
      label: 'Profiler.resolve',
      size: count * 8, // u64 [passes, 2] begin/end ticks (ns)
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    this.readBuffer = gpu.createBuffer({
      label: 'Profiler.read',
      size: count * 8,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  /** Start of a step of `tokens` tokens: forget last step's pass names. */
  beginStep(tokens = 1): void {
    this.names = [];
    this.stepTokens = tokens;
  }

  /** A pass descriptor that records begin/end timestamps for `name` (plain descriptor when disabled or full). */
  passDescriptor(name: string): GPUComputePassDescriptor {
    if (!this.querySet || this.pending || this.names.length >= this.maxPasses) return { label: name };
    const i = this.names.length;
    this.names.push(name);
    return {
      label: name,
      timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
    };
  }

  /** Resolve this step's queries into the readable buffer (skipped while a previous read is in flight). */
  resolve(encoder: GPUCommandEncoder): void {
    if (!this.querySet || this.pending || this.names.length === 0) return;
    const n = this.names.length * 2;
    encoder.resolveQuerySet(this.querySet, 0, n, this.resolveBuffer!, 0);
    encoder.copyBufferToBuffer(this.resolveBuffer!, 0, this.readBuffer!, 0, n * 8);
  }

  /** After submit: fold the resolved timings into the running means (async; one read in flight at a time). */
  async collect(): Promise<void> {
    if (!this.readBuffer || this.pending || this.names.length === 0) return;
    const names = this.names;
    const tokens = this.stepTokens;
    this.pending = true;
    try {
      await this.readBuffer.mapAsync(GPUMapMode.READ, 0, names.length * 16);
      const ticks = new BigUint64Array(this.readBuffer.getMappedRange(0, names.length * 16).slice(0));
      this.readBuffer.unmap();
      names.forEach((name, i) => {
        const ns = Number(ticks[2 * i + 1] - ticks[2 * i]);
        if (!(ns >= 0) || ns > 1e10) return; // invalid pair (e.g. pass skipped by the driver)
        const t = this.totals.get(name) ?? { micros: 0, samples: 0, tokens: 0 };
        t.micros += ns / 1000;
        t.samples += 1;
        t.tokens += tokens;
        this.totals.set(name, t);
      });
    } finally {
      this.pending = false;
    }
  }

  /** Mean time per pass name since the last reset. */
  timings(): PassTiming[] {
    return [...this.totals].map(([name, t]) => ({ name, micros: t.micros / t.samples, samples: t.samples, microsPerToken: t.micros / t.tokens }));
  }

  reset(): void {
    this.totals.clear();
  }

  destroy(): void {
    this.querySet?.destroy();
    this.resolveBuffer?.destroy();
    this.readBuffer?.destroy();
  }
}
