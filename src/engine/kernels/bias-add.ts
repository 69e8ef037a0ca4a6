// Row-broadcast bias add kernel (shaders/bias_add.wgsl): x[t, :] += bias, in place.
import type { Gpu } from '../gpu';
import { WEIGHT_DTYPE_CODE, type WeightDtype } from '../../model/dtypes';
import { UniformArena, Uniforms, type UniformLayout, bindGroup, kernelLayout } from './common';
import { gridStrideGroups, requireBytes, requireInt } from './dispatch';

/** `Params` of shaders/bias_add.wgsl. */
export const BIAS_ADD_PARAMS: UniformLayout = { fields: ['rows', 'cols'] };

export const BIAS_ADD_CONSTANTS = { WORKGROUP: 256 };

export interface BiasAddBinding {
  bindGroup: GPUBindGroup;
  uniforms: Uniforms;
  label: string;
  cols: number;
  x: GPUBuffer;
}

export class BiasAddKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;

  constructor(
    private readonly gpu: Gpu,
    readonly weightDtype: WeightDtype,
    private readonly arena: UniformArena | null = null,
  ) {
    this.layout = kernelLayout(gpu, ['uniform', 'rw', 'read']);
    const constants = { ...BIAS_ADD_CONSTANTS, WEIGHT_DTYPE: WEIGHT_DTYPE_CODE[weightDtype] };
    this.pipeline = gpu.pipeline('bias_add', 'main', constants, this.layout.pipelineLayout, this.layout.key);
  }

  /** x: [rows, cols] f32 (updated in place); bias: [cols] in weightDtype words. */
  bind(label: string, x: GPUBuffer, bias: GPUBuffer, cols: number): BiasAddBinding {
    requireInt(label, 'cols', cols, 1);
    const uniforms = new Uniforms(this.gpu, `${label}.params`, BIAS_ADD_PARAMS, this.arena);
    return { uniforms, bindGroup: bindGroup(this.gpu, label, this.layout, [uniforms, x, bias]), label, cols, x };
  }

  /** Writes the row count (queue write, no allocation). */
  setRows(b: BiasAddBinding, rows: number): void {
    requireInt(b.label, 'rows', rows, 1);
    requireBytes(b.label, `x [${rows}, ${b.cols}]`, b.x, rows * b.cols * 4);
    b.uniforms.set({ rows, cols: b.cols });
  }

  encode(pass: GPUComputePassEncoder, b: BiasAddBinding, rows: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, b.bindGroup);
    pass.dispatchWorkgroups(gridStrideGroups(this.gpu, rows * b.cols, BIAS_ADD_CONSTANTS.WORKGROUP));
  }
}
