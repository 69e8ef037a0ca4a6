// MoE router (logits, what-if transforms, scoring, group-limited top-k; optionally with the layer's input RMSNorm
// folded in, writing the normalised rows the expert kernels read), in two variants picked by the step's token count:
//   T ≤ ROUTER_FEW_TOKENS (decode): shaders/moe_router_logits.wgsl (the logits spread over ⌈(E + gate) / EPW⌉ × T
//     workgroups) then shaders/moe_router_select.wgsl (one workgroup per token, one thread per expert): 2 dispatches;
//     at T = 1 without re-routing its main_plan entry also does moe_plan's work (the caller then skips moe_plan)
//     where the device allows the 12 storage buffers that takes;
//   longer steps: shaders/moe_router.wgsl, one workgroup per RT tokens that computes the logits and selects with one
//     thread per token (weights read once per RT tokens): 1 dispatch.
import type { Gpu } from '../gpu';
import { WEIGHT_DTYPE_CODE, type WeightDtype } from '../../model/dtypes';
import { type Uniforms, bindGroup, ceilDiv, kernelLayout, storageBuffer } from './common';
import { alignedRows } from './moe-expert';
import type { RoutingBuffers } from '../routing-buffers';

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

/**
 * Up to this many tokens the two small-T kernels run. One workgroup of moe_router serves RT tokens with a serial
 * selection per token (a chain of ~E·(k + 3) dependent steps, most of its 81 µs at granite's E = 32, k = 8 on the
 * H200), so with few tokens nearly the whole GPU waits on it; the small-T logits read the router weights once per
 * token instead of once per RT tokens, which long steps would feel. The bound is a choice, not a measured crossover.
 */
export const ROUTER_FEW_TOKENS = 32;

/** moe_router_logits: router rows per workgroup (EPW) and threads per row (LANES), on a GPU and on a software adapter. */
export const LOGITS_SHAPE = { EPW: 2, LANES: 128 };
export const LOGITS_SHAPE_SOFTWARE = { EPW: 4, LANES: 16 };
/** moe_router_select's threads per token (one per expert up to this many). */
export const SELECT_WG = 256;
export const SELECT_WG_SOFTWARE = 64;

/** Storage buffers moe_router_select's main_plan binds (selection and plan with its statistics). */
export const SELECT_PLAN_STORAGE_BUFFERS = 12;

/** The bind groups of both variants, over the same buffers. */
export interface MoeRouterBinding {
  wide: GPUBindGroup;
  logits: GPUBindGroup;
  select: GPUBindGroup;
  /** main_plan's (null where the device cannot bind that many storage buffers). */
  selectPlan: GPUBindGroup | null;
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
  /** The routing statistics (main_plan adds to them as moe_plan does). */
  stats: RoutingBuffers;
  /** The folded norm (kernel made with `norm`): weight [H] in the router's dtype; normed f32 [tokens, H] output. */
  norm?: { weight: GPUBuffer; normed: GPUBuffer };
}

export class MoeRouterKernel {
  private readonly layout;
  private readonly logitsLayout;
  private readonly selectLayout;
  readonly pipeline: GPUComputePipeline;
  readonly logitsPipeline: GPUComputePipeline;
  readonly selectPipeline: GPUComputePipeline;
  private readonly selectPlan: { layout: ReturnType<typeof kernelLayout>; pipeline: GPUComputePipeline } | null;
  private readonly logitsShape: { EPW: number; LANES: number };
  /** Bound in place of the norm's weight and output without a norm (never touched then). */
  private readonly noNorm: { weight: GPUBuffer; normed: GPUBuffer } | null;

