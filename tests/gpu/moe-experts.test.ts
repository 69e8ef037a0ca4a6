// The grouped expert kernels (and the router and combine around them) on shapes taken from their tiling constants,
// so that every loop and every tail runs:
//   gemv (decode): each of GEMV_LANES lanes strides over K in units of UK weights, two units per iteration, while
//     k + LANES·UK < K; then one tail unit. K = 4.5·LANES·UK runs the loop twice for every lane and the tail for half
//     of them (128 < K for f32, 256 < K for f16/bf16 before the loop runs at all). Rows come in tiles of GEMV_ROWS;
//     columns in workgroups of GEMV_GROUPS. The router's logits loop has the same shape over H (ROUTER_LANES).
//   combine: COMBINE_WG threads per token stride over H.
//   tiled (prefill): rows in tiles of TILE_M = 8·WG_M per expert, up's columns in 4·WG_N, down's in 8·WG_N (its
//     second 4·WG_N-column group only exists past 4·WG_N), K in double-buffered slices of TILE_K.
import { describe, expect, it } from 'vitest';
import { GEMV_LANES, GEMV_ROWS, defaultTiledShape, weightsPerUnit } from '../../src/engine/kernels/moe-expert';
import { COMBINE_CONSTANTS } from '../../src/engine/kernels/moe-combine';
import { ROUTER_LANES } from '../../src/engine/kernels/moe-router';
import type { WeightDtype } from '../../src/model/dtypes';
import type { Gpu } from '../../src/engine/gpu';
import type { ExpertVariant } from '../../src/engine/routing/moe-layer';
import { testGpu } from '../support/gpu';
import { buildProblem, checkStep, policyWith } from '../support/moe';
import { expectMutantFails, mutation, type Mutation } from '../support/mutant';

/** K that runs the gemv (and router) main loop twice per lane and the tail unit for half of the lanes. */
function gemvLoopK(dtype: WeightDtype): number {
  const step = Math.max(GEMV_LANES, ROUTER_LANES) * weightsPerUnit(dtype);
  return 4 * step + step / 2;
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
        const ref = await checkGemv(await testGpu(), kernel, dtype, 40);
        expect(Math.min(...ref.counts), 'each expert has a full and a partial row tile').toBe(2 * GEMV_ROWS + 3);
      });
    }
  }
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
    ['up', mutation('moe_expert_up_gemv', 'fma_unit(g1, u1, k + step, nrows);', '')],
    ['down', mutation('moe_expert_down_gemv', 'fma_unit(w1, hb, K, k + step, nrows);', '')],
  ];
  for (const [kernel, m] of gemvMutants) {
    for (const dtype of ['f32', 'bf16'] as const) {
      it(`gemv ${kernel}: the second unit of each main-loop iteration dropped (${dtype})`, () =>
        expectMutantFails(m, (gpu) => checkGemv(gpu, kernel, dtype, 41), /output/));
    }
  }
  it('router: the second unit of each logits-loop iteration dropped (f32)', () =>
    expectMutantFails(mutation('moe_router', 'dot_units(w1, t0, h + step, ntok);', ''), (gpu) => checkGemv(gpu, 'up', 'f32', 42), /chosen/));
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
