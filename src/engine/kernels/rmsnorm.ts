// RMSNorm kernel (shaders/rmsnorm.wgsl): one workgroup per row.
import type { Gpu } from '../gpu';
import { WEIGHT_DTYPE_CODE, type WeightDtype } from '../../model/dtypes';
import { UniformArena, Uniforms, type UniformLayout, bindGroup, kernelLayout } from './common';

/** `Params` of shaders/rmsnorm.wgsl. */
export const RMSNORM_PARAMS: UniformLayout = { fields: ['rows', 'cols', 'eps', 'x_stride'], floats: ['eps'] };

export const RMSNORM_CONSTANTS = { WORKGROUP: 256 };

export interface RmsNormShape {
  rows: number;
  cols: number;
  eps: number;
  /** Elements between rows of x/out; defaults to cols. */
  stride?: number;
}

/** One RMSNorm bound to its buffers; made at load time, encoded every step. */
export interface RmsNormBinding {
  bindGroup: GPUBindGroup;
  uniforms: Uniforms;
}

export class RmsNormKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;

  constructor(
    private readonly gpu: Gpu,
    readonly weightDtype: WeightDtype,
    private readonly arena: UniformArena | null = null,
  ) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'rw']);
    const constants = { ...RMSNORM_CONSTANTS, WEIGHT_DTYPE: WEIGHT_DTYPE_CODE[weightDtype] };
    this.pipeline = gpu.pipeline('rmsnorm', 'main', constants, this.layout.pipelineLayout, this.layout.key);
  }

  /**
   * x: [rows, stride] f32; weight: [cols] in weightDtype words; out: [rows, stride] f32 (may not alias x).
   */
  bind(label: string, x: GPUBuffer, weight: GPUBuffer, out: GPUBuffer): RmsNormBinding {
    const uniforms = new Uniforms(this.gpu, `${label}.params`, RMSNORM_PARAMS, this.arena);
    return { uniforms, bindGroup: bindGroup(this.gpu, label, this.layout, [uniforms, x, weight, out]) };
  }

  /** Writes the shape uniform (queue write, no allocation). */
  setShape(b: RmsNormBinding, s: RmsNormShape): void {
    b.uniforms.set({ rows: s.rows, cols: s.cols, eps: s.eps, x_stride: s.stride ?? s.cols });
  }

  encode(pass: GPUComputePassEncoder, b: RmsNormBinding, rows: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, b.bindGroup);
    pass.dispatchWorkgroups(rows);
  }
}
