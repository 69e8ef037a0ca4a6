import { describe, expect, it } from 'vitest';
import { ROPE_CONSTANTS, RopeKernel } from '../../src/engine/kernels/rope';
import { ropeInvFreq, ropeTables } from '../../src/model/rope';
import { submitPass, uploadBuffer } from '../../src/engine/kernels/common';
import { ropeRef } from '../../src/reference/rope';
import { cappedGridCount, cappedGridGpu, expectClose, readF32, testGpu } from '../support/gpu';
import { randomF32 } from '../support/random';
import { expectMutantFails, mutation } from '../support/mutant';
import type { Gpu } from '../../src/engine/gpu';

// Against the reference with transformers' f32 angles: only sin/cos (~1e-7) and the f32 rotation round.
const TOL = { atol: 1e-6, rtol: 1e-6 };
// Against exact float64 angles: the f32 angle itself is off by up to ~ulp(angle) (position 4096: 4.9e-4 rad, from
// the product's rounding and inv_freq's), which moves outputs by up to that times the pair's norm (|x| ≲ 4 here).
// transformers has the same error; this bound documents it.
const F64_ANGLE_TOL = { atol: 3e-3, rtol: 0 };

interface Case {
  tokens: number;
  qHeads: number;
  kHeads: number;
  headDim: number;
  startPos: number;
  theta: number;
  seed: number;
}

async function run(c: Case, gpu: Gpu) {
  const q = randomF32(c.tokens * c.qHeads * c.headDim, c.seed);
  const k = randomF32(c.tokens * c.kHeads * c.headDim, c.seed + 1);
  const invFreq = ropeInvFreq(c.headDim, c.theta);
  const kernel = new RopeKernel(gpu);
  const qBuf = uploadBuffer(gpu, 'test.q', q);
  const kBuf = uploadBuffer(gpu, 'test.k', k);
  const b = kernel.bind('test.rope', uploadBuffer(gpu, 'test.invFreq', invFreq), qBuf, kBuf, {
    qHeads: c.qHeads,
    kHeads: c.kHeads,
    headDim: c.headDim,
  });
  kernel.setShape(b, { tokens: c.tokens, startPos: c.startPos });
  submitPass(gpu, 'test', (pass) => kernel.encode(pass, b, c.tokens));
  return { q, k, invFreq, gotQ: await readF32(gpu, qBuf, q.length), gotK: await readF32(gpu, kBuf, k.length) };
}

async function check(c: Case, gpu?: Gpu) {
  gpu ??= await testGpu();
  const r = await run(c, gpu);
  const what = `rope T=${c.tokens} d=${c.headDim} pos=${c.startPos}`;
  const ref = (x: Float32Array, heads: number, f32Angles: boolean) =>
    ropeRef(x, c.tokens, heads, c.headDim, c.startPos, r.invFreq, { f32Angles });
  expectClose(r.gotQ, ref(r.q, c.qHeads, true), TOL, `${what} q`);
  expectClose(r.gotK, ref(r.k, c.kHeads, true), TOL, `${what} k`);
  expectClose(r.gotQ, ref(r.q, c.qHeads, false), F64_ANGLE_TOL, `${what} q vs exact angles`);
  expect(gpu.recentErrors).toEqual([]);
}

