// The grouped expert kernels (and the router and combine around them) on shapes taken from their tiling constants,
// so that every loop and every tail runs:
//   gemv (decode): tiles of R = 1, 2, 4 or 8 rows by the step's tokens (gemvTileRows), each with its own thread layout
//     (expertGemvTile): WG_K threads stride over K in units of UK weights, at most 256 of them. K = 549 units runs
//     three to nine passes (by layout) with a last pass for some threads only; one element less takes the element-wise
//     loop. The steps T = 1, 2, 3, 5, 19 run every bucket, with all, some (3 of 4, 5 of 8) and a full and a partial
//     tile of rows. Columns come in workgroups of WG_N·NT (19 columns leave a partial one). The router's logits loop
//     has the same shape over H (ROUTER_LANES lanes, two units per iteration and a tail).
//   combine: COMBINE_WG threads per token stride over H.
//   tiled (prefill): lib/matmul_core, the dense matmul's core: rows in tiles of TILE_M = 8·WG_M per expert, up's
//     columns in 4·WG_N, down's in 8·WG_N (its second 4·WG_N-column group only exists past 4·WG_N), K in
//     single-buffered slices of TILE_K (8 or 16), each shape run with a partial last slice where its alignment allows;
//     an expert's last row tile either short (9 rows: threads past them multiply nothing, and one 4-row group holds a
//     single row) or one row over half (every thread's first group full, the second group of one thread one row).
import { describe, expect, it } from 'vitest';
import { ExpertMatmulKernel, GEMV_ROWS, GEMV_ROW_BUCKETS, alignedRows, expertGemvTile, gemvRowUnits, gemvTileRows, weightsPerUnit, type TiledShape } from '../../src/engine/kernels/moe-expert';
import { planLayout } from '../../src/engine/kernels/moe-layout';
import { storageBuffer } from '../../src/engine/kernels/common';
import { COMBINE_CONSTANTS } from '../../src/engine/kernels/moe-combine';
import type { QuantFormat, WeightDtype } from '../../src/model/dtypes';
import type { Gpu } from '../../src/engine/gpu';
import type { ExpertVariant } from '../../src/engine/routing/moe-layer';
import { POISON_BITS, testGpu } from '../support/gpu';
import { buildProblem, checkStep, policyWith, type Family, type Problem } from '../support/moe';
import { expectMutantFails, mutation, type Mutation } from '../support/mutant';

/** Units of the long rows: more than twice the widest layout's WG_K (256), and not a multiple of any WG_K used. */
const GEMV_UNITS = 549;
/** Token counts of the gemv steps: R = 1, 2, 4 (3 rows live), 8 (5 live), 8 (a full and a partial tile). */
const GEMV_STEPS = [1, 2, 3, 5, 2 * GEMV_ROWS + 3];

/** K of GEMV_UNITS 16-byte units of `dtype`; `odd`: one element less (the element-wise loop). */
function gemvLoopK(dtype: WeightDtype, odd = false): number {
  return GEMV_UNITS * (dtype === 'f32' ? 4 : 8) - (odd ? 1 : 0);
}

/**
 * Runs steps of `steps` tokens one after another on p and checks each against the reference, with the experts'
 * activations and outputs (scratch h and y) poisoned before each, so a row a kernel leaves out cannot pass on an
 * earlier step's values.
 */
async function checkSteps(gpu: Gpu, p: Problem, steps: number[], seed: number): Promise<void> {
  let position = 0;
  for (const T of steps) {
    for (const b of [p.scratch.h, p.scratch.y]) gpu.device.queue.writeBuffer(b, 0, new Uint32Array(b.size / 4).fill(POISON_BITS));
    await checkStep(gpu, p, T, policyWith(p.config, {}), seed + T, position);
    position += T;
  }
}

/**
 * 2 experts, k = 2, so each expert has T rows; one-token steps too on the down GEMV (not the fused decode epilogue). The reduction length of `kernel` is gemvLoopK (up reduces over H, down
 * over I); the other dimension is 19 columns, the element-wise loop in the other kernel.
 */
