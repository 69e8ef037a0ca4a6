import { describe, expect, it } from 'vitest';
import { GEMV_TILE_NK, GEMV_TILE_NK_4ROWS, GEMV_TILE_NK_MANY_ROWS, GemvKernel, gemvAligned, gemvBucket, gemvDenseTile, gemvNormFits, type GemvTile } from '../../src/engine/kernels/gemv';
import type { WeightLayout } from '../../src/engine/kernels/matmul';
import { submitPass, uploadBuffer } from '../../src/engine/kernels/common';
import { packWeights, type WeightDtype } from '../../src/model/dtypes';
import { matmulRef, rmsnormLinearRef } from '../../src/reference/matmul';
import { expectClose, poisonedBuffer, readF32, testGpu } from '../support/gpu';
import { randomF32 } from '../support/random';
import { expectMutantFails, mutation } from '../support/mutant';
import type { Gpu } from '../../src/engine/gpu';

const TOL = { atol: 1e-4, rtol: 1e-4 };

interface Case {
  rows: number;
  K: number;
  N: number;
  dtype: WeightDtype;
  layout: WeightLayout;
  accumulate?: boolean;
  /** accumulate's multiplier (default 1). */
  alpha?: number;
  tile?: GemvTile;
  seed: number;
}

async function check(c: Case, gpu?: Gpu) {
  gpu ??= await testGpu();
  const { rows, K, N, dtype, layout } = c;
  const x = randomF32(rows * K, c.seed);
  const w = packWeights(randomF32(N * K, c.seed + 1), dtype);
  const aligned = gemvAligned(K, N, dtype, layout);
  const kernel = new GemvKernel(gpu, { weightDtype: dtype, weightLayout: layout, rows: gemvBucket(rows), aligned, accumulate: c.accumulate, tile: c.tile });
  let y: GPUBuffer;
  let y0: Float32Array | undefined;
  if (c.accumulate) {
    y0 = randomF32(rows * N, c.seed + 2);
    y = uploadBuffer(gpu, 'test.y', y0);
  } else {
    y = poisonedBuffer(gpu, 'test.y', rows * N);
  }
  const b = kernel.bind('test.gemv', uploadBuffer(gpu, 'test.x', x), uploadBuffer(gpu, 'test.w', w.words), y);
  kernel.setShape(b, { rows, N, K, alpha: c.alpha });
  submitPass(gpu, 'test', (pass) => kernel.encode(pass, b, N));
  const what = `gemv ${rows}x${K}->${N} ${dtype} ${layout}${aligned ? ' aligned' : ''}${c.accumulate ? ` accumulate ×${c.alpha ?? 1}` : ''}`;
  expectClose(await readF32(gpu, y, rows * N), matmulRef(x, w.rounded, rows, K, N, layout, y0, c.alpha), TOL, what);
  expect(gpu.recentErrors).toEqual([]);
}

