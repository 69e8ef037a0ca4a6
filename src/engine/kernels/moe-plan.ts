// MoE dispatch-plan kernel (shaders/moe_plan.wgsl): ranks, capacity, expert row lists, tiles, statistics.
import type { Gpu } from '../gpu';
import type { RoutingBuffers } from '../routing/buffers';
import { bindGroup, kernelLayout } from './common';

/** Threads of the single plan workgroup; experts must not exceed it. */
export const PLAN_CONSTANTS = { PLAN_WG: 256 };

export class MoePlanKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;

  constructor(private readonly gpu: Gpu) {
    this.layout = kernelLayout(gpu, ['uniform', 'rw', 'read', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw']);
    this.pipeline = gpu.pipeline('moe_plan', 'main', PLAN_CONSTANTS, this.layout.pipelineLayout, this.layout.key);
  }

  bind(label: string, params: GPUBuffer, records: GPUBuffer, probs: GPUBuffer, plan: GPUBuffer, stats: RoutingBuffers): GPUBindGroup {
    return bindGroup(this.gpu, label, this.layout, [
      params, records, probs, plan,
      stats.counts, stats.stepCounts, stats.probMass, stats.gateSum, stats.dropped, stats.rerouted, stats.zLossSum,
    ]);
  }

  encode(pass: GPUComputePassEncoder, group: GPUBindGroup): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(1);
  }
}
