import { describe, expect, it } from 'vitest';
import { MlaAbsorbKernel, MLA_ABSORB_CONSTANTS } from '../../src/engine/kernels/mla-absorb';
import { MlaAttentionKernel, MLA_ATTENTION_CONSTANTS, MLA_STORE_CONSTANTS, createMlaCache } from '../../src/engine/kernels/mla-attention';
import { submitPass, uploadBuffer } from '../../src/engine/kernels/common';
import type { AttentionSplitPolicy } from '../../src/engine/kernels/attention';
import { packWeights, type WeightDtype } from '../../src/model/dtypes';
import { mlaAbsorbQRef, mlaAttendRef, mlaExpandVRef, mlaExpandedRef, mlaWeightsRef, type MlaShape } from '../../src/reference/mla';
import { CAPPED_GRID, cappedGridCount, cappedGridGpu, expectClose, poisonedBuffer, readF32, testGpu } from '../support/gpu';
import { randomF32 } from '../support/random';
import { expectMutantFails, mutation } from '../support/mutant';
import { attachProbe, expectProbe } from '../support/probe';
import type { Gpu } from '../../src/engine/gpu';

// Dot products of up to 512 terms of magnitude ~1/sqrt(K) each, summed in f32.
const TOL = { atol: 2e-5, rtol: 2e-5 };
const NAN = Number.NaN;
const { WORKGROUP: ABSORB_WG } = MLA_ABSORB_CONSTANTS;
const { WORKGROUP: ATTEND_WG } = MLA_ATTENTION_CONSTANTS;

interface Case extends MlaShape {
  tokens: number;
  startPos: number;
  seed: number;
  dtype?: WeightDtype;
  /** Split policy of the attention kernel (default: the engine's), and the key splits the step must get. */
  policy?: Partial<AttentionSplitPolicy>;
  splits?: number;
  /** Attach an attention probe and check the last row's weights too. */
  probe?: boolean;
}

/** Splits keys into 64-key ranges whenever the step has at most 8 rows: small tests exercise the combine pass. */
const SPLIT_SMALL: Partial<AttentionSplitPolicy> = { splitKeys: 64, targetWorkgroups: 4096 };
/** One workgroup walks all of a row's keys, chunk after chunk (the engine's policy would split these short steps). */
const NO_SPLIT: Partial<AttentionSplitPolicy> = { splitKeys: 0 };

/** kv_b_proj with rows scaled by 1/sqrt(rank), packed as the GPU reads it, and its values after rounding. */
function kvB(gpu: Gpu, c: Case) {
  const w = randomF32(c.heads * (c.nope + c.vDim) * c.rank, c.seed + 7, 1 / Math.sqrt(c.rank));
  const { words, rounded } = packWeights(w, c.dtype ?? 'f32');
  return { buffer: uploadBuffer(gpu, 'test.kvB', words), values: rounded };
}

async function checkAbsorbExpand(c: Case, gpu?: Gpu) {
  gpu ??= await testGpu();
  const T = c.tokens;
  const kernel = new MlaAbsorbKernel(gpu, c.dtype ?? 'f32');
  const W = kvB(gpu, c);
  const q = randomF32(T * c.heads * (c.nope + c.rope), c.seed, 1 / Math.sqrt(c.nope));
  const ctx = randomF32(T * c.heads * c.rank, c.seed + 1);
  const qLat = poisonedBuffer(gpu, 'test.qLat', T * c.heads * c.rank);
  const out = poisonedBuffer(gpu, 'test.out', T * c.heads * c.vDim);
  const b = kernel.bind('test.mla', { q: uploadBuffer(gpu, 'test.q', q), kvB: W.buffer, qLat, ctx: uploadBuffer(gpu, 'test.ctx', ctx), out }, c);
  kernel.setTokens(b, T);
  submitPass(gpu, 'test', (pass) => {
    kernel.encodeAbsorb(pass, b, T);
    kernel.encodeExpand(pass, b, T);
  });
  const gotLat = await readF32(gpu, qLat, T * c.heads * c.rank);
  const gotOut = await readF32(gpu, out, T * c.heads * c.vDim);
  expect(gpu.recentErrors).toEqual([]); // before the numbers: a mutant must compile and run cleanly
  expectClose(gotLat, mlaAbsorbQRef(q, W.values, T, c), TOL, 'absorb_q');
  expectClose(gotOut, mlaExpandVRef(ctx, W.values, T, c), TOL, 'expand_v');
}

