// The fused RoPE + KV-cache append (shaders/rope.wgsl, entry point `append`) against ropeAppendRef: bias, q/k norm
// per head or per projection, RoPE, q into q_out and k/v into the caches at the step's positions. Sizes from its
// tiling: APPEND_WG threads per (head, token), so heads of d = 136 (68 pairs) give some threads two pairs, and an
// OLMoE-style projection of 160 elements three passes of its sum of squares.
import { describe, expect, it } from 'vitest';
import { ROPE_APPEND_CONSTANTS, RopeAppendKernel } from '../../src/engine/kernels/rope';
import { createKvCache } from '../../src/engine/kernels/attention';
import { submitPass, uploadBuffer } from '../../src/engine/kernels/common';
import { ropeInvFreq } from '../../src/model/rope';
import { packWeights, type WeightDtype } from '../../src/model/dtypes';
import { ropeAppendRef } from '../../src/reference/rope';
import { POISON_BITS, expectClose, poisonedBuffer, readF32, testGpu } from '../support/gpu';
import { randomF32 } from '../support/random';
import { expectMutantFails, mutation } from '../support/mutant';
import type { Gpu } from '../../src/engine/gpu';

const TOL = { atol: 2e-6, rtol: 2e-6 };
const { APPEND_WG } = ROPE_APPEND_CONSTANTS;

interface Case {
  tokens: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  startPos: number;
  maxSeq: number;
  dtype: WeightDtype;
  bias?: boolean;
  norm?: 'head' | 'all';
  seed: number;
}

async function check(c: Case, gpu?: Gpu) {
  gpu ??= await testGpu();
  const { tokens: T, heads: nH, kvHeads: nKV, headDim: d } = c;
  const stride = (nH + 2 * nKV) * d;
  const qkv = randomF32(T * stride, c.seed, 1);
  const invFreq = ropeInvFreq(d, 10000);
  const bias = c.bias ? packWeights(randomF32(stride, c.seed + 1, 0.5), c.dtype) : null;
  const normLength = c.norm === 'head' ? 2 * d : (nH + nKV) * d;
  const norm = c.norm ? packWeights(randomF32(normLength, c.seed + 2, 1), c.dtype) : null;
  const eps = 1e-6;
  const kernel = new RopeAppendKernel(gpu, c.dtype);
  const qOut = poisonedBuffer(gpu, 'test.qOut', T * nH * d);
  const cache = createKvCache(gpu, 'test', { maxSeq: c.maxSeq, kvHeads: nKV, headDim: d });
  for (const buf of [cache.k, cache.v]) gpu.device.queue.writeBuffer(buf, 0, new Uint32Array(buf.size / 4).fill(POISON_BITS));
  const b = kernel.bind('test.append', {
    invFreq: uploadBuffer(gpu, 'test.invFreq', invFreq), qkv: uploadBuffer(gpu, 'test.qkv', qkv), qOut, kCache: cache.k, vCache: cache.v,
  }, {
    heads: nH, kvHeads: nKV, headDim: d, maxSeq: c.maxSeq, scaling: 0.9,
    bias: bias && uploadBuffer(gpu, 'test.bias', bias.words),
    qkNorm: norm && c.norm ? { mode: c.norm, weight: uploadBuffer(gpu, 'test.norm', norm.words), eps } : null,
  });
  kernel.setShape(b, { tokens: T, startPos: c.startPos });
  submitPass(gpu, 'test', (pass) => kernel.encode(pass, b, T));
  const ref = ropeAppendRef({
    qkv, tokens: T, heads: nH, kvHeads: nKV, headDim: d, startPos: c.startPos, invFreq, scaling: 0.9,
    bias: bias?.rounded, qkNorm: norm && c.norm ? { mode: c.norm, weight: norm.rounded, eps } : undefined,
  });
  const what = `append T=${T} ${nH}/${nKV} heads d=${d} at ${c.startPos}${c.bias ? ' bias' : ''}${c.norm ? ` norm ${c.norm}` : ''} ${c.dtype}`;
  const row = nKV * d;
  const kGot = await readF32(gpu, cache.k, c.maxSeq * row);
  const vGot = await readF32(gpu, cache.v, c.maxSeq * row);
  expectClose(await readF32(gpu, qOut, T * nH * d), ref.q, TOL, `${what} q`);
  expectClose(kGot.subarray(c.startPos * row, (c.startPos + T) * row), ref.k, TOL, `${what} k cache`);
  expectClose(vGot.subarray(c.startPos * row, (c.startPos + T) * row), ref.v, TOL, `${what} v cache`);
  // Rows outside the step's positions are untouched.
  const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
  for (const cacheRows of [kGot, vGot]) {
    const outside = [...cacheRows.subarray(0, c.startPos * row), ...cacheRows.subarray((c.startPos + T) * row)];
    expect(bits(Float32Array.from(outside)).every((w) => w === POISON_BITS), `${what}: rows outside the step written`).toBe(true);
  }
  expect(gpu.recentErrors).toEqual([]);
}

describe('rope + KV append (fused)', () => {
  it(`d=136 (68 pairs on ${APPEND_WG} threads), 3 tokens from 5, f32, no norm`, () =>
    check({ tokens: 3, heads: 3, kvHeads: 1, headDim: 136, startPos: 5, maxSeq: 9, dtype: 'f32', seed: 1 }));
  it('q/k/v biases (bf16), 2 tokens from 0', () =>
    check({ tokens: 2, heads: 4, kvHeads: 2, headDim: 8, startPos: 0, maxSeq: 4, dtype: 'bf16', bias: true, seed: 2 }));
  it('per-head q/k norm (Qwen3-MoE), bf16, d=136, the last cache row', () =>
    check({ tokens: 1, heads: 4, kvHeads: 2, headDim: 136, startPos: 63, maxSeq: 64, dtype: 'bf16', norm: 'head', seed: 3 }));
  it('q/k norm over each projection (OLMoE): 160 elements on 64 threads, f16, with biases', () =>
    check({ tokens: 2, heads: 5, kvHeads: 5, headDim: 32, startPos: 7, maxSeq: 12, dtype: 'f16', norm: 'all', bias: true, seed: 4 }));
  it('position 4093: the same f32 angles as rope', () =>
    check({ tokens: 2, heads: 2, kvHeads: 1, headDim: 64, startPos: 4093, maxSeq: 4096, dtype: 'f32', norm: 'head', seed: 5 }));

  it('a per-projection norm that sums only the first head-width of the projection fails', () =>
    expectMutantFails(mutation('rope', 'for (var c = li; c < proj_width; c += APPEND_WG) {', 'for (var c = li; c < d; c += APPEND_WG) {'),
      (broken) => check({ tokens: 2, heads: 5, kvHeads: 5, headDim: 32, startPos: 7, maxSeq: 12, dtype: 'f32', norm: 'all', seed: 6 }, broken),
      /outside atol/));
  it('a rotation that leaves the pairs past the first APPEND_WG unrotated fails', () =>
    expectMutantFails(mutation('rope', 'for (var i = li; i < half; i += APPEND_WG) {', 'for (var i = li; i < min(half, APPEND_WG); i += APPEND_WG) {'),
      (broken) => check({ tokens: 1, heads: 1, kvHeads: 1, headDim: 136, startPos: 2, maxSeq: 4, dtype: 'f32', seed: 7 }, broken),
      /outside atol|written/));
});
