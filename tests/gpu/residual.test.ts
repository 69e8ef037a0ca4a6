import { describe, expect, it } from 'vitest';
import { RESIDUAL_CONSTANTS, ResidualKernel } from '../../src/engine/kernels/residual';
import { submitPass, uploadBuffer } from '../../src/engine/kernels/common';
import { residualRef } from '../../src/reference/residual';
import { cappedGridCount, cappedGridGpu, expectClose, poisonedBuffer, readF32, testGpu } from '../support/gpu';
import { randomF32 } from '../support/random';
import { expectMutantFails, mutation } from '../support/mutant';
import type { Gpu } from '../../src/engine/gpu';

// One multiply and one add in f32 on inputs of magnitude ~1-4.
const TOL = { atol: 2e-6, rtol: 1e-6 };

async function check(count: number, scale: number, inPlace: boolean, seed: number, gpu?: Gpu) {
  gpu ??= await testGpu();
  const a = randomF32(count, seed);
  const bv = randomF32(count, seed + 1);
  const kernel = new ResidualKernel(gpu);
  const bBuf = uploadBuffer(gpu, 'test.b', bv);
  let result: GPUBuffer;
  if (inPlace) {
    result = uploadBuffer(gpu, 'test.acc', a);
    const r = kernel.bindInPlace('test.residual', result, bBuf);
    kernel.setShape(r, { count, scale });
    submitPass(gpu, 'test', (pass) => kernel.encode(pass, r, count));
  } else {
    result = poisonedBuffer(gpu, 'test.out', count);
    const r = kernel.bind('test.residual', uploadBuffer(gpu, 'test.a', a), bBuf, result);
    kernel.setShape(r, { count, scale });
    submitPass(gpu, 'test', (pass) => kernel.encode(pass, r, count));
  }
  expectClose(await readF32(gpu, result, count), residualRef(a, bv, scale), TOL, `residual n=${count} s=${scale}`);
  expect(gpu.recentErrors).toEqual([]);
}

describe('residual add', () => {
  for (const count of [1, 7, 33, 257, 4097, 70001]) {
    it(`n=${count} in place`, () => check(count, 1, true, count));
    it(`n=${count} into out, scale 0.22`, () => check(count, 0.22, false, count + 7));
  }
  it('Granite residual multiplier in place', () => check(1000, 0.22, true, 9));
  it('a capped grid: each thread strides over 2-3 elements, in place and into out', async () => {
    const gpu = await cappedGridGpu();
    const n = cappedGridCount(RESIDUAL_CONSTANTS.WORKGROUP);
    await check(n, 0.5, true, 31, gpu);
    await check(n, 0.5, false, 32, gpu);
  });
  it('a broken in-place kernel fails the check', async () => {
    await expectMutantFails(mutation('residual', 'acc[i] + params.scale * branch[i]', 'acc[i] + branch[i]'), (broken) => check(33, 0.5, true, 3, broken), /outside atol/);
  });
  it('a broken out-of-place kernel fails the check', async () => {
    await expectMutantFails(mutation('residual', /for \(var i = gid\.x; i < params\.count; i \+= groups\.x \* WORKGROUP\) \{\n    out/, 'for (var i = gid.x + 1u; i < params.count; i += groups.x * WORKGROUP) {\n    out'), (broken) => check(33, 1, false, 3, broken), /outside atol/);
  });
  it('pinned: [1, 2, 3] + 0.5·[2, -4, 6]', async () => {
    const gpu = await testGpu();
    const kernel = new ResidualKernel(gpu);
    const acc = uploadBuffer(gpu, 'pin.acc', new Float32Array([1, 2, 3]));
    const r = kernel.bindInPlace('pin', acc, uploadBuffer(gpu, 'pin.b', new Float32Array([2, -4, 6])));
    kernel.setShape(r, { count: 3, scale: 0.5 });
    submitPass(gpu, 'pin', (pass) => kernel.encode(pass, r, 3));
    expectClose(await readF32(gpu, acc, 3), [2, 0, 6], TOL);
  });
  it('refuses aliased bindings', async () => {
    const gpu = await testGpu();
    const kernel = new ResidualKernel(gpu);
    const x = uploadBuffer(gpu, 'x', new Float32Array(4));
    expect(() => kernel.bind('alias', x, x, x)).toThrow(/bindInPlace/);
    expect(() => kernel.bindInPlace('alias', x, x)).toThrow(/different buffers/);
  });
});
