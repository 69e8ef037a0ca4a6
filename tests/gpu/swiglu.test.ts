import { describe, expect, it } from 'vitest';
import { SWIGLU_CONSTANTS, SwigluKernel } from '../../src/engine/kernels/swiglu';
import { submitPass, uploadBuffer } from '../../src/engine/kernels/common';
import { swigluRef } from '../../src/reference/swiglu';
import { cappedGridCount, cappedGridGpu, expectClose, poisonedBuffer, readF32, testGpu } from '../support/gpu';
import { AWKWARD_SIZES, randomF32 } from '../support/random';
import { expectMutantFails, mutation } from '../support/mutant';
import type { Gpu } from '../../src/engine/gpu';

// f32 exp and one division: a few ulp.
const TOL = { atol: 1e-7, rtol: 1e-6 };

async function check(tokens: number, inter: number, seed: number, gpu?: Gpu, scale = 3) {
  gpu ??= await testGpu();
  const x = randomF32(tokens * 2 * inter, seed, scale);
  const kernel = new SwigluKernel(gpu);
  const out = poisonedBuffer(gpu, 'test.out', tokens * inter);
  const b = kernel.bind('test.swiglu', uploadBuffer(gpu, 'test.x', x), out);
  kernel.setShape(b, { tokens, inter });
  submitPass(gpu, 'test', (pass) => kernel.encode(pass, b, tokens));
  expectClose(await readF32(gpu, out, tokens * inter), swigluRef(x, tokens, inter), TOL, `swiglu ${tokens}x${inter}`);
  expect(gpu.recentErrors).toEqual([]);
}

describe('swiglu', () => {
  for (const tokens of AWKWARD_SIZES) {
    for (const inter of [1, 7, 33, 257, 1000]) {
      it(`${tokens}x${inter}`, () => check(tokens, inter, tokens * 1000 + inter));
    }
  }
  it('large |gate| saturates without NaN', () => check(7, 33, 4, undefined, 60));
  it('a capped grid: each thread strides over 2-3 elements', async () =>
    check(3, Math.ceil(cappedGridCount(SWIGLU_CONSTANTS.WORKGROUP) / 3), 5, await cappedGridGpu()));
  it('a broken kernel fails the check', async () => {
    // Reading up from the gate half: the classic fused-layout mistake.
    await expectMutantFails(mutation('swiglu', 'x[row + params.up_offset + c]', 'x[row + c]'), (broken) => check(7, 33, 3, broken), /outside atol/);
  });
  it('pinned: silu(0) = 0, silu(1)·2, silu(-1)·-1', async () => {
    const gpu = await testGpu();
    const kernel = new SwigluKernel(gpu);
    const out = poisonedBuffer(gpu, 'pin.out', 3);
    const b = kernel.bind('pin', uploadBuffer(gpu, 'pin.x', new Float32Array([0, 1, -1, 5, 2, -1])), out);
    kernel.setShape(b, { tokens: 1, inter: 3 });
    submitPass(gpu, 'pin', (pass) => kernel.encode(pass, b, 1));
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    expectClose(await readF32(gpu, out, 3), [0, 1 * sig(1) * 2, -1 * sig(-1) * -1], TOL);
  });
  it('strided rows: gate and up at custom offsets', async () => {
    const gpu = await testGpu();
    const tokens = 7, inter = 5, stride = 13, upOffset = 7;
    const x = randomF32(tokens * stride, 21, 2);
    const kernel = new SwigluKernel(gpu);
    const out = poisonedBuffer(gpu, 'stride.out', tokens * inter);
    const b = kernel.bind('stride', uploadBuffer(gpu, 'stride.x', x), out);
    kernel.setShape(b, { tokens, inter, xStride: stride, upOffset });
    submitPass(gpu, 'stride', (pass) => kernel.encode(pass, b, tokens));
    const packed = new Float32Array(tokens * 2 * inter);
    for (let t = 0; t < tokens; t++) {
      packed.set(x.subarray(t * stride, t * stride + inter), t * 2 * inter);
      packed.set(x.subarray(t * stride + upOffset, t * stride + upOffset + inter), t * 2 * inter + inter);
    }
    expectClose(await readF32(gpu, out, tokens * inter), swigluRef(packed, tokens, inter), TOL);
  });
});
