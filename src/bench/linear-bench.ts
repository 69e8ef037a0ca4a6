// Our kernels on benchmark shapes: the LinearKernel as the model uses it, and individual tile configurations for
// tuning (`--tune`).
import type { Gpu } from '../engine/gpu';
import { bytesPerElement, type WeightDtype } from '../model/dtypes';
import { LinearKernel, pickMatmul } from '../engine/kernels/linear';
import { MatmulKernel, matmulAligned, type MatmulShader, type MatmulTile, type WeightLayout } from '../engine/kernels/matmul';
import { GEMV_MAX_ROWS, GemvKernel, gemvBucket, type GemvTile } from '../engine/kernels/gemv';
import { checkSamples, filledBuffer, makeOperands, type Operands, type SampleCheck } from './operands';
import { readF32 } from '../engine/kernels/common';
import type { GpuTimer, Timing } from './timing';

export interface BenchCase {
  M: number;
  K: number;
  N: number;
  dtype: WeightDtype;
  layout: WeightLayout;
}

export const caseKind = (c: BenchCase): 'gemv' | 'matmul' => (c.M <= GEMV_MAX_ROWS ? 'gemv' : 'matmul');
export const caseName = (c: BenchCase): string => `${c.M}x${c.K}->${c.N} ${c.dtype} ${c.layout}`;

export interface Rates {
  gflops: number;
  /** Fewest bytes the product must move (x, W, y once each) per second, GB/s (1e9). */
  gbps: number;
}

export function rates(c: BenchCase, ms: number): Rates {
  const flops = 2 * c.M * c.N * c.K;
  const bytes = c.N * c.K * bytesPerElement(c.dtype) + 4 * (c.M * c.K + c.M * c.N);
  return { gflops: flops / ms / 1e6, gbps: bytes / ms / 1e6 };
}

export interface OurResult {
  kernel: string;
  timing: Timing;
  rates: Rates;
  /** Sampled outputs of one run against float64. */
  check: SampleCheck;
}

/** Poisons y, runs once with weights[0] (`encodeOnce` records into a pass), and checks sampled outputs. */
async function verify(gpu: Gpu, ops: Operands, layout: WeightLayout, encodeOnce: (pass: GPUComputePassEncoder) => void): Promise<SampleCheck> {
  const nan = new Uint32Array(Math.min(ops.y.size / 4, 1 << 22)).fill(0x7fc0dead);
  for (let offset = 0; offset < ops.y.size; offset += nan.byteLength) {
    gpu.device.queue.writeBuffer(ops.y, offset, nan, 0, Math.min(nan.length, (ops.y.size - offset) / 4));
  }
  const enc = gpu.device.createCommandEncoder({ label: 'bench.verify' });
  const pass = enc.beginComputePass({ label: 'bench.verify' });
  encodeOnce(pass);
  pass.end();
  gpu.device.queue.submit([enc.finish()]);
  return checkSamples(ops, layout, await readF32(gpu, ops.y, ops.M * ops.N));
}

const bestMs = (t: Timing) => t.gpuMs ?? t.wallMs;

/** The LinearKernel on one shape, rotating weight copies. */
export async function benchLinear(gpu: Gpu, timer: GpuTimer, c: BenchCase): Promise<OurResult> {
  const ops = makeOperands(gpu, `bench.${caseName(c)}`, c.M, c.K, c.N, c.dtype);
  try {
    const linear = new LinearKernel(gpu);
    const bindings = ops.weights.map((w, i) =>
      linear.bind(`bench.linear${i}`, ops.x, w, ops.y, { K: c.K, N: c.N, maxRows: c.M, weightDtype: c.dtype, weightLayout: c.layout }),
    );
    const b0 = bindings[0];
    let kernel: string;
    if (c.M <= GEMV_MAX_ROWS) {
      const g = b0.gemv.get(gemvBucket(c.M))!;
      kernel = `gemv rows=${g.options.rows} ${JSON.stringify(g.tile)}${g.options.aligned ? '' : ' unaligned'}`;
    } else {
      const m = pickMatmul(b0, c.M);
      kernel = `${m.shader} ${JSON.stringify(m.tile)}${m.options.aligned ? '' : ' unaligned'}`;
    }
    const timing = await timer.measure((enc, reps) => {
      const pass = enc.beginComputePass({ label: 'bench.linear' });
      for (let i = 0; i < reps; i++) linear.encode(pass, bindings[i % bindings.length], c.M);
      pass.end();
    });
    const check = await verify(gpu, ops, c.layout, (pass) => linear.encode(pass, b0, c.M));
    return { kernel, timing, rates: rates(c, bestMs(timing)), check };
  } finally {
    ops.destroy();
  }
}

