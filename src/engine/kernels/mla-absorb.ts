// MLA per-head products with kv_b_proj (shaders/mla_absorb.wgsl): absorb_q (q_nope → latent space) and expand_v
// (attention's latent context → per-head values).
import type { Gpu } from '../gpu';
import { WEIGHT_DTYPE_CODE, type WeightDtype } from '../../model/dtypes';
import { Uniforms, type UniformLayout, bindGroup, kernelLayout } from './common';
import { gridStrideGroups, requireBytes, requireInt } from './dispatch';

/** `Params` of shaders/mla_absorb.wgsl. */
export const MLA_ABSORB_PARAMS: UniformLayout = { fields: ['tokens', 'heads', 'rank', 'nope', 'v_dim', 'q_stride', 'q_head_stride'] };

export const MLA_ABSORB_CONSTANTS = { WORKGROUP: 256 };

/** Shapes of one MLA layer, fixed at load time. */
export interface MlaAbsorbLayout {
  heads: number;
  /** kv_lora_rank. */
  rank: number;
  /** qk_nope_head_dim, qk_rope_head_dim, v_head_dim. */
  nope: number;
  rope: number;
  vDim: number;
}

export interface MlaAbsorbBuffers {
  q: GPUBuffer;
  kvB: GPUBuffer;
  qLat: GPUBuffer;
  ctx: GPUBuffer;
  out: GPUBuffer;
}

export interface MlaAbsorbBinding {
  absorb: GPUBindGroup;
  expand: GPUBindGroup;
  uniforms: Uniforms;
  label: string;
  layout: MlaAbsorbLayout;
  buffers: MlaAbsorbBuffers;
}

export class MlaAbsorbKernel {
  private readonly layout;
  readonly absorbPipeline: GPUComputePipeline;
  readonly expandPipeline: GPUComputePipeline;

  constructor(
    private readonly gpu: Gpu,
    readonly weightDtype: WeightDtype,
  ) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'rw']);
    const constants = { ...MLA_ABSORB_CONSTANTS, WEIGHT_DTYPE: WEIGHT_DTYPE_CODE[weightDtype] };
    this.absorbPipeline = gpu.pipeline('mla_absorb', 'absorb_q', constants, this.layout.pipelineLayout, this.layout.key);
    this.expandPipeline = gpu.pipeline('mla_absorb', 'expand_v', constants, this.layout.pipelineLayout, this.layout.key);
  }

  /**
   * q: [T, heads·(nope + rope)] f32 (each head's nope part first); kvB: kv_b_proj [heads·(nope + vDim), rank] in
   * weightDtype words; qLat: [T, heads, rank] f32 out; ctx: [T, heads, rank] f32 (attention's output);
   * out: [T, heads·vDim] f32.
   */
  bind(
    label: string,
    b: MlaAbsorbBuffers,
    layout: MlaAbsorbLayout,
  ): MlaAbsorbBinding {
    for (const k of ['heads', 'rank', 'nope', 'rope', 'vDim'] as const) requireInt(label, k, layout[k], 1);
    const elementBytes = this.weightDtype === 'f32' ? 4 : 2;
    requireBytes(label, `kv_b_proj [${layout.heads * (layout.nope + layout.vDim)}, ${layout.rank}]`, b.kvB,
      layout.heads * (layout.nope + layout.vDim) * layout.rank * elementBytes);
    const uniforms = new Uniforms(this.gpu, `${label}.params`, MLA_ABSORB_PARAMS);
    return {
      absorb: bindGroup(this.gpu, `${label}.absorbQ`, this.layout, [uniforms.buffer, b.q, b.kvB, b.qLat]),
      expand: bindGroup(this.gpu, `${label}.expandV`, this.layout, [uniforms.buffer, b.ctx, b.kvB, b.out]),
      uniforms,
      label,
      layout,
      buffers: b,
    };
  }

  /** Writes the step's uniform (queue write, no allocation). Throws if a buffer is too small for `tokens` rows. */
  setTokens(m: MlaAbsorbBinding, tokens: number): void {
    const l = m.layout;
    requireInt(m.label, 'tokens', tokens, 1);
    const rows = (what: string, buffer: GPUBuffer, width: number) => requireBytes(m.label, `${what} [${tokens}, ${width}]`, buffer, tokens * width * 4);
    rows('q', m.buffers.q, l.heads * (l.nope + l.rope));
    rows('qLat', m.buffers.qLat, l.heads * l.rank);
    rows('ctx', m.buffers.ctx, l.heads * l.rank);
    rows('out', m.buffers.out, l.heads * l.vDim);
    m.uniforms.set({
      tokens, heads: l.heads, rank: l.rank, nope: l.nope, v_dim: l.vDim,
      q_stride: l.heads * (l.nope + l.rope), q_head_stride: l.nope + l.rope,
    });
  }

  encodeAbsorb(pass: GPUComputePassEncoder, m: MlaAbsorbBinding, tokens: number): void {
    pass.setPipeline(this.absorbPipeline);
    pass.setBindGroup(0, m.absorb);
    pass.dispatchWorkgroups(gridStrideGroups(this.gpu, tokens * m.layout.heads * m.layout.rank, MLA_ABSORB_CONSTANTS.WORKGROUP));
  }

  encodeExpand(pass: GPUComputePassEncoder, m: MlaAbsorbBinding, tokens: number): void {
    pass.setPipeline(this.expandPipeline);
    pass.setBindGroup(0, m.expand);
    pass.dispatchWorkgroups(gridStrideGroups(this.gpu, tokens * m.layout.heads * m.layout.vDim, MLA_ABSORB_CONSTANTS.WORKGROUP));
  }
}
