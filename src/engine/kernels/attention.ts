// Causal attention over a KV cache (shaders/attention.wgsl): store the step's K/V rows, then attend.
// Grouped-query heads, optional sliding window, prefill (T >= 1 rows from startPos) and decode (T = 1) alike.
// When T · heads is small (decode) and the context long, keys are split across workgroups and a combine pass
// merges the partial softmaxes (flash-decoding); the split policy is AttentionSplitPolicy.
import type { Gpu } from '../gpu';
import { Uniforms, type UniformLayout, bindGroup, kernelLayout, storageBuffer, type KernelLayout } from './common';
import { gridStrideGroups, requireBytes, requireInt } from './dispatch';

/** `Params` of shaders/attention.wgsl. */
export const ATTENTION_PARAMS: UniformLayout = {
  fields: [
    'tokens', 'start_pos', 'heads', 'kv_heads', 'head_dim', 'window',
    'q_stride', 'q_offset', 'kv_stride', 'k_offset', 'v_offset', 'splits', 'split_base', 'split_keys', 'scale',
  ],
  floats: ['scale'],
};

/** attend: threads per (head, query row) = keys per chunk; MAX_HEAD_DIM sizes the shared q row. */
export const ATTENTION_CONSTANTS = { WORKGROUP: 64, MAX_HEAD_DIM: 256 };
export const KV_STORE_CONSTANTS = { STORE_WORKGROUP: 256 };
/** The shader accumulates at most this many dimensions per thread. */
const DIMS_PER_THREAD = 4;

/** When to split keys across workgroups (only affects speed; results agree to rounding). */
export interface AttentionSplitPolicy {
  /** Fewest keys per split (rounded up to a multiple of WORKGROUP); 0 disables splitting. */
  splitKeys: number;
  /** Most splits per (row, head). */
  maxSplits: number;
  /** Split only steps of at most this many query rows (sizes the partial-result scratch buffer). */
  maxSplitTokens: number;
  /** Split only while tokens · heads is below this, and aim for about this many workgroups. */
  targetWorkgroups: number;
}

export const DEFAULT_SPLIT_POLICY: AttentionSplitPolicy = {
  splitKeys: 256,
  maxSplits: 32,
  maxSplitTokens: 8,
  targetWorkgroups: 256,
};

/** Fixed at load time: head counts, cache size, scale, window and where q/k/v rows sit in their buffers. */
export interface AttentionLayout {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Rows of the KV cache (positions it can hold). */
  maxSeq: number;
  /** Softmax scale (default 1/sqrt(headDim); Granite-MoE overrides it with attention_multiplier). */
  scale?: number;
  /** Sliding window in keys, the query included (Mixtral sliding_window); 0 or absent = full causal. */
  window?: number;
  /** Elements between tokens in q (default heads · headDim) and the offset of token 0, head 0 (default 0). */
  qStride?: number;
  qOffset?: number;
  /** Elements between tokens in kNew/vNew (default kvHeads · headDim) and their offsets (default 0). */
  kvStride?: number;
  kOffset?: number;
  vOffset?: number;
}

/** Per step. */
export interface AttentionShape {
  /** Query rows (and new K/V rows) this step. */
  tokens: number;
  /** Position of the first row; rows [0, startPos) of the cache hold the earlier tokens. */
  startPos: number;
}

export interface AttentionBuffers {
  /** [T, qStride] f32 queries (RoPE applied). */
  q: GPUBuffer;
  /** [T, kvStride] f32 this step's keys (RoPE applied) and values; may be one buffer, or q's (fused qkv). */
  kNew: GPUBuffer;
  vNew: GPUBuffer;
  /** [maxSeq, kvHeads, headDim] f32 this layer's cache (see createKvCache). */
  kCache: GPUBuffer;
  vCache: GPUBuffer;
  /** [T, heads, headDim] f32. */
  out: GPUBuffer;
}

export interface AttentionBinding {
  store: GPUBindGroup;
  attend: GPUBindGroup;
  combine: GPUBindGroup;
  uniforms: Uniforms;
  label: string;
  layout: Required<AttentionLayout>;
  buffers: AttentionBuffers;
  /** Key splits of the current step (set by setShape). */
  splits: number;
}

/** One layer's K and V cache buffers, [maxSeq, kvHeads, headDim] f32 each. Contents need no clearing. */
export function createKvCache(
  gpu: Gpu,
  label: string,
  s: { maxSeq: number; kvHeads: number; headDim: number },
): { k: GPUBuffer; v: GPUBuffer } {
  const bytes = s.maxSeq * s.kvHeads * s.headDim * 4;
  return { k: storageBuffer(gpu, `${label}.kCache`, bytes), v: storageBuffer(gpu, `${label}.vCache`, bytes) };
}

