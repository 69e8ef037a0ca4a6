// Grouped expert matmuls of the MoE layer (SwiGLU in two halves) over the dispatch plan's tiles:
//   'up'   shaders/moe_expert_up.wgsl / moe_expert_up_gemv.wgsl:     h = silu(x·Wgᵀ) ⊙ (x·Wuᵀ)   gate_up [E, 2I, H]
//   'down' shaders/moe_expert_down.wgsl / moe_expert_down_gemv.wgsl: y = h·Wdᵀ                  down [E, H, I]
// gpt-oss adds per-expert biases to both halves and uses the clamped activation (ExpertActivation): both are
// per-binding uniforms, so shared experts of the same layer keep plain SwiGLU.
// Two shapes of kernel: 'tiled' (register-blocked tiles of TM rows, for many rows per expert) and 'gemv' (weight
// rows split over lanes, tiles of GEMV_ROWS rows, for decode). The grid is sized for the worst case of a step;
// workgroups past the plan's tile count return at once, so no indirect dispatch and no readback are needed.
import type { Gpu } from '../gpu';
import { FORMAT_CODE, QUANT_BLOCKS, isQuantFormat, type TensorFormat, type WeightDtype } from '../../model/dtypes';
import type { ExpertActivation } from '../../model/config';
import { EXPERT_PARAMS, planUniforms, type PlanLayout } from './moe-layout';
import { Uniforms, bindGroup, ceilDiv, kernelLayout, storageBuffer } from './common';
import { requireBytes } from './dispatch';

/** SwiGLU as the gated activation's parameters: no clamp (the largest f32), silu(g) = g·σ(g), no offset on up. */
export const SWIGLU: ExpertActivation = { limit: 3.4028234663852886e38, alpha: 1, upOffset: 0 };

export type ExpertOp = 'up' | 'down';
export type ExpertMode = 'tiled' | 'gemv';

/** Workgroup shape of the tiled kernels: TILE_M = WG_M · 8 rows; up: TILE_N = WG_N · 4 columns, down: WG_N · 8. */
export interface TiledShape {
  WG_M: number;
  WG_N: number;
  /** k per shared-memory slice (multiple of 8). */
  TILE_K: number;
}

/** 16 × 16 threads, 128-row tiles; TILE_K 16 where the device has over 32 KiB of workgroup memory, else 8. */
export function defaultTiledShape(gpu: Gpu): TiledShape {
  return { WG_M: 16, WG_N: 16, TILE_K: gpu.limits.maxComputeWorkgroupStorageSize > 32768 ? 16 : 8 };
}

/**
 * Whether rows of length k allow the 16-byte loads (4 f32 or 8 f16/bf16 per load). Block-quantised rows are always
 * read by sub-block (k must be whole blocks, checked in bind).
 */
export function alignedRows(k: number, dtype: TensorFormat): boolean {
  return isQuantFormat(dtype) || k % weightsPerUnit(dtype) === 0;
}
/** Rows per tile of the gemv kernels (const R in their shaders). */
export const GEMV_ROWS = 8;
/** Output columns per workgroup of the gemv kernels (const GROUPS). */
export const GEMV_GROUPS = 8;
/** Threads per output column of the gemv kernels (const LANES): each strides over K in 16-byte units. */
export const GEMV_LANES = 32;
const RM = 8;

/** Weights per 16-byte unit (override UK of the expert kernels): 4 f32 or 8 f16/bf16. */
export function weightsPerUnit(dtype: WeightDtype): number {
  return dtype === 'f32' ? 4 : 8;
}

export interface ExpertMatmulBinding {
  group: GPUBindGroup;
  uniforms: Uniforms;
  pipeline: GPUComputePipeline;
}

/** One grouped matmul kernel (op × mode); pipelines made once per alignment (cached by Gpu). */
export class ExpertMatmulKernel {
  private readonly layout;
  private readonly pipelines = new Map<boolean, GPUComputePipeline>();
  readonly shape: TiledShape;
  /** Bound where a binding has no biases (never read then: has_bias = 0). */
  private noBias: GPUBuffer | null = null;

