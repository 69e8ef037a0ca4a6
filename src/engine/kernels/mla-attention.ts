// MLA attention over the compressed cache (shaders/mla_attention.wgsl): store the step's latent + rope-key rows,
// then attend in latent space. Cache: [maxSeq, rank + rope] f32 per layer. Short steps over long contexts split
// their keys across workgroups and merge the partial softmaxes (the same policy type as standard attention).
import type { Gpu } from '../gpu';
import { Uniforms, type UniformLayout, bindGroup, storageBuffer } from './common';
import { requireBytes, requireInt } from './dispatch';
import { DEFAULT_SPLIT_POLICY, SplitAttentionKernel, type AttentionSplitPolicy, type SplitAttentionBinding } from './split-attention';

/** `Params` of shaders/mla_attention.wgsl. */
export const MLA_ATTENTION_PARAMS: UniformLayout = {
  fields: ['tokens', 'start_pos', 'heads', 'rank', 'rope', 'q_stride', 'q_head_stride', 'q_offset', 'splits', 'split_keys', 'scale', 'probe_stride'],
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

export interface MlaAttentionBinding extends SplitAttentionBinding {
  uniforms: Uniforms;
  layout: MlaAttentionLayout;
  buffers: MlaAttentionBuffers;
}

/** One layer's compressed cache: [maxSeq, rank + rope] f32. Contents need no clearing. */
export function createMlaCache(gpu: Gpu, label: string, s: { maxSeq: number; rank: number; rope: number }): GPUBuffer {
  return storageBuffer(gpu, `${label}.latentCache`, s.maxSeq * (s.rank + s.rope) * 4);
}

export class MlaAttentionKernel extends SplitAttentionKernel<MlaAttentionBinding> {
  /** maxWidth: the largest rank + rope any binding will have (sizes the shared query row). */
  constructor(
    gpu: Gpu,
    readonly maxWidth: number,
    policy: Partial<AttentionSplitPolicy> = {},
  ) {
    requireInt('MlaAttentionKernel', 'maxWidth', maxWidth, 4);
    super(gpu, {
      owner: 'MlaAttentionKernel',
      name: 'mla_attention',
      storeEntry: 'store',
      kinds: {
        store: ['uniform', 'read', 'read', 'rw'],
        attend: ['uniform', 'read', 'read', 'read', 'rw', 'rw'],
        combine: ['uniform', 'read', 'rw'],
      },
      constants: { store: MLA_STORE_CONSTANTS, attend: { ...MLA_ATTENTION_CONSTANTS, MAX_WIDTH: Math.ceil(maxWidth / 4) * 4 } },
    }, { ...policy, maxSplits: Math.min(policy.maxSplits ?? DEFAULT_SPLIT_POLICY.maxSplits, MAX_SPLITS) });
  }

  /** Most splits a step of `heads` heads may get: enough to reach targetWorkgroups with one row. */
  private maxSplitsFor(heads: number): number {
    return Math.max(1, Math.min(this.policy.maxSplits, Math.ceil(this.policy.targetWorkgroups / heads)));
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
    const partials = this.partialBuffer(l.heads, this.maxSplitsFor(l.heads), l.rank + 2);
    return {
      store: bindGroup(this.gpu, `${label}.store`, this.storeLayout, [uniforms.buffer, b.latent, b.kvA, b.cache]),
      attend: bindGroup(this.gpu, `${label}.attend`, this.attendLayout, [uniforms.buffer, b.qLat, b.q, b.cache, b.ctx, partials]),
      combine: bindGroup(this.gpu, `${label}.combine`, this.combineLayout, [uniforms.buffer, partials, b.ctx]),
      splits: 1,
      uniforms,
      label,
      layout: l,
      buffers: b,
      probe: null,
    };
  }

  protected probeShape(a: MlaAttentionBinding): { heads: number; stride: number } {
    return { heads: a.layout.heads, stride: a.layout.maxSeq + 1 };
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
        splits: split.splits, split_keys: split.keys, scale: l.scale, probe_stride: l.maxSeq + 1,
      },
    );
  }

  /** Key splits of a step of `tokens` rows whose last row sees `span` keys: `splits` ranges of `keys` keys. */
  splitFor(tokens: number, span: number, heads: number): { splits: number; keys: number } {
    return this.splitSpan(tokens, heads, span, this.maxSplitsFor(heads));
  }

  /** Store, then attend and, for a split step, combine (dispatches in one pass run in order). */
  encode(pass: GPUComputePassEncoder, a: MlaAttentionBinding, tokens: number): void {
    this.encodeStoreCount(pass, a, tokens * (a.layout.rank + a.layout.rope));
    this.encodeAttendHeads(pass, a, a.layout.heads, tokens);
  }
}