  /**
   * hidden: H (16-byte loads when H % 4 == 0 for f32, % 8 for f16/bf16); norm: the input RMSNorm folded in (its
   * weight in weightDtype, epsilon in LayerParams.norm_eps); stats: the plan work main_plan takes over sums the
   * probability, gate and z-loss statistics (false as MoePlanKernel's).
   */
  constructor(
    private readonly gpu: Gpu,
    weightDtype: WeightDtype,
    hidden: number,
    readonly norm = false,
    stats = true,
  ) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'read', 'read', 'read', 'rw', 'rw', 'rw', 'read', 'rw']);
    this.noNorm = norm ? null : { weight: storageBuffer(gpu, 'MoeRouterKernel.noNormWeight', 16), normed: storageBuffer(gpu, 'MoeRouterKernel.noNormed', 16) };
    const constants = { WEIGHT_DTYPE: WEIGHT_DTYPE_CODE[weightDtype], ALIGNED: alignedRows(hidden, weightDtype) ? 1 : 0, NORM: norm ? 1 : 0, LANES: routerLanes(gpu) };
    this.pipeline = gpu.pipeline('moe_router', 'main', constants, this.layout.pipelineLayout, this.layout.key);
    const software = gpu.adapter.software;
    this.logitsShape = software ? LOGITS_SHAPE_SOFTWARE : LOGITS_SHAPE;
    this.logitsLayout = kernelLayout(gpu, ['uniform', 'read', 'read', 'read', 'rw', 'rw', 'read', 'rw']);
    this.logitsPipeline = gpu.pipeline('moe_router_logits', 'main', { WEIGHT_DTYPE: constants.WEIGHT_DTYPE, ALIGNED: constants.ALIGNED, NORM: constants.NORM, ...this.logitsShape },
      this.logitsLayout.pipelineLayout, this.logitsLayout.key);
    this.selectLayout = kernelLayout(gpu, ['uniform', 'read', 'read', 'rw', 'rw', 'rw']);
    this.selectPipeline = gpu.pipeline('moe_router_select', 'main', { SEL_WG: software ? SELECT_WG_SOFTWARE : SELECT_WG },
      this.selectLayout.pipelineLayout, this.selectLayout.key);
    this.selectPlan = null;
    if (gpu.limits.maxStorageBuffersPerShaderStage >= SELECT_PLAN_STORAGE_BUFFERS) {
      const layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw', 'rw']);
      // one thread per expert for the plan part: 256 threads on any adapter
      const constants = { SEL_WG: SELECT_WG, ...(stats ? {} : { STATS: 0 }) };
      this.selectPlan = { layout, pipeline: gpu.pipeline('moe_router_select', 'main_plan', constants, layout.pipelineLayout, layout.key) };
    }
  }

  /** Whether encode() does the plan's work too for a step of `tokens` tokens (the caller then skips MoePlanKernel). */
  plansFor(tokens: number, rerouting: boolean): boolean {
    return tokens === 1 && !rerouting && this.selectPlan !== null;
  }

  bind(label: string, b: MoeRouterBuffers): MoeRouterBinding {
    const norm = b.norm ?? this.noNorm;
    if (!norm || (b.norm !== undefined) !== this.norm) throw new Error(`${label}: the router's norm buffers go with a norm kernel`);
    return {
      wide: bindGroup(this.gpu, label, this.layout, [
        b.params, b.x, b.router, b.sharedGate, b.aux, b.ablated, b.records, b.probs, b.plan, norm.weight, norm.normed,
      ]),
      logits: bindGroup(this.gpu, `${label}Logits`, this.logitsLayout, [
        b.params, b.x, b.router, b.sharedGate, b.records, b.probs, norm.weight, norm.normed,
      ]),
      select: bindGroup(this.gpu, `${label}Select`, this.selectLayout, [b.params, b.aux, b.ablated, b.records, b.probs, b.plan]),
      selectPlan: this.selectPlan && bindGroup(this.gpu, `${label}SelectPlan`, this.selectPlan.layout, [
        b.params, b.aux, b.ablated, b.records, b.probs, b.plan,
        b.stats.counts, b.stats.stepCounts, b.stats.probMass, b.stats.gateSum, b.stats.dropped, b.stats.rerouted, b.stats.zLossSum,
      ]),
    };
  }

  /** Frees the stand-in norm buffers (bind groups made from this kernel stop being usable). */
  destroy(): void {
    this.noNorm?.weight.destroy();
    this.noNorm?.normed.destroy();
  }

  /** Dispatches encode() records for `tokens` tokens. */
  static dispatchCount(tokens: number): number {
    return tokens <= ROUTER_FEW_TOKENS ? 2 : 1;
  }

  /**
   * experts: E (the logits grid covers E router rows, and the shared-expert gate row when `gatedShared`); withPlan:
   * plansFor(tokens, …) (main_plan instead of main).
   */
  encode(pass: GPUComputePassEncoder, binding: MoeRouterBinding, tokens: number, experts: number, gatedShared: boolean, withPlan: boolean): void {
    if (tokens > ROUTER_FEW_TOKENS) {
      pass.setPipeline(this.pipeline);
      pass.setBindGroup(0, binding.wide);
      pass.dispatchWorkgroups(ceilDiv(tokens, ROUTER_TOKENS_PER_WORKGROUP));
      return;
    }
    pass.setPipeline(this.logitsPipeline);
    pass.setBindGroup(0, binding.logits);
    pass.dispatchWorkgroups(ceilDiv(experts + (gatedShared ? 1 : 0), this.logitsShape.EPW), tokens);
    if (withPlan) {
      if (!this.selectPlan || !binding.selectPlan || tokens !== 1) throw new Error('MoeRouterKernel: the plan is folded in only at T = 1 (plansFor)');
      pass.setPipeline(this.selectPlan.pipeline);
      pass.setBindGroup(0, binding.selectPlan);
    } else {
      pass.setPipeline(this.selectPipeline);
      pass.setBindGroup(0, binding.select);
    }
    pass.dispatchWorkgroups(tokens);
  }
}
