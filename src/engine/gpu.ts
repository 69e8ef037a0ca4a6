// The GPU context every kernel receives: one GPUDevice, the WGSL sources, a pipeline cache and typed errors.
// Platform-neutral: src/engine/device.ts makes one in the browser, src/engine/node/device-node.ts in Node.
import { inertDescriptor, inertDevice } from './inert-device';

/** A WebGPU error turned into a typed exception. `kind` follows the GPUError subclasses. */
export class GpuError extends Error {
  constructor(
    readonly kind: 'validation' | 'out-of-memory' | 'internal',
    message: string,
  ) {
    super(`GPU ${kind} error: ${message}`);
    this.name = 'GpuError';
  }
}

/** Thrown by work submitted after the device was lost. `reason` is WebGPU's ('destroyed' or 'unknown'). */
export class GpuDeviceLostError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(`GPU device lost (${reason}): ${message}`);
    this.name = 'GpuDeviceLostError';
  }
}

export interface GpuFeatures {
  /** 'timestamp-query': per-pass GPU timings (src/engine/profiler.ts). */
  timestampQuery: boolean;
  /** 'subgroups': subgroup reductions in WGSL (`enable subgroups;`). */
  subgroups: boolean;
}

export interface GpuAdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /**
   * Memory heaps, where the browser exposes them (Chrome with WebGPU developer features: GPUAdapterInfo.memoryHeaps;
   * Dawn's Node bindings do not). `size` in bytes; `deviceLocal` from the DEVICE_LOCAL property bit.
   */
  memoryHeaps: { size: number; deviceLocal: boolean }[];
  /**
   * A CPU implementation (SwiftShader, llvmpipe, lavapipe: GPUAdapterInfo.isFallbackAdapter, or the driver's name):
   * it pays a fixed cost per launched invocation, so kernels pick fewer, longer threads there.
   */
  software: boolean;
}

/** Resolves a shader name (`matmul` for shaders/matmul.wgsl) to its WGSL source. */
export type ShaderSource = (name: string) => string;

/** What Gpu.pipeline() was asked for: enough to make the same pipeline again (Gpu.compilePipelines). */
export interface PipelineRequest {
  shaderName: string;
  entryPoint: string;
  constants: Record<string, number>;
  layout: GPUPipelineLayout;
  layoutKey: string;
}

/** A compute pipeline that failed to compile; `kernel` is `shader.entryPoint` (`gemv.main_norm`). */
export class GpuPipelineError extends Error {
  constructor(
    readonly kernel: string,
    message: string,
  ) {
    super(`compute pipeline ${kernel} (shaders/${kernel.split('.')[0]}.wgsl) failed: ${message}`);
    this.name = 'GpuPipelineError';
  }
}

const pipelineKey = (r: PipelineRequest) => `${r.shaderName}:${r.entryPoint}:${r.layoutKey}:${JSON.stringify(r.constants)}`;

export class Gpu {
  readonly features: GpuFeatures;
  /** Rejected work after loss throws this; null while the device is alive. */
  lostError: GpuDeviceLostError | null = null;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  /** What each cached pipeline was made from, by cache key. */
  private readonly requests = new Map<string, PipelineRequest>();
  private readonly modules = new Map<string, GPUShaderModule>();
  private readonly errorListeners = new Set<(e: GpuError) => void>();
  private readonly lostListeners = new Set<(e: GpuDeviceLostError) => void>();
  /** Uncaptured errors seen so far (most recent last, at most 32 kept). */
  readonly recentErrors: GpuError[] = [];
  /** Buffers made through createBuffer, and how many of them were destroyed (for leak checks in long runs). */
  readonly bufferCounts = { created: 0, destroyed: 0 };
  /** Buffers made while an allOrNothing call runs, per open call. */
  private readonly collectors = new Set<Set<GPUBuffer>>();

  constructor(
    readonly device: GPUDevice,
    readonly adapter: GpuAdapterSummary,
    private readonly source: ShaderSource,
  ) {
    this.features = {
      timestampQuery: device.features.has('timestamp-query'),
      subgroups: device.features.has('subgroups'),
    };
    device.addEventListener('uncapturederror', (event) => {
      const err = toGpuError((event as GPUUncapturedErrorEvent).error);
      this.recentErrors.push(err);
      if (this.recentErrors.length > 32) this.recentErrors.shift();
      for (const fn of this.errorListeners) fn(err);
    });
    void device.lost.then((info) => {
      this.lostError = new GpuDeviceLostError(info.reason, info.message || 'no message');
      for (const fn of this.lostListeners) fn(this.lostError);
    });
  }