/**
 * Store then attend. Cache rows [0, startPos) hold random earlier rows, every row past the step NaN: reading the
 * future would poison the output.
 */
async function checkAttention(c: Case, gpu?: Gpu) {
  gpu ??= await testGpu();
  const T = c.tokens, Wd = c.rank + c.rope, maxSeq = c.startPos + T + 3;
  const scale = 0.7 / Math.sqrt(c.nope + c.rope);
  const qLat = randomF32(T * c.heads * c.rank, c.seed, 1 / Math.sqrt(c.rank));
  const q = randomF32(T * c.heads * (c.nope + c.rope), c.seed + 1);
  const latent = randomF32(T * Wd, c.seed + 2);
  const kvA = randomF32(T * Wd, c.seed + 3);
  const cacheInit = new Float32Array(maxSeq * Wd).fill(NAN);
  cacheInit.set(randomF32(c.startPos * Wd, c.seed + 4));
  const expectedCache = Float64Array.from(cacheInit.subarray(0, (c.startPos + T) * Wd));
  for (let t = 0; t < T; t++)
    for (let i = 0; i < Wd; i++) expectedCache[(c.startPos + t) * Wd + i] = i < c.rank ? latent[t * Wd + i] : kvA[t * Wd + i];

  const kernel = new MlaAttentionKernel(gpu, Wd, c.policy);
  const cache = createMlaCache(gpu, 'test', { maxSeq, rank: c.rank, rope: c.rope });
  gpu.device.queue.writeBuffer(cache, 0, cacheInit);
  const ctx = poisonedBuffer(gpu, 'test.ctx', T * c.heads * c.rank);
  const b = kernel.bind(
    'test.mlaAttention',
    {
      latent: uploadBuffer(gpu, 'test.latent', latent), kvA: uploadBuffer(gpu, 'test.kvA', kvA),
      qLat: uploadBuffer(gpu, 'test.qLat', qLat), q: uploadBuffer(gpu, 'test.q', q), cache, ctx,
    },
    { heads: c.heads, rank: c.rank, nope: c.nope, rope: c.rope, maxSeq, scale },
  );
  const probe = c.probe ? attachProbe(gpu, kernel.probeTarget(b)) : null;
  kernel.setShape(b, { tokens: T, startPos: c.startPos });
  expect(b.splits).toBe(c.splits ?? 1);
  submitPass(gpu, 'test', (pass) => kernel.encode(pass, b, T));
  const gotCtx = await readF32(gpu, ctx, T * c.heads * c.rank);
  const gotCache = await readF32(gpu, cache, (c.startPos + T) * Wd);
  expect(gpu.recentErrors).toEqual([]);
  expectClose(gotCache, expectedCache, { atol: 0, rtol: 0 }, 'stored cache rows');
  expectClose(gotCtx, mlaAttendRef(qLat, q, expectedCache, T, c.startPos, scale, c), TOL, 'ctx');
  if (probe) await expectProbe(gpu, probe, mlaWeightsRef(qLat, q, expectedCache, T - 1, c.startPos, scale, c), 'probe');
}

