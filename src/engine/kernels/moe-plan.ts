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

/** Up to this many tokens the plan runs on 256 threads (cheaper barriers); above, on planWorkgroupSize(). */
export const PLAN_NARROW_TOKENS = 1024;

export class MoePlanKernel {
  private readonly layout;
  private readonly narrow: GPUComputePipeline;
  private readonly wide: GPUComputePipeline;

  constructor(private readonly gpu: Gpu) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw']);
    const make = (threads: number) => gpu.pipeline('moe_plan', 'main', { PLAN_WG: threads }, this.layout.pipelineLayout, this.layout.key);
    this.narrow = make(256);
    this.wide = make(planWorkgroupSize(gpu));
  }

  bind(label: string, params: GPUBuffer, records: GPUBuffer, probs: GPUBuffer, plan: GPUBuffer, stats: RoutingBuffers): GPUBindGroup {
    return bindGroup(this.gpu, label, this.layout, [
      params, records, probs, plan,
      stats.counts, stats.stepCounts, stats.probMass, stats.gateSum, stats.dropped, stats.rerouted, stats.zLossSum,
    ]);
  }

  encode(pass: GPUComputePassEncoder, group: GPUBindGroup, tokens: number): void {
    pass.setPipeline(tokens <= PLAN_NARROW_TOKENS ? this.narrow : this.wide);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(1);
  }
}