/** A matmul tile configuration (optionally another shader file, e.g. an experimental variant). */
export async function benchMatmulTile(gpu: Gpu, timer: GpuTimer, c: BenchCase, tile: MatmulTile, shader?: MatmulShader): Promise<OurResult> {
  const ops = makeOperands(gpu, `tune.${caseName(c)}`, c.M, c.K, c.N, c.dtype);
  try {
    const kernel = new MatmulKernel(gpu, {
      weightDtype: c.dtype,
      weightLayout: c.layout,
      aligned: matmulAligned(c.K, c.N, c.dtype, c.layout),
      tile,
      shader,
    });
    const bindings = ops.weights.map((w, i) => kernel.bind(`tune.matmul${i}`, ops.x, w, ops.y));
    for (const b of bindings) kernel.setShape(b, c);
    const timing = await timer.measure((enc, reps) => {
      const pass = enc.beginComputePass({ label: 'tune.matmul' });
      for (let i = 0; i < reps; i++) kernel.encode(pass, bindings[i % bindings.length], c.M, c.N);
      pass.end();
    });
    const check = await verify(gpu, ops, c.layout, (pass) => kernel.encode(pass, bindings[0], c.M, c.N));
    return { kernel: `${shader ?? 'matmul'} ${JSON.stringify(tile)}`, timing, rates: rates(c, bestMs(timing)), check };
  } finally {
    ops.destroy();
  }
}

export async function benchGemvTile(gpu: Gpu, timer: GpuTimer, c: BenchCase, tile: GemvTile): Promise<OurResult> {
  const ops = makeOperands(gpu, `tune.${caseName(c)}`, c.M, c.K, c.N, c.dtype);
  try {
    const kernel = new GemvKernel(gpu, {
      weightDtype: c.dtype,
      weightLayout: c.layout,
      rows: gemvBucket(c.M),
      aligned: matmulAligned(c.K, c.N, c.dtype, c.layout),
      tile,
    });
    const bindings = ops.weights.map((w, i) => kernel.bind(`tune.gemv${i}`, ops.x, w, ops.y));
    for (const b of bindings) kernel.setShape(b, { rows: c.M, N: c.N, K: c.K });
    const timing = await timer.measure((enc, reps) => {
      const pass = enc.beginComputePass({ label: 'tune.gemv' });
      for (let i = 0; i < reps; i++) kernel.encode(pass, bindings[i % bindings.length], c.N);
      pass.end();
    });
    const check = await verify(gpu, ops, c.layout, (pass) => kernel.encode(pass, bindings[0], c.N));
    return { kernel: `gemv ${JSON.stringify(tile)}`, timing, rates: rates(c, bestMs(timing)), check };
  } finally {
    ops.destroy();
  }
}

/** Device-to-device copy bandwidth through copyBufferToBuffer, counting bytes read plus bytes written. */
export async function benchCopy(gpu: Gpu, timer: GpuTimer, bytes: number): Promise<{ bytes: number; timing: Timing; gbps: number }> {
  const src = filledBuffer(gpu, 'bench.copy.src', bytes, 'f32', 9);
  const dst = gpu.device.createBuffer({ label: 'bench.copy.dst', size: bytes, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.STORAGE });
  try {
    const timing = await timer.measure((enc, reps) => {
      for (let i = 0; i < reps; i++) enc.copyBufferToBuffer(src, 0, dst, 0, bytes);
    });
    return { bytes, timing, gbps: (2 * bytes) / bestMs(timing) / 1e6 };
  } finally {
    src.destroy();
    dst.destroy();
  }
}

// Bench-only: the plainest streaming kernel, to show what a WGSL compute shader reaches on a copy.
const COPY_WGSL = `
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = g.x + g.y * groups.x * 256u;
  if (i < arrayLength(&dst)) { dst[i] = src[i]; }
}`;

/** Device-to-device copy by a compute shader (one 16-byte load and store per thread), bytes read + written. */
export async function benchCopyKernel(gpu: Gpu, timer: GpuTimer, bytes: number): Promise<{ bytes: number; timing: Timing; gbps: number }> {
  const src = filledBuffer(gpu, 'bench.copyKernel.src', bytes, 'f32', 10);
  const dst = gpu.device.createBuffer({ label: 'bench.copyKernel.dst', size: bytes, usage: GPUBufferUsage.STORAGE });
  try {
    const module = gpu.device.createShaderModule({ label: 'bench.copyKernel', code: COPY_WGSL });
    const pipeline = gpu.device.createComputePipeline({ label: 'bench.copyKernel', layout: 'auto', compute: { module, entryPoint: 'main' } });
    const group = gpu.device.createBindGroup({
      label: 'bench.copyKernel',
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: src } },
        { binding: 1, resource: { buffer: dst } },
      ],
    });
    const threads = bytes / 16;
    const gx = Math.min(4096, Math.ceil(threads / 256));
    const gy = Math.ceil(threads / 256 / gx);
    const timing = await timer.measure((enc, reps) => {
      const pass = enc.beginComputePass({ label: 'bench.copyKernel' });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      for (let i = 0; i < reps; i++) pass.dispatchWorkgroups(gx, gy);
      pass.end();
    });
    return { bytes, timing, gbps: (2 * bytes) / bestMs(timing) / 1e6 };
  } finally {
    src.destroy();
    dst.destroy();
  }
}