describe('rope', () => {
  for (const headDim of [16, 64, 128]) {
    for (const [tokens, startPos] of [[1, 0], [7, 5], [33, 0], [3, 4093]]) {
      it(`d=${headDim} T=${tokens} from ${startPos}`, () =>
        check({ tokens, qHeads: 4, kHeads: 2, headDim, startPos, theta: 10000, seed: headDim * 100 + tokens }));
    }
  }
  it('theta 1e6 (Qwen3-MoE), 7 q heads and 1 kv head, positions past 4096', () =>
    check({ tokens: 7, qHeads: 7, kHeads: 1, headDim: 64, startPos: 6000, theta: 1e6, seed: 9 }));
  it('a capped grid: each thread strides over 2-3 rotation pairs', async () => {
    const [qHeads, kHeads, headDim] = [4, 2, 64];
    const tokens = Math.ceil(cappedGridCount(ROPE_CONSTANTS.WORKGROUP) / ((qHeads + kHeads) * headDim / 2));
    await check({ tokens, qHeads, kHeads, headDim, startPos: 3, theta: 10000, seed: 12 }, await cappedGridGpu());
  });
  it('a long prefill: T=257', () => check({ tokens: 257, qHeads: 2, kHeads: 1, headDim: 16, startPos: 0, theta: 10000, seed: 10 }));
  it('a broken kernel fails the check', async () => {
    await expectMutantFails(mutation('rope', 'q[a] = x1 * sc.y - x2 * sc.x;', 'q[a] = x1 * sc.y + x2 * sc.x;'), (broken) => check({ tokens: 7, qHeads: 2, kHeads: 1, headDim: 16, startPos: 5, theta: 10000, seed: 3 }, broken), /outside atol/);
  });
  it('sincos stays accurate at position 50000', async () => {
    // Looser than TOL: the f32 reduction constant's second part is no longer exact at j ≈ 2^15 (see the shader).
    const gpu = await testGpu();
    const c = { tokens: 2, qHeads: 1, kHeads: 0, headDim: 16, startPos: 50000, theta: 10000, seed: 4 };
    const r = await run(c, gpu);
    expectClose(r.gotQ, ropeRef(r.q, 2, 1, 16, 50000, r.invFreq, { f32Angles: true }), { atol: 1e-5, rtol: 0 });
  });
  it('fused qkv buffer: q and k heads rotated through one binding, v and padding untouched', async () => {
    const gpu = await testGpu();
    const T = 5, H = 4, KV = 2, d = 16, row = (H + 2 * KV) * d + 3; // 3 padding elements per row
    const x = randomF32(T * row, 12);
    const invFreq = ropeInvFreq(d, 10000);
    const kernel = new RopeKernel(gpu);
    const buf = uploadBuffer(gpu, 'fused.qkv', x);
    const b = kernel.bind('fused.rope', uploadBuffer(gpu, 'fused.invFreq', invFreq), buf, null, {
      qHeads: H + KV,
      kHeads: 0,
      headDim: d,
      qStride: row,
    });
    kernel.setShape(b, { tokens: T, startPos: 17 });
    submitPass(gpu, 'fused', (pass) => kernel.encode(pass, b, T));
    const got = await readF32(gpu, buf, T * row);
    const expected = Float64Array.from(x);
    for (let t = 0; t < T; t++) {
      const qk = ropeRef(x.subarray(t * row, t * row + (H + KV) * d), 1, H + KV, d, 17 + t, invFreq, { f32Angles: true });
      expected.set(qk, t * row);
    }
    expectClose(got, expected, TOL);
  });
  async function strided(gpu: Gpu, interleaved: boolean) {
    // DeepSeek's layout: each q head is [nope | rope], the rope part rotated; one k head inside a [latent | rope] row.
    const T = 7, H = 3, nope = 5, d = 16, qRow = H * (nope + d), kRow = 9 + d;
    const q = randomF32(T * qRow, 21), k = randomF32(T * kRow, 22);
    const { invFreq, attentionFactor } = ropeTables(
      { type: 'yarn', factor: 40, originalMaxPositions: 64, betaFast: 32, betaSlow: 1, attentionFactor: null, mscale: null, mscaleAllDim: null, truncate: true },
      d, 10000,
    );
    const kernel = new RopeKernel(gpu);
    const qBuf = uploadBuffer(gpu, 'strided.q', q), kBuf = uploadBuffer(gpu, 'strided.k', k);
    const b = kernel.bind('strided.rope', uploadBuffer(gpu, 'strided.invFreq', invFreq), qBuf, kBuf, {
      qHeads: H, kHeads: 1, headDim: d, qStride: qRow, qOffset: nope, qHeadStride: nope + d, kStride: kRow, kOffset: 9,
      scaling: attentionFactor, interleaved,
    });
    kernel.setShape(b, { tokens: T, startPos: 61 });
    submitPass(gpu, 'strided', (pass) => kernel.encode(pass, b, T));
    const wantQ = Float64Array.from(q), wantK = Float64Array.from(k);
    const opts = { f32Angles: true, scaling: attentionFactor, interleaved };
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        const at = t * qRow + h * (nope + d) + nope;
        wantQ.set(ropeRef(q.subarray(at, at + d), 1, 1, d, 61 + t, invFreq, opts), at);
      }
      wantK.set(ropeRef(k.subarray(t * kRow + 9, (t + 1) * kRow), 1, 1, d, 61 + t, invFreq, opts), t * kRow + 9);
    }
    const gotQ = await readF32(gpu, qBuf, q.length), gotK = await readF32(gpu, kBuf, k.length);
    expect(gpu.recentErrors).toEqual([]); // before the numbers: a mutant must compile and run cleanly
    expectClose(gotQ, wantQ, TOL, 'strided q');
    expectClose(gotK, wantK, TOL, 'strided k');
  }
  it('strided heads (DeepSeek q: nope then rope per head; k inside the latent row), YaRN factor, rotate_half pairs', async () =>
    strided(await testGpu(), false));
  it('the same with interleaved pairs (DeepSeek-V2 complex form, V3 rope_interleave)', async () => strided(await testGpu(), true));
  it('a broken pairing fails the interleaved check', async () => {
    await expectMutantFails(mutation('rope', 'let gap = select(half, 1u, params.interleaved == 1u);', 'let gap = select(half, half, params.interleaved == 1u);'), (broken) => strided(broken, true), /outside atol/);
  });
  it('pinned: d=4, theta 10000, position 1 rotates pair 0 by 1 rad and pair 1 by 0.01 rad', async () => {
    const gpu = await testGpu();
    expect(Array.from(ropeInvFreq(4, 10000))).toEqual([1, Math.fround(0.01)]);
    const kernel = new RopeKernel(gpu);
    const q = uploadBuffer(gpu, 'pin.q', new Float32Array([1, 2, 0, 0]));
    const b = kernel.bind('pin', uploadBuffer(gpu, 'pin.inv', ropeInvFreq(4, 10000)), q, null, { qHeads: 1, kHeads: 0, headDim: 4 });
    kernel.setShape(b, { tokens: 1, startPos: 1 });
    submitPass(gpu, 'pin', (pass) => kernel.encode(pass, b, 1));
    const a1 = Math.fround(0.01);
    expectClose(await readF32(gpu, q, 4), [Math.cos(1), 2 * Math.cos(a1), Math.sin(1), 2 * Math.sin(a1)], TOL);
  });
  it('inv_freq is the f32 rounding of theta^(-2i/d) to within an ulp', () => {
    for (const [d, theta] of [[128, 10000], [64, 1e6], [16, 500000]]) {
      const f = ropeInvFreq(d, theta);
      for (let i = 0; i < d / 2; i++) {
        const exact = 1 / Math.pow(theta, (2 * i) / d);
        expect(Math.abs(f[i] - exact)).toBeLessThanOrEqual(exact * 2 ** -23);
      }
    }
  });
});
