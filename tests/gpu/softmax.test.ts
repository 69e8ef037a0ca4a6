import { describe, expect, it } from 'vitest';
import { SoftmaxKernel } from '../../src/engine/kernels/softmax';
import { submitPass, uploadBuffer } from '../../src/engine/kernels/common';
import { softmaxRef } from '../../src/reference/softmax';
import { expectClose, poisonedBuffer, readF32, testGpu } from '../support/gpu';
import { AWKWARD_SIZES, randomF32 } from '../support/random';
import { expectMutantFails, mutation } from '../support/mutant';
import type { Gpu } from '../../src/engine/gpu';

// exp of f32 arguments up to ~|20| (relative error grows with the argument's rounding) and an f32 sum.
const TOL = { atol: 1e-9, rtol: 2e-6 };

async function check(rows: number, cols: number, temperature: number, seed: number, gpu?: Gpu, scale = 3) {
  gpu ??= await testGpu();
  const x = randomF32(rows * cols, seed, scale);
  const kernel = new SoftmaxKernel(gpu);
  const out = poisonedBuffer(gpu, 'test.out', rows * cols);
  const b = kernel.bind('test.softmax', uploadBuffer(gpu, 'test.x', x), out);
  kernel.setShape(b, { rows, cols, temperature });
  submitPass(gpu, 'test', (pass) => kernel.encode(pass, b, rows));
  const what = `softmax ${rows}x${cols} T=${temperature}`;
  expectClose(await readF32(gpu, out, rows * cols), softmaxRef(x, rows, cols, temperature), TOL, what);
  expect(gpu.recentErrors).toEqual([]);
}

describe('softmax', () => {
  for (const rows of AWKWARD_SIZES) {
    for (const cols of [1, 7, 33, 257, 1000]) {
      it(`${rows}x${cols}`, () => check(rows, cols, 1, rows * 1000 + cols));
    }
  }
  it('temperature 0.5 and 2', async () => {
    await check(7, 257, 0.5, 5);
    await check(7, 257, 2, 6);
  });
  it('a long row (32000 columns, a vocabulary)', () => check(2, 32000, 0.8, 7));
  it('large logits do not overflow', () => check(3, 100, 1, 8, undefined, 300));
  it('a broken kernel fails the check', async () => {
    // Forgetting to rescale the running sum when the running max grows.
    await expectMutantFails(mutation('softmax', 's = s * exp(m - v) + 1.0;', 's = s + 1.0;'), (broken) => check(7, 257, 1, 3, broken), /outside atol/);
  });
  it('pinned: [0, ln 3, -inf] -> [1/4, 3/4, 0]; rows at a stride', async () => {
    const gpu = await testGpu();
    const kernel = new SoftmaxKernel(gpu);
    const out = poisonedBuffer(gpu, 'pin.out', 8);
    const x = new Float32Array([0, Math.log(3), -Infinity, 99, 1, 1, 1, 99]);
    const b = kernel.bind('pin', uploadBuffer(gpu, 'pin.x', x), out);
    kernel.setShape(b, { rows: 2, cols: 3, stride: 4 });
    submitPass(gpu, 'pin', (pass) => kernel.encode(pass, b, 2));
    const got = await readF32(gpu, out, 8);
    expectClose([got[0], got[1], got[2], got[4], got[5], got[6]], [0.25, 0.75, 0, 1 / 3, 1 / 3, 1 / 3], TOL);
    // The gap between rows is left alone.
    expect(Number.isNaN(got[3]) && Number.isNaN(got[7])).toBe(true);
  });
});
