// Routing-statistics rebuild kernels (shaders/moe_stats_rebuild.wgsl): cumulative buffers from the ring.
import type { Gpu } from '../gpu';
import type { RoutingBuffers } from '../routing-buffers';
import { Uniforms, type UniformLayout, bindGroup, kernelLayout } from './common';

/** `Params` of shaders/moe_stats_rebuild.wgsl. */
export const STATS_REBUILD_PARAMS: UniformLayout = { fields: ['positions', 'num_layers', 'experts', '_pad'] };
/** Threads per (expert, layer) workgroup (const WG in the shader); they stride over the ring's positions. */
export const STATS_REBUILD_WG = 64;

export class MoeStatsRebuildKernel {
  private readonly assignLayout;
  private readonly probLayout;
  private readonly assignPipeline: GPUComputePipeline;
  private readonly probPipeline: GPUComputePipeline;

  constructor(private readonly gpu: Gpu) {
    this.assignLayout = kernelLayout(gpu, ['uniform', 'read', 'read', 'read', 'rw', 'rw', 'rw', 'rw', 'rw']);
    this.probLayout = kernelLayout(gpu, ['uniform', 'read', 'read', 'rw', 'rw']);
    this.assignPipeline = gpu.pipeline('moe_stats_rebuild', 'assignments', {}, this.assignLayout.pipelineLayout, this.assignLayout.key);
    this.probPipeline = gpu.pipeline('moe_stats_rebuild', 'probabilities', {}, this.probLayout.pipelineLayout, this.probLayout.key);
  }

  /** Bind groups over `b` (whose ringLse is the [ring, layers, 2] logsumexp-and-flags ring) and a Params uniform. */
  bind(label: string, b: RoutingBuffers): { uniforms: Uniforms; assign: GPUBindGroup; prob: GPUBindGroup } {
    const uniforms = new Uniforms(this.gpu, `${label}.params`, STATS_REBUILD_PARAMS);
    const assign = bindGroup(this.gpu, `${label}.assignments`, this.assignLayout, [
      uniforms.buffer, b.ringChosen, b.ringAssigned, b.ringWeights, b.counts, b.stepCounts, b.gateSum, b.dropped, b.rerouted,
    ]);
    const prob = bindGroup(this.gpu, `${label}.probabilities`, this.probLayout, [uniforms.buffer, b.ringProbs, b.ringLse, b.probMass, b.zLossSum]);
    return { uniforms, assign, prob };
  }

  encode(pass: GPUComputePassEncoder, groups: { assign: GPUBindGroup; prob: GPUBindGroup }, layers: number, experts: number): void {
    pass.setPipeline(this.assignPipeline);
    pass.setBindGroup(0, groups.assign);
    pass.dispatchWorkgroups(experts, layers);
    pass.setPipeline(this.probPipeline);
    pass.setBindGroup(0, groups.prob);
    pass.dispatchWorkgroups(experts, layers);
  }
}