function gemvProblem(gpu: Gpu, kernel: 'up' | 'down', dtype: WeightDtype, seed: number, o: { odd?: boolean; family?: Family } = {}): Problem {
  const K = gemvLoopK(dtype, o.odd);
  const [H, I] = kernel === 'up' ? [K, 19] : [19, K];
  return buildProblem(gpu, { family: o.family ?? 'mixtral', H, I, E: 2, k: 2, dtype, seed }, { expertMode: 'gemv', maxTokens: Math.max(...GEMV_STEPS), ringCapacity: 64, fusedDecode: false });
}

async function checkGemv(gpu: Gpu, kernel: 'up' | 'down', dtype: WeightDtype, seed: number, steps = GEMV_STEPS, odd = false) {
  return checkSteps(gpu, gemvProblem(gpu, kernel, dtype, seed, { odd }), steps, seed + 1);
}

/** Every row bucket's layout on rows of K: some threads take one pass more than others, and the loop runs ≥ 3 times. */
function expectLoopAndTail(gpu: Gpu, kernel: 'up' | 'down', dtype: WeightDtype, K: number): void {
  const units = gemvRowUnits(K, dtype);
  for (const R of GEMV_ROW_BUCKETS) {
    const { WG_K } = expertGemvTile(gpu, kernel, dtype, K, R);
    expect(units, `${kernel} ${dtype} R=${R}: WG_K ${WG_K}`).toBeGreaterThan(2 * WG_K);
    expect(units % WG_K, `${kernel} ${dtype} R=${R}: WG_K ${WG_K}`).not.toBe(0);
  }
}

interface TiledCase {
  dtype: WeightDtype | 'q8_0';
  shape: TiledShape;
  mode: Exclude<ExpertVariant, 'gemv'>;
  /** One less than the aligned sizes: the element-wise loads, and a partial last K slice at any TILE_K. */
  odd: boolean;
  /** Rows of each expert's last row tile: 'short' 9 or 'over-half' TILE_M/2 + 1 (see the header). */
  lastTile: 'short' | 'over-half';
}

/**
 * Prefill on the tiled kernels: 2 experts, k = 2, T = TILE_M + lastTile's rows per expert (a full and a partial row tile);
 * I = 2·(4·WG_N) + tail (up: three column workgroups, the last partial) and H = max(2·(8·WG_N), COMBINE_WG) + tail
 * (down: three column workgroups, both 4·WG_N-column groups written in the full ones). Both are also the K of a
 * kernel: tail = TILE_K / 2 leaves a partial last slice, unless the weights' alignment unit is larger (bf16/f16 at
 * TILE_K 8: 8; Q8_0: its 32-element blocks), where K stays whole slices. `odd` subtracts 1 from both.
 */
function tiledSizes(c: TiledCase): { T: number; H: number; I: number } {
  const WG_M = c.mode === 'tiled-narrow' ? 8 : c.shape.WG_M;
  const unit = c.dtype === 'q8_0' ? 32 : weightsPerUnit(c.dtype);
  const tail = Math.max(c.shape.TILE_K / 2, unit) - (c.odd ? 1 : 0);
  const { WG_N } = c.shape;
  return { T: 8 * WG_M + (c.lastTile === 'short' ? 9 : 4 * WG_M + 1), H: Math.max(2 * 8 * WG_N, COMBINE_CONSTANTS.COMBINE_WG) + tail, I: 2 * 4 * WG_N + tail };
}

async function checkTiled(gpu: Gpu, c: TiledCase, seed: number) {
  const { T, H, I } = tiledSizes(c);
  const spec = { family: 'mixtral' as const, H, I, E: 2, k: 2, seed };
  const o = { expertMode: c.mode, tiledShape: c.shape, maxTokens: T, ringCapacity: T };
  const p = c.dtype === 'q8_0' ? buildProblem(gpu, spec, { ...o, quantExperts: 'q8_0' }) : buildProblem(gpu, { ...spec, dtype: c.dtype }, o);
  return checkStep(gpu, p, T, policyWith(p.config, {}), seed + 1);
}

