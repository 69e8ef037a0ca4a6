// Rotary position embedding kernel (shaders/rope.wgsl), in place on q and k, Hugging Face "rotate_half" convention;
// and RopeAppendKernel: bias, q/k norm, RoPE and the KV-cache append of a fused q/k/v projection in one dispatch.
import type { Gpu } from '../gpu';
import { WEIGHT_DTYPE_CODE, type WeightDtype } from '../../model/dtypes';
import { UniformArena, Uniforms, type UniformLayout, bindGroup, kernelLayout, storageBuffer } from './common';
import { gridStrideGroups, requireBytes, requireInt } from './dispatch';

/** `Params` of shaders/rope.wgsl. */
export const ROPE_PARAMS: UniformLayout = {
  fields: [
    'tokens', 'q_heads', 'k_heads', 'half_dim', 'q_stride', 'q_offset', 'k_stride', 'k_offset', 'start_pos', 'scaling',
    'q_head_stride', 'k_head_stride', 'interleaved',
  ],
  floats: ['scaling'],
};

export const ROPE_CONSTANTS = { WORKGROUP: 256 };

/** Where the heads live; fixed at load time. */
export interface RopeLayout {
  /** Heads rotated in q (for a fused qkv buffer bound as q: heads + kvHeads). */
  qHeads: number;
  /** Heads rotated in k (0 when k is not bound). */
  kHeads: number;
  headDim: number;
  /** Elements between tokens in q (default qHeads · headDim) and its offset of token 0 (default 0). */
  qStride?: number;
  qOffset?: number;
  kStride?: number;
  kOffset?: number;
  /** transformers' attention_scaling: multiplies cos and sin (default 1). */
  scaling?: number;
  /** Elements between heads in q / k (default headDim: packed heads). */
  qHeadStride?: number;
  kHeadStride?: number;
  /** Pairs (2i, 2i + 1) as DeepSeek's complex form, instead of rotate_half's (i, i + d/2). Default false. */
  interleaved?: boolean;
}

/** Per step. */
export interface RopeShape {
  tokens: number;
  /** Position of the first token. */
  startPos: number;
}

export interface RopeBinding {
  bindGroup: GPUBindGroup;
  uniforms: Uniforms;
  label: string;
  layout: Required<RopeLayout>;
  q: GPUBuffer;
  k: GPUBuffer;
}

