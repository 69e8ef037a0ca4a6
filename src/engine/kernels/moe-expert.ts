// Grouped expert matmuls of the MoE layer (SwiGLU in two halves) over the dispatch plan's tiles:
//   'up'   shaders/moe_expert_up.wgsl / moe_expert_up_gemv.wgsl:     h = silu(x·Wgᵀ) ⊙ (x·Wuᵀ)   gate_up [E, 2I, H]
//   'down' shaders/moe_expert_down.wgsl / moe_expert_down_gemv.wgsl: y = h·Wdᵀ                  down [E, H, I]
// gpt-oss adds per-expert biases to both halves and uses the clamped activation (ExpertActivation): both are
// per-binding uniforms, so shared experts of the same layer keep plain SwiGLU.
// Two shapes of kernel: 'tiled' (register-blocked tiles of TM rows, for many rows per expert) and 'gemv' (each weight
// row split over WG_K threads as in the dense GEMV, lib/gemv_core; tiles of GEMV_ROWS rows, for decode). The grid is sized for the worst case of a step;
// workgroups past the plan's tile count return at once, so no indirect dispatch and no readback are needed.
import type { Gpu } from '../gpu';
import { FORMAT_CODE, QUANT_BLOCKS, isQuantFormat, type TensorFormat, type WeightDtype } from '../../model/dtypes';
import type { ExpertActivation } from '../../model/config';
import { EXPERT_PARAMS, planUniforms, type PlanLayout } from './moe-layout';
import { Uniforms, bindGroup, ceilDiv, kernelLayout, storageBuffer } from './common';
import { requireBytes } from './dispatch';
import { checkTile, matmulSharedBytes, type MatmulTile } from './matmul';

/** SwiGLU as the gated activation's parameters: no clamp (the largest f32), silu(g) = g·σ(g), no offset on up. */
export const SWIGLU: ExpertActivation = { limit: 3.4028234663852886e38, alpha: 1, upOffset: 0 };

export type ExpertOp = 'up' | 'down';
export type ExpertMode = 'tiled' | 'gemv';

/**
 * Workgroup shape of the tiled kernels (the dense matmul's core, lib/matmul_core, so the same limits as MatmulTile):
 * TILE_M = WG_M · 8 rows; up: TILE_N = WG_N · 4 columns, down: WG_N · 8.
 */
export type TiledShape = MatmulTile;

/** Workgroup memory of a tiled expert kernel: lib/matmul_core's tiles plus up's row tokens and tile record. */
export function tiledSharedBytes(s: TiledShape): number {
  return matmulSharedBytes('matmul', s) + 128 * 4 + 16;
}

