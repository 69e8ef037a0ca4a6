import { describe, expect, it } from 'vitest';
import { RmsNormKernel } from '../../src/engine/kernels/rmsnorm';
import { submitPass, uploadBuffer } from '../../src/engine/kernels/common';
import { packWeights, type WeightDtype } from '../../src/model/dtypes';
import { rmsnormRef } from '../../src/reference/rmsnorm';
import { expectClose, poisonedBuffer, readF32, testGpu } from '../support/gpu';
import { AWKWARD_SIZES, randomF32 } from '../support/random';
import { expectMutantFails, mutation } from '../support/mutant';
import type { Gpu } from '../../src/engine/gpu';

const TOL = { atol: 1e-5, rtol: 1e-5 };

async function check(rows: number, cols: number, dtype: WeightDtype, seed: number, gpu?: Gpu) {
  gpu ??= await testGpu();
  const x = randomF32(rows * cols, seed, 2);
  const w = packWeights(randomF32(cols, seed + 1), dtype);
  const kernel = new RmsNormKernel(gpu, dtype);
  const out = poisonedBuffer(gpu, 'test.out', rows * cols);
  const b = kernel.bind('test.rmsnorm', uploadBuffer(gpu, 'test.x', x), uploadBuffer(gpu, 'test.w', w.words), out);
  kernel.setShape(b, { rows, cols, eps: 1e-6 });
  submitPass(gpu, 'test', (pass) => kernel.encode(pass, b, rows));
  expectClose(await readF32(gpu, out, rows * cols), rmsnormRef(x, w.rounded, rows, cols, 1e-6), TOL, `rmsnorm ${rows}x${cols} ${dtype}`);
  expect(gpu.recentErrors).toEqual([]);
}

describe('rmsnorm', () => {
  for (const rows of AWKWARD_SIZES) {
    for (const cols of [1, 7, 33, 257, 1000]) {
      it(`${rows}x${cols} f32`, () => check(rows, cols, 'f32', rows * 1000 + cols));
    }
  }
  for (const dtype of ['f16', 'bf16'] as const) {
    it(`33x257 ${dtype} weights`, () => check(33, 257, dtype, 5));
  }
  it('a broken kernel fails the check', async () => {
    await expectMutantFails(mutation('rmsnorm', 'partial[0] / f32(params.cols)', 'partial[0] / f32(params.cols + 1u)'), (broken) => check(7, 33, 'f32', 3, broken), /outside atol/);
  });
  it('pinned: a constant row normalises to the weight', async () => {
    const gpu = await testGpu();
    const kernel = new RmsNormKernel(gpu, 'f32');
    const out = poisonedBuffer(gpu, 'pin.out', 4);
    const b = kernel.bind('pin', uploadBuffer(gpu, 'pin.x', new Float32Array([3, 3, 3, 3])), uploadBuffer(gpu, 'pin.w', new Float32Array([1, 2, 0.5, -1])), out);
    kernel.setShape(b, { rows: 1, cols: 4, eps: 0 });
    submitPass(gpu, 'pin', (pass) => kernel.encode(pass, b, 1));
    expectClose(await readF32(gpu, out, 4), [1, 2, 0.5, -1], TOL);
  });
});
