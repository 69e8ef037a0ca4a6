// MoE router kernel (shaders/moe_router.wgsl): logits, what-if transforms, scoring, group-limited top-k; optionally
// with the layer's input RMSNorm folded in (it then writes the normalised rows the expert kernels read).
import type { Gpu } from '../gpu';
import { WEIGHT_DTYPE_CODE, type WeightDtype } from '../../model/dtypes';
import { type Uniforms, bindGroup, ceilDiv, kernelLayout, storageBuffer } from './common';
import { alignedRows } from './moe-expert';

/** Tokens per workgroup (const RT in the shader). */
export const ROUTER_TOKENS_PER_WORKGROUP = 4;
/**
 * Threads per expert row (override LANES; the workgroup is 8 rows of them): they stride over H in 16-byte units, two
 * per iteration. 32, or 8 on a software adapter (64-thread workgroups: SwiftShader pays per invocation at each of the
 * kernel's barriers: the demo's six routers 6.7 → 2.6 ms a decode step on SwiftShader).
 */
export const ROUTER_LANES = 32;
export const ROUTER_LANES_SOFTWARE = 8;

export function routerLanes(gpu: Gpu): number {
  return gpu.adapter.software ? ROUTER_LANES_SOFTWARE : ROUTER_LANES;
}

export interface MoeRouterBuffers {
  /** LayerParams uniform (src/engine/kernels/moe-layout.ts). */
  params: GPUBuffer | Uniforms;
  /** f32 [tokens, H] (size rounded up to 16 bytes): the normalised input, or with a norm the residual stream */
  x: GPUBuffer;
  /** [E, H] weight-dtype words (size rounded up to 16 bytes) */
  router: GPUBuffer;
  /** [H] weight-dtype words (any buffer when there is no gated shared expert; size rounded up to 16 bytes) */
  sharedGate: GPUBuffer;
  /** f32 [2, E]: router bias, correction bias */
  aux: GPUBuffer;
  /** u32 [layers, E] ablation mask */
  ablated: GPUBuffer;
  records: GPUBuffer;
  probs: GPUBuffer;
  plan: GPUBuffer;
  /** The folded norm (kernel made with `norm`): weight [H] in the router's dtype; normed f32 [tokens, H] output. */
  norm?: { weight: GPUBuffer; normed: GPUBuffer };
}

export class MoeRouterKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;
  /** Bound in place of the norm's weight and output without a norm (never touched then). */
  private readonly noNorm: { weight: GPUBuffer; normed: GPUBuffer } | null;

  /**
   * hidden: H (16-byte loads when H % 4 == 0 for f32, % 8 for f16/bf16); norm: the input RMSNorm folded in (its
   * weight in weightDtype, epsilon in LayerParams.norm_eps).
   */
  constructor(
    private readonly gpu: Gpu,
    weightDtype: WeightDtype,
    hidden: number,
    readonly norm = false,
  ) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'read', 'read', 'read', 'rw', 'rw', 'rw', 'read', 'rw']);
    this.noNorm = norm ? null : { weight: storageBuffer(gpu, 'MoeRouterKernel.noNormWeight', 16), normed: storageBuffer(gpu, 'MoeRouterKernel.noNormed', 16) };
    const constants = { WEIGHT_DTYPE: WEIGHT_DTYPE_CODE[weightDtype], ALIGNED: alignedRows(hidden, weightDtype) ? 1 : 0, NORM: norm ? 1 : 0, LANES: routerLanes(gpu) };
    this.pipeline = gpu.pipeline('moe_router', 'main', constants, this.layout.pipelineLayout, this.layout.key);
  }

  bind(label: string, b: MoeRouterBuffers): GPUBindGroup {
    const norm = b.norm ?? this.noNorm;
    if (!norm || (b.norm !== undefined) !== this.norm) throw new Error(`${label}: the router's norm buffers go with a norm kernel`);
    return bindGroup(this.gpu, label, this.layout, [
      b.params, b.x, b.router, b.sharedGate, b.aux, b.ablated, b.records, b.probs, b.plan, norm.weight, norm.normed,
    ]);
  }

  /** Frees the stand-in norm buffers (bind groups made from this kernel stop being usable). */
  destroy(): void {
    this.noNorm?.weight.destroy();
    this.noNorm?.normed.destroy();
  }

  encode(pass: GPUComputePassEncoder, group: GPUBindGroup, tokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(ceilDiv(tokens, ROUTER_TOKENS_PER_WORKGROUP));
  }
}
