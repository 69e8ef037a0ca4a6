// The store → attend → combine skeleton shared by standard and MLA attention (AttentionKernel, MlaAttentionKernel):
// a shader with a `store` entry point that writes the step's rows into the cache, an `attend` entry point run per
// (head, query row, key split) and, for steps whose keys are split across workgroups ("flash-decoding"), a `combine`
// pass that merges the splits' partial softmaxes from one partial-result buffer shared by every binding.
// A binding may carry an attention probe (lib/online_softmax): its attend and combine then run the pipelines built
// with ATTENTION_PROBE = true and record the step's last row's attention weights into the probe's buffer range; a
// binding without one runs the default pipelines, whose probe writes compile away, with a placeholder bound.
import type { Gpu } from '../gpu';
import { type BindingKind, kernelLayout, storageBuffer, type KernelLayout } from './common';
import { requireBytes } from './dispatch';
import { gridStrideGroups } from './dispatch';

/** When to split keys across workgroups (only affects speed; results agree to rounding). */
export interface AttentionSplitPolicy {
  /** Fewest keys per split; 0 disables splitting. */
  splitKeys: number;
  /** Most splits per (row, head). */
  maxSplits: number;
  /** Split only steps of at most this many query rows (sizes the partial-result scratch buffer). */
  maxSplitTokens: number;
  /** Split only while tokens · heads is below this, and aim for about this many workgroups. */
  targetWorkgroups: number;
}

/**
 * A decode step is latency-bound: a split's time is its keys walked one after another (value loads four keys at a
 * time per thread), so splits are short (32 keys: half a chunk) and many (granite's 16 heads at 576 keys: 18 splits,
 * 288 workgroups; at 4096 keys 32 splits of 128).
 */
export const DEFAULT_SPLIT_POLICY: AttentionSplitPolicy = {
  splitKeys: 32,
  maxSplits: 32,
  maxSplitTokens: 8,
  targetWorkgroups: 512,
};

/** What every binding of a split attention kernel holds. */
export interface SplitAttentionBinding {
  store: GPUBindGroup;
  attend: GPUBindGroup;
  combine: GPUBindGroup;
  /** Key splits of the current step (set by setShape). */
  splits: number;
  label: string;
  /** Group 1 of attend/combine: this binding's probe range, or null (the kernel's placeholder, nothing recorded). */
  probe: GPUBindGroup | null;
}

/** One attention binding's probe: `heads` rows of `stride` floats (slot 0 the sink's share, key j at 1 + j). */
export interface ProbeTarget {
  heads: number;
  stride: number;
  /** Records into buffer bytes [offset, offset + heads·stride·4) from the next step on (offset 256-aligned). */
  attach(buffer: GPUBuffer, offset: number): void;
  detach(): void;
}

/** The shader and its entry points' binding kinds (group 0, in binding order) and override constants. */
export interface SplitAttentionShader {
  /** Labels the kernel's own GPU objects (`owner.partials`). */
  owner: string;
  name: string;
  storeEntry: string;
  kinds: { store: BindingKind[]; attend: BindingKind[]; combine: BindingKind[] };
  constants: { store: { STORE_WORKGROUP: number }; attend: Record<string, number> & { WORKGROUP: number } };
}

export abstract class SplitAttentionKernel<B extends SplitAttentionBinding> {
  protected readonly storeLayout: KernelLayout;
  protected readonly attendLayout: KernelLayout;
  protected readonly combineLayout: KernelLayout;
  readonly storePipeline: GPUComputePipeline;
  readonly attendPipeline: GPUComputePipeline;
  readonly combinePipeline: GPUComputePipeline;
  readonly policy: AttentionSplitPolicy;
  /**
   * Partial results of split steps, shared by every binding of this kernel: layers run one after another in a
   * pass, so one layer's combine has read them before the next layer's attend writes them.
   */
  private partials: GPUBuffer | null = null;
  /** Group 1 of attend and combine: the probe's one storage binding. */
  private readonly probeGroupLayout: GPUBindGroupLayout;
  private readonly probeLayouts: { attend: GPUPipelineLayout; combine: GPUPipelineLayout };
  /** Bound as group 1 where a binding has no probe (never written: ATTENTION_PROBE is false there). */
  private readonly noProbe: GPUBindGroup;
  private probePipelines: { attend: GPUComputePipeline; combine: GPUComputePipeline } | null = null;

