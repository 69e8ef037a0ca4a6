// SwiGLU kernel (shaders/swiglu.wgsl): silu(gate) · up from a fused [T, 2I] gate/up buffer.
import type { Gpu } from '../gpu';
import { UniformArena, Uniforms, type UniformLayout, bindGroup, kernelLayout } from './common';
import { gridStrideGroups, requireBytes, requireInt } from './dispatch';

/** `Params` of shaders/swiglu.wgsl. */
export const SWIGLU_PARAMS: UniformLayout = { fields: ['tokens', 'inter', 'x_stride', 'up_offset'] };

export const SWIGLU_CONSTANTS = { WORKGROUP: 256 };

export interface SwigluShape {
  tokens: number;
  /** I: gate and up width, output row length. */
  inter: number;
  /** Elements between rows of x (default 2I). */
  xStride?: number;
  /** Offset of up within a row of x (default I). */
  upOffset?: number;
}

export interface SwigluBinding {
  bindGroup: GPUBindGroup;
  uniforms: Uniforms;
  label: string;
  x: GPUBuffer;
  out: GPUBuffer;
  inter: number;
}

export class SwigluKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;

  constructor(
    private readonly gpu: Gpu,
    private readonly arena: UniformArena | null = null,
  ) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'rw']);
    this.pipeline = gpu.pipeline('swiglu', 'main', SWIGLU_CONSTANTS, this.layout.pipelineLayout, this.layout.key);
  }

  /** x: [T, xStride] f32 holding gate then up in each row (fused layout [T, 2I] by default); out: [T, I] f32. */
  bind(label: string, x: GPUBuffer, out: GPUBuffer): SwigluBinding {
    const uniforms = new Uniforms(this.gpu, `${label}.params`, SWIGLU_PARAMS, this.arena);
    return { uniforms, bindGroup: bindGroup(this.gpu, label, this.layout, [uniforms, x, out]), label, x, out, inter: 0 };
  }

  /** Writes the shape uniform (queue write, no allocation). */
  setShape(b: SwigluBinding, s: SwigluShape): void {
    const xStride = s.xStride ?? 2 * s.inter;
    const upOffset = s.upOffset ?? s.inter;
    requireInt(b.label, 'tokens', s.tokens, 1);
    requireInt(b.label, 'inter', s.inter, 1);
    if (upOffset + s.inter > xStride && s.tokens > 1) {
      throw new Error(`${b.label}: up [${upOffset}, ${upOffset + s.inter}) runs past the row stride ${xStride}`);
    }
    requireBytes(b.label, `x [${s.tokens}, ${xStride}]`, b.x, ((s.tokens - 1) * xStride + upOffset + s.inter) * 4);
    requireBytes(b.label, `out [${s.tokens}, ${s.inter}]`, b.out, s.tokens * s.inter * 4);
    b.inter = s.inter;
    b.uniforms.set({ tokens: s.tokens, inter: s.inter, x_stride: xStride, up_offset: upOffset });
  }

  encode(pass: GPUComputePassEncoder, b: SwigluBinding, tokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, b.bindGroup);
    pass.dispatchWorkgroups(gridStrideGroups(this.gpu, tokens * b.inter, SWIGLU_CONSTANTS.WORKGROUP));
  }
}
