// Skinny matmul for 1–16 rows (shaders/gemv.wgsl; block-quantised W: shaders/gemv_quant.wgsl): y[rows, N] (+)= x[rows, K] · Wᵀ (W [N, K]) or x · W (W [K, N]).
import type { Gpu } from '../gpu';
import { FORMAT_CODE, QUANT_BLOCKS, isQuantFormat, type TensorFormat, type WeightDtype } from '../../model/dtypes';
import { type UniformArena, Uniforms, bindGroup, ceilDiv, kernelLayout, type KernelLayout, type UniformLayout } from './common';
import { blockGrid } from './dispatch';
import { matmulAligned, type WeightLayout } from './matmul';

/**
 * `Params` of shaders/gemv.wgsl. Its first three fields are matmul's (MATMUL_PARAMS), so one uniform serves a
 * linear layer's GEMV and matmul pipelines; alpha (ACCUMULATE's multiplier) sits where matmul has padding.
 */
export const GEMV_PARAMS: UniformLayout = { fields: ['M', 'N', 'K', 'alpha', 'eps'], floats: ['alpha', 'eps'] };

/** Row counts a GEMV pipeline is compiled for; `rows` rounds up to the next one. */
export const GEMV_ROW_BUCKETS = [1, 2, 4, 8, 16] as const;
export const GEMV_MAX_ROWS = 16;

/** Threads per workgroup WG_K × WG_N, and output columns per thread NT ('nk' only; 'kn' threads own 4). */
export interface GemvTile {
  WG_K: number;
  WG_N: number;
  NT: number;
}

/**
 * The widest tiles, chosen on the H100 sweep (docs/benchmarks.md) for rows of thousands of elements. W [N, K]: for
 * 1–2 rows a whole 256-thread workgroup splits K for 2 outputs; with more rows each thread keeps 4 outputs so that
 * every x value it loads serves 4 weights. gemvDenseTile narrows WG_K to shorter rows.
 */
export const GEMV_TILE_NK: GemvTile = { WG_K: 256, WG_N: 1, NT: 2 };
export const GEMV_TILE_NK_4ROWS: GemvTile = { WG_K: 64, WG_N: 2, NT: 4 };
export const GEMV_TILE_NK_MANY_ROWS: GemvTile = { WG_K: 16, WG_N: 8, NT: 4 };
export const GEMV_TILE_KN: GemvTile = { WG_K: 16, WG_N: 16, NT: 4 };
/**
 * A CPU adapter (SwiftShader) pays ~0.75 µs per launched invocation whatever it does, so there a thread takes at least
 * SOFTWARE_UNITS_PER_THREAD of its row's units, 4 outputs, in 64-thread workgroups. On the demo's LM head (N 4096,
 * K 256 bf16) that is 4096 threads instead of 524,288: 12 ms instead of 585 ms on SwiftShader (docs/reliability.md).
 */
export const GEMV_SOFTWARE = { threads: 64, NT: 4, unitsPerThread: 8 } as const;
/**
 * Block-quantised W (shaders/gemv_quant.wgsl): a thread's unit is 64 elements of a row (lib/quant_unit). WG_K threads
 * share a row: the next power of two ≥ its units, at most 32 (K = 4096: 64 units, 2 per thread; expert-sized K = 768:
 * 12 units on 16 threads), and 64 threads per workgroup. Each thread owns NT output columns (4 for 1–2 rows, 2 up to
 * 8, 1 for 16), so each x value it loads serves NT rows of W.
 */
export function gemvQuantTile(rows: number, K: number): GemvTile {
  const units = Math.ceil(K / 64);
  const WG_K = Math.min(32, 2 ** Math.ceil(Math.log2(Math.max(1, units))));
  return { WG_K, WG_N: Math.max(1, 64 / WG_K), NT: rows <= 2 ? 4 : rows <= 8 ? 2 : 1 };
}

/** What a dense GEMV's tile is chosen from. */
export interface GemvTileProblem {
  weightLayout: WeightLayout;
  /** Row count compiled in (one of GEMV_ROW_BUCKETS). */
  rows: number;
  K: number;
  /** Output columns; absent: as many as a workgroup can take. */
  N?: number;
  weightDtype: WeightDtype;
  /** The 16-byte path (gemvAligned): a thread's unit is 16 bytes of a W row, otherwise one element. */
  aligned: boolean;
  /** The adapter is a CPU (GpuAdapterSummary.software). */
  software: boolean;
}

const pow2AtLeast = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

/**
 * The tile for a dense W, from its shape. W [N, K]: WG_K threads share a row, the next power of two ≥ the row's units
 * (16-byte units on the aligned path, elements otherwise), at most the row bucket's widest tile's WG_K, so no thread
 * idles for lack of K; the workgroup's other threads spread over outputs (WG_N), no more of them than N needs. A
 * software adapter: GEMV_SOFTWARE. W [K, N]: GEMV_TILE_KN.
 */
