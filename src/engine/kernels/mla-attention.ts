// MLA attention over the compressed cache (shaders/mla_attention.wgsl): store the step's latent + rope-key rows,
// then attend in latent space. Cache: [maxSeq, rank + rope] f32 per layer. Short steps over long contexts split
// their keys across workgroups and merge the partial softmaxes (the same policy type as standard attention).
import type { Gpu } from '../gpu';
import { Uniforms, type UniformLayout, bindGroup, kernelLayout, storageBuffer, type KernelLayout } from './common';
import { gridStrideGroups, requireBytes, requireInt } from './dispatch';
import { DEFAULT_SPLIT_POLICY, type AttentionSplitPolicy } from './attention';

/** `Params` of shaders/mla_attention.wgsl. */
export const MLA_ATTENTION_PARAMS: UniformLayout = {
  fields: ['tokens', 'start_pos', 'heads', 'rank', 'rope', 'q_stride', 'q_head_stride', 'q_offset', 'splits', 'split_keys', 'scale'],
  floats: ['scale'],
};

export const MLA_ATTENTION_CONSTANTS = { WORKGROUP: 64 };
export const MLA_STORE_CONSTANTS = { STORE_WORKGROUP: 256 };
/** The shader accumulates at most this many latent dimensions per thread, and merges at most MAX_SPLITS splits. */
const DIMS_PER_THREAD = 8;
const MAX_SPLITS = 32;

export interface MlaAttentionLayout {
  heads: number;
  rank: number;
  nope: number;
  rope: number;
  maxSeq: number;
  scale: number;
}

export interface MlaAttentionBuffers {
  /** [T, rank + rope] f32: the normed latent in columns [0, rank). */
  latent: GPUBuffer;
  /** [T, rank + rope] f32: kv_a_proj_with_mqa's output, its rope part rotated. */
  kvA: GPUBuffer;
  /** [T, heads, rank] f32 absorbed queries. */
  qLat: GPUBuffer;
  /** [T, heads·(nope + rope)] f32 queries (rope parts rotated). */
  q: GPUBuffer;
  /** [maxSeq, rank + rope] f32 (createMlaCache). */
  cache: GPUBuffer;
  /** [T, heads, rank] f32 out. */
  ctx: GPUBuffer;
}

export interface MlaAttentionBinding {
  store: GPUBindGroup;
  attend: GPUBindGroup;
  combine: GPUBindGroup;
  /** Key splits of the current step (set by setShape). */
  splits: number;
  uniforms: Uniforms;
  label: string;
  layout: MlaAttentionLayout;
  buffers: MlaAttentionBuffers;
}

/** One layer's compressed cache: [maxSeq, rank + rope] f32. Contents need no clearing. */
export function createMlaCache(gpu: Gpu, label: string, s: { maxSeq: number; rank: number; rope: number }): GPUBuffer {
  return storageBuffer(gpu, `${label}.latentCache`, s.maxSeq * (s.rank + s.rope) * 4);
}

export class MlaAttentionKernel {
  private readonly storeLayout: KernelLayout;
  private readonly attendLayout: KernelLayout;
  private readonly combineLayout: KernelLayout;
  readonly storePipeline: GPUComputePipeline;
  readonly attendPipeline: GPUComputePipeline;
  readonly combinePipeline: GPUComputePipeline;
  readonly policy: AttentionSplitPolicy;
  /** Partial results of split steps, shared by every binding (layers run one after another in a pass). */
  private partials: GPUBuffer | null = null;

  /** maxWidth: the largest rank + rope any binding will have (sizes the shared query row). */
  constructor(
    private readonly gpu: Gpu,
    readonly maxWidth: number,
    policy: Partial<AttentionSplitPolicy> = {},
  ) {
    requireInt('MlaAttentionKernel', 'maxWidth', maxWidth, 4);
    this.policy = { ...DEFAULT_SPLIT_POLICY, ...policy };
    this.policy.maxSplits = Math.min(this.policy.maxSplits, MAX_SPLITS);
    this.storeLayout = kernelLayout(gpu, ['uniform', 'read', 'read', 'rw']);
    this.attendLayout = kernelLayout(gpu, ['uniform', 'read', 'read', 'read', 'rw', 'rw']);
    this.combineLayout = kernelLayout(gpu, ['uniform', 'read', 'rw']);
    const MAX_WIDTH = Math.ceil(maxWidth / 4) * 4;
    const { WORKGROUP } = MLA_ATTENTION_CONSTANTS;
    this.storePipeline = gpu.pipeline('mla_attention', 'store', MLA_STORE_CONSTANTS, this.storeLayout.pipelineLayout, this.storeLayout.key);
    this.attendPipeline = gpu.pipeline('mla_attention', 'attend', { WORKGROUP, MAX_WIDTH }, this.attendLayout.pipelineLayout, this.attendLayout.key);
    this.combinePipeline = gpu.pipeline('mla_attention', 'combine', { WORKGROUP }, this.combineLayout.pipelineLayout, this.combineLayout.key);
  }

  /** Most splits a step of `heads` heads may get: enough to reach targetWorkgroups with one row. */
  private maxSplitsFor(heads: number): number {
    return Math.max(1, Math.min(this.policy.maxSplits, Math.ceil(this.policy.targetWorkgroups / heads)));
  }

  /** The shared partial-result buffer, grown when a layout needs more (older bindings keep the older buffer). */
  private partialBuffer(heads: number, rank: number): GPUBuffer {
    const p = this.policy;
    const bytes = p.splitKeys > 0 ? p.maxSplitTokens * heads * this.maxSplitsFor(heads) * (rank + 2) * 4 : 16;
    if (!this.partials || this.partials.size < bytes) this.partials = storageBuffer(this.gpu, 'MlaAttentionKernel.partials', bytes);
    return this.partials;
  }