export class AttentionKernel {
  private readonly storeLayout: KernelLayout;
  private readonly attendLayout: KernelLayout;
  private readonly combineLayout: KernelLayout;
  readonly storePipeline: GPUComputePipeline;
  readonly attendPipeline: GPUComputePipeline;
  readonly combinePipeline: GPUComputePipeline;
  readonly policy: AttentionSplitPolicy;
  /**
   * Partial results of split steps, shared by every binding of this kernel: layers run one after another in a
   * pass, so one layer's combine has read them before the next layer's attend writes them.
   */
  private partials: GPUBuffer | null = null;

  constructor(
    private readonly gpu: Gpu,
    policy: Partial<AttentionSplitPolicy> = {},
  ) {
    this.policy = { ...DEFAULT_SPLIT_POLICY, ...policy };
    this.storeLayout = kernelLayout(gpu, ['uniform', 'read', 'read', 'rw', 'rw']);
    this.attendLayout = kernelLayout(gpu, ['uniform', 'read', 'read', 'read', 'rw', 'rw']);
    this.combineLayout = kernelLayout(gpu, ['uniform', 'read', 'rw']);
    const { WORKGROUP, MAX_HEAD_DIM } = ATTENTION_CONSTANTS;
    this.storePipeline = gpu.pipeline('attention', 'store_kv', KV_STORE_CONSTANTS, this.storeLayout.pipelineLayout, this.storeLayout.key);
    this.attendPipeline = gpu.pipeline('attention', 'attend', { WORKGROUP, MAX_HEAD_DIM }, this.attendLayout.pipelineLayout, this.attendLayout.key);
    this.combinePipeline = gpu.pipeline('attention', 'combine', { WORKGROUP }, this.combineLayout.pipelineLayout, this.combineLayout.key);
  }

  /** The shared partial-result buffer, grown when a layout needs more (older bindings keep the older buffer). */
  private partialBuffer(heads: number, headDim: number): GPUBuffer {
    const p = this.policy;
    const bytes = p.splitKeys > 0 ? p.maxSplitTokens * heads * p.maxSplits * (headDim + 2) * 4 : 16;
    if (!this.partials || this.partials.size < bytes) {
      this.partials = storageBuffer(this.gpu, 'AttentionKernel.partials', bytes);
    }
    return this.partials;
  }

  bind(label: string, buffers: AttentionBuffers, layout: AttentionLayout): AttentionBinding {
    const l: Required<AttentionLayout> = {
      heads: layout.heads,
      kvHeads: layout.kvHeads,
      headDim: layout.headDim,
      maxSeq: layout.maxSeq,
      scale: layout.scale ?? 1 / Math.sqrt(layout.headDim),
      window: layout.window ?? 0,
      qStride: layout.qStride ?? layout.heads * layout.headDim,
      qOffset: layout.qOffset ?? 0,
      kvStride: layout.kvStride ?? layout.kvHeads * layout.headDim,
      kOffset: layout.kOffset ?? 0,
      vOffset: layout.vOffset ?? 0,
    };
    requireInt(label, 'heads', l.heads, 1, this.gpu.limits.maxComputeWorkgroupsPerDimension);
    requireInt(label, 'kvHeads', l.kvHeads, 1, l.heads);
    if (l.heads % l.kvHeads) throw new Error(`${label}: heads ${l.heads} is not a multiple of kvHeads ${l.kvHeads}`);
    const maxDim = Math.min(ATTENTION_CONSTANTS.MAX_HEAD_DIM, DIMS_PER_THREAD * ATTENTION_CONSTANTS.WORKGROUP);
    requireInt(label, 'headDim', l.headDim, 4, maxDim);
    if (l.headDim % 4) throw new Error(`${label}: headDim must be a multiple of 4 (K is read as vec4), got ${l.headDim}`);
    requireInt(label, 'maxSeq', l.maxSeq, 1);
    requireInt(label, 'window', l.window, 0);
    if (!(l.scale > 0)) throw new Error(`${label}: scale must be > 0, got ${l.scale}`);
    const b = buffers;
    if (b.kCache === b.vCache) throw new Error(`${label}: kCache and vCache must be different buffers`);
    const cacheBytes = l.maxSeq * l.kvHeads * l.headDim * 4;
    requireBytes(label, `kCache [${l.maxSeq}, ${l.kvHeads}, ${l.headDim}]`, b.kCache, cacheBytes);
    requireBytes(label, `vCache [${l.maxSeq}, ${l.kvHeads}, ${l.headDim}]`, b.vCache, cacheBytes);
    const uniforms = new Uniforms(this.gpu, `${label}.params`, ATTENTION_PARAMS);
    const partials = this.partialBuffer(l.heads, l.headDim);
    return {
      store: bindGroup(this.gpu, `${label}.store`, this.storeLayout, [uniforms.buffer, b.kNew, b.vNew, b.kCache, b.vCache]),
      attend: bindGroup(this.gpu, `${label}.attend`, this.attendLayout, [uniforms.buffer, b.q, b.kCache, b.vCache, b.out, partials]),
      combine: bindGroup(this.gpu, `${label}.combine`, this.combineLayout, [uniforms.buffer, partials, b.out]),
      uniforms,
      label,
      layout: l,
      buffers: b,
      splits: 1,
    };
  }

