import { describe, expect, it } from 'vitest';
import {
  MATMUL_LARGE,
  MATMUL_MID,
  MatmulKernel,
  matmulAligned,
  type MatmulConfig,
  type WeightLayout,
} from '../../src/engine/kernels/matmul';
import { submitPass, uploadBuffer, storageBuffer } from '../../src/engine/kernels/common';
import { LinearKernel } from '../../src/engine/kernels/linear';
import { packWeights, type WeightDtype } from '../../src/model/dtypes';
import { matmulRef } from '../../src/reference/matmul';
import { POISON_BITS, expectClose, poisonedBuffer, readF32, testGpu } from '../support/gpu';
import { randomF32 } from '../support/random';
import { expectMutantFails, mutation } from '../support/mutant';
import type { Gpu } from '../../src/engine/gpu';

// f32 accumulation over K ≤ 257 of N(0,1)·N(0,1) products: sums ~ √K; rounding stays far below this.
const TOL = { atol: 1e-4, rtol: 1e-4 };

interface Case {
  M: number;
  K: number;
  N: number;
  dtype: WeightDtype;
  layout: WeightLayout;
  accumulate?: boolean;
  config: MatmulConfig;
  seed: number;
}

async function check(c: Case, gpu?: Gpu) {
  gpu ??= await testGpu();
  const { M, K, N, dtype, layout } = c;
  const x = randomF32(M * K, c.seed);
  const w = packWeights(randomF32(N * K, c.seed + 1), dtype);
  const aligned = matmulAligned(K, N, dtype, layout);
  const kernel = new MatmulKernel(gpu, { weightDtype: dtype, weightLayout: layout, aligned, accumulate: c.accumulate, ...c.config });
  let y: GPUBuffer;
  let y0: Float32Array | undefined;
  if (c.accumulate) {
    y0 = randomF32(M * N, c.seed + 2);
    y = uploadBuffer(gpu, 'test.y', y0);
  } else {
    y = poisonedBuffer(gpu, 'test.y', M * N);
  }
  const b = kernel.bind('test.matmul', uploadBuffer(gpu, 'test.x', x), uploadBuffer(gpu, 'test.w', w.words), y);
  kernel.setShape(b, { M, N, K });
  submitPass(gpu, 'test', (pass) => kernel.encode(pass, b, M, N));
  const what = `${c.config.shader} ${M}x${K}->${N} ${dtype} ${layout}${aligned ? ' aligned' : ''}${c.accumulate ? ' accumulate' : ''}`;
  expectClose(await readF32(gpu, y, M * N), matmulRef(x, w.rounded, M, K, N, layout, y0), TOL, what);
  expect(gpu.recentErrors).toEqual([]);
}

// [M, K, N]: not tile multiples; the first ones take the element-wise path, the last the 16-byte path.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [7, 33, 257],
  [65, 31, 129],
  [33, 257, 7],
  [130, 40, 136],
];

for (const config of [MATMUL_LARGE, MATMUL_MID]) {
  describe(`${config.shader} ${JSON.stringify(config.tile)}`, () => {
    for (const layout of ['nk', 'kn'] as const) {
      for (const [M, K, N] of SHAPES) {
        it(`${M}x${K}->${N} f32 ${layout}`, () => check({ M, K, N, dtype: 'f32', layout, config, seed: M * 7 + K * 3 + N }));
      }
      for (const dtype of ['f16', 'bf16'] as const) {
        it(`65x31->129 ${dtype} ${layout}`, () => check({ M: 65, K: 31, N: 129, dtype, layout, config, seed: 11 }));
        it(`33x48->136 ${dtype} ${layout} (aligned)`, () => check({ M: 33, K: 48, N: 136, dtype, layout, config, seed: 12 }));
      }
      it(`accumulate ${layout}`, () => check({ M: 33, K: 40, N: 20, dtype: 'f32', layout, accumulate: true, config, seed: 13 }));
    }
    it('several workgroups both ways', () => check({ M: 257, K: 24, N: 260, dtype: 'bf16', layout: 'nk', config, seed: 15 }));
  });
}