  bind(label: string, b: MlaAttentionBuffers, l: MlaAttentionLayout): MlaAttentionBinding {
    requireInt(label, 'heads', l.heads, 1, this.gpu.limits.maxComputeWorkgroupsPerDimension);
    requireInt(label, 'rank', l.rank, 4, DIMS_PER_THREAD * MLA_ATTENTION_CONSTANTS.WORKGROUP);
    requireInt(label, 'rope', l.rope, 4);
    requireInt(label, 'nope', l.nope, 0);
    if (l.rank % 4 || l.rope % 4) throw new Error(`${label}: rank ${l.rank} and rope ${l.rope} must be multiples of 4 (cache rows are read as vec4)`);
    if (l.rank + l.rope > this.maxWidth) throw new Error(`${label}: rank + rope = ${l.rank + l.rope} exceeds the kernel's maxWidth ${this.maxWidth}`);
    requireInt(label, 'maxSeq', l.maxSeq, 1);
    if (!(l.scale > 0)) throw new Error(`${label}: scale must be > 0, got ${l.scale}`);
    requireBytes(label, `cache [${l.maxSeq}, ${l.rank + l.rope}]`, b.cache, l.maxSeq * (l.rank + l.rope) * 4);
    const uniforms = new Uniforms(this.gpu, `${label}.params`, MLA_ATTENTION_PARAMS);
    const partials = this.partialBuffer(l.heads, l.rank);
    return {
      store: bindGroup(this.gpu, `${label}.store`, this.storeLayout, [uniforms.buffer, b.latent, b.kvA, b.cache]),
      attend: bindGroup(this.gpu, `${label}.attend`, this.attendLayout, [uniforms.buffer, b.qLat, b.q, b.cache, b.ctx, partials]),
      combine: bindGroup(this.gpu, `${label}.combine`, this.combineLayout, [uniforms.buffer, partials, b.ctx]),
      splits: 1,
      uniforms,
      label,
      layout: l,
      buffers: b,
    };
  }

  /** Writes the step's uniform (queue write, no allocation). Throws if the step runs past the cache. */
  setShape(a: MlaAttentionBinding, s: { tokens: number; startPos: number }): void {
    const l = a.layout;
    requireInt(a.label, 'tokens', s.tokens, 1, this.gpu.limits.maxComputeWorkgroupsPerDimension);
    requireInt(a.label, 'startPos', s.startPos, 0);
    if (s.startPos + s.tokens > l.maxSeq) {
      throw new Error(`${a.label}: positions [${s.startPos}, ${s.startPos + s.tokens}) run past the cache (${l.maxSeq} rows)`);
    }
    const W = l.rank + l.rope, qRow = l.heads * (l.nope + l.rope);
    requireBytes(a.label, `latent [${s.tokens}, ${W}]`, a.buffers.latent, s.tokens * W * 4);
    requireBytes(a.label, `kvA [${s.tokens}, ${W}]`, a.buffers.kvA, s.tokens * W * 4);
    requireBytes(a.label, `q [${s.tokens}, ${qRow}]`, a.buffers.q, s.tokens * qRow * 4);
    for (const k of ['qLat', 'ctx'] as const) requireBytes(a.label, `${k} [${s.tokens}, ${l.heads}, ${l.rank}]`, a.buffers[k], s.tokens * l.heads * l.rank * 4);
    const split = this.splitFor(s.tokens, s.startPos + s.tokens, l.heads);
    a.splits = split.splits;
    a.uniforms.set(
      {
        tokens: s.tokens, start_pos: s.startPos, heads: l.heads, rank: l.rank, rope: l.rope,
        q_stride: qRow, q_head_stride: l.nope + l.rope, q_offset: l.nope,
        splits: split.splits, split_keys: split.keys, scale: l.scale,
      },
    );
  }

  /** Key splits of a step of `tokens` rows whose last row sees `span` keys: `splits` ranges of `keys` keys. */
  splitFor(tokens: number, span: number, heads: number): { splits: number; keys: number } {
    const p = this.policy;
    const rowsHeads = tokens * heads;
    if (p.splitKeys <= 0 || tokens > p.maxSplitTokens || rowsHeads >= p.targetWorkgroups) return { splits: 1, keys: span };
    const want = Math.min(this.maxSplitsFor(heads), Math.ceil(span / p.splitKeys), Math.ceil(p.targetWorkgroups / rowsHeads));
    if (want <= 1) return { splits: 1, keys: span };
    const chunk = MLA_ATTENTION_CONSTANTS.WORKGROUP;
    const keys = Math.ceil(span / want / chunk) * chunk; // whole chunks per split
    return { splits: Math.ceil(span / keys), keys };
  }

  /** Store, then attend and, for a split step, combine (dispatches in one pass run in order). */
  encode(pass: GPUComputePassEncoder, a: MlaAttentionBinding, tokens: number): void {
    pass.setPipeline(this.storePipeline);
    pass.setBindGroup(0, a.store);
    pass.dispatchWorkgroups(gridStrideGroups(this.gpu, tokens * (a.layout.rank + a.layout.rope), MLA_STORE_CONSTANTS.STORE_WORKGROUP));
    pass.setPipeline(this.attendPipeline);
    pass.setBindGroup(0, a.attend);
    pass.dispatchWorkgroups(a.layout.heads, tokens, a.splits);
    if (a.splits > 1) {
      pass.setPipeline(this.combinePipeline);
      pass.setBindGroup(0, a.combine);
      pass.dispatchWorkgroups(a.layout.heads, tokens);
    }
  }
}
