// Tiled matmul kernel (shaders/matmul.wgsl): y[M, N] (+)= x[M, K] · Wᵀ (W [N, K]) or x · W (W [K, N]).
import type { Gpu } from '../gpu';
import { FORMAT_CODE, QUANT_BLOCKS, isQuantFormat, tensorBytes, type TensorFormat } from '../../model/dtypes';
import { Uniforms, type UniformLayout, bindGroup, ceilDiv, kernelLayout, type KernelLayout } from './common';

/** How W is stored: 'nk' = [N, K] (checkpoints' [out, in], y = x·Wᵀ); 'kn' = [K, N] (y = x·W). */
export type WeightLayout = 'nk' | 'kn';

/** Workgroup tile: WG_M × WG_N threads, each 8 × 8 outputs; TILE_K deep. Mirrors the shader's overrides. */
export interface MatmulTile {
  WG_M: number;
  WG_N: number;
  TILE_K: number;
}

/** The two shader files (same interface): transposed [k][m] tiles, or k-contiguous tiles with prefetch. */
export type MatmulShader = 'matmul' | 'matmul_kmajor';

export interface MatmulConfig {
  shader: MatmulShader;
  tile: MatmulTile;
}

/** 128 × 128 outputs per workgroup of 256 threads: large problems (40.9 TFLOP/s at 4096³ on an H100, 0.81× cuBLAS). */
export const MATMUL_LARGE: MatmulConfig = { shader: 'matmul', tile: { WG_M: 16, WG_N: 16, TILE_K: 16 } };
/** 64 × 128 outputs per workgroup of 128 threads, k-contiguous tiles: grids too small for the large tile. */
export const MATMUL_MID: MatmulConfig = { shader: 'matmul_kmajor', tile: { WG_M: 8, WG_N: 16, TILE_K: 16 } };

/**
 * The configuration for an M × N product: the large tile when its grid has at least 256 workgroups (about two per
 * multiprocessor on an H100), else the mid one. Chosen on the H100 sweep (docs/benchmarks.md).
 */
export function matmulConfigFor(M: number, N: number): MatmulConfig {
  const t = MATMUL_LARGE.tile;
  return ceilDiv(M, t.WG_M * 8) * ceilDiv(N, t.WG_N * 8) >= 256 ? MATMUL_LARGE : MATMUL_MID;
}

export interface MatmulOptions {
  /** Dense dtype or block-quantised format (quantised: 'nk' and aligned only). */
  weightDtype: TensorFormat;
  weightLayout: WeightLayout;
  /** 16-byte loads; see matmulAligned(). */
  aligned: boolean;
  /** y += x·W instead of y = x·W. */
  accumulate?: boolean;
  /** Default: MATMUL_LARGE's shader and tile. */
  shader?: MatmulShader;
  tile?: MatmulTile;
}

/**
 * Whether K and N allow the 16-byte load path: K % 4 == 0 (x rows) and the weight row length (K for 'nk',
 * N for 'kn') a multiple of 4 for f32 or 8 for f16/bf16. Otherwise a (slower) element-wise path is used.
 * Block-quantised weights have only the aligned path: 'nk' with K a whole number of blocks.
 */
export function matmulAligned(K: number, N: number, dtype: TensorFormat, layout: WeightLayout): boolean {
  if (isQuantFormat(dtype)) return layout === 'nk' && K % QUANT_BLOCKS[dtype].elements === 0;
  const unit = dtype === 'f32' ? 4 : 8;
  return K % 4 === 0 && (layout === 'nk' ? K : N) % unit === 0;
}

/** `Params` of the matmul, matmul_kmajor and gemv shaders (the same struct). */
export const MATMUL_PARAMS: UniformLayout = { fields: ['M', 'N', 'K', '_pad'] };

/** Buffer sizes the shaders need: vec4-viewed, so every buffer is rounded up to 16 bytes. */
export function checkLinearBuffers(
  label: string,
  x: GPUBuffer,
  w: GPUBuffer,
  y: GPUBuffer,
  s: { rows: number; K: number; N: number; weightDtype: TensorFormat },
): void {
  const wBytes = tensorBytes(s.weightDtype, [s.N, s.K]);
  if (wBytes === null) throw new Error(`${label}: K ${s.K} is not a whole number of ${s.weightDtype} blocks`);
  const vec4Bytes = (elements: number, bytesPer: number) => Math.ceil((elements * bytesPer) / 16) * 16;
  const need: [string, GPUBuffer, number][] = [
    ['x', x, vec4Bytes(s.rows * s.K, 4)],
    ['w', w, vec4Bytes(wBytes, 1)],
    ['y', y, vec4Bytes(s.rows * s.N, 4)],
  ];
  for (const [field, buffer, bytes] of need) {
    if (buffer.size < bytes) {
      throw new Error(
        `${label}: buffer ${field} (${buffer.label || 'unlabelled'}) holds ${buffer.size} bytes, needs ${bytes} ` +
          `(rows ${s.rows}, K ${s.K}, N ${s.N}, ${s.weightDtype}, rounded up to 16 bytes)`,
      );
    }
  }
}

