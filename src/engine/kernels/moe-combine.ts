// MoE combine kernel (shaders/moe_combine.wgsl): deterministic weighted gather of the expert outputs, written to its
// own buffer, or (accumulate) added to the residual stream times LayerParams.residual_scale.
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
  /** f32 [tokens, H]: the layer's output, or with accumulate the residual stream it is added to */
  out: GPUBuffer;
}

export class MoeCombineKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;

  constructor(
    private readonly gpu: Gpu,
    readonly accumulate = false,
  ) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'read', 'rw']);
    const constants = { ...COMBINE_CONSTANTS, ACCUMULATE: accumulate ? 1 : 0 };
    this.pipeline = gpu.pipeline('moe_combine', 'main', constants, this.layout.pipelineLayout, this.layout.key);
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