  protected constructor(
    protected readonly gpu: Gpu,
    private readonly shader: SplitAttentionShader,
    policy: Partial<AttentionSplitPolicy>,
  ) {
    this.policy = { ...DEFAULT_SPLIT_POLICY, ...policy };
    const { owner, name, storeEntry, kinds, constants } = shader;
    this.storeLayout = kernelLayout(gpu, kinds.store);
    this.attendLayout = kernelLayout(gpu, kinds.attend);
    this.combineLayout = kernelLayout(gpu, kinds.combine);
    this.probeGroupLayout = gpu.device.createBindGroupLayout({
      label: `${owner}.probeLayout`,
      entries: [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } }],
    });
    const withProbe = (l: KernelLayout, entry: string) =>
      gpu.device.createPipelineLayout({ label: `${owner}.${entry}Layout`, bindGroupLayouts: [l.bindGroupLayout, this.probeGroupLayout] });
    this.probeLayouts = { attend: withProbe(this.attendLayout, 'attend'), combine: withProbe(this.combineLayout, 'combine') };
    this.noProbe = this.probeGroup(`${owner}.noProbe`, storageBuffer(gpu, `${owner}.noProbeBuffer`, 16), 0, 16);
    this.storePipeline = gpu.pipeline(name, storeEntry, constants.store, this.storeLayout.pipelineLayout, this.storeLayout.key);
    [this.attendPipeline, this.combinePipeline] = this.attendPipelines(false);
  }

  /** attend and combine, with or without the probe's writes. */
  private attendPipelines(probe: boolean): [GPUComputePipeline, GPUComputePipeline] {
    const { name, constants, owner } = this.shader;
    const key = (l: KernelLayout) => `${l.key}+${owner}.probe`;
    const flag = { ATTENTION_PROBE: probe ? 1 : 0 };
    return [
      this.gpu.pipeline(name, 'attend', { ...constants.attend, ...flag }, this.probeLayouts.attend, key(this.attendLayout)),
      this.gpu.pipeline(name, 'combine', { WORKGROUP: constants.attend.WORKGROUP, ...flag }, this.probeLayouts.combine, key(this.combineLayout)),
    ];
  }

  private probeGroup(label: string, buffer: GPUBuffer, offset: number, size: number): GPUBindGroup {
    return this.gpu.device.createBindGroup({ label, layout: this.probeGroupLayout, entries: [{ binding: 0, resource: { buffer, offset, size } }] });
  }

  /** Query heads and floats per head of a binding's probe (heads · (maxSeq + 1)). */
  protected abstract probeShape(a: B): { heads: number; stride: number };

  /** The probe handle of binding `a` (attach/detach create GPU objects: not for the hot path). */
  probeTarget(a: B): ProbeTarget {
    const { heads, stride } = this.probeShape(a);
    return {
      heads,
      stride,
      attach: (buffer, offset) => {
        const size = heads * stride * 4;
        requireBytes(a.label, `probe [${heads}, ${stride}] at byte ${offset}`, buffer, offset + size);
        if (!this.probePipelines) {
          const [attend, combine] = this.attendPipelines(true);
          this.probePipelines = { attend, combine };
        }
        a.probe = this.probeGroup(`${a.label}.probe`, buffer, offset, size);
      },
      detach: () => {
        a.probe = null;
      },
    };
  }

  /**
   * The shared partial-result buffer for records of `recordFloats` floats (m, l and the accumulators) per
   * (row, head, split), grown when a binding needs more (older bindings keep the older buffer).
   */
  protected partialBuffer(heads: number, maxSplits: number, recordFloats: number): GPUBuffer {
    const p = this.policy;
    const bytes = p.splitKeys > 0 ? p.maxSplitTokens * heads * maxSplits * recordFloats * 4 : 16;
    if (!this.partials || this.partials.size < bytes) {
      this.partials = storageBuffer(this.gpu, `${this.shader.owner}.partials`, bytes);
    }
    return this.partials;
  }

  /**
   * How a step of `tokens` rows and `heads` heads whose rows see `span` keys in all is split: `splits` ranges of
   * `keys` keys (the last may be shorter), at most `maxSplits` of them.
   */
  protected splitSpan(tokens: number, heads: number, span: number, maxSplits: number): { splits: number; keys: number } {
    const p = this.policy;
    const rowsHeads = tokens * heads;
    if (p.splitKeys <= 0 || tokens > p.maxSplitTokens || rowsHeads >= p.targetWorkgroups) return { splits: 1, keys: span };
    const want = Math.min(maxSplits, Math.ceil(span / p.splitKeys), Math.ceil(p.targetWorkgroups / rowsHeads));
    if (want <= 1) return { splits: 1, keys: span };
    const keys = Math.ceil(span / want);
    return { splits: Math.ceil(span / keys), keys };
  }

  /** Writes the step's `count` cache elements. */
  protected encodeStoreCount(pass: GPUComputePassEncoder, a: B, count: number): void {
    pass.setPipeline(this.storePipeline);
    pass.setBindGroup(0, a.store);
    pass.dispatchWorkgroups(gridStrideGroups(this.gpu, count, this.shader.constants.store.STORE_WORKGROUP));
  }

  /** Attention of the step's query rows of `heads` heads (and the combine pass if split). */
  protected encodeAttendHeads(pass: GPUComputePassEncoder, a: B, heads: number, tokens: number): void {
    const pipelines = a.probe ? this.probePipelines! : { attend: this.attendPipeline, combine: this.combinePipeline };
    pass.setPipeline(pipelines.attend);
    pass.setBindGroup(0, a.attend);
    pass.setBindGroup(1, a.probe ?? this.noProbe);
    pass.dispatchWorkgroups(heads, tokens, a.splits);
    if (a.splits > 1) {
      pass.setPipeline(pipelines.combine);
      pass.setBindGroup(0, a.combine);
      pass.dispatchWorkgroups(heads, tokens);
    }
  }
}
