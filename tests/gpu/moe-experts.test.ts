// The grouped expert kernels (and the router and combine around them) on shapes taken from their tiling constants,
// so that every loop and every tail runs:
//   gemv (decode): each of a tile's WG_K threads strides over K in units of UK weights (expertGemvTile: WG_K at most
//     64, reached once K holds 128 units). K = 160 units runs three passes for half of the threads and two for the
//     others. Rows come in tiles of GEMV_ROWS; columns in workgroups of WG_N·NT. The router's logits loop has the same
//     shape over H (ROUTER_LANES lanes, two units per iteration and a tail: K = 160 units is five per lane).
//   combine: COMBINE_WG threads per token stride over H.
//   tiled (prefill): lib/matmul_core, the dense matmul's core: rows in tiles of TILE_M = 8·WG_M per expert, up's
//     columns in 4·WG_N, down's in 8·WG_N (its second 4·WG_N-column group only exists past 4·WG_N), K in
//     single-buffered slices of TILE_K (8 or 16), each shape run with a partial last slice where its alignment allows;
//     an expert's last row tile either short (9 rows: threads past them multiply nothing, and one 4-row group holds a
//     single row) or one row over half (every thread's first group full, the second group of one thread one row).
import { describe, expect, it } from 'vitest';
import { ExpertMatmulKernel, GEMV_ROWS, alignedRows, expertGemvTile, weightsPerUnit, type TiledShape } from '../../src/engine/kernels/moe-expert';
import { COMBINE_CONSTANTS } from '../../src/engine/kernels/moe-combine';
import { ROUTER_LANES } from '../../src/engine/kernels/moe-router';
import type { WeightDtype } from '../../src/model/dtypes';
import type { Gpu } from '../../src/engine/gpu';
import type { ExpertVariant } from '../../src/engine/routing/moe-layer';
import { testGpu } from '../support/gpu';
import { buildProblem, checkStep, policyWith } from '../support/moe';
import { expectMutantFails, mutation, type Mutation } from '../support/mutant';

/** K that runs the gemv threads' loop two or three times (and the router's main loop and tail). */
function gemvLoopK(dtype: WeightDtype): number {
  return 5 * ROUTER_LANES * weightsPerUnit(dtype);
}

/**
 * Decode on the gemv kernels: 2 experts, k = 2, so each expert has T rows; T = 2·GEMV_ROWS + 3 gives full and partial
 * row tiles. The reduction length of `kernel` is gemvLoopK (up reduces over H, down over I); the other dimension is
 * 19 columns, not a multiple of GEMV_GROUPS, and takes the element-wise loop in the other kernel.
 */
async function checkGemv(gpu: Gpu, kernel: 'up' | 'down', dtype: WeightDtype, seed: number) {
  const K = gemvLoopK(dtype);
  const T = 2 * GEMV_ROWS + 3;
  const [H, I] = kernel === 'up' ? [K, 19] : [19, K];
  const p = buildProblem(gpu, { family: 'mixtral', H, I, E: 2, k: 2, dtype, seed }, { expertMode: 'gemv', maxTokens: T, ringCapacity: T });
  return checkStep(gpu, p, T, policyWith(p.config, {}), seed + 1);
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

// The K = 1152 problems compile and run for seconds alone on SwiftShader, a minute and more on a loaded machine.
const SLOW = { timeout: 240_000 };

describe('gemv expert kernels: main loop and tail (K = 4.5·LANES·UK)', SLOW, () => {
  for (const kernel of ['up', 'down'] as const) {
    for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      it(`${kernel}, ${dtype}: K = ${gemvLoopK(dtype)}, ${GEMV_ROWS}-row tiles`, async () => {
        const gpu = await testGpu();
        const units = gemvLoopK(dtype) / weightsPerUnit(dtype);
        expect(units, 'some threads take three units, others two').toBeGreaterThan(2 * expertGemvTile(gpu, kernel, dtype, gemvLoopK(dtype)).WG_K);
        const ref = await checkGemv(gpu, kernel, dtype, 40);
        expect(Math.min(...ref.counts), 'each expert has a full and a partial row tile').toBe(2 * GEMV_ROWS + 3);
      });
    }
  }
});

/**
 * Quantised experts on the gemv kernels: the down kernel's K = I of 36 units (64 elements each; WG_K = 32 threads, the
 * first four loop twice), for Q8_0 ending on a half unit; up's K = H of one unit.
 */
async function checkGemvQuant(gpu: Gpu, format: 'q8_0' | 'q4_k', seed: number) {
  const [H, I] = format === 'q8_0' ? [64, 35 * 64 + 32] : [256, 36 * 64];
  const T = GEMV_ROWS + 3;
  const p = buildProblem(gpu, { family: 'mixtral', H, I, E: 2, k: 2, seed }, { expertMode: 'gemv', quantExperts: format, maxTokens: T, ringCapacity: T });
  return checkStep(gpu, p, T, policyWith(p.config, {}), seed + 1);
}

describe('gemv expert kernels on quantised weights: more units than threads', SLOW, () => {
  for (const format of ['q8_0', 'q4_k'] as const) it(format, async () => { await checkGemvQuant(await testGpu(), format, 60); });
  it('a mutant whose threads skip every other pass over their units fails', () =>
    expectMutantFails(mutation('lib/gemv_core', 'u < qu_units(K); u += WG_K)', 'u < qu_units(K); u += 2u * WG_K)'),
      (gpu) => checkGemvQuant(gpu, 'q4_k', 61), /output/));
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
  it('router: the second unit of each logits-loop iteration dropped (f32)', () =>
    expectMutantFails(mutation('moe_router', 'dot_units(w1, t0, h + step, ntok);', ''), (gpu) => checkGemv(gpu, 'up', 'f32', 42), /chosen|weights/));
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