export class RopeKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;

  constructor(
    private readonly gpu: Gpu,
    private readonly arena: UniformArena | null = null,
  ) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'rw', 'rw']);
    this.pipeline = gpu.pipeline('rope', 'main', ROPE_CONSTANTS, this.layout.pipelineLayout, this.layout.key);
  }

  /**
   * invFreq: [headDim / 2] f32 from ropeTables() (src/model/rope.ts); q: [T, qStride] f32 and k: [T, kStride] f32, rotated in place.
   * Without k (null), only q's heads are rotated: pass a fused qkv buffer as q with qHeads = heads + kvHeads.
   */
  bind(label: string, invFreq: GPUBuffer, q: GPUBuffer, k: GPUBuffer | null, layout: RopeLayout): RopeBinding {
    requireInt(label, 'headDim', layout.headDim, 2);
    if (layout.headDim % 2) throw new Error(`${label}: headDim must be even, got ${layout.headDim}`);
    requireInt(label, 'qHeads', layout.qHeads, 0);
    requireInt(label, 'kHeads', layout.kHeads, 0);
    if (!k && layout.kHeads > 0) throw new Error(`${label}: kHeads = ${layout.kHeads} but no k buffer`);
    if (k === q) throw new Error(`${label}: q and k are one buffer; bind it as q with qHeads = heads + kvHeads`);
    const full: Required<RopeLayout> = {
      qHeads: layout.qHeads,
      kHeads: layout.kHeads,
      headDim: layout.headDim,
      qStride: layout.qStride ?? layout.qHeads * layout.headDim,
      qOffset: layout.qOffset ?? 0,
      kStride: layout.kStride ?? layout.kHeads * layout.headDim,
      kOffset: layout.kOffset ?? 0,
      scaling: layout.scaling ?? 1,
      qHeadStride: layout.qHeadStride ?? layout.headDim,
      kHeadStride: layout.kHeadStride ?? layout.headDim,
      interleaved: layout.interleaved ?? false,
    };
    requireBytes(label, `inv_freq [${layout.headDim / 2}]`, invFreq, (layout.headDim / 2) * 4);
    const kBuffer = k ?? storageBuffer(this.gpu, `${label}.noK`, 16);
    const uniforms = new Uniforms(this.gpu, `${label}.params`, ROPE_PARAMS, this.arena);
    const group = bindGroup(this.gpu, label, this.layout, [uniforms, invFreq, q, kBuffer]);
    return { uniforms, bindGroup: group, label, layout: full, q, k: kBuffer };
  }

  /** Writes the step's uniform (queue write, no allocation). */
  setShape(b: RopeBinding, s: RopeShape): void {
    const l = b.layout;
    requireInt(b.label, 'tokens', s.tokens, 1);
    requireInt(b.label, 'startPos', s.startPos, 0, 2 ** 24 - s.tokens); // positions are exact in f32 below 2^24
    const span = (stride: number, offset: number, heads: number, headStride: number) =>
      heads ? offset + (s.tokens - 1) * stride + (heads - 1) * headStride + l.headDim : 0;
    requireBytes(b.label, `q [${s.tokens}, ${l.qStride}]`, b.q, span(l.qStride, l.qOffset, l.qHeads, l.qHeadStride) * 4);
    requireBytes(b.label, `k [${s.tokens}, ${l.kStride}]`, b.k, span(l.kStride, l.kOffset, l.kHeads, l.kHeadStride) * 4);
    b.uniforms.set(
      {
        tokens: s.tokens,
        q_heads: l.qHeads,
        k_heads: l.kHeads,
        half_dim: l.headDim / 2,
        q_stride: l.qStride,
        q_offset: l.qOffset,
        k_stride: l.kStride,
        k_offset: l.kOffset,
        start_pos: s.startPos,
        scaling: l.scaling,
        q_head_stride: l.qHeadStride,
        k_head_stride: l.kHeadStride,
        interleaved: l.interleaved ? 1 : 0,
      },
    );
  }

  encode(pass: GPUComputePassEncoder, b: RopeBinding, tokens: number): void {
    const pairs = tokens * (b.layout.qHeads + b.layout.kHeads) * (b.layout.headDim / 2);
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, b.bindGroup);
    pass.dispatchWorkgroups(gridStrideGroups(this.gpu, pairs, ROPE_CONSTANTS.WORKGROUP));
  }
}

/** `AppendParams` of shaders/rope.wgsl (entry point `append`). */
export const ROPE_APPEND_PARAMS: UniformLayout = {
  fields: ['tokens', 'heads', 'kv_heads', 'head_dim', 'qkv_stride', 'start_pos', 'scaling', 'eps', 'qk_norm', 'has_bias'],
  floats: ['scaling', 'eps'],
};

export const ROPE_APPEND_CONSTANTS = { APPEND_WG: 64, MAX_HEAD_DIM: 256 };

/** Fixed at load time. */
export interface RopeAppendLayout {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Positions the caches hold. */
  maxSeq: number;
  /** transformers' attention_scaling (default 1). */
  scaling?: number;
  /** q/k RMSNorm: over each head (Qwen3-MoE) or the whole projection (OLMoE); weights q then k, back to back. */
  qkNorm?: { mode: 'head' | 'all'; weight: GPUBuffer; eps: number } | null;
  /** q, k and v biases back to back, [heads·d + 2·kvHeads·d] (Qwen2-MoE, gpt-oss). */
  bias?: GPUBuffer | null;
}

export interface RopeAppendBinding {
  bindGroup: GPUBindGroup;
  uniforms: Uniforms;
  label: string;
  layout: Required<RopeAppendLayout>;
  /** The uniform fields a step changes, written in place (no allocation per step). */
  step: { tokens: number; start_pos: number };
}

/**
 * From the fused q/k/v projection to attention's inputs in one dispatch (shaders/rope.wgsl, `append`): bias, q/k
 * norm, RoPE of q into q_out and of k into the K cache, v into the V cache, at the step's positions.
 */