describe('MLA absorb_q / expand_v', () => {
  // Outputs T·heads·rank and T·heads·vDim around and past one workgroup (256), odd nope and vDim.
  const cases: Case[] = [
    { tokens: 1, startPos: 0, heads: 1, rank: 4, nope: 1, rope: 4, vDim: 1, seed: 1 },
    { tokens: 3, startPos: 0, heads: 5, rank: 36, nope: 7, rope: 8, vDim: 9, seed: 2 }, // 540 and 135 outputs
    { tokens: 2, startPos: 0, heads: 3, rank: ABSORB_WG + 4, nope: 16, rope: 8, vDim: 33, seed: 3 },
    { tokens: 2, startPos: 0, heads: 3, rank: 36, nope: 7, rope: 8, vDim: 9, seed: 4, dtype: 'bf16' },
    { tokens: 1, startPos: 0, heads: 2, rank: 66, nope: 9, rope: 4, vDim: 5, seed: 5, dtype: 'f16' }, // odd row starts
  ];
  for (const c of cases) it(`T=${c.tokens} heads=${c.heads} rank=${c.rank} nope=${c.nope} v=${c.vDim} ${c.dtype ?? 'f32'}`, () => checkAbsorbExpand(c));
  it('a capped grid: each thread strides over 2-3 outputs', async () => {
    const heads = 5;
    const rank = Math.ceil(cappedGridCount(ABSORB_WG) / (2 * heads));
    await checkAbsorbExpand({ tokens: 2, startPos: 0, heads, rank, nope: 7, rope: 8, vDim: rank, seed: 6 }, await cappedGridGpu());
  });
  it('a broken absorb (weights read along the row) fails the check', async () => {
    await expectMutantFails(mutation('mla_absorb', 'acc += x[qb + j] * weight(wb + j * r);', 'acc += x[qb + j] * weight(wb + j);'), (broken) => checkAbsorbExpand(cases[1], broken), /absorb_q: .* outside atol/);
  });
  it('a broken expand (key rows read as value rows) fails the check', async () => {
    await expectMutantFails(mutation('mla_absorb', 'let wb = (h * row_stride + params.nope + i) * r;', 'let wb = (h * row_stride + i) * r;'), (broken) => checkAbsorbExpand(cases[1], broken), /expand_v: .* outside atol/);
  });
});

describe('MLA attention over the compressed cache', () => {
  // Keys in one partial chunk, across chunks of 64 with a tail; rank below, between and at DIMS_PER_THREAD · 64.
  const cases: Case[] = [
    { tokens: 1, startPos: 0, heads: 1, rank: 4, nope: 3, rope: 4, vDim: 4, seed: 11 },
    { tokens: 7, startPos: 5, heads: 3, rank: 36, nope: 5, rope: 8, vDim: 4, seed: 12 },
    { tokens: 3, startPos: 2 * ATTEND_WG + 2, heads: 2, rank: ATTEND_WG + 36, nope: 4, rope: 12, vDim: 4, seed: 13, policy: NO_SPLIT },
    { tokens: 2, startPos: ATTEND_WG + 6, heads: 2, rank: 8 * ATTEND_WG, nope: 8, rope: 64, vDim: 4, seed: 14, policy: NO_SPLIT },
    // Split keys: a decode step in 4 splits; 3 rows in 17 splits of 8 keys (129 in all), the last (1 key) empty for
    // the first two rows; the widest rank.
    { tokens: 1, startPos: 200, heads: 2, rank: 36, nope: 5, rope: 8, vDim: 4, seed: 15, policy: SPLIT_SMALL, splits: 4 },
    { tokens: 3, startPos: 2 * ATTEND_WG - 2, heads: 3, rank: 100, nope: 4, rope: 12, vDim: 4, seed: 16, policy: { ...SPLIT_SMALL, splitKeys: 8 }, splits: 17 },
    { tokens: 1, startPos: 130, heads: 1, rank: 8 * ATTEND_WG, nope: 8, rope: 64, vDim: 4, seed: 17, policy: SPLIT_SMALL, splits: 3 },
  ];
  for (const c of cases) {
    it(`T=${c.tokens} from ${c.startPos}, heads=${c.heads} rank=${c.rank} rope=${c.rope}, ${c.splits ?? 1} split(s)`, () => checkAttention(c));
  }
  it('a capped grid: store threads stride over the new rows more than once', async () => {
    // Tokens and heads are capped too, so each new row is made wider than a workgroup: T · (rank + rope) > T · 256.
    const rank = MLA_STORE_CONSTANTS.STORE_WORKGROUP + 44;
    await checkAttention({ tokens: CAPPED_GRID, startPos: 3, heads: CAPPED_GRID, rank, nope: 4, rope: 8, vDim: 4, seed: 15 }, await cappedGridGpu());
  });
  it('the engine splits a long decode step of few heads (DeepSeek-V2-Lite: 16 heads, 4096 keys → 32 splits of 128)', async () => {
    const kernel = new MlaAttentionKernel(await testGpu(), 576);
    expect(kernel.splitFor(1, 4096, 16)).toEqual({ splits: 32, keys: 128 });
    expect(kernel.splitFor(1, 4096, 128)).toEqual({ splits: 4, keys: 1024 }); // V3's 128 heads need few
    expect(kernel.splitFor(64, 4096, 16).splits).toBe(1); // prefill: rows × heads keep the GPU busy
  });
  it('probe: the decode step in 4 splits records its final weights', () => checkAttention({ ...cases[4], probe: true }));
  it('probe: a prefill step of 7 rows records its last row (one split)', () => checkAttention({ ...cases[1], probe: true }));
  it('a broken probe (split weights not divided by the merged sum) fails the check', () =>
    expectMutantFails(mutation('mla_attention', 'row_max_sum = vec2<f32>(top, total);', 'row_max_sum = vec2<f32>(top, 1.0);'),
      (broken) => checkAttention({ ...cases[4], probe: true }, broken), /probe: .* outside atol/));
  it('a broken combine (splits merged without their maxima) fails the check', async () => {
    await expectMutantFails(mutation('mla_attention', 'let w = exp(partial_in[first + s * rec_len] - top);', 'let w = 1.0;'), (broken) => checkAttention(cases[4], broken), /ctx: .* outside atol/);
  });
  it('a broken chunk walk (the last four keys of every full chunk skipped) fails the check', async () => {
    await expectMutantFails(mutation('lib/online_softmax', 'add_values(&st, chunk, WORKGROUP / 4u,', 'add_values(&st, chunk, WORKGROUP / 4u - 1u,'), (broken) => checkAttention(cases[2], broken), /ctx: .* outside atol/);
  });
  it('a broken store (one rope column taken from the latent) fails the check', async () => {
    await expectMutantFails(mutation('mla_attention', 'c < params.rank);', 'c <= params.rank);'), (broken) => checkAttention(cases[1], broken), /stored cache rows/);
  });
});

