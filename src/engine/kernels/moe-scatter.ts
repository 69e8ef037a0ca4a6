// MoE scatter kernel (shaders/moe_scatter.wgsl): stable scatter into the expert row lists, capacity drops, ring.
import type { Gpu } from '../gpu';
import type { RoutingBuffers } from '../routing-buffers';
import { type Uniforms, bindGroup, ceilDiv, kernelLayout } from './common';
import { K_MAX } from '../routing-buffers';

/** Threads per workgroup: one per (token, slot), so SCATTER_WG / K_MAX tokens each. */
export const SCATTER_CONSTANTS = { SCATTER_WG: 256 };

export class MoeScatterKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;

  constructor(private readonly gpu: Gpu) {
    this.layout = kernelLayout(gpu, ['uniform', 'rw', 'read', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw']);
    this.pipeline = gpu.pipeline('moe_scatter', 'main', SCATTER_CONSTANTS, this.layout.pipelineLayout, this.layout.key);
  }

  bind(label: string, params: GPUBuffer | Uniforms, records: GPUBuffer, probs: GPUBuffer, plan: GPUBuffer, ring: RoutingBuffers): GPUBindGroup {
    return bindGroup(this.gpu, label, this.layout, [
      params, records, probs, plan, ring.ringChosen, ring.ringAssigned, ring.ringWeights, ring.ringProbs, ring.ringLse,
    ]);
  }

  encode(pass: GPUComputePassEncoder, group: GPUBindGroup, tokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(ceilDiv(tokens * K_MAX, SCATTER_CONSTANTS.SCATTER_WG));
  }
}
