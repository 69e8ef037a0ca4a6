// Rotary position embedding kernel (shaders/rope.wgsl), in place on q and k, Hugging Face "rotate_half" convention.
import type { Gpu } from '../gpu';
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
