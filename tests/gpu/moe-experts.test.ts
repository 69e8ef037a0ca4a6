// The grouped expert kernels (and the router and combine around them) on shapes taken from their tiling constants,
// so that every loop and every tail runs:
//   gemv (decode): tiles of R = 1, 2, 4 or 8 rows by the step's tokens (gemvTileRows), each with its own thread layout
//     (expertGemvTile): WG_K threads stride over K in units of UK weights, at most 256 of them. K = 549 units runs
//     three to nine passes (by layout) with a last pass for some threads only; one element less takes the element-wise
//     loop. The steps T = 1, 2, 3, 5, 19 run every bucket, with all, some (3 of 4, 5 of 8) and a full and a partial
//     tile of rows. Columns come in workgroups of WG_N·NT (19 columns leave a partial one). The router's logits loop
//     has the same shape over H (ROUTER_LANES lanes, two units per iteration and a tail).
//   combine: COMBINE_WG threads per token stride over H.
//   tiled (prefill): rows in tiles of TILE_M = 8·WG_M per expert, up's columns in 4·WG_N, down's in 8·WG_N (its
//     second 4·WG_N-column group only exists past 4·WG_N), K in double-buffered slices of TILE_K.
import { describe, expect, it } from 'vitest';
import { ExpertMatmulKernel, GEMV_ROWS, GEMV_ROW_BUCKETS, defaultTiledShape, expertGemvTile, gemvRowUnits, gemvTileRows } from '../../src/engine/kernels/moe-expert';
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
 * 2 experts, k = 2, so each expert has T rows. The reduction length of `kernel` is gemvLoopK (up reduces over H, down
 * over I); the other dimension is 19 columns, the element-wise loop in the other kernel.
 */
function gemvProblem(gpu: Gpu, kernel: 'up' | 'down', dtype: WeightDtype, seed: number, o: { odd?: boolean; family?: Family } = {}): Problem {
  const K = gemvLoopK(dtype, o.odd);
  const [H, I] = kernel === 'up' ? [K, 19] : [19, K];
  return buildProblem(gpu, { family: o.family ?? 'mixtral', H, I, E: 2, k: 2, dtype, seed }, { expertMode: 'gemv', maxTokens: Math.max(...GEMV_STEPS), ringCapacity: 64 });
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
  return buildProblem(gpu, { family: 'mixtral', H, I, E: 2, k: 2, seed }, { expertMode: 'gemv', quantExperts: format, maxTokens: GEMV_ROWS + 3, ringCapacity: 64 });
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