const TK16 = { WG_M: 16, WG_N: 16, TILE_K: 16 };
const TK8 = { ...TK16, TILE_K: 8 };
const tiled = (dtype: TiledCase['dtype'], shape: TiledShape, o: Partial<Omit<TiledCase, 'dtype' | 'shape'>> = {}): TiledCase =>
  ({ dtype, shape, mode: 'tiled', odd: false, lastTile: 'short', ...o });
const OVER = { lastTile: 'over-half' } as const;

// The long-row problems compile and run for seconds alone on SwiftShader, a minute and more on a loaded machine.
const SLOW = { timeout: 480_000 };

describe('gemv expert kernels: every row bucket, main loop and tail (K = 549 units)', SLOW, () => {
  it('a step runs the smallest row bucket ≥ its tokens', () => {
    expect(GEMV_STEPS.map(gemvTileRows)).toEqual([1, 2, 4, 8, 8]);
  });
  for (const kernel of ['up', 'down'] as const) {
    for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      it(`${kernel}, ${dtype}: K = ${gemvLoopK(dtype)}, T = ${GEMV_STEPS.join(', ')}`, async () => {
        const gpu = await testGpu();
        expectLoopAndTail(gpu, kernel, dtype, gemvLoopK(dtype));
        await checkGemv(gpu, kernel, dtype, 40);
      });
    }
    it(`${kernel}, bf16, K = ${gemvLoopK('bf16', true)} (element-wise loads)`, async () => {
      const gpu = await testGpu();
      expectLoopAndTail(gpu, kernel, 'bf16', gemvLoopK('bf16', true));
      await checkGemv(gpu, kernel, 'bf16', 44, [1, 3], true);
    });
  }
  it('a binding whose output columns need more workgroups than a grid dimension allows is refused', async () => {
    const gpu = await testGpu();
    const kernel = new ExpertMatmulKernel(gpu, 'up', 'gemv', 'bf16');
    const cols = Math.min(...GEMV_ROW_BUCKETS.map((R) => { const t = expertGemvTile(gpu, 'up', 'bf16', 64, R); return t.WG_N * t.NT; }));
    const n = (gpu.limits.maxComputeWorkgroupsPerDimension + 1) * cols;
    const buffer = storageBuffer(gpu, 'test.unused', 16);
    const layout = planLayout(2, 1, 2, GEMV_ROWS);
    const bind = (columns: number) => kernel.bind('test.wide', buffer, buffer, layout, buffer, buffer, { k: 64, n: columns, firstExpert: 0, numExperts: 2 });
    expect(() => bind(n - cols)).not.toThrow();
    expect(() => bind(n)).toThrow(/workgroups/);
  });
  it('gpt-oss expert biases and clamped activation, R = 1, 4, 8', async () => {
    const gpu = await testGpu();
    await checkSteps(gpu, gemvProblem(gpu, 'up', 'bf16', 46, { family: 'gpt_oss' }), [1, 3, 2 * GEMV_ROWS + 3], 47);
  });
});

/**
 * Quantised experts on the gemv kernels: the down kernel's K = I of 36 units (64 elements each), for Q8_0 and MXFP4
 * ending on a half unit; every layout's WG_K < 36 so threads loop at least twice. up's K = H of one super-block.
 */
function gemvQuantProblem(gpu: Gpu, format: QuantFormat, seed: number): Problem {
  const half = format === 'q8_0' || format === 'mxfp4';
  const [H, I] = half ? [64, 35 * 64 + 32] : [256, 36 * 64];
  return buildProblem(gpu, { family: 'mixtral', H, I, E: 2, k: 2, seed }, { expertMode: 'gemv', quantExperts: format, maxTokens: GEMV_ROWS + 3, ringCapacity: 64, fusedDecode: false });
}

