// MoE combine kernel (shaders/moe_combine.wgsl): deterministic weighted gather of the expert outputs.
import type { Gpu } from '../gpu';
import { type Uniforms, bindGroup, kernelLayout } from './common';

export const COMBINE_CONSTANTS = { COMBINE_WG: 256 };

export interface MoeCombineBuffers {
  params: GPUBuffer | Uniforms;
  records: GPUBuffer;
  /** f32 [rows, H] expert outputs */
  y: GPUBuffer;
  /** f32 [tokens, H] shared-expert output (any buffer without one) */
  sharedY: GPUBuffer;
  /** f32 [tokens, H] */
  out: GPUBuffer;
}

export class MoeCombineKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;

  constructor(private readonly gpu: Gpu) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'read', 'rw']);
    this.pipeline = gpu.pipeline('moe_combine', 'main', COMBINE_CONSTANTS, this.layout.pipelineLayout, this.layout.key);
  }

  bind(label: string, b: MoeCombineBuffers): GPUBindGroup {
    return bindGroup(this.gpu, label, this.layout, [b.params, b.records, b.y, b.sharedY, b.out]);
  }

  encode(pass: GPUComputePassEncoder, group: GPUBindGroup, tokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(tokens);
  }
}