export class RopeAppendKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;
  /** Bound where there is no bias or norm weight (never read then). */
  private readonly none: GPUBuffer;

  constructor(
    private readonly gpu: Gpu,
    weightDtype: WeightDtype,
    private readonly arena: UniformArena | null = null,
  ) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'read', 'read', 'rw', 'rw', 'rw']);
    const constants = { ...ROPE_APPEND_CONSTANTS, WEIGHT_DTYPE: WEIGHT_DTYPE_CODE[weightDtype] };
    this.pipeline = gpu.pipeline('rope', 'append', constants, this.layout.pipelineLayout, this.layout.key);
    this.none = storageBuffer(gpu, 'RopeAppendKernel.none', 16);
  }

  /**
   * invFreq: [headDim / 2] f32; qkv: [T, heads·d + 2·kvHeads·d] f32; qOut: [T, heads·d] f32; kCache, vCache:
   * [maxSeq, kvHeads, d] f32 (createKvCache). Norm weights and biases in the kernel's weight dtype.
   */
  bind(
    label: string,
    b: { invFreq: GPUBuffer; qkv: GPUBuffer; qOut: GPUBuffer; kCache: GPUBuffer; vCache: GPUBuffer },
    layout: RopeAppendLayout,
  ): RopeAppendBinding {
    const l: Required<RopeAppendLayout> = { scaling: 1, qkNorm: null, bias: null, ...layout };
    requireInt(label, 'heads', l.heads, 1, this.gpu.limits.maxComputeWorkgroupsPerDimension);
    requireInt(label, 'kvHeads', l.kvHeads, 1, this.gpu.limits.maxComputeWorkgroupsPerDimension - l.heads);
    requireInt(label, 'headDim', l.headDim, 2, ROPE_APPEND_CONSTANTS.MAX_HEAD_DIM);
    if (l.headDim % 2) throw new Error(`${label}: headDim must be even, got ${l.headDim}`);
    requireBytes(label, `inv_freq [${l.headDim / 2}]`, b.invFreq, (l.headDim / 2) * 4);
    const cache = l.maxSeq * l.kvHeads * l.headDim * 4;
    requireBytes(label, 'kCache', b.kCache, cache);
    requireBytes(label, 'vCache', b.vCache, cache);
    const uniforms = new Uniforms(this.gpu, `${label}.params`, ROPE_APPEND_PARAMS, this.arena);
    uniforms.set({
      heads: l.heads,
      kv_heads: l.kvHeads,
      head_dim: l.headDim,
      qkv_stride: (l.heads + 2 * l.kvHeads) * l.headDim,
      scaling: l.scaling,
      eps: l.qkNorm?.eps ?? 0,
      qk_norm: !l.qkNorm ? 0 : l.qkNorm.mode === 'head' ? 1 : 2,
      has_bias: l.bias ? 1 : 0,
    });
    const group = bindGroup(this.gpu, label, this.layout, [
      uniforms, b.invFreq, b.qkv, l.bias ?? this.none, l.qkNorm?.weight ?? this.none, b.qOut, b.kCache, b.vCache,
    ]);
    return { bindGroup: group, uniforms, label, layout: l, step: { tokens: 0, start_pos: 0 } };
  }

  /** Writes the step's fields of the uniform (no allocation). */
  setShape(b: RopeAppendBinding, s: RopeShape): void {
    const l = b.layout;
    requireInt(b.label, 'tokens', s.tokens, 1, this.gpu.limits.maxComputeWorkgroupsPerDimension);
    requireInt(b.label, 'startPos', s.startPos, 0, Math.min(l.maxSeq, 2 ** 24) - s.tokens);
    b.step.tokens = s.tokens;
    b.step.start_pos = s.startPos;
    b.uniforms.set(b.step);
  }

  /** Frees the stand-in buffer (bind groups made from this kernel stop being usable). */
  destroy(): void {
    this.none.destroy();
  }

  encode(pass: GPUComputePassEncoder, b: RopeAppendBinding, tokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, b.bindGroup);
    pass.dispatchWorkgroups(b.layout.heads + b.layout.kvHeads, tokens);
  }
}
