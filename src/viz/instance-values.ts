// The per-frame GPU pass that turns the engine's routing buffers into the grid's per-instance values
// (instance-values.wgsl). It reads the engine's buffers directly and writes into the renderer's storage buffer:
// nothing is mapped or read back on the frame path. Everything is created once in the constructor; `encode` only
// records one dispatch.
import type { RoutingBuffers } from '../engine/routing-buffers';
import type { GridLayout } from './layout';
import shaderCode from './instance-values.wgsl?raw';

/** What the grid's heights and colours show. */
export const VIEW_MODES = ['load', 'current', 'probability', 'dropped', 'atlas'] as const;
export type ViewMode = (typeof VIEW_MODES)[number];

/** The engine buffers the view reads: any RoutingBuffers, or the zero buffers of a config-only skeleton. */
export type RoutingViewSources = Pick<
  RoutingBuffers,
  'numLayers' | 'numExperts' | 'counts' | 'stepCounts' | 'probMass' | 'dropped' | 'rerouted'
>;

/** vec4<f32> per instance: height, colour t (−1 neutral), raw value, visible. */
export const VALUES_PER_INSTANCE = 4;
const WORKGROUP = 64;
const NONE = 0xffffffff;

export class InstanceValuesPass {
  private readonly pipeline: GPUComputePipeline;
  private readonly uniforms: GPUBuffer;
  private readonly rows: GPUBuffer;
  private readonly bindGroups: Record<ViewMode, GPUBindGroup>;
  private readonly uniformData = new ArrayBuffer(32);
  private readonly rowData: Uint32Array;
  private readonly ablated: GPUBuffer;
  private readonly cols: GPUBuffer;
  /** f32 [layers, experts] the causal atlas's Δ log-likelihood per ablated expert (mode 'atlas'). */
  private readonly atlas: GPUBuffer;
  private atlasMax = 0;
  private mode: ViewMode = 'load';

