// The linear layer the model uses: y[rows, N] (+)= x[rows, K] · Wᵀ, choosing the kernel by row count.
// rows ≤ 16 (decode): GEMV (shaders/gemv.wgsl), a pipeline per row bucket 1/2/4/8/16; more rows (prefill): the tiled
// matmul: 128×128 tiles (shaders/matmul.wgsl), or 64×128 k-contiguous tiles (shaders/matmul_kmajor.wgsl) when the
// large grid would leave the GPU half idle.
// Everything is created in bind() at load time; encode() only writes the shape uniform and dispatches.
import type { Gpu } from '../gpu';
import type { TensorFormat } from '../../model/dtypes';
import { GEMV_MAX_ROWS, GEMV_PARAMS, GEMV_ROW_BUCKETS, GemvKernel, gemvBucket } from './gemv';
import {
  MATMUL_LARGE,
  MATMUL_MID,
  MatmulKernel,
  checkLinearBuffers,
  matmulAligned,
  matmulConfigFor,
  type WeightLayout,
} from './matmul';
import { UniformArena, Uniforms, bindGroup, ceilDiv, kernelLayout } from './common';
import { blockGrid } from './dispatch';

export interface LinearShape {
  /** Input features (columns of x). */
  K: number;
  /** Output features (columns of y). */
  N: number;
  /** Most rows any encode() will run; x and y must hold maxRows rows. */
  maxRows: number;
  /** Dense dtype or block-quantised format ('nk', K a whole number of blocks). */
  weightDtype: TensorFormat;
  /** y += alpha · x·Wᵀ (residual fusion) instead of y = x·Wᵀ. */
  accumulate?: boolean;
  /** accumulate's multiplier (default 1; the tiled matmul, used above 16 rows, takes 1 only). */
  alpha?: number;
  /** How W is stored: 'nk' = [N, K], the checkpoints' [out, in] (default); 'kn' = [K, N]. */
  weightLayout?: WeightLayout;
}

/** One linear layer bound to its buffers (made at load time). */
export interface LinearBinding {
  readonly label: string;
  readonly shape: Readonly<Required<LinearShape>>;
  readonly uniforms: Uniforms;
  /** Shared by every pipeline below: they have the same layout. */
  readonly bindGroup: GPUBindGroup;
  /** GEMV pipeline per row bucket (index = bucket), for buckets ≤ maxRows. */
  readonly gemv: ReadonlyMap<number, GemvKernel>;
  /** Tiled matmul pipelines for MATMUL_LARGE and MATMUL_MID (see matmulConfigFor); empty when maxRows ≤ 16. */
  readonly matmul: readonly MatmulKernel[];
  /** Rows the uniform holds (0: not yet written). */
  rows: number;
}

export class LinearKernel {
  constructor(
    private readonly gpu: Gpu,
    private readonly arena: UniformArena | null = null,
  ) {}

  /**
   * x: [maxRows, K] f32; W: [N, K] ('nk') or [K, N] in weightDtype words (as packWeights / the checkpoint stores
   * them); y: [maxRows, N] f32, must not alias x or W. Buffer sizes are checked (rounded up to 16 bytes).
   */
  bind(label: string, x: GPUBuffer, W: GPUBuffer, y: GPUBuffer, shape: LinearShape): LinearBinding {
    const s: Required<LinearShape> = { accumulate: false, alpha: 1, weightLayout: 'nk', ...shape };
    if (s.alpha !== 1 && (!s.accumulate || s.maxRows > GEMV_MAX_ROWS)) {
      throw new Error(`${label}: alpha ${s.alpha} needs accumulate and at most ${GEMV_MAX_ROWS} rows (the GEMV)`);
    }
    for (const field of ['K', 'N', 'maxRows'] as const) {
      if (!Number.isInteger(s[field]) || s[field] < 1) throw new Error(`${label}: ${field} must be a positive integer, got ${s[field]}`);
    }
    checkLinearBuffers(label, x, W, y, { rows: s.maxRows, K: s.K, N: s.N, weightDtype: s.weightDtype });
    const aligned = matmulAligned(s.K, s.N, s.weightDtype, s.weightLayout);
    const common = { weightDtype: s.weightDtype, weightLayout: s.weightLayout, aligned, accumulate: s.accumulate };
    const gemv = new Map<number, GemvKernel>();
    const topBucket = gemvBucket(Math.min(s.maxRows, GEMV_MAX_ROWS));
    for (const rows of GEMV_ROW_BUCKETS.filter((r) => r <= topBucket)) {
      gemv.set(rows, new GemvKernel(this.gpu, { ...common, rows, K: s.K, N: s.N }));
    }
    const configs = s.maxRows > GEMV_MAX_ROWS ? [MATMUL_LARGE, MATMUL_MID] : [];
    const matmul = configs.map((c) => new MatmulKernel(this.gpu, { ...common, ...c }));
    const uniforms = new Uniforms(this.gpu, `${label}.shape`, GEMV_PARAMS, this.arena);
    const layout = kernelLayout(this.gpu, ['uniform', 'read', 'read', 'rw']);
    return {
      label,
      shape: s,
      uniforms,
      bindGroup: bindGroup(this.gpu, label, layout, [uniforms, x, W, y]),
      gemv,
      matmul,
      rows: 0,
    };
  }

  /**
   * Encodes y[0:rows] (+)= x[0:rows] · Wᵀ. Writes the shape uniform through the queue: the write lands before the
   * next submit, so if one binding is encoded twice with different row counts before a submit, both dispatches see
   * the last row count. Use one row count per binding per submit (the model does), or separate bindings.
   */
  encode(pass: GPUComputePassEncoder, b: LinearBinding, rows: number): void {
    const { K, N, maxRows } = b.shape;
    if (!Number.isInteger(rows) || rows < 1 || rows > maxRows) {
      throw new Error(`${b.label}: rows must be 1..${maxRows}, got ${rows}`);
    }
    if (b.rows !== rows) {
      b.uniforms.set({ M: rows, N, K, alpha: b.shape.alpha });
      b.rows = rows;
    }
    pass.setBindGroup(0, b.bindGroup);
    if (rows <= GEMV_MAX_ROWS) {
      const kernel = b.gemv.get(gemvBucket(rows))!;
      pass.setPipeline(kernel.pipeline);
      pass.dispatchWorkgroups(...blockGrid(kernel.gpu, ceilDiv(N, kernel.blockN)));
      return;
    }
    const kernel = pickMatmul(b, rows);
    pass.setPipeline(kernel.pipeline);
    pass.dispatchWorkgroups(ceilDiv(N, kernel.tile.WG_N * 8), ceilDiv(rows, kernel.tile.WG_M * 8));
  }
}

/** The matmul pipeline LinearKernel.encode uses for `rows` rows (rows > 16). */
export function pickMatmul(b: LinearBinding, rows: number): MatmulKernel {
  const config = matmulConfigFor(rows, b.shape.N);
  return b.matmul.find((k) => k.shader === config.shader && k.tile === config.tile)!;
}