describe('gemv', () => {
  for (const layout of ['nk', 'kn'] as const) {
    // Every row count 1..16 (five compiled buckets), element-wise path (K = 33 is odd).
    for (let rows = 1; rows <= 16; rows++) {
      it(`${rows} rows, 33->257 f32 ${layout}`, () => check({ rows, K: 33, N: 257, dtype: 'f32', layout, seed: rows }));
    }
    // 16-byte path, f32 / f16 / bf16, sizes past the tile.
    for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      it(`1 row, 264->136 ${dtype} ${layout} (aligned)`, () => check({ rows: 1, K: 264, N: 136, dtype, layout, seed: 20 }));
      it(`7 rows, 40->33 ${dtype} ${layout}`, () => check({ rows: 7, K: 40, N: 33, dtype, layout, seed: 21 }));
      it(`16 rows, 31->7 ${dtype} ${layout}`, () => check({ rows: 16, K: 31, N: 7, dtype, layout, seed: 22 }));
    }
    it(`accumulate ${layout}`, () => check({ rows: 3, K: 64, N: 72, dtype: 'bf16', layout, accumulate: true, seed: 23 }));
    it(`accumulate ×0.6 (a fused residual add with Granite's multiplier) ${layout}`, () =>
      check({ rows: 1, K: 264, N: 136, dtype: 'bf16', layout, accumulate: true, alpha: 0.6, seed: 28 }));
  }
  it('non-default tile (NT 4, WG_K 8)', () => check({ rows: 5, K: 96, N: 45, dtype: 'f32', layout: 'nk', tile: { WG_K: 8, WG_N: 8, NT: 4 }, seed: 24 }));

  // W_NK: each of a tile's WG_K threads strides over a row's 16-byte units (K / UK of them), or over its elements when
  // unaligned. The tile is chosen from the shape (gemvDenseTile): on a GPU WG_K grows with the row up to the row
  // bucket's widest tile, so K = 2.5 · that WG_K units (or elements + 1) gives every thread two or three passes; on a
  // software adapter a thread takes 8 or more units of any row. Both choices run here, on this adapter.
  const widest = (rows: number) => (rows <= 2 ? GEMV_TILE_NK : rows <= 4 ? GEMV_TILE_NK_4ROWS : GEMV_TILE_NK_MANY_ROWS);
  const loopK = (rows: number, dtype: WeightDtype, aligned: boolean) => {
    const { WG_K } = widest(rows);
    return aligned ? 2.5 * WG_K * (dtype === 'f32' ? 4 : 8) : 2 * WG_K + 1;
  };
  const denseTile = (software: boolean, rows: number, K: number, N: number, dtype: WeightDtype) =>
    gemvDenseTile({ weightLayout: 'nk', rows: gemvBucket(rows), K, N, weightDtype: dtype, aligned: gemvAligned(K, N, dtype, 'nk'), software });
  for (const software of [false, true]) {
    const adapter = software ? 'software-adapter tile' : 'GPU tile';
    for (const rows of [1, 4, 16]) {
      for (const dtype of ['f32', 'f16', 'bf16'] as const) {
        for (const aligned of [true, false]) {
          const K = loopK(rows, dtype, aligned);
          const tile = denseTile(software, rows, K, 9, dtype);
          it(`${adapter}, ${rows} rows, K = ${K} (${aligned ? '16-byte units' : 'elements'}): ${tile.WG_K} threads stride over K, ${dtype}`, () =>
            check({ rows, K, N: 9, dtype, layout: 'nk', tile, seed: 26 + rows }));
        }
      }
    }
    // The tile a short row gets (the demo model's: K 256 bf16, 32 units, N 4096), run on rows shorter than, as long
    // as, and longer than its WG_K units, and on N with a ragged last block and fewer outputs than one block.
    const demo = denseTile(software, 1, 256, 4096, 'bf16');
    const blockN = demo.WG_N * demo.NT;
    for (const units of [Math.max(1, demo.WG_K - 1), demo.WG_K, 2 * demo.WG_K + 1]) {
      for (const N of [2 * blockN + 1, Math.max(1, blockN - 3)]) {
        it(`${adapter} of a short row ${JSON.stringify(demo)}: K = ${8 * units} (${units} units), N = ${N}, bf16`, () =>
          check({ rows: 1, K: 8 * units, N, dtype: 'bf16', layout: 'nk', tile: demo, seed: units + N }));
      }
    }
    it(`${adapter} chosen for the demo model's shapes, 1 and 8 rows, accumulating`, async () => {
      for (const [rows, K, N] of [[1, 256, 4096], [1, 256, 256], [8, 256, 4096], [8, 160, 256]]) {
        await check({ rows, K, N, dtype: 'bf16', layout: 'nk', accumulate: true, alpha: 0.5, tile: denseTile(software, rows, K, N, 'bf16'), seed: rows + K });
      }
    });
  }
  it('a broken kernel fails the check (f32 16-byte loop: every other pass skipped)', () =>
    expectMutantFails(mutation('gemv', 'for (var u = tk; u < units; u += WG_K) {', 'for (var u = tk; u < units; u += 2u * WG_K) {'),
      (broken) => check({ rows: 1, K: loopK(1, 'f32', true), N: 9, dtype: 'f32', layout: 'nk', seed: 27 }, broken), /outside atol/));

  it('a broken kernel fails the check (accumulate ignores alpha)', () =>
    expectMutantFails(mutation('gemv', '+ params.alpha * v;', '+ v;'),
      (broken) => check({ rows: 1, K: 64, N: 9, dtype: 'f32', layout: 'nk', accumulate: true, alpha: 0.6, seed: 29 }, broken), /outside atol/));

  it('a broken kernel fails the check (outputs of a several-column workgroup stored column-major)', () =>
    expectMutantFails(mutation('gemv', 'store_y(r0 + i, n0 + t_n * E + j, sum);', 'store_y(r0 + i, n0 + j * WG_N + t_n, sum);'),
      (broken) => check({ rows: 1, K: 256, N: 4096, dtype: 'bf16', layout: 'nk', tile: denseTile(false, 1, 256, 4096, 'bf16'), seed: 30 }, broken), /outside atol/));

  it('a broken kernel fails the check (one row: the fourth output of a 4-output thread never summed)', () =>
    expectMutantFails(mutation('gemv', 'if (NT > 3u) { a.w +=', 'if (NT > 4u) { a.w +='),
      (broken) => check({ rows: 1, K: 256, N: 4096, dtype: 'bf16', layout: 'nk', tile: denseTile(true, 1, 256, 4096, 'bf16'), seed: 32 }, broken), /outside atol/));

  it('a broken kernel fails the check (drops the last partial sum)', async () => {
    await expectMutantFails(mutation('gemv', 'for (var t = 0u; t < WG_K; t++)', 'for (var t = 1u; t < WG_K; t++)'), (broken) => check({ rows: 2, K: 64, N: 9, dtype: 'f32', layout: 'nk', seed: 25 }, broken), /outside atol/);
  });

  it('more output blocks than one grid dimension allows (an lm head over a Qwen-size vocabulary) use a 2D grid', async () => {
    const gpu = await testGpu();
    // The smallest tile (one thread, two outputs), so the grid passes the limit at a size SwiftShader runs quickly.
    const tile = { WG_K: 1, WG_N: 1, NT: 2 };
    const probe = new GemvKernel(gpu, { weightDtype: 'bf16', weightLayout: 'nk', rows: 1, aligned: false, tile });
    // Past the 65535-workgroup limit of one dimension, with a ragged last block and an overhanging grid row.
    const N = probe.blockN * (gpu.limits.maxComputeWorkgroupsPerDimension + 3) + 1;
    await check({ rows: 1, K: 6, N, dtype: 'bf16', layout: 'nk', tile, seed: 26 });
  });

  it('pinned: one row times a 3x4 weight', async () => {
    const gpu = await testGpu();
    const kernel = new GemvKernel(gpu, { weightDtype: 'f32', weightLayout: 'nk', rows: 1, aligned: true });
    const y = poisonedBuffer(gpu, 'pin.y', 3);
    const x = uploadBuffer(gpu, 'pin.x', new Float32Array([1, 2, 3, 4]));
    const w = uploadBuffer(gpu, 'pin.w', new Float32Array([1, 1, 1, 1, 0, 0, 0, 1, -1, 0.5, 0, 0])); // [3, 4]
    const b = kernel.bind('pin', x, w, y);
    kernel.setShape(b, { rows: 1, N: 3, K: 4 });
    submitPass(gpu, 'pin', (pass) => kernel.encode(pass, b, 3));
    expectClose(await readF32(gpu, y, 3), [10, 4, 0], { atol: 0, rtol: 0 });
  });
});

