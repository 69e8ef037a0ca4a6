// The grouped expert kernels (and the router and combine around them) on shapes taken from their tiling constants,
// so that every loop and every tail runs:
//   gemv (decode): each of a tile's WG_K threads strides over K in units of UK weights (expertGemvTile: WG_K at most
//     64, reached once K holds 128 units). K = 160 units runs three passes for half of the threads and two for the
//     others. Rows come in tiles of GEMV_ROWS; columns in workgroups of WG_N·NT. The router's logits loop has the same
//     shape over H (ROUTER_LANES lanes, two units per iteration and a tail: K = 160 units is five per lane).
//   combine: COMBINE_WG threads per token stride over H.
//   tiled (prefill): rows in tiles of TILE_M = 8·WG_M per expert, up's columns in 4·WG_N, down's in 8·WG_N (its
//     second 4·WG_N-column group only exists past 4·WG_N), K in double-buffered slices of TILE_K.
import { describe, expect, it } from 'vitest';
import { GEMV_ROWS, defaultTiledShape, expertGemvTile, weightsPerUnit } from '../../src/engine/kernels/moe-expert';
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

/**
 * Prefill on the tiled kernels: 2 experts, k = 2, T = TILE_M + 9 rows per expert (a full and a partial row tile);
 * I = 2·(4·WG_N) + 8 (up: three column workgroups, the last partial; down: K not a multiple of a 16-deep slice);
 * H = 2·(8·WG_N) + 8 (down: three column workgroups, both 4·WG_N-column groups written), and past COMBINE_WG.
 * `odd` subtracts 1 from both: the element-wise loads with a partial last K slice.
 */
async function checkTiled(gpu: Gpu, dtype: WeightDtype, mode: Exclude<ExpertVariant, 'gemv'>, odd: boolean, seed: number) {
  const shape = defaultTiledShape(gpu);
  const WG_M = mode === 'tiled-narrow' ? 8 : shape.WG_M;
  const T = 8 * WG_M + 9;
  const I = 2 * 4 * shape.WG_N + 8 - (odd ? 1 : 0);
  const H = Math.max(2 * 8 * shape.WG_N, COMBINE_CONSTANTS.COMBINE_WG) + 8 - (odd ? 1 : 0);
  const p = buildProblem(gpu, { family: 'mixtral', H, I, E: 2, k: 2, dtype, seed }, { expertMode: mode, maxTokens: T, ringCapacity: T });
  return checkStep(gpu, p, T, policyWith(p.config, {}), seed + 1);
}

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
  for (const [dtype, mode, odd] of [
    ['f32', 'tiled', false], ['f32', 'tiled', true], ['bf16', 'tiled', false], ['bf16', 'tiled', true],
    ['f16', 'tiled', false], ['f32', 'tiled-narrow', false],
  ] as const) {
    it(`${dtype} ${mode}${odd ? ' (element-wise loads)' : ''}`, async () => checkTiled(await testGpu(), dtype, mode, odd, 50));
  }
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
    expectMutantFails(mutation('moe_combine', 'c += COMBINE_WG', 'c += 2u * COMBINE_WG'), (gpu) => checkTiled(gpu, 'f32', 'tiled', false, 54), /output/));
  it('tiled up: the up rows read from the gate rows', () =>
    expectMutantFails(mutation('moe_expert_up', 'let row = select(col, I + col, c >= TILE_COLS);', 'let row = col;'),
      (gpu) => checkTiled(gpu, 'f32', 'tiled', false, 51), /output/));
  it("tiled down: the second column group stores the first group's sums", () =>
    expectMutantFails(mutation('moe_expert_down', 'store_y(row, n0 + WG_N * 4u + local.x * 4u, acc[2u * i + 1u]);', 'store_y(row, n0 + WG_N * 4u + local.x * 4u, acc[2u * i]);'),
      (gpu) => checkTiled(gpu, 'f32', 'tiled', false, 52), /output/));
  it('tiled core: the next K slice stored over the one being multiplied', () =>
    expectMutantFails(mutation('lib/moe_expert_tile', 'if (more) { store_tile(lid, buf ^ 1u); }', 'if (more) { store_tile(lid, buf); }'),
      (gpu) => checkTiled(gpu, 'bf16', 'tiled', true, 53), /output/));
});
