import { describe, expect, it } from 'vitest';
import { EMBEDDING_CONSTANTS, EmbeddingKernel } from '../../src/engine/kernels/embedding';
import { submitPass, uploadBuffer } from '../../src/engine/kernels/common';
import { packWeights, type WeightDtype } from '../../src/model/dtypes';
import { embeddingRef } from '../../src/reference/embedding';
import { cappedGridCount, cappedGridGpu, expectClose, poisonedBuffer, readF32, testGpu } from '../support/gpu';
import { randomF32, rng } from '../support/random';
import { expectMutantFails, mutation } from '../support/mutant';
import type { Gpu } from '../../src/engine/gpu';

// A gather is exact; only the scale multiply rounds.
const TOL = { atol: 0, rtol: 1e-7 };

interface Case {
  tokens: number;
  vocab: number;
  hidden: number;
  dtype: WeightDtype;
  seed: number;
  scale?: number;
  idsOffset?: number;
  /** Ids to use instead of random in-range ones. */
  ids?: number[];
}

async function check(c: Case, gpu?: Gpu) {
  gpu ??= await testGpu();
  const r = rng(c.seed);
  const idsOffset = c.idsOffset ?? 0;
  const ids = new Uint32Array(idsOffset + c.tokens);
  for (let i = 0; i < ids.length; i++) ids[i] = Math.floor(r() * c.vocab);
  if (c.ids) ids.set(c.ids, idsOffset);
  const table = packWeights(randomF32(c.vocab * c.hidden, c.seed + 1), c.dtype);
  const kernel = new EmbeddingKernel(gpu, c.dtype);
  const out = poisonedBuffer(gpu, 'test.out', c.tokens * c.hidden);
  const b = kernel.bind('test.embedding', uploadBuffer(gpu, 'test.ids', ids), uploadBuffer(gpu, 'test.table', table.words), out, {
    vocab: c.vocab,
    hidden: c.hidden,
  });
  kernel.setShape(b, { tokens: c.tokens, idsOffset, scale: c.scale });
  submitPass(gpu, 'test', (pass) => kernel.encode(pass, b, c.tokens));
  const expected = embeddingRef(ids.subarray(idsOffset), table.rounded, c.vocab, c.hidden, c.scale ?? 1);
  expectClose(await readF32(gpu, out, c.tokens * c.hidden), expected, TOL, `embedding T=${c.tokens} V=${c.vocab} H=${c.hidden} ${c.dtype}`);
  expect(gpu.recentErrors).toEqual([]);
}

describe('embedding', () => {
  for (const tokens of [1, 7, 33, 257]) {
    for (const hidden of [1, 7, 64, 257]) {
      it(`T=${tokens} H=${hidden} f32`, () => check({ tokens, vocab: 301, hidden, dtype: 'f32', seed: tokens * 1000 + hidden }));
    }
  }
  for (const dtype of ['f16', 'bf16'] as const) {
    // Odd hidden: rows start in the middle of a 32-bit word every other row.
    it(`T=33 H=33 ${dtype} table`, () => check({ tokens: 33, vocab: 97, hidden: 33, dtype, seed: 11 }));
    it(`T=7 H=1 ${dtype} table`, () => check({ tokens: 7, vocab: 5, hidden: 1, dtype, seed: 12 }));
  }
  it('Granite embedding multiplier', () => check({ tokens: 7, vocab: 50, hidden: 33, dtype: 'bf16', seed: 13, scale: 12 }));
  it('ids read at an offset in a running token buffer', () =>
    check({ tokens: 3, vocab: 50, hidden: 16, dtype: 'f32', seed: 14, idsOffset: 9 }));
  it('out-of-range ids read the last row', () =>
    check({ tokens: 4, vocab: 10, hidden: 7, dtype: 'f16', seed: 15, ids: [9, 10, 0xffffffff, 1234567] }));
  const capped = (seed: number): Case => ({ tokens: 3, vocab: 20, hidden: Math.ceil(cappedGridCount(EMBEDDING_CONSTANTS.WORKGROUP) / 3), dtype: 'bf16', seed });
  it('a capped grid: each thread strides over 2-3 elements', async () => check(capped(16), await cappedGridGpu()));
  it('a broken kernel fails the check: a grid stride that skips every other pass', () =>
    expectMutantFails(mutation('embedding', 'i += groups.x * WORKGROUP', 'i += 2u * groups.x * WORKGROUP'),
      async (broken) => check(capped(17), await cappedGridGpu(broken)), /outside atol/));
  it('a broken kernel fails the check', async () => {
    await expectMutantFails(mutation('embedding', 'let e = id * params.hidden + c;', 'let e = id * params.hidden + c + 1u;'), (broken) => check({ tokens: 7, vocab: 40, hidden: 33, dtype: 'f32', seed: 3 }, broken), /outside atol/);
  });
  it('pinned: rows 2, 0, 2 of a 3x2 table, scaled by 0.5', async () => {
    const gpu = await testGpu();
    const kernel = new EmbeddingKernel(gpu, 'f32');
    const out = poisonedBuffer(gpu, 'pin.out', 6);
    const b = kernel.bind(
      'pin',
      uploadBuffer(gpu, 'pin.ids', new Uint32Array([2, 0, 2])),
      uploadBuffer(gpu, 'pin.table', new Float32Array([1, 2, 3, 4, 5, 6])),
      out,
      { vocab: 3, hidden: 2 },
    );
    kernel.setShape(b, { tokens: 3, scale: 0.5 });
    submitPass(gpu, 'pin', (pass) => kernel.encode(pass, b, 3));
    expectClose(await readF32(gpu, out, 6), [2.5, 3, 0.5, 1, 2.5, 3], TOL);
  });
  it('rejects a table buffer too small for its shape', async () => {
    const gpu = await testGpu();
    const kernel = new EmbeddingKernel(gpu, 'bf16');
    const small = uploadBuffer(gpu, 'small.table', new Uint32Array(4));
    expect(() => kernel.bind('bad', small, small, small, { vocab: 10, hidden: 8 })).toThrow(/table \[10, 8\] bf16 needs 160 bytes/);
  });
});
