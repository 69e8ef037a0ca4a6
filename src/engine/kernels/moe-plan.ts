// MoE dispatch-plan kernel (shaders/moe_plan.wgsl): prefix of the membership masks, capacity, offsets, tiles,
// routing statistics. One workgroup.
import type { Gpu } from '../gpu';
import type { RoutingBuffers } from '../routing/buffers';
import { bindGroup, kernelLayout } from './common';

/** Threads of the single plan workgroup: as many as the device allows, up to 1024 (at least 256 = max experts). */
export function planWorkgroupSize(gpu: Gpu): number {
  const l = gpu.limits;
  return Math.max(256, Math.min(1024, l.maxComputeInvocationsPerWorkgroup, l.maxComputeWorkgroupSizeX));
}

export class MoePlanKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;

  constructor(private readonly gpu: Gpu) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw']);
    const constants = { PLAN_WG: planWorkgroupSize(gpu) };
    this.pipeline = gpu.pipeline('moe_plan', 'main', constants, this.layout.pipelineLayout, this.layout.key);
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
