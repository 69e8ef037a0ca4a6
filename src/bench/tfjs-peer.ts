// TensorFlow.js's WebGPU backend on the same shapes, in the same Node process, on the same adapter: the library a
// web developer would otherwise pick. tf.matMul(x, W, false, true) computes x·Wᵀ with W stored [N, K] as ours does.
// Timed like ours: reps products submitted, then onSubmittedWorkDone (wall clock), median of trials; and, where the
// device has timestamp queries, tf.time()'s summed kernel time.
import { GpuTimer, median, type Timing } from './timing';
import { randomBlock } from './operands';

// Only the parts of tfjs used here (the packages ship their own types; this keeps the dependency optional).
interface TfTensor {
  dispose(): void;
}
interface TfBackend {
  device: GPUDevice;
  commandEncoder: GPUCommandEncoder | null;
  endComputePassEncoder(): void;
  submitQueue(): void;
}
interface Tf {
  tensor2d(values: Float32Array, shape: [number, number]): TfTensor;
  matMul(a: TfTensor, b: TfTensor, transposeA: boolean, transposeB: boolean): TfTensor;
  setBackend(name: string): Promise<boolean>;
  ready(): Promise<void>;
  backend(): unknown;
  time(f: () => void): Promise<{ kernelMs: number | { error: string }; wallMs: number }>;
  version_core: string;
}

export interface TfjsResult {
  timing: Timing;
  /** tf.time() kernel time per product (ms), null where unavailable. */
  kernelMs: number | null;
}

export class TfjsPeer {
  private constructor(
    private readonly tf: Tf,
    private readonly backend: TfBackend,
    readonly version: string,
  ) {}

  /**
   * Loads tfjs-core and the WebGPU backend with navigator.gpu set to a Dawn instance made with `dawnFlags`
   * (the flags our own device uses, so both see the same driver and timestamp resolution).
   */
  static async load(dawnFlags: string[]): Promise<TfjsPeer> {
    const dawn = (await import('webgpu')) as unknown as { create: (flags: string[]) => GPU; globals: object };
    Object.assign(globalThis, dawn.globals);
    const gpuInstance = dawn.create(dawnFlags);
    // Node has no navigator (or a read-only one in newer versions): define it before tfjs looks for WebGPU.
    Object.defineProperty(globalThis, 'navigator', { value: { gpu: gpuInstance }, configurable: true, writable: true });
    const tf = (await import('@tensorflow/tfjs-core')) as unknown as Tf;
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!(await tf.setBackend('webgpu'))) throw new Error('TensorFlow.js could not initialise its WebGPU backend');
    await tf.ready();
    return new TfjsPeer(tf, tf.backend() as TfBackend, tf.version_core);
  }

  /** Submits what tfjs has recorded but not yet submitted (it batches dispatches into its own encoder). */
  private flush(): void {
    if (!this.backend.commandEncoder) return;
    this.backend.endComputePassEncoder();
    this.backend.submitQueue();
  }

  /** x [M, K] · Wᵀ with W [N, K], f32, rotating `copies` weight tensors. */
  async matmul(M: number, K: number, N: number, copies: number): Promise<TfjsResult> {
    const { tf } = this;
    const x = tf.tensor2d(repeat(M * K, 11), [M, K]);
    const ws = Array.from({ length: copies }, (_, i) => tf.tensor2d(repeat(N * K, 12 + i), [N, K]));
    const device = this.backend.device;
    const enqueue = (reps: number) => {
      for (let i = 0; i < reps; i++) tf.matMul(x, ws[i % copies], false, true).dispose();
    };
    try {
      const timing = await GpuTimer.measureWall(async (reps) => {
        enqueue(reps);
        this.flush();
        await device.queue.onSubmittedWorkDone();
      });
      let kernelMs: number | null = null;
      if (device.features.has('timestamp-query')) {
        const samples: number[] = [];
        for (let t = 0; t < 3; t++) {
          const info = await tf.time(() => enqueue(timing.reps));
          if (typeof info.kernelMs === 'number') samples.push(info.kernelMs / timing.reps);
        }
        if (samples.length) kernelMs = median(samples);
      }
      return { timing, kernelMs };
    } finally {
      x.dispose();
      for (const w of ws) w.dispose();
    }
  }
}

function repeat(n: number, seed: number): Float32Array {
  const block = randomBlock((1 << 20) + 7, seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += block.length) out.set(block.subarray(0, Math.min(block.length, n - i)), i);
  return out;
}