export function gemvDenseTile(p: GemvTileProblem): GemvTile {
  if (p.weightLayout === 'kn') return GEMV_TILE_KN;
  const units = p.aligned ? Math.ceil(p.K / (p.weightDtype === 'f32' ? 4 : 8)) : p.K;
  const widest = p.rows <= 2 ? GEMV_TILE_NK : p.rows <= 4 ? GEMV_TILE_NK_4ROWS : GEMV_TILE_NK_MANY_ROWS;
  const s = GEMV_SOFTWARE;
  const { threads, NT, WG_K } = p.software
    ? { threads: s.threads, NT: s.NT, WG_K: Math.min(s.threads, pow2AtLeast(Math.ceil(units / s.unitsPerThread))) }
    : { threads: widest.WG_K * widest.WG_N, NT: widest.NT, WG_K: Math.min(widest.WG_K, pow2AtLeast(units)) };
  const WG_N = Math.min(threads / WG_K, p.N === undefined ? Infinity : pow2AtLeast(Math.ceil(p.N / NT)));
  return { WG_K, WG_N, NT };
}

export interface GemvOptions {
  /** Dense dtype or block-quantised format (quantised: 'nk' only, K a multiple of the block). */
  weightDtype: TensorFormat;
  weightLayout: WeightLayout;
  /** Row count compiled in (one of GEMV_ROW_BUCKETS); the dispatch computes params.M ≤ rows rows. */
  rows: number;
  /** 16-byte loads; same rule as matmulAligned(K, N, dtype, layout). */
  aligned: boolean;
  accumulate?: boolean;
  tile?: GemvTile;
  /**
   * RMSNorm of x folded in (entry point main_norm): x's row length K, fixed per pipeline (the row is kept in
   * workgroup memory). One row, W [N, K] in a dense dtype, the norm weight [K] in the same dtype.
   */
  normK?: number;
  /** The K it will run (sets the default tile, with N); 4096 when absent. */
  K?: number;
  /** The N it will run (the default tile takes no more outputs per workgroup than N); unbounded when absent. */
  N?: number;
}

export const gemvAligned = matmulAligned;

/** The smallest compiled row count ≥ rows. */
export function gemvBucket(rows: number): number {
  const b = GEMV_ROW_BUCKETS.find((r) => r >= rows);
  if (b === undefined || rows < 1) throw new Error(`GEMV handles 1..${GEMV_MAX_ROWS} rows, got ${rows}`);
  return b;
}

export interface GemvBinding {
  bindGroup: GPUBindGroup;
  uniforms: Uniforms;
}

export class GemvKernel {
  readonly layout: KernelLayout;
  readonly pipeline: GPUComputePipeline;
  readonly tile: GemvTile;
  /** Output columns per workgroup. */
  readonly blockN: number;

  constructor(
    readonly gpu: Gpu,
    readonly options: GemvOptions,
    private readonly arena: UniformArena | null = null,
  ) {
    const nk = options.weightLayout === 'nk';
    const quant = isQuantFormat(options.weightDtype);
    if (quant && !nk) throw new Error(`gemv: ${options.weightDtype} weights must be stored [N, K]`);
    this.tile = options.tile ?? (quant ? gemvQuantTile(options.rows, options.K ?? 4096) : gemvDenseTile(tileProblem(gpu, options)));
    const outputsPerThread = nk ? this.tile.NT : 4;
    this.blockN = this.tile.WG_N * outputsPerThread;
    checkTile(gpu, this.tile, options.rows, outputsPerThread, quant);
    const norm = options.normK !== undefined;
    if (norm && quant) throw new Error(`gemv: a folded RMSNorm needs dense weights, not ${options.weightDtype}`);
    const problems = norm ? normProblems(gpu, { ...options, normK: options.normK! }, this.tile) : [];
    if (problems.length) throw new Error(`gemv with a folded RMSNorm (K ${options.normK}): ${problems.join('; ')}`);
    this.layout = kernelLayout(gpu, norm ? ['uniform', 'read', 'read', 'rw', 'read'] : ['uniform', 'read', 'read', 'rw']);
    const common = { ...this.tile, ROWS: options.rows, ACCUMULATE: options.accumulate ? 1 : 0, WEIGHT_DTYPE: FORMAT_CODE[options.weightDtype] };
    this.pipeline = quant
      ? gpu.pipeline('gemv_quant', 'main', common, this.layout.pipelineLayout, this.layout.key)
      : gpu.pipeline('gemv', norm ? 'main_norm' : 'main', {
        ...common,
        W_NK: nk ? 1 : 0,
        ALIGNED: options.aligned ? 1 : 0,
        ...(norm ? { NORM: 1, NORM_K4: ceilDiv(options.normK!, 4) } : {}),
      }, this.layout.pipelineLayout, this.layout.key);
  }

