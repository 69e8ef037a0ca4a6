import { describe, expect, it } from 'vitest';
import { ATTENTION_CONSTANTS, AttentionKernel, KV_STORE_CONSTANTS, createKvCache, type AttentionLayout, type AttentionSplitPolicy } from '../../src/engine/kernels/attention';
import { readU32, submitPass, uploadBuffer } from '../../src/engine/kernels/common';
import { attentionRef, attentionWeightsRef } from '../../src/reference/attention';
import { cappedGridCount, cappedGridGpu, expectClose, expectExact, POISON_BITS, poisonedBuffer, readF32, testGpu } from '../support/gpu';
import { randomF32 } from '../support/random';
import { expectMutantFails, mutation } from '../support/mutant';
import { attachProbe, expectProbe } from '../support/probe';
import type { Gpu } from '../../src/engine/gpu';

// f32 dot products of length d, exp, and a probability-weighted sum of values of magnitude ~1.
const TOL = { atol: 2e-6, rtol: 2e-5 };
const NAN = new Float32Array(new Uint32Array([POISON_BITS]).buffer)[0];

interface Case {
  tokens: number;
  startPos: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  window?: number;
  maxSeq?: number;
  seed: number;
  /** Split policy of the kernel (default: the engine's). */
  policy?: Partial<AttentionSplitPolicy>;
  /** Expected key splits of the step, when the test is about them. */
  splits?: number;
  /** Per-head sink logits (gpt-oss), drawn around the scores' range so they take a real share. */
  sinks?: boolean;
  /** Attach an attention probe (at byte 256 of a poisoned buffer) and check the last row's weights too. */
  probe?: boolean;
}

/** Splits keys into 64-key ranges whenever the step has at most 8 rows: small tests exercise the combine pass. */
const SPLIT_SMALL: Partial<AttentionSplitPolicy> = { splitKeys: 64, targetWorkgroups: 4096 };

/**
 * Fills cache rows [0, startPos) with random "earlier" keys/values and every other row with NaN: rows the step
 * writes are overwritten by store_kv, and rows attention must not read (the future, or keys out of the window)
 * would turn the output into NaN.
 */
async function check(c: Case, gpu?: Gpu) {
  gpu ??= await testGpu();
  const d = c.headDim;
  const maxSeq = c.maxSeq ?? c.startPos + c.tokens + 3;
  const row = c.kvHeads * d;
  const q = randomF32(c.tokens * c.heads * d, c.seed);
  const kNew = randomF32(c.tokens * row, c.seed + 1);
  const vNew = randomF32(c.tokens * row, c.seed + 2);
  const kAll = new Float32Array(maxSeq * row).fill(NAN);
  const vAll = new Float32Array(maxSeq * row).fill(NAN);
  const firstVisible = c.window ? Math.max(0, c.startPos + 1 - c.window) : 0; // lowest key any query sees
  kAll.set(randomF32(c.startPos * row, c.seed + 3).subarray(firstVisible * row), firstVisible * row);
  vAll.set(randomF32(c.startPos * row, c.seed + 4).subarray(firstVisible * row), firstVisible * row);

  const kernel = new AttentionKernel(gpu, c.policy);
  const cache = createKvCache(gpu, 'test', { maxSeq, kvHeads: c.kvHeads, headDim: d });
  gpu.device.queue.writeBuffer(cache.k, 0, kAll);
  gpu.device.queue.writeBuffer(cache.v, 0, vAll);
  const out = poisonedBuffer(gpu, 'test.out', c.tokens * c.heads * d);
  const layout: AttentionLayout = { heads: c.heads, kvHeads: c.kvHeads, headDim: d, maxSeq, window: c.window };
  const sinks = c.sinks ? randomF32(c.heads, c.seed + 5, 3) : undefined;
  const buffers = {
    q: uploadBuffer(gpu, 'test.q', q),
    kNew: uploadBuffer(gpu, 'test.kNew', kNew),
    vNew: uploadBuffer(gpu, 'test.vNew', vNew),
    kCache: cache.k,
    vCache: cache.v,
    out,
    ...(sinks ? { sinks: uploadBuffer(gpu, 'test.sinks', sinks) } : {}),
  };
  const b = kernel.bind('test.attention', buffers, layout);
  const probe = c.probe ? attachProbe(gpu, kernel.probeTarget(b)) : null;
  kernel.setShape(b, { tokens: c.tokens, startPos: c.startPos });
  if (c.splits !== undefined) expect(b.splits).toBe(c.splits);
  submitPass(gpu, 'test', (pass) => kernel.encode(pass, b, c.tokens));

  kAll.set(kNew, c.startPos * row);
  vAll.set(vNew, c.startPos * row);
  const expected = attentionRef(q, kAll, vAll, { ...c, scale: 1 / Math.sqrt(d), sinks });
  const what = `attention T=${c.tokens} from ${c.startPos} H=${c.heads}/${c.kvHeads} d=${d} window=${c.window ?? 0} splits=${b.splits}${sinks ? ' sinks' : ''}`;
  expectClose(await readF32(gpu, out, expected.length), expected, TOL, what);
  if (probe) {
    const ref = attentionWeightsRef(q, kAll, { ...c, scale: 1 / Math.sqrt(d), sinks }, c.tokens - 1);
    await expectProbe(gpu, probe, ref, `${what} probe`);
  }
  // The cache now holds the new rows at their positions and nothing else changed.
  expectExact(await readU32(gpu, cache.k, kAll.length), new Uint32Array(kAll.buffer), `${what} K cache bits`);
  expect(gpu.recentErrors).toEqual([]);
}