  /**
   * device.createBuffer, counted: the engine makes every buffer here, so `liveBuffers` says whether a long session
   * leaks (destroying a buffer twice counts once).
   */
  createBuffer(descriptor: GPUBufferDescriptor): GPUBuffer {
    const buffer = this.device.createBuffer(descriptor);
    this.bufferCounts.created++;
    for (const c of this.collectors) c.add(buffer);
    const destroy = buffer.destroy.bind(buffer);
    let alive = true;
    buffer.destroy = () => {
      if (alive) this.bufferCounts.destroyed++;
      alive = false;
      destroy();
    };
    return buffer;
  }

  /**
   * Runs `fn` (a load: uploads, buffers, bind groups); if it throws, every buffer created through createBuffer while
   * it ran is destroyed, so a failed load (out of memory, a bad file found late, a lost device) leaves nothing behind.
   */
  async allOrNothing<T>(fn: () => Promise<T>): Promise<T> {
    const made = new Set<GPUBuffer>();
    this.collectors.add(made);
    try {
      return await fn();
    } catch (e) {
      for (const b of made) b.destroy();
      throw e;
    } finally {
      this.collectors.delete(made);
    }
  }

  /** Buffers created through createBuffer and not yet destroyed. */
  get liveBuffers(): number {
    return this.bufferCounts.created - this.bufferCounts.destroyed;
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  get isLost(): boolean {
    return this.lostError !== null;
  }

  /** Throws the device-lost error if the device is gone; call before encoding work. */
  assertAlive(): void {
    if (this.lostError) throw this.lostError;
  }

  onError(fn: (e: GpuError) => void): () => void {
    this.errorListeners.add(fn);
    return () => this.errorListeners.delete(fn);
  }

  onLost(fn: (e: GpuDeviceLostError) => void): () => void {
    this.lostListeners.add(fn);
    if (this.lostError) fn(this.lostError);
    return () => this.lostListeners.delete(fn);
  }

  /** WGSL source of shaders/<name>.wgsl, with `// #include "lib/x"` lines replaced by shaders/lib/x.wgsl. */
  shader(name: string): string {
    return resolveIncludes(name, this.source);
  }

  module(name: string): GPUShaderModule {
    let m = this.modules.get(name);
    if (!m) {
      m = this.device.createShaderModule({ label: `shader.${name}`, code: this.shader(name) });
      this.modules.set(name, m);
    }
    return m;
  }

  /**
   * A compute pipeline, created once per (shader, entry point, override constants, layout) and cached.
   * `constants` are the WGSL `override`s; the host uses the same object to size its dispatches.
   * Compiles synchronously unless compilePipelines made it already.
   */
  pipeline(
    shaderName: string,
    entryPoint: string,
    constants: Record<string, number>,
    layout: GPUPipelineLayout,
    layoutKey: string,
  ): GPUComputePipeline {
    const request = { shaderName, entryPoint, constants, layout, layoutKey };
    const key = pipelineKey(request);
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.device.createComputePipeline(this.pipelineDescriptor(request));
      this.pipelines.set(key, p);
      this.requests.set(key, request);
    }
    return p;
  }

  /** Every distinct pipeline pipeline() was asked for, in order (a planner's list: see planner()). */
  get pipelineRequests(): PipelineRequest[] {
    return [...this.requests.values()];
  }