describe('MLA absorbed kernels against the expanded form', () => {
  it('absorb_q → attend → expand_v equals softmax(q·kᵀ)·v with K and V expanded per head', async () => {
    const gpu = await testGpu();
    const c: Case = { tokens: 4, startPos: 9, heads: 3, rank: 20, nope: 6, rope: 8, vDim: 5, seed: 21 };
    const T = c.tokens, Wd = c.rank + c.rope, maxSeq = c.startPos + T;
    const scale = 1 / Math.sqrt(c.nope + c.rope);
    const q = randomF32(T * c.heads * (c.nope + c.rope), c.seed);
    const rows = randomF32(maxSeq * Wd, c.seed + 1); // earlier rows, then this step's [latent | rope] rows
    const W = kvB(gpu, c);
    const absorb = new MlaAbsorbKernel(gpu, 'f32');
    const attention = new MlaAttentionKernel(gpu, Wd);
    const qBuf = uploadBuffer(gpu, 'composed.q', q);
    const step = uploadBuffer(gpu, 'composed.step', rows.subarray(c.startPos * Wd));
    const cache = createMlaCache(gpu, 'composed', { maxSeq, rank: c.rank, rope: c.rope });
    gpu.device.queue.writeBuffer(cache, 0, rows.subarray(0, c.startPos * Wd));
    const qLat = poisonedBuffer(gpu, 'composed.qLat', T * c.heads * c.rank);
    const ctx = poisonedBuffer(gpu, 'composed.ctx', T * c.heads * c.rank);
    const out = poisonedBuffer(gpu, 'composed.out', T * c.heads * c.vDim);
    const ab = absorb.bind('composed.absorb', { q: qBuf, kvB: W.buffer, qLat, ctx, out }, c);
    const at = attention.bind('composed.attention', { latent: step, kvA: step, qLat, q: qBuf, cache, ctx }, { ...c, maxSeq, scale });
    absorb.setTokens(ab, T);
    attention.setShape(at, { tokens: T, startPos: c.startPos });
    submitPass(gpu, 'composed', (pass) => {
      absorb.encodeAbsorb(pass, ab, T);
      attention.encode(pass, at, T);
      absorb.encodeExpand(pass, ab, T);
    });
    const got = await readF32(gpu, out, T * c.heads * c.vDim);
    expect(gpu.recentErrors).toEqual([]);
    expectClose(got, mlaExpandedRef(q, W.values, rows, T, c.startPos, scale, c), TOL, 'expanded');
  });
});