describe('attention', () => {
  for (const [heads, kvHeads] of [[4, 4], [4, 2], [8, 2]]) {
    for (const headDim of [16, 64]) {
      const shape = { heads, kvHeads, headDim };
      const id = `H=${heads}/${kvHeads} d=${headDim}`;
      it(`prefill T=7 from 0, ${id}`, () => check({ ...shape, tokens: 7, startPos: 0, seed: heads * 100 + headDim }));
      it(`prefill T=7 from 5, ${id}`, () => check({ ...shape, tokens: 7, startPos: 5, seed: heads * 100 + headDim + 1 }));
      it(`decode at 40, ${id}`, () => check({ ...shape, tokens: 1, startPos: 40, seed: heads * 100 + headDim + 2 }));
      it(`decode at 200, split keys, ${id}`, () =>
        check({ ...shape, tokens: 1, startPos: 200, seed: heads * 100 + headDim + 3, policy: SPLIT_SMALL, splits: 4 }));
    }
  }
  it('head dim 128, prefill T=7 from 5, GQA 4', () => check({ tokens: 7, startPos: 5, heads: 4, kvHeads: 1, headDim: 128, seed: 5 }));
  it('head dim 128, decode at 129, split keys', () =>
    check({ tokens: 1, startPos: 129, heads: 4, kvHeads: 1, headDim: 128, seed: 5, policy: SPLIT_SMALL, splits: 3 }));
  it('sliding window 4, prefill T=7 from 5', () => check({ tokens: 7, startPos: 5, heads: 4, kvHeads: 2, headDim: 16, window: 4, seed: 6 }));
  it('sliding window 64, decode at 300 (keys before 237 are NaN)', () =>
    check({ tokens: 1, startPos: 300, heads: 4, kvHeads: 2, headDim: 16, window: 64, seed: 7 }));
  it('sliding window 200, decode at 300, split keys from the window start (keys before 101 are NaN)', () =>
    check({ tokens: 1, startPos: 300, heads: 4, kvHeads: 2, headDim: 16, window: 200, seed: 7, policy: SPLIT_SMALL, splits: 4 }));
  it('sliding window 50, prefill T=7 from 100, split keys: rows see different splits', () =>
    check({ tokens: 7, startPos: 100, heads: 2, kvHeads: 1, headDim: 16, window: 50, seed: 8, policy: SPLIT_SMALL, splits: 1 }));
  it('prefill T=8 from 150, 13 splits of 13 keys: the last, [156, 158), is empty for rows 0-5', () =>
    check({ tokens: 8, startPos: 150, heads: 2, kvHeads: 1, headDim: 16, seed: 8, policy: { ...SPLIT_SMALL, splitKeys: 13 }, splits: 13 }));
  it('window larger than the sequence is full attention', () =>
    check({ tokens: 7, startPos: 5, heads: 2, kvHeads: 1, headDim: 16, window: 4096, seed: 8 }));
  it('decode at position 4095 of a 4096-row cache (default policy: 32 splits of two whole chunks)', () =>
    check({ tokens: 1, startPos: 4095, heads: 2, kvHeads: 1, headDim: 64, maxSeq: 4096, seed: 9, splits: 32 }));
  it('decode at position 4095 without splitting', () =>
    check({ tokens: 1, startPos: 4095, heads: 2, kvHeads: 1, headDim: 64, maxSeq: 4096, seed: 9, policy: { splitKeys: 0 }, splits: 1 }));
  it('prefill T=257 from 0 (many chunks, running max rescaled)', () =>
    check({ tokens: 257, startPos: 0, heads: 2, kvHeads: 1, headDim: 16, seed: 10 }));
  it('prefill T=33 from 100, d=36 (not a power of two), 3 heads', () =>
    check({ tokens: 33, startPos: 100, heads: 3, kvHeads: 1, headDim: 36, seed: 11 }));

  // d = DIMS_PER_THREAD (4) · WORKGROUP: every thread accumulates all four of its dimensions.
  const widest = { heads: 2, kvHeads: 1, headDim: 4 * ATTENTION_CONSTANTS.WORKGROUP };
  it(`head dim ${widest.headDim}, prefill T=7 from 5`, () => check({ ...widest, tokens: 7, startPos: 5, seed: 12 }));
  it(`head dim ${widest.headDim}, decode at 150, split keys`, () =>
    check({ ...widest, tokens: 1, startPos: 150, seed: 13, policy: SPLIT_SMALL, splits: 3 }));
  it('a capped grid: store_kv threads stride over 2-3 elements each', async () => {
    // Tokens and heads are limited by the (capped) workgroups per dimension too: a cap of 4, and wide K/V rows.
    const cap = 4, tokens = cap, kvHeads = cap;
    const headDim = 4 * Math.ceil(cappedGridCount(KV_STORE_CONSTANTS.STORE_WORKGROUP, cap) / (tokens * kvHeads * 4));
    await check({ tokens, startPos: 3, heads: kvHeads, kvHeads, headDim, seed: 14 }, await cappedGridGpu(undefined, cap));
  });

  // The engine's policy at decode on granite-3.1-1b-a400m's shape (16 heads over 8 kv heads, d = 64): splits shorter
  // than a chunk, so every split is one partial chunk; 576 keys in 18 splits of 32 (whole quads), 577 in 19 of 31
  // (the last 19: every split ends in a partial quad, the last one's past-the-end keys NaN rows).
  const granite = { heads: 16, kvHeads: 8, headDim: 64 };
  it('granite decode at 575, default policy: 18 splits of 32 keys', () => check({ ...granite, tokens: 1, startPos: 575, seed: 30, splits: 18 }));
  it('granite decode at 576, default policy: 19 splits of 31 keys, sinks, probe', () =>
    check({ ...granite, tokens: 1, startPos: 576, seed: 31, splits: 19, sinks: true, probe: true }));
  it('decode at 0: one key, three past-the-end keys in its quad', () => check({ tokens: 1, startPos: 0, heads: 4, kvHeads: 2, headDim: 16, seed: 32 }));
  it('prefill T=8 from 100, window 30, default policy: 2 splits from 71 that each row\'s window crosses, sinks, probe', () =>
    check({ tokens: 8, startPos: 100, heads: 4, kvHeads: 2, headDim: 16, window: 30, seed: 33, splits: 2, sinks: true, probe: true }));
  // One split of 201 keys: three whole chunks (WORKGROUP / 4 quads each), then 9 keys in 3 quads, the last one
  // reaching 3 keys past the query into NaN rows.
  const walk: Case = { tokens: 1, startPos: 3 * ATTENTION_CONSTANTS.WORKGROUP + 8, heads: 4, kvHeads: 2, headDim: 16, seed: 34, policy: { splitKeys: 0 }, splits: 1 };
  it('decode over three whole chunks and a 9-key tail', () => check(walk));
  it('a broken chunk walk fails the check: the last quad of every whole chunk skipped', () =>
    expectMutantFails(mutation('lib/online_softmax', 'add_values(&st, chunk, WORKGROUP / 4u,', 'add_values(&st, chunk, WORKGROUP / 4u - 1u,'),
      (broken) => check(walk, broken), /outside atol/));
  it('a broken chunk walk fails the check: a partial chunk\'s partial quad skipped', () =>
    expectMutantFails(mutation('lib/online_softmax', '(hi - chunk + 3u) / 4u', '(hi - chunk) / 4u'), (broken) => check(walk, broken), /outside atol/));
  it('a broken chunk walk fails the check: past-the-end keys of the last quad read as they are (NaN rows)', () =>
    expectMutantFails(mutation('lib/online_softmax', /min\((vec4<u32>\(chunk \+ i\) \+ vec4<u32>\(0u, 1u, 2u, 3u\)), vec4<u32>\(last\)\)/, '$1'),
      (broken) => check(walk, broken), /outside atol/));
  it('a broken score fails the check: the fourth key vec4 of a quad read twice over the third', () =>
    expectMutantFails(mutation('lib/online_softmax', 'q_sh[i + 3u] * k3', 'q_sh[i + 3u] * k2'), (broken) => check(walk, broken), /outside atol/));
  // d = 36: nine key vec4s, two quads and one left over.
  const oddDim: Case = { tokens: 1, startPos: 100, heads: 3, kvHeads: 1, headDim: 36, seed: 35 };
  it('a broken score fails the check: the vec4s past the last quad left out', () =>
    expectMutantFails(mutation('lib/online_softmax', 'for (; i < n4; i++)', 'for (; i + 1u < n4; i++)'), (broken) => check(oddDim, broken), /outside atol/));
  // combine: 7 splits of 8 keys merge as one quad of splits and 3 left over; 64 (its most) as 16 quads.
  const sevenSplits: Case = { tokens: 1, startPos: 50, heads: 2, kvHeads: 1, headDim: 16, seed: 36, policy: { ...SPLIT_SMALL, splitKeys: 8 }, splits: 7 };
  it('decode at 50 in 7 splits of 8 keys', () => check(sevenSplits));
  it('decode at 127 in 64 splits of 2 keys: a policy asking for 100 splits gets combine\'s most, 64', () =>
    check({ tokens: 1, startPos: 127, heads: 2, kvHeads: 1, headDim: 16, seed: 37, policy: { splitKeys: 2, maxSplits: 100, targetWorkgroups: 4096 }, splits: 64, sinks: true }));
  it('a broken combine fails the check: the fourth split of a quad read as the third', () =>
    expectMutantFails(mutation('attention', 'partial_in[at + 3u * rec]', 'partial_in[at + 2u * rec]'), (broken) => check(sevenSplits, broken), /outside atol/));
  it('a broken combine fails the check: the splits past the last quad left out', () =>
    expectMutantFails(mutation('attention', 'for (; s < splits; s++)', 'for (; s + 1u < splits; s++)'), (broken) => check(sevenSplits, broken), /outside atol/));

  // Sinks (gpt-oss): finished in attend (one split) or in combine (split keys), with and without a window.
  it('sinks, prefill T=7 from 5, window 4, GQA 2', () =>
    check({ tokens: 7, startPos: 5, heads: 4, kvHeads: 2, headDim: 16, window: 4, seed: 12, sinks: true }));
  it('sinks, prefill T=33 from 100, d=36, 3 heads', () =>
    check({ tokens: 33, startPos: 100, heads: 3, kvHeads: 1, headDim: 36, seed: 13, sinks: true }));
  it('sinks, decode at 200, split keys', () =>
    check({ tokens: 1, startPos: 200, heads: 4, kvHeads: 2, headDim: 16, seed: 14, policy: SPLIT_SMALL, splits: 4, sinks: true }));
  it('sinks, decode at 300, window 200, split keys', () =>
    check({ tokens: 1, startPos: 300, heads: 4, kvHeads: 2, headDim: 16, window: 200, seed: 15, policy: SPLIT_SMALL, splits: 4, sinks: true }));
  it('a broken kernel fails the check: the sink left out of the sum (one split)', () =>
    expectMutantFails(mutation('attention', 'l = l * keep + exp(sink - m_sink);', 'l = l * keep;'),
      (broken) => check({ tokens: 7, startPos: 5, heads: 4, kvHeads: 2, headDim: 16, seed: 12, sinks: true }, broken), /outside atol/));
  it('a broken kernel fails the check: the sink left out of the sum (split keys)', () =>
    expectMutantFails(mutation('attention', 'big_l = exp(sink - big_m);', 'big_l = 0.0 * sink;'),
      (broken) => check({ tokens: 1, startPos: 200, heads: 4, kvHeads: 2, headDim: 16, seed: 14, policy: SPLIT_SMALL, splits: 4, sinks: true }, broken),
      /outside atol/));
  // The attention probe: the last row's final weights, across key splits, with sinks and windows.
  it('probe: decode at 200, split keys, sinks', () =>
    check({ tokens: 1, startPos: 200, heads: 4, kvHeads: 2, headDim: 16, seed: 14, policy: SPLIT_SMALL, splits: 4, sinks: true, probe: true }));
  it('probe: decode at 300, window 200, split keys (keys below 101 weigh 0)', () =>
    check({ tokens: 1, startPos: 300, heads: 4, kvHeads: 2, headDim: 16, window: 200, seed: 15, policy: SPLIT_SMALL, splits: 4, probe: true }));
  it('probe: decode at 40, one split, sinks, window 30', () =>
    check({ tokens: 1, startPos: 40, heads: 4, kvHeads: 1, headDim: 64, window: 30, seed: 16, sinks: true, probe: true }));
  it('probe: prefill T=33 from 100 records its last row', () =>
    check({ tokens: 33, startPos: 100, heads: 3, kvHeads: 1, headDim: 36, seed: 17, probe: true }));
  it('a broken probe fails the check: split weights not divided by the row sum', () =>
    expectMutantFails(mutation('lib/online_softmax', 'exp(probe[at] - m) / l', 'exp(probe[at] - m)'),
      (broken) => check({ tokens: 1, startPos: 200, heads: 4, kvHeads: 2, headDim: 16, seed: 14, policy: SPLIT_SMALL, splits: 4, probe: true }, broken),
      /probe: .* outside atol/));
  it('a broken probe fails the check: the sink\'s share left out (split keys)', () =>
    expectMutantFails(mutation('attention', 'sink_part * inv_l', '0.0'),
      (broken) => check({ tokens: 1, startPos: 200, heads: 4, kvHeads: 2, headDim: 16, seed: 14, policy: SPLIT_SMALL, splits: 4, sinks: true, probe: true }, broken),
      /probe: .* outside atol/));
  it('a broken kernel fails the check: wrong kv head for a query head', async () => {
    await expectMutantFails(mutation('attention', 'let g = h / (params.heads / params.kv_heads);', 'let g = h % params.kv_heads;'), (broken) => check({ tokens: 7, startPos: 5, heads: 4, kvHeads: 2, headDim: 16, seed: 3 }, broken), /outside atol/);
  });
  it('a broken kernel fails the check: splits merged without their max', async () => {
    await expectMutantFails(mutation('attention', 'split_m[s] = exp(split_m[s] - big_m);', 'split_m[s] = 1.0;'), (broken) => check({ tokens: 1, startPos: 200, heads: 2, kvHeads: 1, headDim: 16, seed: 4, policy: SPLIT_SMALL, splits: 4 }, broken), /outside atol/);
  });
  it('a broken kernel fails the check: no rescale when the max grows', async () => {
    await expectMutantFails(mutation('lib/online_softmax', 'let alpha = exp(st.m - m_new);', 'let alpha = 1.0;'), (broken) => check({ tokens: 2, startPos: 200, heads: 2, kvHeads: 1, headDim: 16, seed: 4, policy: { splitKeys: 0 }, splits: 1 }, broken), /outside atol/);
  });

  it('stepping back: a shorter startPos overwrites the rows past it, nothing to clear', async () => {
    const gpu = await testGpu();
    const H = 4, KV = 2, d = 16, maxSeq = 16, row = KV * d;
    const kernel = new AttentionKernel(gpu, { splitKeys: 64 });
    const cache = createKvCache(gpu, 'back', { maxSeq, kvHeads: KV, headDim: d });
    const scale = 1 / Math.sqrt(d);
    const step = async (tokens: number, startPos: number, seed: number) => {
      const q = randomF32(tokens * H * d, seed), k = randomF32(tokens * row, seed + 1), v = randomF32(tokens * row, seed + 2);
      const out = poisonedBuffer(gpu, 'back.out', tokens * H * d);
      const buffers = { q: uploadBuffer(gpu, 'back.q', q), kNew: uploadBuffer(gpu, 'back.k', k), vNew: uploadBuffer(gpu, 'back.v', v), kCache: cache.k, vCache: cache.v, out };
      const b = kernel.bind('back', buffers, { heads: H, kvHeads: KV, headDim: d, maxSeq });
      kernel.setShape(b, { tokens, startPos });
      submitPass(gpu, 'back', (pass) => kernel.encode(pass, b, tokens));
      return { q, k, v, out: await readF32(gpu, out, tokens * H * d) };
    };
    const first = await step(10, 0, 20); // positions 0..9
    const second = await step(3, 5, 30); // back to 5: positions 5..7 replaced, 8..9 stale but never read
    const kAll = new Float32Array(8 * row), vAll = new Float32Array(8 * row);
    kAll.set(first.k.subarray(0, 5 * row)); vAll.set(first.v.subarray(0, 5 * row));
    kAll.set(second.k, 5 * row); vAll.set(second.v, 5 * row);
    const expected = attentionRef(second.q, kAll, vAll, { tokens: 3, startPos: 5, heads: H, kvHeads: KV, headDim: d, scale });
    expectClose(second.out, expected, TOL, 'after stepping back');
  });

  it('fused qkv rows: q, k and v read from one buffer at offsets, custom scale', async () => {
    const gpu = await testGpu();
    const T = 5, H = 4, KV = 2, d = 16, maxSeq = 8, width = (H + 2 * KV) * d;
    const qkv = randomF32(T * width, 40);
    const kernel = new AttentionKernel(gpu);
    const cache = createKvCache(gpu, 'fused', { maxSeq, kvHeads: KV, headDim: d });
    const fused = uploadBuffer(gpu, 'fused.qkv', qkv);
    const out = poisonedBuffer(gpu, 'fused.out', T * H * d);
    const layout = { heads: H, kvHeads: KV, headDim: d, maxSeq, scale: 0.0078125, qStride: width, kvStride: width, kOffset: H * d, vOffset: (H + KV) * d };
    const b = kernel.bind('fused', { q: fused, kNew: fused, vNew: fused, kCache: cache.k, vCache: cache.v, out }, layout);
    kernel.setShape(b, { tokens: T, startPos: 0 });
    submitPass(gpu, 'fused', (pass) => kernel.encode(pass, b, T));
    const q = new Float32Array(T * H * d), k = new Float32Array(T * KV * d), v = new Float32Array(T * KV * d);
    for (let t = 0; t < T; t++) {
      q.set(qkv.subarray(t * width, t * width + H * d), t * H * d);
      k.set(qkv.subarray(t * width + H * d, t * width + (H + KV) * d), t * KV * d);
      v.set(qkv.subarray(t * width + (H + KV) * d, (t + 1) * width), t * KV * d);
    }
    const expected = attentionRef(q, k, v, { tokens: T, startPos: 0, heads: H, kvHeads: KV, headDim: d, scale: 0.0078125 });
    expectClose(await readF32(gpu, out, T * H * d), expected, TOL, 'fused qkv');
  });

  it('pinned: two keys, equal scores, average of the values; a lone first query copies its value', async () => {
    const gpu = await testGpu();
    const kernel = new AttentionKernel(gpu);
    const cache = createKvCache(gpu, 'pin', { maxSeq: 2, kvHeads: 1, headDim: 4 });
    const out = poisonedBuffer(gpu, 'pin.out', 8);
    const buffers = {
      q: uploadBuffer(gpu, 'pin.q', new Float32Array([1, 0, 0, 0, 0, 1, 0, 0])),
      kNew: uploadBuffer(gpu, 'pin.k', new Float32Array([0, 5, 0, 0, 0, 5, 0, 0])), // row 1's query scores both keys 5·scale
      vNew: uploadBuffer(gpu, 'pin.v', new Float32Array([2, 4, 1, 0, 6, -8, 1, 2])),
      kCache: cache.k,
      vCache: cache.v,
      out,
    };
    const b = kernel.bind('pin', buffers, { heads: 1, kvHeads: 1, headDim: 4, maxSeq: 2 });
    kernel.setShape(b, { tokens: 2, startPos: 0 });
    submitPass(gpu, 'pin', (pass) => kernel.encode(pass, b, 2));
    expectClose(await readF32(gpu, out, 8), [2, 4, 1, 0, 4, -2, 1, 1], TOL);
  });

  it('rejects a step past the cache and a head count that is not a multiple of kv heads', async () => {
    const gpu = await testGpu();
    const kernel = new AttentionKernel(gpu);
    const cache = createKvCache(gpu, 'bad', { maxSeq: 4, kvHeads: 1, headDim: 8 });
    const x = poisonedBuffer(gpu, 'bad.x', 64);
    const buffers = { q: x, kNew: x, vNew: x, kCache: cache.k, vCache: cache.v, out: poisonedBuffer(gpu, 'bad.out', 64) };
    const b = kernel.bind('bad', buffers, { heads: 2, kvHeads: 1, headDim: 8, maxSeq: 4 });
    expect(() => kernel.setShape(b, { tokens: 2, startPos: 3 })).toThrow(/run past the KV cache \(4 rows\)/);
    expect(() => kernel.bind('bad', buffers, { heads: 3, kvHeads: 2, headDim: 8, maxSeq: 4 })).toThrow(/not a multiple/);
    expect(() => kernel.bind('bad', buffers, { heads: 2, kvHeads: 1, headDim: 6, maxSeq: 4 })).toThrow(/multiple of 4/);
  });
});
