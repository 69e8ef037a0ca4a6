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

const boundBuffers = new WeakMap<GPUBindGroup, GPUBuffer[]>();

/** A bind group over `resources` in binding order: whole buffers, or a Uniforms (its slot of an arena, or its own buffer). */
export function bindGroup(gpu: Gpu, label: string, layout: KernelLayout, resources: (GPUBuffer | Uniforms)[]): GPUBindGroup {
  const group = gpu.device.createBindGroup({
    label,
    layout: layout.bindGroupLayout,
    entries: resources.map((r, binding) => ({ binding, resource: r instanceof Uniforms ? r.binding : { buffer: r } })),
  });
  boundBuffers.set(group, resources.map((r) => (r instanceof Uniforms ? r.buffer : r)));
  return group;
}

/** The buffers a group made by bindGroup() binds, in binding order (empty for groups made elsewhere). */
export function bindGroupBuffers(group: GPUBindGroup): readonly GPUBuffer[] {
  return boundBuffers.get(group) ?? [];
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

const fieldIndex = new WeakMap<UniformLayout, Map<string, { index: number; float: boolean }>>();

function indexOf(layout: UniformLayout): Map<string, { index: number; float: boolean }> {
  let m = fieldIndex.get(layout);
  if (!m) {
    const floats = new Set(layout.floats ?? []);
    m = new Map(layout.fields.map((name, index) => [name, { index, float: floats.has(name) }]));
    fieldIndex.set(layout, m);
  }
  return m;
}

/**
 * Uniform slots of many kernels in a few GPU buffers (chunks of CHUNK_BYTES), mirrored on the CPU: Uniforms.set
 * writes the mirror and marks it dirty, and flush() writes each chunk's dirty range with one queue write. A decode
 * step of every layer thus costs one writeBuffer (two past 256 slots) instead of one per dispatch. Slots are
 * minUniformBufferOffsetAlignment apart (256 bytes on most devices); made at load time, never on the hot path.
 */
export class UniformArena {
  static readonly CHUNK_BYTES = 64 << 10;
  private readonly chunks: { buffer: GPUBuffer; data: ArrayBuffer; used: number; lo: number; hi: number }[] = [];
  private readonly align: number;

  constructor(
    private readonly gpu: Gpu,
    readonly label: string,
  ) {
    this.align = gpu.limits.minUniformBufferOffsetAlignment;
  }

  /** A slot of `bytes` (multiple of 16): its chunk's buffer and CPU mirror, and its byte offset there. */
  allocate(bytes: number): { chunk: number; buffer: GPUBuffer; data: ArrayBuffer; offset: number } {
    const size = Math.ceil(bytes / this.align) * this.align;
    let i = this.chunks.length - 1;
    if (i < 0 || this.chunks[i].used + size > UniformArena.CHUNK_BYTES) {
      const buffer = this.gpu.createBuffer({
        label: `${this.label}.uniforms${this.chunks.length}`,
        size: UniformArena.CHUNK_BYTES,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      this.chunks.push({ buffer, data: new ArrayBuffer(UniformArena.CHUNK_BYTES), used: 0, lo: Infinity, hi: 0 });
      i++;
    }
    const c = this.chunks[i];
    const offset = c.used;
    c.used += size;
    return { chunk: i, buffer: c.buffer, data: c.data, offset };
  }

  /** Marks bytes [offset, offset + bytes) of chunk i as changed since the last flush. */
  touch(i: number, offset: number, bytes: number): void {
    const c = this.chunks[i];
    if (offset < c.lo) c.lo = offset;
    if (offset + bytes > c.hi) c.hi = offset + bytes;
  }

  /** Writes every chunk's changed range through the queue (before the submit that reads them). */
  flush(): void {
    for (const c of this.chunks) {
      if (c.hi <= c.lo) continue;
      this.gpu.device.queue.writeBuffer(c.buffer, c.lo, c.data, c.lo, c.hi - c.lo);
      c.lo = Infinity;
      c.hi = 0;
    }
  }

  /** Chunks (GPU buffers) made so far. */
  get buffers(): GPUBuffer[] {
    return this.chunks.map((c) => c.buffer);
  }

  destroy(): void {
    for (const c of this.chunks) c.buffer.destroy();
  }
}

/**
 * The host's side of a kernel's uniform struct. Standalone, it owns a uniform buffer and `set` writes it through the
 * queue at once; in an arena, it is one slot of the arena's buffer and `set` only updates the CPU mirror until the
 * arena's flush(). Either way `set` skips the write when no field changed, and allocates nothing (safe on the hot
 * path). Bind it with bindGroup(…, [uniforms, …]) so an arena slot is bound at its offset.
 */
export class Uniforms {
  readonly buffer: GPUBuffer;
  /** Byte offset of this struct in `buffer` (0 when standalone). */
  readonly offset: number;
  readonly size: number;
  private readonly u32: Uint32Array;
  private readonly f32: Float32Array;
  private readonly fields: Map<string, { index: number; float: boolean }>;
  private readonly arena: UniformArena | null;
  private readonly chunk: number;
  /** Standalone: the first set() writes even if it stores only zeros. */
  private written = false;

  constructor(
    private readonly gpu: Gpu,
    label: string,
    readonly layout: UniformLayout,
    arena?: UniformArena | null,
  ) {
    this.size = Math.max(16, Math.ceil((layout.fields.length * 4) / 16) * 16);
    this.fields = indexOf(layout);
    this.arena = arena ?? null;
    if (this.arena) {
      const slot = this.arena.allocate(this.size);
      this.buffer = slot.buffer;
      this.offset = slot.offset;
      this.chunk = slot.chunk;
      this.u32 = new Uint32Array(slot.data, slot.offset, this.size / 4);
      this.f32 = new Float32Array(slot.data, slot.offset, this.size / 4);
    } else {
      this.buffer = gpu.createBuffer({ label, size: this.size, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      this.offset = 0;
      this.chunk = -1;
      const data = new ArrayBuffer(this.size);
      this.u32 = new Uint32Array(data);
      this.f32 = new Float32Array(data);
    }
  }

  /** This struct as a bind-group resource. */
  get binding(): GPUBufferBinding {
    return { buffer: this.buffer, offset: this.offset, size: this.size };
  }

  /** Write fields by name: the layout's floats as f32, the others as u32. */
  set(values: Record<string, number>): void {
    let changed = false;
    for (const name in values) {
      const f = this.fields.get(name);
      if (!f) throw new Error(`uniform field "${name}" is not one of ${this.layout.fields.join(', ')}`);
      const v = values[name];
      if (f.float) {
        const before = this.u32[f.index];
        this.f32[f.index] = v;
        changed ||= this.u32[f.index] !== before;
      } else if (this.u32[f.index] !== v >>> 0) {
        this.u32[f.index] = v >>> 0;
        changed = true;
      }
    }
    if (this.arena) {
      if (changed) this.arena.touch(this.chunk, this.offset, this.size);
    } else if (changed || !this.written) {
      this.written = true;
      this.gpu.device.queue.writeBuffer(this.buffer, 0, this.u32);
    }
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

/**
 * A compute pass that drops the setPipeline and setBindGroup calls that would set what is already set (state persists
 * across dispatches within a pass). Each call into the WebGPU implementation costs ~1 µs of CPU in Dawn's Node
 * bindings; a decode step records hundreds. Made per pass; `end` ends the wrapped pass.
 */
export class DedupPass {
  private pipeline: GPUComputePipeline | null = null;
  private readonly groups: (GPUBindGroup | null | undefined)[] = [];

  constructor(readonly pass: GPUComputePassEncoder) {}

  /** This object where a GPUComputePassEncoder is expected (the kernels call only the methods below). */
  get encoder(): GPUComputePassEncoder {
    return this as unknown as GPUComputePassEncoder;
  }

  setPipeline(pipeline: GPUComputePipeline): void {
    if (pipeline === this.pipeline) return;
    this.pipeline = pipeline;
    this.pass.setPipeline(pipeline);
  }

  setBindGroup(index: number, group: GPUBindGroup | null): void {
    if (this.groups[index] === group) return;
    this.groups[index] = group;
    this.pass.setBindGroup(index, group);
  }

  dispatchWorkgroups(x: number, y?: number, z?: number): void {
    this.pass.dispatchWorkgroups(x, y, z);
  }

  end(): void {
    this.pass.end();
  }
}