/** One matmul bound to its buffers; made at load time, encoded every step. */
export interface MatmulBinding {
  bindGroup: GPUBindGroup;
  uniforms: Uniforms;
}

export interface MatmulShape {
  M: number;
  N: number;
  K: number;
}

export class MatmulKernel {
  readonly layout: KernelLayout;
  readonly pipeline: GPUComputePipeline;
  readonly tile: MatmulTile;
  readonly shader: MatmulShader;

  constructor(
    private readonly gpu: Gpu,
    readonly options: MatmulOptions,
  ) {
    this.shader = options.shader ?? MATMUL_LARGE.shader;
    this.tile = options.tile ?? MATMUL_LARGE.tile;
    checkTile(gpu, this.shader, this.tile, options.weightDtype);
    if (isQuantFormat(options.weightDtype) && !(options.aligned && options.weightLayout === 'nk')) {
      throw new Error(`${this.shader}: ${options.weightDtype} weights need the aligned [N, K] path`);
    }
    this.layout = kernelLayout(gpu, ['uniform', 'read', 'read', 'rw']);
    const constants = {
      ...this.tile,
      W_NK: options.weightLayout === 'nk' ? 1 : 0,
      ALIGNED: options.aligned ? 1 : 0,
      ACCUMULATE: options.accumulate ? 1 : 0,
      WEIGHT_DTYPE: FORMAT_CODE[options.weightDtype],
    };
    this.pipeline = gpu.pipeline(this.shader, 'main', constants, this.layout.pipelineLayout, this.layout.key);
  }

  /** x: [M, K] f32; w: [N, K] or [K, N] in weightDtype words; y: [M, N] f32 (may not alias x or w). */
  bind(label: string, x: GPUBuffer, w: GPUBuffer, y: GPUBuffer): MatmulBinding {
    const uniforms = new Uniforms(this.gpu, `${label}.shape`, MATMUL_PARAMS);
    return { uniforms, bindGroup: bindGroup(this.gpu, label, this.layout, [uniforms.buffer, x, w, y]) };
  }

  /** Writes the shape uniform (queue write, no allocation). */
  setShape(b: MatmulBinding, s: MatmulShape): void {
    b.uniforms.set({ M: s.M, N: s.N, K: s.K });
  }

  /** Dispatch for M rows and N columns (the shape last written with setShape must match). */
  encode(pass: GPUComputePassEncoder, b: MatmulBinding, M: number, N: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, b.bindGroup);
    pass.dispatchWorkgroups(ceilDiv(N, this.tile.WG_N * 8), ceilDiv(M, this.tile.WG_M * 8));
  }
}

/** Workgroup memory of a tile: matmul (lib/matmul_core) [TILE_K][128 floats] per operand; kmajor [rows][20 floats]. */
export function matmulSharedBytes(shader: MatmulShader, t: MatmulTile): number {
  return shader === 'matmul' ? 2 * t.TILE_K * 32 * 16 : (t.WG_M + t.WG_N) * 8 * 5 * 16;
}

/**
 * The shader's limits on its overrides (see shaders/matmul.wgsl, lib/matmul_core): clear errors instead of compile
 * failures. `shared`: the kernel's workgroup memory when it adds its own to the tiles (the expert kernels).
 */
export function checkTile(gpu: Gpu, shader: MatmulShader, t: MatmulTile, dtype: TensorFormat, shared = matmulSharedBytes(shader, t)): void {
  const threads = t.WG_M * t.WG_N;
  const unit = dtype === 'f32' ? 4 : 8;
  const problems: string[] = [];
  if (t.WG_M > 16 || t.WG_N > 16) problems.push('WG_M and WG_N must be ≤ 16 (shared rows hold 128 floats)');
  if (t.TILE_K !== 8 && t.TILE_K !== 16) problems.push('TILE_K must be 8 or 16');
  const xUnits = (t.WG_M * 8 * t.TILE_K) / (4 * threads);
  const wUnits = Math.ceil((t.WG_N * 8 * t.TILE_K) / (unit * threads));
  if (!Number.isInteger(xUnits) || xUnits > 8 || (wUnits * unit) / 4 > 8) {
    problems.push('each thread must load a whole number of x units per tile and at most 8 16-byte units of each operand');
  }
  if ((t.WG_N * 8) % unit !== 0) problems.push('TILE_N must be a multiple of the weight unit');
  if (shared > gpu.limits.maxComputeWorkgroupStorageSize) problems.push(`needs ${shared} bytes of workgroup memory`);
  if (threads > gpu.limits.maxComputeInvocationsPerWorkgroup) problems.push(`${threads} threads per workgroup`);
  if (problems.length) throw new Error(`${shader} tile ${JSON.stringify(t)} (${dtype}): ${problems.join('; ')}`);
}
