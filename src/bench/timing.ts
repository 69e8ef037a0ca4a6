// Timing GPU work for the benchmarks: GPU timestamp queries around the whole batch when the device has
// 'timestamp-query' (Dawn in Node is created without timestamp quantisation), and always the wall-clock time from
// submit to onSubmittedWorkDone. Each measurement repeats the work `reps` times in one submit and reports the
// median over several trials of the per-repetition time.
import type { Gpu } from '../engine/gpu';

export interface Timing {
  /** GPU time per repetition from timestamps (ms); null without 'timestamp-query'. */
  gpuMs: number | null;
  /** Wall-clock time per repetition, submit to onSubmittedWorkDone (ms). */
  wallMs: number;
  /** Repetitions per trial. */
  reps: number;
  trials: number;
}

/** Records `reps` repetitions of some work into an encoder (passes and copies alike). */
export type EncodeWork = (encoder: GPUCommandEncoder, reps: number) => void;

export const median = (values: number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

export class GpuTimer {
  private readonly querySet: GPUQuerySet | null;
  private readonly resolveBuffer: GPUBuffer | null;
  private readonly readBuffer: GPUBuffer | null;

  constructor(private readonly gpu: Gpu) {
    const ts = gpu.features.timestampQuery;
    const device = gpu.device;
    this.querySet = ts ? device.createQuerySet({ label: 'GpuTimer.queries', type: 'timestamp', count: 2 }) : null;
    this.resolveBuffer = ts
      ? device.createBuffer({ label: 'GpuTimer.resolve', size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC })
      : null;
    this.readBuffer = ts
      ? device.createBuffer({ label: 'GpuTimer.read', size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST })
      : null;
  }

  get method(): string {
    return this.querySet ? 'GPU timestamp queries (unquantised) + wall clock' : 'wall clock (no timestamp-query)';
  }

  /** One submit of `reps` repetitions; totals in ms. Timestamps come from empty passes before and after the work. */
  async runOnce(work: EncodeWork, reps: number): Promise<{ gpuMs: number | null; wallMs: number }> {
    const device = this.gpu.device;
    this.gpu.assertAlive();
    const enc = device.createCommandEncoder({ label: 'GpuTimer.batch' });
    if (this.querySet) enc.beginComputePass({ label: 'GpuTimer.begin', timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 0 } }).end();
    work(enc, reps);
    if (this.querySet) {
      enc.beginComputePass({ label: 'GpuTimer.end', timestampWrites: { querySet: this.querySet, endOfPassWriteIndex: 1 } }).end();
      enc.resolveQuerySet(this.querySet, 0, 2, this.resolveBuffer!, 0);
      enc.copyBufferToBuffer(this.resolveBuffer!, 0, this.readBuffer!, 0, 16);
    }
    const commands = enc.finish();
    const t0 = performance.now();
    device.queue.submit([commands]);
    await device.queue.onSubmittedWorkDone();
    const wallMs = performance.now() - t0;
    let gpuMs: number | null = null;
    if (this.readBuffer) {
      await this.readBuffer.mapAsync(GPUMapMode.READ);
      const [begin, end] = new BigUint64Array(this.readBuffer.getMappedRange().slice(0));
      this.readBuffer.unmap();
      gpuMs = end > begin ? Number(end - begin) / 1e6 : null;
    }
    return { gpuMs, wallMs };
  }

  /**
   * Warm up, pick reps so that a trial lasts about `targetMs`, then `trials` trials; medians per repetition.
   */
  async measure(work: EncodeWork, opts: { targetMs?: number; trials?: number; maxReps?: number } = {}): Promise<Timing> {
    const targetMs = opts.targetMs ?? 40;
    const trials = opts.trials ?? 5;
    await this.runOnce(work, 1); // pipelines compiled, caches warm
    const probe = await this.runOnce(work, 2);
    const each = (probe.gpuMs ?? probe.wallMs) / 2;
    const reps = Math.max(2, Math.min(opts.maxReps ?? 400, Math.round(targetMs / Math.max(each, 1e-3))));
    const gpu: number[] = [];
    const wall: number[] = [];
    for (let t = 0; t < trials; t++) {
      const r = await this.runOnce(work, reps);
      if (r.gpuMs !== null) gpu.push(r.gpuMs / reps);
      wall.push(r.wallMs / reps);
    }
    return { gpuMs: gpu.length === trials ? median(gpu) : null, wallMs: median(wall), reps, trials };
  }

  /** Wall-clock timing of work that submits itself (e.g. TensorFlow.js), same reps/trials scheme. */
  static async measureWall(
    run: (reps: number) => Promise<void>,
    opts: { targetMs?: number; trials?: number; maxReps?: number } = {},
  ): Promise<Timing> {
    const targetMs = opts.targetMs ?? 40;
    const trials = opts.trials ?? 5;
    await run(1);
    let t0 = performance.now();
    await run(2);
    const each = (performance.now() - t0) / 2;
    const reps = Math.max(2, Math.min(opts.maxReps ?? 400, Math.round(targetMs / Math.max(each, 1e-3))));
    const wall: number[] = [];
    for (let t = 0; t < trials; t++) {
      t0 = performance.now();
      await run(reps);
      wall.push((performance.now() - t0) / reps);
    }
    return { gpuMs: null, wallMs: median(wall), reps, trials };
  }
}
