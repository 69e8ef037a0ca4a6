// Grouped expert matmuls of the MoE layer (SwiGLU in two halves) over the dispatch plan's tiles:
//   'up'   shaders/moe_expert_up.wgsl / moe_expert_up_gemv.wgsl:     h = silu(x·Wgᵀ) ⊙ (x·Wuᵀ)   gate_up [E, 2I, H]
//   'down' shaders/moe_expert_down.wgsl / moe_expert_down_gemv.wgsl: y = h·Wdᵀ                  down [E, H, I]
// gpt-oss adds per-expert biases to both halves and uses the clamped activation (ExpertActivation): both are
// per-binding uniforms, so shared experts of the same layer keep plain SwiGLU.
// Two shapes of kernel: 'tiled' (register-blocked tiles of TM rows, for many rows per expert) and 'gemv' (each weight
// row split over WG_K threads as in the dense GEMV, lib/gemv_core; tiles of 1, 2, 4 or 8 rows by the step's tokens,
// each compiled with its own thread layout, for decode). The grid is sized for the worst case of a step;
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
/** Most rows per tile of the gemv kernels (R_MAX in their shaders; their plans are sized for tiles of this). */
export const GEMV_ROWS = 8;
/** Rows per tile the gemv kernels are compiled for (override R). */
export const GEMV_ROW_BUCKETS = [1, 2, 4, 8] as const;
const RM = 8;

/**
 * Rows per gemv tile for a step of `tokens` tokens: the smallest bucket ≥ tokens, GEMV_ROWS past that. An expert has at
 * most one row per token, so below GEMV_ROWS every expert fits one tile (a decode step: R = 1) and the plan never
 * holds more tiles than experts, which a plan sized for GEMV_ROWS-row tiles has room for.
 */
export function gemvTileRows(tokens: number): number {
  return GEMV_ROW_BUCKETS.find((r) => r >= tokens) ?? GEMV_ROWS;
}

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
 * How a layout is derived from a row: each thread takes at least `passes` of the row's units (WG_K = ⌈units / passes⌉,
 * at most `threads`), workgroups of about `threads` threads (WG_N = ⌊threads / WG_K⌋ groups), NT output columns per
 * thread ('up': 2·NT weight rows, ≤ 4; 'down': NT rows, ≤ 8). Every thread's units of all its rows are loaded before
 * any arithmetic, so NT sets the 16-byte loads a thread has in flight; passes and threads set how long a row's
 * reduction is and how many threads stream each row.
 */
export interface ExpertGemvRule {
  passes: number;
  threads: number;
  NT: number;
}

/**
 * Default rules (src/cli/bench-quant.ts --sweep measures the alternatives). 1–2 rows of 16-bit or f32 weights: 256
 * threads, each row split over four passes (about four units a thread, several weight rows per workgroup), two weight
 * rows per thread ('up' NT 1 = its gate and up row); on the H200 sweep of 2026-11-30
 * (bench/results/model-h200/2026-11-30b) this read Mixtral's bf16 experts at 96 % of copy bandwidth against 90 % with
 * two passes, Qwen3-30B-A3B's at 68 % against 64 %. More rows: each x value a thread loads serves more weight rows (NT 2 / 4), workgroups of 128 (4 rows)
 * or 64 threads (8 rows, the layout of the single-bucket kernels before). Block-quantised units (64 elements, 34–48
 * bytes and a decode each) are fewer per row: 128 threads at 1–2 rows.
 */
export function defaultExpertGemvRule(op: ExpertOp, dtype: TensorFormat, rows: number): ExpertGemvRule {
  const quant = isQuantFormat(dtype);
  if (rows <= 2) return quant ? { passes: 2, threads: 128, NT: op === 'up' ? 2 : 4 } : { passes: 4, threads: 256, NT: op === 'up' ? 1 : 2 };
  return { passes: 2, threads: rows <= 4 ? 128 : 64, NT: op === 'up' ? 2 : 4 };
}