  /**
   * x: [rows, K] f32; w: [N, K] or [K, N] in weightDtype words; y: [rows, N] f32 (may not alias x or w);
   * normWeight (options.normK only): [K] in weightDtype words.
   */
  bind(label: string, x: GPUBuffer, w: GPUBuffer, y: GPUBuffer, normWeight?: GPUBuffer): GemvBinding {
    if ((this.options.normK !== undefined) !== (normWeight !== undefined)) throw new Error(`${label}: a norm weight goes with options.normK`);
    const uniforms = new Uniforms(this.gpu, `${label}.shape`, GEMV_PARAMS, this.arena);
    return { uniforms, bindGroup: bindGroup(this.gpu, label, this.layout, [uniforms, x, w, y, ...(normWeight ? [normWeight] : [])]) };
  }

  /**
   * Writes the shape uniform; 1 ≤ rows ≤ options.rows; K a multiple of a quantised format's block; alpha: with
   * accumulate, y += alpha · x·Wᵀ (default 1); eps: the folded norm's epsilon (options.normK).
   */
  setShape(b: GemvBinding, s: { rows: number; N: number; K: number; alpha?: number; eps?: number }): void {
    if (s.rows < 1 || s.rows > this.options.rows) {
      throw new Error(`GemvKernel compiled for ${this.options.rows} rows cannot run ${s.rows}`);
    }
    const f = this.options.weightDtype;
    if (isQuantFormat(f) && s.K % QUANT_BLOCKS[f].elements !== 0) {
      throw new Error(`GemvKernel: K ${s.K} is not a multiple of ${f}'s ${QUANT_BLOCKS[f].elements}-element blocks`);
    }
    if (this.options.normK !== undefined && s.K !== this.options.normK) throw new Error(`GemvKernel: compiled for K ${this.options.normK}, not ${s.K}`);
    b.uniforms.set({ M: s.rows, N: s.N, K: s.K, alpha: s.alpha ?? 1, eps: s.eps ?? 0 });
  }

  encode(pass: GPUComputePassEncoder, b: GemvBinding, N: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, b.bindGroup);
    pass.dispatchWorkgroups(...blockGrid(this.gpu, ceilDiv(N, this.blockN)));
  }
}

function checkTile(gpu: Gpu, t: GemvTile, rows: number, outputsPerThread: number, quant: boolean): void {
  const problems: string[] = [];
  if (!(GEMV_ROW_BUCKETS as readonly number[]).includes(rows)) problems.push(`rows must be one of ${GEMV_ROW_BUCKETS.join(', ')}`);
  const maxNT = quant ? 8 : 4;
  if (t.NT < 1 || t.NT > maxNT) problems.push(`NT must be 1..${maxNT}`);
  if (rows * outputsPerThread > 64) problems.push('rows × outputs per thread must be ≤ 64 (register array)');
  const threads = t.WG_K * t.WG_N;
  if (threads > gpu.limits.maxComputeInvocationsPerWorkgroup) problems.push(`${threads} threads per workgroup`);
  // gemv: rows reduced four at a time; gemv_quant (lib/gemv_core): all rows at once.
  const shared = (quant ? rows : Math.min(rows, 4)) * t.WG_N * outputsPerThread * (t.WG_K + 1) * 4;
  if (shared > gpu.limits.maxComputeWorkgroupStorageSize) problems.push(`needs ${shared} bytes of workgroup memory`);
  if (problems.length) throw new Error(`gemv tile ${JSON.stringify(t)} (rows ${rows}): ${problems.join('; ')}`);
}

/** The default dense tile's problem: the K and N the kernel will run (K: normK with a folded norm, else 4096 if absent). */
function tileProblem(gpu: Gpu, o: GemvOptions): GemvTileProblem {
  const K = o.normK ?? o.K ?? 4096;
  return { ...o, K, weightDtype: o.weightDtype as WeightDtype, software: gpu.adapter.software };
}

type NormOptions = Pick<GemvOptions, 'weightDtype' | 'weightLayout' | 'rows' | 'N'> & { normK: number };

/** Whether the RMSNorm prologue (options.normK) fits: one row, dense W [N, K], a power-of-two workgroup, memory. */
export function gemvNormFits(gpu: Gpu, o: NormOptions, tile?: GemvTile): boolean {
  const aligned = gemvAligned(o.normK, o.N ?? 0, o.weightDtype, o.weightLayout);
  return normProblems(gpu, o, tile ?? (isQuantFormat(o.weightDtype) ? GEMV_TILE_NK : gemvDenseTile(tileProblem(gpu, { ...o, aligned })))).length === 0;
}

function normProblems(gpu: Gpu, o: NormOptions, tile: GemvTile): string[] {
  const problems: string[] = [];
  if (o.rows !== 1) problems.push('one row only');
  if (o.weightLayout !== 'nk' || isQuantFormat(o.weightDtype)) problems.push('dense W stored [N, K] only');
  const threads = tile.WG_K * tile.WG_N;
  if (threads & (threads - 1)) problems.push(`${threads} threads is not a power of two`);
  const red = tile.WG_N * tile.NT * (tile.WG_K + 1) * 4;
  const bytes = ceilDiv(o.normK, 4) * 16 + threads * 4 + red;
  if (bytes > gpu.limits.maxComputeWorkgroupStorageSize) problems.push(`a row of ${o.normK} needs ${bytes} bytes of workgroup memory`);
  return problems;
}