// main_norm: the RMSNorm of x folded in. One row on the 1-row tile (WG_K threads): K past 4·WG_K runs the prologue's
// loops over the row's 16-byte units more than once, K odd leaves a ragged last unit, N odd a ragged output block.
async function checkNormed(c: { K: number; N: number; dtype: WeightDtype; software?: boolean; seed: number }, gpu?: Gpu) {
  gpu ??= await testGpu();
  const { K, N, dtype } = c;
  const aligned = gemvAligned(K, N, dtype, 'nk');
  const tile = c.software === undefined ? undefined : gemvDenseTile({ weightLayout: 'nk', rows: 1, K, N, weightDtype: dtype, aligned, software: c.software });
  const x = randomF32(K, c.seed, 3);
  const w = packWeights(randomF32(N * K, c.seed + 1), dtype);
  const g = packWeights(randomF32(K, c.seed + 2, 1), dtype);
  const eps = 1e-5;
  const kernel = new GemvKernel(gpu, { weightDtype: dtype, weightLayout: 'nk', rows: 1, aligned, normK: K, N, tile });
  const y = poisonedBuffer(gpu, 'test.y', N);
  const b = kernel.bind('test.gemvNorm', uploadBuffer(gpu, 'test.x', x), uploadBuffer(gpu, 'test.w', w.words), y, uploadBuffer(gpu, 'test.g', g.words));
  kernel.setShape(b, { rows: 1, N, K, eps });
  submitPass(gpu, 'test', (pass) => kernel.encode(pass, b, N));
  expectClose(await readF32(gpu, y, N), rmsnormLinearRef(x, g.rounded, eps, w.rounded, K, N), TOL, `gemv with norm ${K}->${N} ${dtype}`);
  expect(gpu.recentErrors).toEqual([]);
}

describe('gemv with the RMSNorm of x folded in (main_norm)', () => {
  const { WG_K } = GEMV_TILE_NK;
  for (const software of [false, true]) {
    for (const [K, dtype] of [[10 * WG_K, 'f32'], [20 * WG_K, 'bf16'], [2 * WG_K + 1, 'f16'], [7, 'f32'], [264, 'bf16']] as [number, WeightDtype][]) {
      it(`${software ? 'software-adapter' : 'GPU'} tile, K = ${K}, N = 9, ${dtype}`, () => checkNormed({ K, N: 9, dtype, software, seed: K }));
    }
    it(`${software ? 'software-adapter' : 'GPU'} tile of the demo model's q/k/v projection: K 256, N 512, bf16`, () =>
      checkNormed({ K: 256, N: 512, dtype: 'bf16', software, seed: 31 }));
  }
  it('refuses what it cannot do: several rows, a row too long for workgroup memory', async () => {
    const gpu = await testGpu();
    expect(gemvNormFits(gpu, { weightDtype: 'bf16', weightLayout: 'nk', rows: 2, normK: 64 })).toBe(false);
    const tooLong = gpu.limits.maxComputeWorkgroupStorageSize / 4;
    expect(gemvNormFits(gpu, { weightDtype: 'bf16', weightLayout: 'nk', rows: 1, normK: tooLong })).toBe(false);
    expect(gemvNormFits(gpu, { weightDtype: 'bf16', weightLayout: 'nk', rows: 1, normK: 2048 })).toBe(true);
  });
  it('a norm whose sum of squares misses the last step of the tree fails', () =>
    expectMutantFails(mutation('gemv', 'for (var s = WG_SIZE / 2u; s > 0u; s >>= 1u) {', 'for (var s = WG_SIZE / 2u; s > 1u; s >>= 1u) {'),
      (broken) => checkNormed({ K: 10 * WG_K, N: 9, dtype: 'f32', seed: 3 }, broken), /outside atol/));
});
