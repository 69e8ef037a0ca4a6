// Capacity re-routing kernel (shaders/moe_reroute.wgsl): one workgroup; a thread per expert, then per token.
import type { Gpu } from '../gpu';
import { type Uniforms, bindGroup, kernelLayout } from './common';

/** Threads of the one workgroup (const WG in the shader): a thread per expert, then tokens strided by WG. */
export const REROUTE_WG = 256;

export class MoeRerouteKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;

  constructor(private readonly gpu: Gpu) {
    this.layout = kernelLayout(gpu, ['uniform', 'rw', 'read', 'rw']);
    this.pipeline = gpu.pipeline('moe_reroute', 'main', {}, this.layout.pipelineLayout, this.layout.key);
  }

  /** params: LayerParams uniform; records, probs, plan: the layer's scratch buffers. */
  bind(label: string, params: GPUBuffer | Uniforms, records: GPUBuffer, probs: GPUBuffer, plan: GPUBuffer): GPUBindGroup {
    return bindGroup(this.gpu, label, this.layout, [params, records, probs, plan]);
  }

  encode(pass: GPUComputePassEncoder, group: GPUBindGroup): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(1);
  }
}