/** 16 × 16 threads, 128-row tiles; TILE_K 16 where the device's workgroup memory holds it, else 8. */
export function defaultTiledShape(gpu: Gpu): TiledShape {
  const wide = { WG_M: 16, WG_N: 16, TILE_K: 16 };
  return tiledSharedBytes(wide) <= gpu.limits.maxComputeWorkgroupStorageSize ? wide : { ...wide, TILE_K: 8 };
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
const RM = 8;

/**
 * Thread layout of a gemv expert kernel (overrides of the same names): WG_K threads split each weight row, WG_N
 * thread groups per workgroup, NT output columns per thread ('up': a gate and an up row each).
 */
export interface ExpertGemvTile {
  WG_K: number;
  WG_N: number;
  NT: number;
}

/**
 * The gemv tile for rows of length k. A thread's unit is 64 elements of block-quantised weights, 16 bytes of dense
 * ones with 16-byte loads, one element otherwise; WG_K is the next power of two ≥ the row's units (block-quantised:
 * at most 32, about one unit per thread: Qwen3-30B-A3B's H = 2048 in Q4_K is 32 units) or ≥ half of them (dense: at
 * most 64, about two per thread), 32 for single elements; 64 threads per workgroup (fewer groups where the
 * partial sums would not fit the device's workgroup memory). 'up' threads own 2 columns (4 weight rows), 'down' 4.
 */
export function expertGemvTile(gpu: Gpu, op: ExpertOp, dtype: TensorFormat, k: number): ExpertGemvTile {
  const pow2 = (v: number) => 2 ** Math.ceil(Math.log2(Math.max(1, v)));
  const WG_K = isQuantFormat(dtype)
    ? Math.min(32, pow2(Math.ceil(k / 64)))
    : alignedRows(k, dtype) ? Math.min(64, pow2(k / weightsPerUnit(dtype) / 2)) : 32;
  const NT = op === 'up' ? 2 : 4;
  const weightRows = op === 'up' ? 2 * NT : NT;
  let WG_N = Math.max(1, 64 / WG_K);
  while (WG_N > 1 && GEMV_ROWS * WG_N * weightRows * (WG_K + 1) * 4 > gpu.limits.maxComputeWorkgroupStorageSize) WG_N /= 2;
  return { WG_K, WG_N, NT };
}

/** Weights per 16-byte unit (override UK of the expert kernels): 4 f32 or 8 f16/bf16. */
export function weightsPerUnit(dtype: WeightDtype): number {
  return dtype === 'f32' ? 4 : 8;
}

export interface ExpertMatmulBinding {
  group: GPUBindGroup;
  uniforms: Uniforms;
  pipeline: GPUComputePipeline;
  /** Output columns one workgroup covers. */
  tileCols: number;
}

/** One grouped matmul kernel (op × mode); pipelines made once per alignment and tile (cached by Gpu). */
export class ExpertMatmulKernel {
  private readonly layout;
  readonly shape: TiledShape;
  /** Bound where a binding has no biases (never read then: has_bias = 0). */
  private noBias: GPUBuffer | null = null;

  constructor(
    private readonly gpu: Gpu,
    readonly op: ExpertOp,
    readonly mode: ExpertMode,
    private readonly weightDtype: TensorFormat,
    shape?: TiledShape,
    /** 'gemv': a fixed thread layout instead of expertGemvTile's (benchmark sweeps). */
    private readonly gemvTile?: ExpertGemvTile,
  ) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'read', 'rw', 'read']);
    this.shape = shape ?? defaultTiledShape(gpu);
    if (mode === 'tiled') checkTile(gpu, 'matmul', this.shape, weightDtype, tiledSharedBytes(this.shape));
  }

  /**
   * The pipeline for rows of length k (16-byte loads when they allow it) and the output columns it covers; hasBias
   * compiles the bias reads in (HAS_BIAS in lib/moe_expert_params).
   */
  pipelineFor(k: number, hasBias = false): { pipeline: GPUComputePipeline; tileCols: number } {
    const aligned = alignedRows(k, this.weightDtype);
    const shader = `moe_expert_${this.op}${this.mode === 'gemv' ? '_gemv' : ''}`;
    const constants: Record<string, number> = { WEIGHT_DTYPE: FORMAT_CODE[this.weightDtype], ALIGNED: aligned ? 1 : 0, HAS_BIAS: hasBias ? 1 : 0 };
    let tileCols: number;
    if (this.mode === 'tiled') {
      Object.assign(constants, this.shape);
      tileCols = this.shape.WG_N * (this.op === 'up' ? 4 : 8);
    } else {
      const tile = this.gemvTile ?? expertGemvTile(this.gpu, this.op, this.weightDtype, k);
      Object.assign(constants, tile);
      tileCols = tile.WG_N * tile.NT;
    }
    return { pipeline: this.gpu.pipeline(shader, 'main', constants, this.layout.pipelineLayout, this.layout.key), tileCols };
  }

  /** Rows per plan tile this kernel expects. */
  get tileRows(): number {
    return this.mode === 'gemv' ? GEMV_ROWS : this.shape.WG_M * RM;
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
    return { uniforms, group, ...this.pipelineFor(dims.k, bias !== null) };
  }

  /** Dispatches enough workgroups for `maxTiles` plan tiles of `n` output columns. */
  encode(pass: GPUComputePassEncoder, b: ExpertMatmulBinding, n: number, maxTiles: number): void {
    pass.setPipeline(b.pipeline);
    pass.setBindGroup(0, b.group);
    pass.dispatchWorkgroups(ceilDiv(n, b.tileCols), maxTiles);
  }
}

/** Upper bound on plan tiles for `assignments` rows over `experts` experts cut in tiles of `tileRows`. */
export function maxPlanTiles(assignments: number, experts: number, tileRows: number): number {
  return Math.floor(assignments / tileRows) + Math.min(experts, assignments);
}
