// MoE dispatch-plan kernels: prefix of the membership masks, capacity, offsets, tiles, routing statistics.
// Up to PLAN_SPLIT_TOKENS tokens one workgroup does it all (shaders/moe_plan.wgsl: one dispatch, as decode needs);
// above, moe_plan_partials spreads the per-token work over blocks of PLAN_BLOCK_WORDS mask words and one workgroup
// of moe_plan_finish scans and sums the per-block partials (two dispatches).
import type { Gpu } from '../gpu';
import type { RoutingBuffers } from '../routing-buffers';
import { PLAN_BLOCK_WORDS } from './moe-layout';
import { type Uniforms, bindGroup, ceilDiv, kernelLayout } from './common';

/** Threads of the single plan workgroup: as many as the device allows, up to 1024 (at least 256 = max experts). */
export function planWorkgroupSize(gpu: Gpu): number {
  const l = gpu.limits;
  return Math.max(256, Math.min(1024, l.maxComputeInvocationsPerWorkgroup, l.maxComputeWorkgroupSizeX));
}

/** Up to this many tokens the plan is one dispatch of one 256-thread workgroup; above, the two-pass plan. */
export const PLAN_SPLIT_TOKENS = 256;

export class MoePlanKernel {
  private readonly layout;
  private readonly single: GPUComputePipeline;
  private readonly partials: GPUComputePipeline;
  private readonly finish: GPUComputePipeline;

  /** stats = false: the single-workgroup plan skips its probMass/gateSum/zLossSum sums (MoeLayerOptions.record). */
  constructor(private readonly gpu: Gpu, stats = true) {
    // One layout (and bind group) for the three pipelines; moe_plan_partials uses bindings 0–3 only.
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw']);
    const make = (shader: string, constants: Record<string, number>) =>
      gpu.pipeline(shader, 'main', constants, this.layout.pipelineLayout, this.layout.key);
    this.single = make('moe_plan', { PLAN_WG: 256, ...(stats ? {} : { STATS: 0 }) });
    this.partials = make('moe_plan_partials', { BLOCK_WORDS: PLAN_BLOCK_WORDS });
    this.finish = make('moe_plan_finish', { PLAN_WG: planWorkgroupSize(gpu), BLOCK_WORDS: PLAN_BLOCK_WORDS });
  }

  bind(label: string, params: GPUBuffer | Uniforms, records: GPUBuffer, probs: GPUBuffer, plan: GPUBuffer, stats: RoutingBuffers): GPUBindGroup {
    return bindGroup(this.gpu, label, this.layout, [
      params, records, probs, plan,
      stats.counts, stats.stepCounts, stats.probMass, stats.gateSum, stats.dropped, stats.rerouted, stats.zLossSum,
    ]);
  }

  /** Dispatches the plan for `tokens` tokens: 1 dispatch up to PLAN_SPLIT_TOKENS, else 2. */
  encode(pass: GPUComputePassEncoder, group: GPUBindGroup, tokens: number): void {
    pass.setBindGroup(0, group);
    if (tokens <= PLAN_SPLIT_TOKENS) {
      pass.setPipeline(this.single);
      pass.dispatchWorkgroups(1);
      return;
    }
    pass.setPipeline(this.partials);
    pass.dispatchWorkgroups(ceilDiv(ceilDiv(tokens, 32), PLAN_BLOCK_WORDS));
    pass.setPipeline(this.finish);
    pass.dispatchWorkgroups(1);
  }
}
