import { describe, expect, it } from 'vitest';
import { BIAS_ADD_CONSTANTS, BiasAddKernel } from '../../src/engine/kernels/bias-add';
import { submitPass, uploadBuffer } from '../../src/engine/kernels/common';
import { packWeights, type WeightDtype } from '../../src/model/dtypes';
import type { Gpu } from '../../src/engine/gpu';
import { biasAddRef } from '../../src/reference/bias-add';
import { cappedGridCount, cappedGridGpu, expectClose, readF32, testGpu } from '../support/gpu';
import { expectMutantFails, mutation } from '../support/mutant';
import { AWKWARD_SIZES, randomF32 } from '../support/random';

const TOL = { atol: 1e-6, rtol: 1e-6 };

async function check(rows: number, cols: number, dtype: WeightDtype, seed: number, gpu?: Gpu) {
  gpu ??= await testGpu();
  const x = randomF32(rows * cols, seed);
  const bias = packWeights(randomF32(cols, seed + 1), dtype);
  const kernel = new BiasAddKernel(gpu, dtype);
  const xBuf = uploadBuffer(gpu, 'test.x', x); // in place: x is the output, so its old contents are the input
  const b = kernel.bind('test.bias', xBuf, uploadBuffer(gpu, 'test.bias', bias.words), cols);
  kernel.setRows(b, rows);
  submitPass(gpu, 'test', (pass) => kernel.encode(pass, b, rows));
  expectClose(await readF32(gpu, xBuf, rows * cols), biasAddRef(x, bias.rounded, rows, cols), TOL, `bias ${rows}x${cols} ${dtype}`);
  expect(gpu.recentErrors).toEqual([]);
}

describe('bias add', () => {
  for (const rows of AWKWARD_SIZES) for (const cols of [1, 33, 257]) it(`${rows}x${cols} f32`, () => check(rows, cols, 'f32', rows + cols));
  for (const dtype of ['f16', 'bf16'] as const) it(`7x33 ${dtype}`, () => check(7, 33, dtype, 9));
  it('a capped grid: each thread strides over 2-3 elements', async () =>
    check(3, Math.ceil(cappedGridCount(BIAS_ADD_CONSTANTS.WORKGROUP) / 3), 'bf16', 10, await cappedGridGpu()));
  it('only the first `rows` rows change', async () => {
    const gpu = await testGpu();
    const kernel = new BiasAddKernel(gpu, 'f32');
    const xBuf = uploadBuffer(gpu, 'pin.x', new Float32Array([1, 2, 3, 4, 5, 6]));
    const b = kernel.bind('pin', xBuf, uploadBuffer(gpu, 'pin.bias', new Float32Array([10, 20])), 2);
    kernel.setRows(b, 2);
    submitPass(gpu, 'pin', (pass) => kernel.encode(pass, b, 2));
    expectClose(await readF32(gpu, xBuf, 6), [11, 22, 13, 24, 5, 6], TOL);
  });
  it('a broken kernel fails the check', async () => {
    await expectMutantFails(mutation('bias_add', 'let c = i % params.cols;', 'let c = (i + 1u) % params.cols;'), (broken) => check(7, 33, 'f32', 3, broken), /outside atol/);
  });
});