  constructor(
    private readonly device: GPUDevice,
    private readonly layout: GridLayout,
    sources: RoutingViewSources,
    /** The renderer's storage buffer behind the instance-values attribute: [instances] vec4<f32>. */
    output: GPUBuffer,
  ) {
    if (sources.numLayers !== layout.numLayers || sources.numExperts !== layout.numExperts) {
      throw new Error(
        `routing buffers are ${sources.numLayers}×${sources.numExperts} but the grid is ` +
          `${layout.numLayers}×${layout.numExperts}`,
      );
    }
    if (output.size < layout.count * VALUES_PER_INSTANCE * 4) {
      throw new Error(`instance-values buffer holds ${output.size} bytes, needs ${layout.count * 16}`);
    }
    const module = device.createShaderModule({ label: 'Grid.instanceValues', code: shaderCode });
    const storage = (type: GPUBufferBindingType, binding: number): GPUBindGroupLayoutEntry => ({
      binding,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type },
    });
    const bindGroupLayout = device.createBindGroupLayout({
      label: 'Grid.instanceValues.layout',
      entries: [
        storage('uniform', 0),
        storage('read-only-storage', 1),
        storage('read-only-storage', 2),
        storage('read-only-storage', 3),
        storage('storage', 4),
        storage('read-only-storage', 5),
        storage('read-only-storage', 6),
      ],
    });
    this.pipeline = device.createComputePipeline({
      label: 'Grid.instanceValues',
      layout: device.createPipelineLayout({ label: 'Grid.instanceValues', bindGroupLayouts: [bindGroupLayout] }),
      compute: { module, entryPoint: 'main', constants: { WG: WORKGROUP } },
    });
    this.uniforms = device.createBuffer({
      label: 'Grid.instanceValues.params',
      size: 32,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    // [layers] vec4<u32>: first expert instance, shared instance, dense instance, visible.
    this.rowData = new Uint32Array(layout.numLayers * 4);
    for (let l = 0; l < layout.numLayers; l++) {
      const u = (i: number) => (i < 0 ? NONE : i);
      this.rowData.set([u(layout.firstExpert[l]), u(layout.sharedCell[l]), u(layout.denseCell[l]), 1], l * 4);
    }
    this.rows = device.createBuffer({
      label: 'Grid.instanceValues.rows',
      size: Math.max(16, this.rowData.byteLength),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(this.rows, 0, this.rowData);
    // u32 [layers, experts] ablation mask (zero-initialised: nothing ablated).
    this.ablated = device.createBuffer({
      label: 'Grid.instanceValues.ablated',
      size: Math.max(16, layout.numLayers * layout.numExperts * 4),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });

    // u32 [columns + 1]: the experts of each column (layout.colFirst).
    this.cols = device.createBuffer({
      label: 'Grid.instanceValues.cols',
      size: Math.max(16, Math.ceil(layout.colFirst.byteLength / 16) * 16),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(this.cols, 0, layout.colFirst);

    this.atlas = device.createBuffer({
      label: 'Grid.instanceValues.atlas',
      size: Math.max(16, layout.numLayers * layout.numExperts * 4),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });

    const group = (label: string, a: GPUBuffer, b: GPUBuffer) =>
      device.createBindGroup({
        label: `Grid.instanceValues.${label}`,
        layout: bindGroupLayout,
        entries: [this.uniforms, a, b, this.rows, output, this.ablated, this.cols].map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
    this.bindGroups = {
      load: group('load', sources.counts, sources.rerouted),
      current: group('current', sources.stepCounts, sources.rerouted),
      probability: group('probability', sources.probMass, sources.rerouted),
      dropped: group('dropped', sources.dropped, sources.rerouted),
      atlas: group('atlas', this.atlas, sources.rerouted),
    };
    this.setParams('load', 1, 6);
  }

  /** Mode and scale; a uniform write (call on change, not per frame). */
  setParams(mode: ViewMode, heightScale: number, maxRatio: number): void {
    this.mode = mode;
    const u32 = new Uint32Array(this.uniformData);
    const f32 = new Float32Array(this.uniformData);
    u32[0] = VIEW_MODES.indexOf(mode);
    u32[1] = this.layout.numLayers;
    u32[2] = this.layout.numExperts;
    u32[3] = this.layout.columns;
    f32[4] = heightScale;
    f32[5] = maxRatio;
    f32[6] = this.atlasMax;
    this.device.queue.writeBuffer(this.uniforms, 0, this.uniformData);
  }

  /** The causal atlas's Δ log-likelihood per (layer, expert), f32 [layers, experts] (NaN: not swept), or null. */
  setAtlas(delta: Float32Array | null): void {
    const n = this.layout.numLayers * this.layout.numExperts;
    if (delta && delta.length !== n) throw new Error(`atlas has ${delta.length} entries, the grid ${n}`);
    if (delta) this.device.queue.writeBuffer(this.atlas, 0, delta);
    this.atlasMax = delta ? atlasMax(delta) : 0;
    new Float32Array(this.uniformData)[6] = this.atlasMax;
    this.device.queue.writeBuffer(this.uniforms, 0, this.uniformData);
  }

  /** Which layers are drawn (hidden layers' instances get zero size). A small buffer write, on change only. */
  setVisibility(visible: readonly boolean[]): void {
    for (let l = 0; l < this.layout.numLayers; l++) this.rowData[l * 4 + 3] = visible[l] ? 1 : 0;
    this.device.queue.writeBuffer(this.rows, 0, this.rowData);
  }

  /** Mark ablated experts (u8 [layers, experts], 1 = ablated); a small buffer write, on change only. */
  setAblated(mask: Uint8Array): void {
    if (mask.length !== this.layout.numLayers * this.layout.numExperts) {
      throw new Error(`ablation mask has ${mask.length} entries, the grid ${this.layout.numLayers * this.layout.numExperts}`);
    }
    this.device.queue.writeBuffer(this.ablated, 0, Uint32Array.from(mask));
  }

  /** Record the pass (one dispatch, one workgroup per layer). */
  encode(encoder: GPUCommandEncoder): void {
    const pass = encoder.beginComputePass({ label: 'Grid.instanceValues' });
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bindGroups[this.mode]);
    pass.dispatchWorkgroups(this.layout.numLayers);
    pass.end();
  }

  destroy(): void {
    this.uniforms.destroy();
    this.rows.destroy();
    this.ablated.destroy();
    this.cols.destroy();
    this.atlas.destroy();
  }
}

/** The largest |Δ log-likelihood| of an atlas, experts not swept (NaN) left out: the atlas mode's full bar height. */
export function atlasMax(delta: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < delta.length; i++) if (Math.abs(delta[i]) > max) max = Math.abs(delta[i]);
  return max;
}

/** Zero-filled routing buffers for a model drawn from its config alone (nothing routed, so all cells are flat). */
export function emptyRoutingSources(device: GPUDevice, numLayers: number, numExperts: number): RoutingViewSources & {
  destroy(): void;
} {
  const make = (name: string) =>
    device.createBuffer({
      label: `Skeleton.${name}`,
      size: Math.max(16, numLayers * numExperts * 4),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
  const b = {
    counts: make('counts'),
    stepCounts: make('stepCounts'),
    probMass: make('probMass'),
    dropped: make('dropped'),
    rerouted: make('rerouted'),
  };
  return {
    numLayers,
    numExperts,
    ...b,
    destroy: () => Object.values(b).forEach((x) => x.destroy()),
  };
}