describe('gemv expert kernels on quantised weights: every row bucket, more units than threads', SLOW, () => {
  for (const format of ['q8_0', 'q4_k', 'q5_k', 'q6_k', 'mxfp4'] as const) {
    it(format, async () => {
      const gpu = await testGpu();
      for (const R of GEMV_ROW_BUCKETS) expect(expertGemvTile(gpu, 'down', format, 36 * 64, R).WG_K).toBeLessThan(36);
      await checkSteps(gpu, gemvQuantProblem(gpu, format, 60), [1, 2, 3, GEMV_ROWS + 3], 61);
    });
  }
  it('a mutant whose threads skip every other pass over their units fails', () =>
    expectMutantFails(mutation('lib/gemv_core', 'u < qu_units(K); u += WG_K)', 'u < qu_units(K); u += 2u * WG_K)'),
      (gpu) => checkSteps(gpu, gemvQuantProblem(gpu, 'q4_k', 62), [1], 63), /output/));
  it('a mutant that groups threads by 32 rather than by WG_K (here 18) fails', () =>
    expectMutantFails(mutation('moe_expert_down_gemv', 'let tn = li / WG_K;', 'let tn = li / 32u;'),
      (gpu) => checkSteps(gpu, gemvQuantProblem(gpu, 'q4_k', 64), [1], 65), /output/));
});
describe('tiled expert kernels: row tiles, column workgroups and K slices', SLOW, () => {
  const cases = [
    tiled('f32', TK16), tiled('f32', TK16, { odd: true, ...OVER }), tiled('f32', TK8, OVER), tiled('bf16', TK8),
    tiled('bf16', TK16, { odd: true }), tiled('f16', TK16), tiled('q8_0', TK16, OVER), tiled('q8_0', TK8),
    tiled('f32', TK16, { mode: 'tiled-narrow', ...OVER }),
  ];
  for (const c of cases) {
    const { T, H, I } = tiledSizes(c);
    const TK = c.shape.TILE_K;
    const slices = (K: number) => `${K} = ${Math.floor(K / TK)}·${TK} + ${K % TK}`;
    it(`${c.dtype} ${c.mode} TILE_K ${TK}${c.odd ? ', element-wise loads' : ''}: ${T} rows per expert, up K ${slices(H)}, down K ${slices(I)}`, async () => {
      const gpu = await testGpu();
      expect(alignedRows(H, c.dtype) && alignedRows(I, c.dtype), 'ALIGNED (16-byte loads) unless odd').toBe(!c.odd);
      await checkTiled(gpu, c, 50);
    });
  }
});

describe('tiled expert kernel shapes', () => {
  it("are refused with the dense core's limits, naming the tile", async () => {
    const gpu = await testGpu();
    expect(() => new ExpertMatmulKernel(gpu, 'up', 'tiled', 'f32', { ...TK16, TILE_K: 24 })).toThrow(/"TILE_K":24.*TILE_K must be 8 or 16/);
    expect(() => new ExpertMatmulKernel(gpu, 'down', 'tiled', 'bf16', { ...TK16, WG_N: 32 })).toThrow(/WG_M and WG_N must be ≤ 16/);
    expect(() => new ExpertMatmulKernel(gpu, 'up', 'tiled', 'f32', TK16)).not.toThrow();
  });
});

