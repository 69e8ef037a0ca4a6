// Small shared pieces for kernel modules: bind-group layouts, buffers, uniforms, dispatch sizing.
import type { Gpu } from '../gpu';

export const ceilDiv = (n: number, d: number): number => Math.floor((n + d - 1) / d);

/** How a binding is used by a compute shader. */
export type BindingKind = 'uniform' | 'read' | 'rw';

/** A bind-group layout and the pipeline layout around it, for a shader whose group 0 has `kinds` in order. */
export interface KernelLayout {
  bindGroupLayout: GPUBindGroupLayout;
  pipelineLayout: GPUPipelineLayout;
  key: string;
}

const layoutCache = new WeakMap<GPUDevice, Map<string, KernelLayout>>();

export function kernelLayout(gpu: Gpu, kinds: BindingKind[]): KernelLayout {
  let perDevice = layoutCache.get(gpu.device);
  if (!perDevice) layoutCache.set(gpu.device, (perDevice = new Map()));
  const key = kinds.join(',');
  let layout = perDevice.get(key);
  if (!layout) {
    const bindGroupLayout = gpu.device.createBindGroupLayout({
      label: `layout[${key}]`,
      entries: kinds.map((kind, binding) => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: kind === 'uniform' ? 'uniform' : kind === 'read' ? 'read-only-storage' : 'storage' },
      })),
    });
    const pipelineLayout = gpu.device.createPipelineLayout({ label: `pipeline[${key}]`, bindGroupLayouts: [bindGroupLayout] });
    layout = { bindGroupLayout, pipelineLayout, key };
    perDevice.set(key, layout);
  }
  return layout;
}

export function bindGroup(gpu: Gpu, label: string, layout: KernelLayout, buffers: GPUBuffer[]): GPUBindGroup {
  return gpu.device.createBindGroup({
    label,
    layout: layout.bindGroupLayout,
    entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
}


/** A storage buffer (readable, writable, copyable). Size is rounded up to 16 bytes. */
export function storageBuffer(gpu: Gpu, label: string, byteLength: number): GPUBuffer {
  return gpu.createBuffer({
    label,
    size: Math.max(16, Math.ceil(byteLength / 16) * 16),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
}

/** A storage buffer holding `data`. */
export function uploadBuffer(gpu: Gpu, label: string, data: ArrayBufferView): GPUBuffer {
  const buffer = storageBuffer(gpu, label, data.byteLength);
  gpu.device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  return buffer;
}

/**
 * The host's view of a kernel's uniform struct: its 32-bit fields in WGSL order, and which of them are f32 (the rest
 * are u32). tests/unit/wgsl-structs.test.ts compares each with the struct it names.
 */
export interface UniformLayout {
  fields: readonly string[];
  floats?: readonly string[];
}

/**
 * A uniform buffer of 32-bit fields laid out by `layout`; `set` writes it through the queue (no GPU object created,
 * safe on the hot path).
 */
export class Uniforms {
  readonly buffer: GPUBuffer;
  private readonly data: ArrayBuffer;
  private readonly u32: Uint32Array;
  private readonly f32: Float32Array;

  constructor(
    private readonly gpu: Gpu,
    label: string,
    readonly layout: UniformLayout,
  ) {
    const bytes = Math.max(16, Math.ceil((layout.fields.length * 4) / 16) * 16);
    this.data = new ArrayBuffer(bytes);
    this.u32 = new Uint32Array(this.data);
    this.f32 = new Float32Array(this.data);
    this.buffer = gpu.createBuffer({ label, size: bytes, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  }

  /** Write fields by name: the layout's floats as f32, the others as u32. */
  set(values: Record<string, number>): void {
    const { fields, floats = [] } = this.layout;
    for (const [name, v] of Object.entries(values)) {
      const i = fields.indexOf(name);
      if (i < 0) throw new Error(`uniform field "${name}" is not one of ${fields.join(', ')}`);
      if (floats.includes(name)) this.f32[i] = v;
      else this.u32[i] = v >>> 0;
    }
    this.gpu.device.queue.writeBuffer(this.buffer, 0, this.data);
  }
}

/** Copies a buffer to the CPU. Not for the per-token path: tests, CLI output and async snapshots only. */
export async function readBuffer(gpu: Gpu, src: GPUBuffer, byteLength = src.size, offset = 0): Promise<ArrayBuffer> {
  const staging = gpu.createBuffer({
    label: `${src.label}.readback`,
    size: Math.ceil(byteLength / 4) * 4,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = gpu.device.createCommandEncoder({ label: 'readback' });
  enc.copyBufferToBuffer(src, offset, staging, 0, staging.size);
  gpu.device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0, byteLength);
  staging.unmap();
  staging.destroy();
  return out;
}

export async function readF32(gpu: Gpu, src: GPUBuffer, count?: number): Promise<Float32Array> {
  return new Float32Array(await readBuffer(gpu, src, (count ?? src.size / 4) * 4));
}

export async function readU32(gpu: Gpu, src: GPUBuffer, count?: number): Promise<Uint32Array> {
  return new Uint32Array(await readBuffer(gpu, src, (count ?? src.size / 4) * 4));
}

/** Encode one compute pass with `fn` and submit it. Convenience for tests and one-off work. */
export function submitPass(gpu: Gpu, label: string, fn: (pass: GPUComputePassEncoder) => void): void {
  gpu.assertAlive();
  const enc = gpu.device.createCommandEncoder({ label });
  const pass = enc.beginComputePass({ label });
  fn(pass);
  pass.end();
  gpu.device.queue.submit([enc.finish()]);
}
