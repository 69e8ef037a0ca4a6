// Grouped expert matmuls of the MoE layer (SwiGLU in two halves) over the dispatch plan's tiles:
//   'up'   shaders/moe_expert_up.wgsl / moe_expert_up_gemv.wgsl:     h = silu(x·Wgᵀ) ⊙ (x·Wuᵀ)   gate_up [E, 2I, H]
//   'down' shaders/moe_expert_down.wgsl / moe_expert_down_gemv.wgsl: y = h·Wdᵀ                  down [E, H, I]
// Two shapes of kernel: 'tiled' (register-blocked tiles of TM rows, for many rows per expert) and 'gemv' (weight
// rows split over lanes, tiles of GEMV_ROWS rows, for decode). The grid is sized for the worst case of a step;
// workgroups past the plan's tile count return at once, so no indirect dispatch and no readback are needed.
import type { Gpu } from '../gpu';
import { WEIGHT_DTYPE_CODE, type WeightDtype } from '../dtypes';
import { EXPERT_MATMUL_FIELDS, planUniforms, type PlanLayout } from '../routing/layout';
import { Uniforms, bindGroup, ceilDiv, kernelLayout } from './common';

export type ExpertOp = 'up' | 'down';
export type ExpertMode = 'tiled' | 'gemv';

/** Workgroup shape of the tiled kernels: TM = WG_M · 8 rows; up: TN = WG_N · 4 columns, down: WG_N · 8. */
export interface TiledShape {
  WG_M: number;
  WG_N: number;
  TK: number;
}
export const DEFAULT_TILED: TiledShape = { WG_M: 16, WG_N: 16, TK: 16 };
/** Rows per tile of the gemv kernels (const R in their shaders). */
export const GEMV_ROWS = 8;
const GEMV_GROUPS = 8;
const RM = 8;

export interface ExpertMatmulBinding {
  group: GPUBindGroup;
  uniforms: Uniforms;
}

/** One grouped matmul kernel (op × mode), pipeline made once. */
export class ExpertMatmulKernel {
  private readonly layout;
  readonly pipeline: GPUComputePipeline;

  constructor(
    private readonly gpu: Gpu,
    readonly op: ExpertOp,
    readonly mode: ExpertMode,
    weightDtype: WeightDtype,
    readonly shape: TiledShape = DEFAULT_TILED,
  ) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'read', 'rw']);
    const shader = `moe_expert_${op}${mode === 'gemv' ? '_gemv' : ''}`;
    const constants: Record<string, number> = { WEIGHT_DTYPE: WEIGHT_DTYPE_CODE[weightDtype] };
    if (mode === 'tiled') Object.assign(constants, shape);
    this.pipeline = gpu.pipeline(shader, 'main', constants, this.layout.pipelineLayout, this.layout.key);
  }

  /** Rows per plan tile this kernel expects. */
  get tileRows(): number {
    return this.mode === 'gemv' ? GEMV_ROWS : this.shape.WG_M * RM;
  }

  /** Output columns one workgroup covers. */
  get tileCols(): number {
    if (this.mode === 'gemv') return GEMV_GROUPS;
    return this.shape.WG_N * (this.op === 'up' ? 4 : 8);
  }

  /**
   * input: f32 [tokens, K] ('up': x, gathered through the plan) or [rows, K] ('down': h); weights: experts
   * [firstExpert, firstExpert + numExperts) of gate_up [E, 2N, K] ('up') or down [E, N, K] ('down');
   * output: f32 [rows, N]. K and N: 'up' K = H, N = I; 'down' K = I, N = H.
   */
  bind(
    label: string,
    input: GPUBuffer,
    plan: GPUBuffer,
    layout: PlanLayout,
    weights: GPUBuffer,
    output: GPUBuffer,
    dims: { k: number; n: number; firstExpert: number; numExperts: number },
  ): ExpertMatmulBinding {
    const uniforms = new Uniforms(this.gpu, `${label}.params`, EXPERT_MATMUL_FIELDS);
    uniforms.set({ k: dims.k, n: dims.n, first_expert: dims.firstExpert, num_experts: dims.numExperts, ...planUniforms(layout) });
    return { uniforms, group: bindGroup(this.gpu, label, this.layout, [uniforms.buffer, input, plan, weights, output]) };
  }

  /** Dispatches enough workgroups for `maxTiles` plan tiles of `n` output columns. */
  encode(pass: GPUComputePassEncoder, b: ExpertMatmulBinding, n: number, maxTiles: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, b.group);
    pass.dispatchWorkgroups(ceilDiv(n, this.tileCols), maxTiles);
  }
}

/** Upper bound on plan tiles for `assignments` rows over `experts` experts cut in tiles of `tileRows`. */
export function maxPlanTiles(assignments: number, experts: number, tileRows: number): number {
  return Math.floor(assignments / tileRows) + Math.min(experts, assignments);
}