describe('the expert checks can fail', SLOW, () => {
  const gemvMutants: ['up' | 'down', Mutation][] = [
    ['up', mutation('moe_expert_up_gemv', 'rows[2u * c + 1u] = (gate0 + I + j) * unit;', 'rows[2u * c + 1u] = (gate0 + I + min(j + 1u, I - 1u)) * unit;')],
    ['down', mutation('moe_expert_down_gemv', 'core_sum(r, col / NT, col % NT)', 'core_sum(r, col / NT, 0u)')],
    ['down', mutation('lib/gemv_core', 'for (var u = tk; u < K / UK; u += WG_K) {', 'for (var u = tk; u < K / UK; u += 2u * WG_K) {')],
  ];
  for (const [kernel, m] of gemvMutants) {
    for (const dtype of ['f32', 'bf16'] as const) {
      it(`gemv ${kernel}: ${m.shader} mutated (${String(m.from).slice(0, 40)}…) (${dtype})`, () =>
        expectMutantFails(m, (gpu) => checkGemv(gpu, kernel, dtype, 41), /output/));
    }
  }
  // The row buckets: the one-row tiles' epilogue stores nothing (R / 2 = 0: wrong at T = 1); the last live row of a
  // larger tile is left out (right at T = 1, wrong from T = 2 on).
  const bucketMutants: ['up' | 'down', Mutation][] = [
    ['up', mutation('moe_expert_up_gemv', 'for (var o = li; o < R * BLOCK_N; o += WG_SIZE) {', 'for (var o = li; o < (R / 2u) * BLOCK_N; o += WG_SIZE) {')],
    ['down', mutation('moe_expert_down_gemv', 'return R == 1u || r < nrows;', 'return R == 1u || r + 1u < nrows;')],
  ];
  for (const [kernel, m] of bucketMutants) {
    it(`gemv ${kernel}: ${m.shader} mutated (${String(m.from).slice(0, 40)}…) (bf16)`, () =>
      expectMutantFails(m, (gpu) => checkGemv(gpu, kernel, 'bf16', 45, [1, 2]), /output/));
  }
  it('combine: a stride over H that skips every other pass', () =>
    expectMutantFails(mutation('moe_combine', 'c += COMBINE_WG', 'c += 2u * COMBINE_WG'), (gpu) => checkTiled(gpu, tiled('f32', TK16), 54), /output/));
  it('tiled up: the up rows read from the gate rows', () =>
    expectMutantFails(mutation('moe_expert_up', 'let row = select(col, I + col, c >= TILE_COLS);', 'let row = col;'),
      (gpu) => checkTiled(gpu, tiled('f32', TK16), 51), /output/));
  it('tiled up: x rows gathered by the row key\'s slot instead of its token', () =>
    expectMutantFails(mutation('moe_expert_up', 'plan[P.off_row_key + row] / 8u', 'plan[P.off_row_key + row] % 8u'),
      (gpu) => checkTiled(gpu, tiled('f32', TK8), 55), /output/));
  it("tiled down: the second column group stores the first group's sums", () =>
    expectMutantFails(mutation('moe_expert_down', 'store_y(row, n0 + WG_N * 4u + local.x * 4u, acc[2u * i + 1u]);', 'store_y(row, n0 + WG_N * 4u + local.x * 4u, acc[2u * i]);'),
      (gpu) => checkTiled(gpu, tiled('f32', TK16), 52), /output/));
  it('tiled core (lib/matmul_core): the partial last K slice skipped', () =>
    expectMutantFails(mutation('lib/matmul_core', 'let tiles = (K + TILE_K - 1u) / TILE_K;', 'let tiles = K / TILE_K;'),
      (gpu) => checkTiled(gpu, tiled('bf16', TK16, { odd: true }), 53), /output/));
  it('tiled core (lib/matmul_core): k 8 .. 15 of a 16-deep slice left out', () =>
    expectMutantFails(mutation('lib/matmul_core', 'if (TILE_K > 8u) {', 'if (TILE_K > 16u) {'),
      (gpu) => checkTiled(gpu, tiled('q8_0', TK16, OVER), 56), /output/));
  it('tiled core (lib/matmul_core): threads with rows only in their first 4-row group multiply nothing', () =>
    expectMutantFails(mutation('lib/matmul_core', '} else if (first) { multiply_tile(tx, ty, false); }', '}'),
      (gpu) => checkTiled(gpu, tiled('f32', TK16), 57), /output/));
  it('tiled core (lib/matmul_core): a 4-row group counted only when its last row is inside', () =>
    expectMutantFails(mutation('lib/matmul_core', 'let second = tile_row(ty, 4u) < rows;', 'let second = tile_row(ty, 7u) < rows;'),
      (gpu) => checkTiled(gpu, tiled('f32', TK8, OVER), 58), /output/));
});