/** Units a thread strides over in a row of k: 64 elements of block-quantised weights, 16 bytes aligned, else 1 element. */
export function gemvRowUnits(k: number, dtype: TensorFormat): number {
  if (isQuantFormat(dtype)) return Math.ceil(k / 64);
  return alignedRows(k, dtype) ? k / weightsPerUnit(dtype) : k;
}

/**
 * The gemv tile of `rule` for rows of length k and tiles of `rows` rows, shrunk (WG_N, then WG_K) until the partial
 * sums [rows][WG_N][weight rows][WG_K + 1] fit the device's workgroup memory and the workgroup its invocation limit.
 */
export function expertGemvTile(gpu: Gpu, op: ExpertOp, dtype: TensorFormat, k: number, rows: number,
  rule: ExpertGemvRule = defaultExpertGemvRule(op, dtype, rows)): ExpertGemvTile {
  const maxNT = op === 'up' ? 4 : 8;
  if (!(rule.NT >= 1 && rule.NT <= maxNT && rows * (op === 'up' ? 2 : 1) * rule.NT <= 64)) {
    throw new RangeError(`expert gemv '${op}': NT ${rule.NT} with ${rows} rows (NT ≤ ${maxNT}, rows · weight rows ≤ 64)`);
  }
  const weightRows = op === 'up' ? 2 * rule.NT : rule.NT;
  const limits = gpu.limits;
  const threads = Math.min(rule.threads, limits.maxComputeInvocationsPerWorkgroup);
  let WG_K = Math.max(1, Math.min(threads, Math.ceil(gemvRowUnits(k, dtype) / Math.max(1, rule.passes))));
  let WG_N = Math.max(1, Math.floor(threads / WG_K));
  const bytes = () => rows * WG_N * weightRows * (WG_K + 1) * 4;
  while (bytes() > limits.maxComputeWorkgroupStorageSize) {
    if (WG_N > 1) WG_N = Math.floor(WG_N / 2);
    else WG_K = Math.ceil(WG_K / 2);
  }
  return { WG_K, WG_N, NT: rule.NT };
}

/** Weights per 16-byte unit (override UK of the expert kernels): 4 f32 or 8 f16/bf16. */
export function weightsPerUnit(dtype: WeightDtype): number {
  return dtype === 'f32' ? 4 : 8;
}

export interface ExpertPipeline {
  pipeline: GPUComputePipeline;
  /** Output columns one workgroup covers. */
  tileCols: number;
}

