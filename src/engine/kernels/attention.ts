// Causal attention over a KV cache (shaders/attention.wgsl): store the step's K/V rows, then attend.
// Grouped-query heads, optional sliding window, optional per-head sink logits (gpt-oss), prefill (T >= 1 rows from
// startPos) and decode (T = 1) alike.
// When T · heads is small (decode) and the context long, keys are split across workgroups and a combine pass
// merges the partial softmaxes (flash-decoding); the split policy is AttentionSplitPolicy.
import type { Gpu } from '../gpu';
import { type UniformArena, Uniforms, type UniformLayout, bindGroup, storageBuffer } from './common';
import { requireBytes, requireInt } from './dispatch';
import { DEFAULT_SPLIT_POLICY, SplitAttentionKernel, type AttentionSplitPolicy, type SplitAttentionBinding } from './split-attention';

export { DEFAULT_SPLIT_POLICY, type AttentionSplitPolicy } from './split-attention';

/** `Params` of shaders/attention.wgsl. */
export const ATTENTION_PARAMS: UniformLayout = {
  fields: [
    'tokens', 'start_pos', 'heads', 'kv_heads', 'head_dim', 'window',
    'q_stride', 'q_offset', 'kv_stride', 'k_offset', 'v_offset', 'splits', 'split_base', 'split_keys', 'scale', 'sinks',
    'probe_stride',
  ],
  floats: ['scale'],
};

/** attend: threads per (head, query row) = keys per chunk; MAX_HEAD_DIM sizes the shared q row. */
export const ATTENTION_CONSTANTS = { WORKGROUP: 64, MAX_HEAD_DIM: 256 };
export const KV_STORE_CONSTANTS = { STORE_WORKGROUP: 256 };
/** The shader accumulates at most this many dimensions per thread, and combine merges at most MAX_SPLITS splits. */
const DIMS_PER_THREAD = 4;
const MAX_SPLITS = 64;

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
  /** [heads] f32 sink logits (gpt-oss self_attn.sinks); absent: no sinks. */
  sinks?: GPUBuffer;
}

export interface AttentionBinding extends SplitAttentionBinding {
  uniforms: Uniforms;
  layout: Required<AttentionLayout>;
  buffers: AttentionBuffers;
  /** The uniform fields a step changes, written in place (no allocation per step). */
  step: { tokens: number; start_pos: number; splits: number; split_base: number; split_keys: number };
  /** Token count the buffer sizes were last checked for (they are fixed at bind time). */
  checkedTokens: number;
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

export class AttentionKernel extends SplitAttentionKernel<AttentionBinding> {
  /** Bound where a layer has no sinks (never read then: params.sinks = 0). */
  private noSinks: GPUBuffer | null = null;

  /** arena: where the bindings' uniforms live (a decoder's, flushed once per step); null: a buffer each, written at once. */
  constructor(gpu: Gpu, policy: Partial<AttentionSplitPolicy> = {}, private readonly arena: UniformArena | null = null) {
    super(gpu, {
      owner: 'AttentionKernel',
      name: 'attention',
      storeEntry: 'store_kv',
      kinds: {
        store: ['uniform', 'read', 'read', 'rw', 'rw'],
        attend: ['uniform', 'read', 'read', 'read', 'rw', 'rw', 'read'],
        combine: ['uniform', 'read', 'rw', 'read'],
      },
      constants: { store: KV_STORE_CONSTANTS, attend: ATTENTION_CONSTANTS },
    }, { ...policy, maxSplits: Math.min(policy.maxSplits ?? DEFAULT_SPLIT_POLICY.maxSplits, MAX_SPLITS) });
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
    if (b.sinks) requireBytes(label, `sinks [${l.heads}]`, b.sinks, l.heads * 4);
    const uniforms = new Uniforms(this.gpu, `${label}.params`, ATTENTION_PARAMS, this.arena);
    uniforms.set({
      heads: l.heads,
      kv_heads: l.kvHeads,
      head_dim: l.headDim,
      window: l.window,
      q_stride: l.qStride,
      q_offset: l.qOffset,
      kv_stride: l.kvStride,
      k_offset: l.kOffset,
      v_offset: l.vOffset,
      scale: l.scale,
      sinks: b.sinks ? 1 : 0,
      probe_stride: l.maxSeq + 1,
    });
    const partials = this.partialBuffer(l.heads, this.policy.maxSplits, l.headDim + 2);
    this.noSinks ??= storageBuffer(this.gpu, 'AttentionKernel.noSinks', 16);
    const sinks = b.sinks ?? this.noSinks;
    return {
      store: bindGroup(this.gpu, `${label}.store`, this.storeLayout, [uniforms, b.kNew, b.vNew, b.kCache, b.vCache]),
      attend: bindGroup(this.gpu, `${label}.attend`, this.attendLayout, [uniforms, b.q, b.kCache, b.vCache, b.out, partials, sinks]),
      combine: bindGroup(this.gpu, `${label}.combine`, this.combineLayout, [uniforms, partials, b.out, sinks]),
      uniforms,
      label,
      layout: l,
      buffers: b,
      splits: 1,
      probe: null,
      step: { tokens: 0, start_pos: 0, splits: 1, split_base: 0, split_keys: 0 },
      checkedTokens: 0,
    };
  }