  /** Writes the step's uniform (queue write, no allocation). Throws if the step runs past the cache. */
  setShape(a: AttentionBinding, s: AttentionShape): void {
    const l = a.layout;
    requireInt(a.label, 'tokens', s.tokens, 1, this.gpu.limits.maxComputeWorkgroupsPerDimension);
    requireInt(a.label, 'startPos', s.startPos, 0);
    if (s.startPos + s.tokens > l.maxSeq) {
      throw new Error(`${a.label}: positions [${s.startPos}, ${s.startPos + s.tokens}) run past the KV cache (${l.maxSeq} rows)`);
    }
    const rows = (offset: number, stride: number, width: number) => (offset + (s.tokens - 1) * stride + width) * 4;
    const d = l.headDim;
    requireBytes(a.label, `q [${s.tokens}, ${l.qStride}]`, a.buffers.q, rows(l.qOffset, l.qStride, l.heads * d));
    requireBytes(a.label, `kNew [${s.tokens}, ${l.kvStride}]`, a.buffers.kNew, rows(l.kOffset, l.kvStride, l.kvHeads * d));
    requireBytes(a.label, `vNew [${s.tokens}, ${l.kvStride}]`, a.buffers.vNew, rows(l.vOffset, l.kvStride, l.kvHeads * d));
    requireBytes(a.label, `out [${s.tokens}, ${l.heads}, ${d}]`, a.buffers.out, s.tokens * l.heads * d * 4);
    const split = this.splitFor(s, l);
    a.splits = split.splits;
    a.uniforms.set(
      {
        tokens: s.tokens,
        start_pos: s.startPos,
        heads: l.heads,
        kv_heads: l.kvHeads,
        head_dim: d,
        window: l.window,
        q_stride: l.qStride,
        q_offset: l.qOffset,
        kv_stride: l.kvStride,
        k_offset: l.kOffset,
        v_offset: l.vOffset,
        splits: split.splits,
        split_base: split.base,
        split_keys: split.keys,
        scale: l.scale,
      },
    );
  }

  /** How this step's keys are split: `splits` ranges of `keys` keys from `base` (the lowest key any row sees). */
  splitFor(s: AttentionShape, l: Required<AttentionLayout>): { splits: number; base: number; keys: number } {
    const p = this.policy;
    const base = l.window > 0 ? Math.max(0, s.startPos + 1 - l.window) : 0;
    const span = s.startPos + s.tokens - base;
    const rowsHeads = s.tokens * l.heads;
    if (p.splitKeys <= 0 || s.tokens > p.maxSplitTokens || rowsHeads >= p.targetWorkgroups) return { splits: 1, base, keys: span };
    const want = Math.min(p.maxSplits, Math.ceil(span / p.splitKeys), Math.ceil(p.targetWorkgroups / rowsHeads));
    if (want <= 1) return { splits: 1, base, keys: span };
    const wg = ATTENTION_CONSTANTS.WORKGROUP;
    const keys = Math.ceil(Math.ceil(span / want) / wg) * wg; // whole chunks per split
    return { splits: Math.ceil(span / keys), base, keys };
  }

  /** Writes the step's K/V rows into the cache. */
  encodeStore(pass: GPUComputePassEncoder, a: AttentionBinding, tokens: number): void {
    pass.setPipeline(this.storePipeline);
    pass.setBindGroup(0, a.store);
    const count = tokens * a.layout.kvHeads * a.layout.headDim;
    pass.dispatchWorkgroups(gridStrideGroups(this.gpu, count, KV_STORE_CONSTANTS.STORE_WORKGROUP));
  }

  /** Attention of the step's query rows over cache rows [0, startPos + tokens) (and the combine pass if split). */
  encodeAttend(pass: GPUComputePassEncoder, a: AttentionBinding, tokens: number): void {
    pass.setPipeline(this.attendPipeline);
    pass.setBindGroup(0, a.attend);
    pass.dispatchWorkgroups(a.layout.heads, tokens, a.splits);
    if (a.splits > 1) {
      pass.setPipeline(this.combinePipeline);
      pass.setBindGroup(0, a.combine);
      pass.dispatchWorkgroups(a.layout.heads, tokens);
    }
  }

  /** Store, then attend (dispatches in one pass are ordered, so attend sees the new rows). */
  encode(pass: GPUComputePassEncoder, a: AttentionBinding, tokens: number): void {
    this.encodeStore(pass, a, tokens);
    this.encodeAttend(pass, a, tokens);
  }
}