export interface ExpertMatmulBinding {
  group: GPUBindGroup;
  uniforms: Uniforms;
  /** By rows per plan tile (gemv: the buckets up to the binding's most tokens; tiled: TILE_M). */
  pipelines: Map<number, ExpertPipeline>;
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
    /** 'gemv': one layout rule for every row bucket instead of defaultExpertGemvRule's (benchmark sweeps). */
    private readonly gemvRule?: ExpertGemvRule,
  ) {
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'read', 'rw', 'read']);
    this.shape = shape ?? defaultTiledShape(gpu);
    if (mode === 'tiled') checkTile(gpu, 'matmul', this.shape, weightDtype, tiledSharedBytes(this.shape));
  }

  /**
   * The pipeline for weight rows of length k (16-byte loads when they allow it) and plan tiles of `tileRows` rows
   * (gemv: one of GEMV_ROW_BUCKETS), and the output columns it covers; hasBias compiles the bias reads in (HAS_BIAS in
   * lib/moe_expert_params).
   */
  pipelineFor(k: number, hasBias: boolean, tileRows: number): ExpertPipeline {
    const aligned = alignedRows(k, this.weightDtype);
    const shader = `moe_expert_${this.op}${this.mode === 'gemv' ? '_gemv' : ''}`;
    const constants: Record<string, number> = { WEIGHT_DTYPE: FORMAT_CODE[this.weightDtype], ALIGNED: aligned ? 1 : 0, HAS_BIAS: hasBias ? 1 : 0 };
    let tileCols: number;
    if (this.mode === 'tiled') {
      Object.assign(constants, this.shape);
      tileCols = this.shape.WG_N * (this.op === 'up' ? 4 : 8);
    } else {
      const tile = expertGemvTile(this.gpu, this.op, this.weightDtype, k, tileRows, this.gemvRule);
      Object.assign(constants, tile, { R: tileRows });
      tileCols = tile.WG_N * tile.NT;
    }
    return { pipeline: this.gpu.pipeline(shader, 'main', constants, this.layout.pipelineLayout, this.layout.key), tileCols };
  }

  /** Rows per plan tile this kernel runs a step of `tokens` tokens with (the plan's tile_m). */
  tileRowsFor(tokens: number): number {
    return this.mode === 'gemv' ? gemvTileRows(tokens) : this.shape.WG_M * RM;
  }

  /**
   * input: f32 [tokens, K] ('up': x, gathered through the plan) or [rows, K] ('down': h); weights: experts
   * [firstExpert, firstExpert + numExperts) of gate_up [E, 2N, K] ('up') or down [E, N, K] ('down');
   * output: f32 [rows, N]. K and N: 'up' K = H, N = I; 'down' K = I, N = H.
   * options.bias: f32 biases of every expert of the layer (global expert index), 'up' [E, 2N] (gate then up),
   * 'down' [E, N]; options.activation ('up' only): the gated activation, SwiGLU when absent; options.maxTokens: the
   * most tokens a step will encode (gemv: pipelines for the row buckets up to gemvTileRows of it; default all).
   */
  bind(
    label: string,
    input: GPUBuffer,
    plan: GPUBuffer,
    layout: PlanLayout,
    weights: GPUBuffer,
    output: GPUBuffer,
    dims: { k: number; n: number; firstExpert: number; numExperts: number },
    options: { bias?: { buffer: GPUBuffer; experts: number } | null; activation?: ExpertActivation; maxTokens?: number } = {},
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
    const most = this.mode === 'gemv' ? gemvTileRows(options.maxTokens ?? GEMV_ROWS) : this.tileRowsFor(0);
    const buckets = this.mode === 'gemv' ? GEMV_ROW_BUCKETS.filter((r) => r <= most) : [most];
    const pipelines = new Map(buckets.map((r) => [r, this.pipelineFor(dims.k, bias !== null, r)]));
    const groupLimit = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    for (const [r, p] of pipelines) {
      if (ceilDiv(dims.n, p.tileCols) > groupLimit) throw new RangeError(`${label}: ${dims.n} output columns in blocks of ${p.tileCols} (${r}-row tiles) need more than ${groupLimit} workgroups`);
    }
    return { uniforms, group, pipelines };
  }

  /** Dispatches enough workgroups for `maxTiles` plan tiles of `tileRows` rows and `n` output columns. */
  encode(pass: GPUComputePassEncoder, b: ExpertMatmulBinding, n: number, maxTiles: number, tileRows: number): void {
    const p = b.pipelines.get(tileRows);
    if (!p) throw new Error(`ExpertMatmulKernel: no pipeline for ${tileRows}-row tiles (bound for ${[...b.pipelines.keys()].join(', ')})`);
    pass.setPipeline(p.pipeline);
    pass.setBindGroup(0, b.group);
    pass.dispatchWorkgroups(ceilDiv(n, p.tileCols), maxTiles);
  }
}

/**
 * Upper bound on plan tiles for `assignments` rows of `tokens` tokens over `experts` experts cut in tiles of
 * `tileRows` (an expert has at most one row per token).
 */
export function maxPlanTiles(assignments: number, experts: number, tileRows: number, tokens: number): number {
  const busy = Math.min(experts, assignments);
  return Math.min(Math.floor(assignments / tileRows) + busy, busy * Math.ceil(tokens / tileRows));
}