describe('matmul', () => {
  it('an 8-deep tile with half-precision weights (fewer weight units than threads)', () =>
    check({ M: 70, K: 33, N: 67, dtype: 'bf16', layout: 'nk', config: { shader: 'matmul', tile: { WG_M: 16, WG_N: 16, TILE_K: 8 } }, seed: 14 }));

  it('a broken matmul core (lib/matmul_core) fails the check (drops k = 7 of every tile)', async () => {
    await expectMutantFails(mutation('lib/matmul_core', 'multiply_k(tx, ty, 7u, both);', ''), (broken) => check({ M: 7, K: 40, N: 9, dtype: 'f32', layout: 'nk', config: MATMUL_LARGE, seed: 16 }, broken), /outside atol/);
  });

  it('a broken shared staging (lib/matmul_stage) fails the check (the last weight of each element-wise unit dropped)', () =>
    expectMutantFails(mutation('lib/matmul_stage', 'if (j < s.y) { vals[j] = w_elem(s.x + j); }', 'if (j + 1u < s.y) { vals[j] = w_elem(s.x + j); }'),
      (broken) => check({ M: 7, K: 33, N: 9, dtype: 'f32', layout: 'nk', config: MATMUL_LARGE, seed: 18 }, broken), /outside atol/));

  it('a broken matmul_kmajor fails the check (drops every fourth k)', async () => {
    await expectMutantFails(mutation('matmul_kmajor', 's = fma(a[i].w, b.w, s);', ''), (broken) => check({ M: 7, K: 40, N: 9, dtype: 'f32', layout: 'nk', config: MATMUL_MID, seed: 17 }, broken), /outside atol/);
  });

  it('pinned: [[1,2,3],[4,5,6]] · Wᵀ', async () => {
    const gpu = await testGpu();
    const kernel = new MatmulKernel(gpu, { weightDtype: 'f32', weightLayout: 'nk', aligned: false });
    const y = poisonedBuffer(gpu, 'pin.y', 4);
    const x = uploadBuffer(gpu, 'pin.x', new Float32Array([1, 2, 3, 4, 5, 6]));
    const w = uploadBuffer(gpu, 'pin.w', new Float32Array([1, 0, -1, 0.5, 0.5, 0.5])); // [2, 3]
    const b = kernel.bind('pin', x, w, y);
    kernel.setShape(b, { M: 2, N: 2, K: 3 });
    submitPass(gpu, 'pin', (pass) => kernel.encode(pass, b, 2, 2));
    expectClose(await readF32(gpu, y, 4), [-2, 3, -2, 7.5], { atol: 0, rtol: 0 });
  });
});

describe('LinearKernel', () => {
  it('picks GEMV for 1..16 rows and the tiled matmul above, on one binding', async () => {
    const gpu = await testGpu();
    const K = 44, N = 70, maxRows = 40;
    const x = randomF32(maxRows * K, 30);
    const w = packWeights(randomF32(N * K, 31), 'bf16');
    const y = poisonedBuffer(gpu, 'linear.y', maxRows * N);
    const linear = new LinearKernel(gpu);
    const b = linear.bind('linear', uploadBuffer(gpu, 'linear.x', x), uploadBuffer(gpu, 'linear.w', w.words), y, { K, N, maxRows, weightDtype: 'bf16' });
    expect([...b.gemv.keys()]).toEqual([1, 2, 4, 8, 16]);
    for (const rows of [3, 16, 17, 40]) {
      gpu.device.queue.writeBuffer(y, 0, new Uint32Array(maxRows * N).fill(POISON_BITS));
      submitPass(gpu, `linear.${rows}`, (pass) => linear.encode(pass, b, rows));
      const ref = matmulRef(x.subarray(0, rows * K), w.rounded, rows, K, N, 'nk');
      expectClose(await readF32(gpu, y, rows * N), ref, TOL, `linear ${rows} rows`);
    }
    expect(() => submitPass(gpu, 'linear.bad', (pass) => linear.encode(pass, b, 41))).toThrow(/rows must be 1..40/);
    expect(gpu.recentErrors).toEqual([]);
  });

  it('accumulates into y (residual fusion), W stored [K, N]', async () => {
    const gpu = await testGpu();
    const K = 16, N = 12, rows = 2;
    const x = randomF32(rows * K, 32);
    const w = randomF32(K * N, 33);
    const y0 = randomF32(rows * N, 34);
    const y = uploadBuffer(gpu, 'acc.y', y0);
    const linear = new LinearKernel(gpu);
    const b = linear.bind('acc', uploadBuffer(gpu, 'acc.x', x), uploadBuffer(gpu, 'acc.w', w), y, { K, N, maxRows: rows, weightDtype: 'f32', accumulate: true, weightLayout: 'kn' });
    submitPass(gpu, 'acc', (pass) => linear.encode(pass, b, rows));
    expectClose(await readF32(gpu, y, rows * N), matmulRef(x, w, rows, K, N, 'kn', y0), TOL, 'linear accumulate');
  });

  it('rejects a buffer too small for maxRows, naming it', async () => {
    const gpu = await testGpu();
    const small = storageBuffer(gpu, 'tiny.x', 16);
    const w = storageBuffer(gpu, 'tiny.w', 64 * 64 * 4);
    const y = storageBuffer(gpu, 'tiny.y', 64 * 4);
    expect(() => new LinearKernel(gpu).bind('tiny', small, w, y, { K: 64, N: 64, maxRows: 1, weightDtype: 'f32' })).toThrow(
      /tiny: buffer x \(tiny.x\) holds 16 bytes, needs 256/,
    );
  });
});