  /**
   * Compiles `requests` in parallel (createComputePipelineAsync) into the cache pipeline() reads, skipping those it
   * holds. Requests a planner recorded carry inert layouts: they are made again on this device from their descriptors.
   * Rejects, once all have settled, with a GpuPipelineError naming the first kernel that failed; the ones that
   * compiled stay cached.
   */
  async compilePipelines(requests: readonly PipelineRequest[]): Promise<void> {
    this.assertAlive();
    const todo = new Map(requests.map((r) => [pipelineKey(r), r]));
    for (const key of this.pipelines.keys()) todo.delete(key);
    const layouts = new Map<string, GPUPipelineLayout>();
    const layoutOf = (r: PipelineRequest): GPUPipelineLayout => {
      const inert = inertDescriptor<GPUPipelineLayoutDescriptor>(r.layout);
      if (!inert) return r.layout;
      let layout = layouts.get(r.layoutKey);
      if (!layout) {
        const groups = [...inert.bindGroupLayouts].map((g) => this.device.createBindGroupLayout(inertDescriptor(g)!));
        layouts.set(r.layoutKey, (layout = this.device.createPipelineLayout({ label: inert.label, bindGroupLayouts: groups })));
      }
      return layout;
    };
    const results = await Promise.allSettled(
      [...todo].map(async ([key, r]) => {
        const request = { ...r, layout: layoutOf(r) };
        try {
          this.pipelines.set(key, await this.device.createComputePipelineAsync(this.pipelineDescriptor(request)));
          this.requests.set(key, request);
        } catch (e) {
          throw new GpuPipelineError(`${r.shaderName}.${r.entryPoint}`, (e as Error).message);
        }
      }),
    );
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  /**
   * A Gpu on an inert device (./inert-device.ts) with this one's adapter, limits, features and shaders: building the
   * decoder on it allocates, uploads and compiles nothing, and its pipelineRequests list what the build asks for.
   */
  planner(): Gpu {
    return new Gpu(inertDevice(this.device, this.limits), this.adapter, this.source);
  }

  private pipelineDescriptor(r: PipelineRequest): GPUComputePipelineDescriptor {
    return {
      label: `${r.shaderName}.${r.entryPoint}`,
      layout: r.layout,
      compute: { module: this.module(r.shaderName), entryPoint: r.entryPoint, constants: r.constants },
    };
  }

  /**
   * Runs `fn` inside validation and out-of-memory error scopes and throws a GpuError if either caught one.
   * For load-time work (uploads, pipeline creation), where a clear error beats an uncaptured event.
   */
  async checked<T>(fn: () => T): Promise<T> {
    this.assertAlive();
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    let result: T;
    try {
      result = fn();
    } finally {
      const validation = await this.device.popErrorScope();
      const oom = await this.device.popErrorScope();
      const err = validation ?? oom;
      if (err) throw toGpuError(err);
    }
    return result;
  }

  destroy(): void {
    this.device.destroy();
  }
}

const INCLUDE = /^\/\/ #include "([\w/.-]+)"\s*$/gm;

/** Inlines `// #include "lib/x"` lines (WGSL has no includes); each file at most once. */
export function resolveIncludes(name: string, source: ShaderSource, seen = new Set<string>()): string {
  seen.add(name);
  return source(name).replace(INCLUDE, (_line, dep: string) => {
    if (seen.has(dep)) return `// (${dep} already included)`;
    return resolveIncludes(dep, source, seen);
  });
}

export function toGpuError(error: GPUError): GpuError {
  const name = error.constructor?.name ?? '';
  const kind = name.includes('OutOfMemory') ? 'out-of-memory' : name.includes('Internal') ? 'internal' : 'validation';
  return new GpuError(kind, error.message);
}

/** Features the engine uses when the adapter offers them. */
export const OPTIONAL_FEATURES: GPUFeatureName[] = ['timestamp-query', 'subgroups'];

/** Ask for the adapter's full limits (defaults are far smaller, e.g. 128 MiB storage bindings). */
export function deviceDescriptor(adapter: GPUAdapter, label: string): GPUDeviceDescriptor {
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const name of [
    'maxBufferSize',
    'maxStorageBufferBindingSize',
    'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX',
    'maxComputeWorkgroupSizeY',
    'maxComputeWorkgroupsPerDimension',
    'maxStorageBuffersPerShaderStage',
  ] as const) {
    requiredLimits[name] = adapter.limits[name];
  }
  return { label, requiredFeatures, requiredLimits };
}

/** GPUHeapProperty.DEVICE_LOCAL in Chrome's GPUMemoryHeapInfo.properties. */
const HEAP_DEVICE_LOCAL = 0x1;

export function summarizeAdapter(adapter: GPUAdapter): GpuAdapterSummary {
  const info = adapter.info as (GPUAdapterInfo & { memoryHeaps?: { size: number; properties: number }[] }) | undefined;
  const heaps = Array.isArray(info?.memoryHeaps) ? info.memoryHeaps : [];
  const names = [info?.vendor, info?.architecture, info?.device, info?.description].join(' ');
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
    memoryHeaps: heaps
      .filter((h) => Number.isFinite(Number(h.size)) && Number(h.size) > 0)
      .map((h) => ({ size: Number(h.size), deviceLocal: (h.properties & HEAP_DEVICE_LOCAL) !== 0 })),
    software: info?.isFallbackAdapter === true || /swiftshader|llvmpipe|lavapipe/i.test(names),
  };
}