  constructor(
    private readonly gpu: Gpu,
    readonly op: ExpertOp,
    readonly mode: ExpertMode,
    private readonly weightDtype: TensorFormat,
    shape?: TiledShape,
  ) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'read', 'rw', 'read']);
    this.shape = shape ?? defaultTiledShape(gpu);
  }

  /** The pipeline for rows of length k (16-byte loads when they allow it). */
  pipelineFor(k: number): GPUComputePipeline {
    const aligned = alignedRows(k, this.weightDtype);
    let p = this.pipelines.get(aligned);
    if (!p) {
      const shader = `moe_expert_${this.op}${this.mode === 'gemv' ? '_gemv' : ''}`;
      const constants: Record<string, number> = { WEIGHT_DTYPE: FORMAT_CODE[this.weightDtype], ALIGNED: aligned ? 1 : 0 };
      if (this.mode === 'tiled') Object.assign(constants, this.shape);
      p = this.gpu.pipeline(shader, 'main', constants, this.layout.pipelineLayout, this.layout.key);
      this.pipelines.set(aligned, p);
    }
    return p;
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
   * options.bias: f32 biases of every expert of the layer (global expert index), 'up' [E, 2N] (gate then up),
   * 'down' [E, N]; options.activation ('up' only): the gated activation, SwiGLU when absent.
   */
  bind(
    label: string,
    input: GPUBuffer,
    plan: GPUBuffer,
    layout: PlanLayout,
    weights: GPUBuffer,
    output: GPUBuffer,
    dims: { k: number; n: number; firstExpert: number; numExperts: number },
    options: { bias?: { buffer: GPUBuffer; experts: number } | null; activation?: ExpertActivation } = {},
  ): ExpertMatmulBinding {
    const f = this.weightDtype;
    if (isQuantFormat(f) && dims.k % QUANT_BLOCKS[f].elements !== 0) {
      throw new Error(`${label}: rows of ${dims.k} are not whole ${f} blocks of ${QUANT_BLOCKS[f].elements}`);
    }
    const stride = this.op === 'up' ? 2 * dims.n : dims.n;
    const bias = options.bias ?? null;
    if (bias) requireBytes(label, `bias [${bias.experts}, ${stride}]`, bias.buffer, bias.experts * stride * 4);
    const act = options.activation ?? SWIGLU;
    const uniforms = new Uniforms(this.gpu, `${label}.params`, EXPERT_PARAMS);
    uniforms.set({
      k: dims.k, n: dims.n, first_expert: dims.firstExpert, num_experts: dims.numExperts, ...planUniforms(layout),
      has_bias: bias ? 1 : 0, bias_stride: stride, act_limit: act.limit, act_alpha: act.alpha, act_up_offset: act.upOffset,
    });
    this.noBias ??= storageBuffer(this.gpu, 'ExpertMatmulKernel.noBias', 16);
    const group = bindGroup(this.gpu, label, this.layout, [uniforms.buffer, input, plan, weights, output, bias?.buffer ?? this.noBias]);
    return { uniforms, group, pipeline: this.pipelineFor(dims.k) };
  }

  /** Dispatches enough workgroups for `maxTiles` plan tiles of `n` output columns. */
  encode(pass: GPUComputePassEncoder, b: ExpertMatmulBinding, n: number, maxTiles: number): void {
    pass.setPipeline(b.pipeline);
    pass.setBindGroup(0, b.group);
    pass.dispatchWorkgroups(ceilDiv(n, this.tileCols), maxTiles);
  }
}

/** Upper bound on plan tiles for `assignments` rows over `experts` experts cut in tiles of `tileRows`. */
export function maxPlanTiles(assignments: number, experts: number, tileRows: number): number {
  return Math.floor(assignments / tileRows) + Math.min(experts, assignments);
}