  protected probeShape(a: AttentionBinding): { heads: number; stride: number } {
    return { heads: a.layout.heads, stride: a.layout.maxSeq + 1 };
  }

  /**
   * Writes the step's fields of the uniform (into the arena, or a queue write; no allocation). Throws if the step
   * runs past the cache or its rows past the bound buffers.
   */
  setShape(a: AttentionBinding, s: AttentionShape): void {
    const l = a.layout;
    if (s.tokens !== a.checkedTokens) this.checkRows(a, s.tokens);
    requireInt(a.label, 'startPos', s.startPos, 0);
    if (s.startPos + s.tokens > l.maxSeq) {
      throw new Error(`${a.label}: positions [${s.startPos}, ${s.startPos + s.tokens}) run past the KV cache (${l.maxSeq} rows)`);
    }
    const split = this.splitFor(s, l);
    a.splits = split.splits;
    const step = a.step;
    step.tokens = s.tokens;
    step.start_pos = s.startPos;
    step.splits = split.splits;
    step.split_base = split.base;
    step.split_keys = split.keys;
    a.uniforms.set(step);
  }

  /** The buffers hold `tokens` rows of q, the new k and v, and out (they are fixed at bind time: checked per T). */
  private checkRows(a: AttentionBinding, tokens: number): void {
    const l = a.layout;
    requireInt(a.label, 'tokens', tokens, 1, this.gpu.limits.maxComputeWorkgroupsPerDimension);
    const rows = (offset: number, stride: number, width: number) => (offset + (tokens - 1) * stride + width) * 4;
    const d = l.headDim;
    requireBytes(a.label, `q [${tokens}, ${l.qStride}]`, a.buffers.q, rows(l.qOffset, l.qStride, l.heads * d));
    requireBytes(a.label, `kNew [${tokens}, ${l.kvStride}]`, a.buffers.kNew, rows(l.kOffset, l.kvStride, l.kvHeads * d));
    requireBytes(a.label, `vNew [${tokens}, ${l.kvStride}]`, a.buffers.vNew, rows(l.vOffset, l.kvStride, l.kvHeads * d));
    requireBytes(a.label, `out [${tokens}, ${l.heads}, ${d}]`, a.buffers.out, tokens * l.heads * d * 4);
    a.checkedTokens = tokens;
  }

  /** How this step's keys are split: `splits` ranges of `keys` keys from `base` (the lowest key any row sees). */
  splitFor(s: AttentionShape, l: Required<AttentionLayout>): { splits: number; base: number; keys: number } {
    const base = l.window > 0 ? Math.max(0, s.startPos + 1 - l.window) : 0;
    return { base, ...this.splitSpan(s.tokens, l.heads, s.startPos + s.tokens - base, this.policy.maxSplits) };
  }

  /** Writes the step's K/V rows into the cache. */
  encodeStore(pass: GPUComputePassEncoder, a: AttentionBinding, tokens: number): void {
    this.encodeStoreCount(pass, a, tokens * a.layout.kvHeads * a.layout.headDim);
  }

  /** Attention of the step's query rows over cache rows [0, startPos + tokens) (and the combine pass if split). */
  encodeAttend(pass: GPUComputePassEncoder, a: AttentionBinding, tokens: number): void {
    this.encodeAttendHeads(pass, a, a.layout.heads, tokens);
  }

  /** Store, then attend (dispatches in one pass are ordered, so attend sees the new rows). */
  encode(pass: GPUComputePassEncoder, a: AttentionBinding, tokens: number): void {
    this.encodeStore(pass, a, tokens);
    this.encodeAttend(pass, a, tokens);
  }
}
