// MoE router kernel (shaders/moe_router.wgsl): logits, what-if transforms, scoring, group-limited top-k.
import type { Gpu } from '../gpu';
import { WEIGHT_DTYPE_CODE, type WeightDtype } from '../dtypes';
import { bindGroup, ceilDiv, kernelLayout } from './common';

/** Tokens per workgroup (const RT in the shader). */
export const ROUTER_TOKENS_PER_WORKGROUP = 4;

export interface MoeRouterBuffers {
  /** LayerParams uniform (src/engine/routing/layout.ts). */
  params: GPUBuffer;
  /** f32 [tokens, H] */
  x: GPUBuffer;
  /** [E, H] weight-dtype words */
  router: GPUBuffer;
  /** [H] weight-dtype words (any buffer when there is no gated shared expert) */
  sharedGate: GPUBuffer;
  /** f32 [2, E]: router bias, correction bias */
  aux: GPUBuffer;
  /** u32 [layers, E] ablation mask */
  ablated: GPUBuffer;
  records: GPUBuffer;
  probs: GPUBuffer;
  plan: GPUBuffer;
}

export class MoeRouterKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;

  constructor(
    private readonly gpu: Gpu,
    weightDtype: WeightDtype,
  ) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'read', 'read', 'read', 'rw', 'rw', 'rw']);
    this.pipeline = gpu.pipeline('moe_router', 'main', { WEIGHT_DTYPE: WEIGHT_DTYPE_CODE[weightDtype] }, this.layout.pipelineLayout, this.layout.key);
  }

  bind(label: string, b: MoeRouterBuffers): GPUBindGroup {
    return bindGroup(this.gpu, label, this.layout, [b.params, b.x, b.router, b.sharedGate, b.aux, b.ablated, b.records, b.probs, b.plan]);
  }

  encode(pass: GPUComputePassEncoder, group: GPUBindGroup, tokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(ceilDiv(tokens, ROUTER_TOKENS_PER_WORKGROUP));
  }
}
