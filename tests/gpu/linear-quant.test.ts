// Linear layers on block-quantised weights: the GEMV (shaders/gemv_quant.wgsl, decoding with lib/quant_unit) and both
// tiled matmuls (matmul.wgsl, matmul_kmajor.wgsl through lib/matmul_stage, decoding with lib/quant), against a float64
// matmul of the float64 dequantisation. Sizes come from the tiles: GEMV rows of fewer 64-element units than WG_K
// threads and of more (every thread's loop twice, a tail), rows of Q8_0/MXFP4 ending on a half unit, N with a tail of
// the GEMV's WG_N·NT and of the matmul's 128-column tiles, K over several TILE_K steps. With one-hot x rows the GEMV
// returns single weights: those equal gguf-py's dequantisation exactly.
import { describe, expect, it } from 'vitest';
import { GemvKernel, gemvBucket, gemvQuantTile } from '../../src/engine/kernels/gemv';
import { MATMUL_LARGE, MATMUL_MID, MatmulKernel, type MatmulConfig } from '../../src/engine/kernels/matmul';
import { submitPass, uploadBuffer } from '../../src/engine/kernels/common';
import { QUANT_BLOCKS, type QuantFormat } from '../../src/model/dtypes';
import { dequantRef } from '../../src/reference/dequant';
import { matmulRef } from '../../src/reference/matmul';
import { expectClose, expectExact, poisonedBuffer, readF32, testGpu } from '../support/gpu';
import { FIXTURE_FORMATS, blockFixture, padTo4, randomBlocks } from '../support/gguf-blocks';
import { randomF32 } from '../support/random';
import { expectMutantFails, mutation } from '../support/mutant';
import type { Gpu } from '../../src/engine/gpu';

interface Case {
  format: QuantFormat;
  rows: number;
  K: number;
  N: number;
  seed: number;
  /** A tiled matmul instead of the GEMV. */
  matmul?: MatmulConfig;
}

async function check(c: Case, gpu?: Gpu) {
  gpu ??= await testGpu();
  const { format, rows, K, N } = c;
  const x = randomF32(rows * K, c.seed);
  const blocks = randomBlocks(format, N, K, c.seed + 1);
  const w = dequantRef(format, blocks, N * K);
  const y = poisonedBuffer(gpu, 'test.y', rows * N);
  const xBuf = uploadBuffer(gpu, 'test.x', x);
  const wBuf = uploadBuffer(gpu, 'test.w', padTo4(blocks));
  if (c.matmul) {
    const kernel = new MatmulKernel(gpu, { weightDtype: format, weightLayout: 'nk', aligned: true, ...c.matmul });
    const b = kernel.bind('test.matmul', xBuf, wBuf, y);
    kernel.setShape(b, { M: rows, N, K });
    submitPass(gpu, 'test', (pass) => kernel.encode(pass, b, rows, N));
  } else {
    const kernel = new GemvKernel(gpu, { weightDtype: format, weightLayout: 'nk', rows: gemvBucket(rows), aligned: false, K });
    const b = kernel.bind('test.gemv', xBuf, wBuf, y);
    kernel.setShape(b, { rows, N, K });
    submitPass(gpu, 'test', (pass) => kernel.encode(pass, b, N));
  }
  // f32 sums of K products: error bounded by a small multiple of eps · Σ|x·w| (the largest such sum sets atol).
  let mass = 0;
  for (let r = 0; r < rows; r++) {
    for (let n = 0; n < N; n++) {
      let m = 0;
      for (let k = 0; k < K; k++) m += Math.abs(x[r * K + k] * w[n * K + k]);
      mass = Math.max(mass, m);
    }
  }
  const what = `${c.matmul ? c.matmul.shader : 'gemv'} ${rows}x${K}->${N} ${format}`;
  expectClose(await readF32(gpu, y, rows * N), matmulRef(x, w, rows, K, N, 'nk'), { atol: 1e-5 * mass, rtol: 1e-4 }, what);
  expect(gpu.recentErrors).toEqual([]);
}

/** K of `units` 64-element units (K-quants: rounded up to whole 256-element blocks), `half`: a last half unit. */
const kFor = (format: QuantFormat, units: number, half = false) =>
  Math.ceil((units * 64) / QUANT_BLOCKS[format].elements) * QUANT_BLOCKS[format].elements + (half ? 32 : 0);

/** y = one-hot x rows · Wᵀ over every column of the gguf-py fixture, 16 columns per call: W's values, exactly. */
async function checkOneHot(format: QuantFormat, gpu?: Gpu) {
  gpu ??= await testGpu();
  const f = blockFixture(format);
  const rows = 16;
  const kernel = new GemvKernel(gpu, { weightDtype: format, weightLayout: 'nk', rows, aligned: false, K: f.cols });
  const wBuf = uploadBuffer(gpu, 'test.w', padTo4(f.bytes));
  const got = new Float32Array(f.rows * f.cols);
  for (let k0 = 0; k0 < f.cols; k0 += rows) {
    const x = new Float32Array(rows * f.cols);
    for (let r = 0; r < rows; r++) x[r * f.cols + k0 + r] = 1;
    const y = poisonedBuffer(gpu, 'test.y', rows * f.rows);
    const b = kernel.bind('test.gemv', uploadBuffer(gpu, 'test.x', x), wBuf, y);
    kernel.setShape(b, { rows, N: f.rows, K: f.cols });
    submitPass(gpu, 'test', (pass) => kernel.encode(pass, b, f.rows));
    const out = await readF32(gpu, y, rows * f.rows);
    for (let r = 0; r < rows; r++) for (let n = 0; n < f.rows; n++) got[n * f.cols + k0 + r] = out[r * f.rows + n];
  }
  expect(gpu.recentErrors).toEqual([]);
  // As numbers: a zero weight may come back as −0 where gguf-py has +0 (no dot product can tell them apart).
  expectExact(got, f.values, `${format} one-hot gemv`);
}

describe('gemv on quantised weights', () => {
  for (const format of FIXTURE_FORMATS) {
    it(`${format}: one-hot x returns gguf-py's weights`, () => checkOneHot(format));
    // Fewer units than WG_K threads (K-quants: one block); then more than 32 threads' worth, with a tail, and for
    // the 32-element formats a last half unit.
    const small = kFor(format, 1, QUANT_BLOCKS[format].elements === 32);
    const large = kFor(format, 35, QUANT_BLOCKS[format].elements === 32);
    const t1 = gemvQuantTile(1, large);
    const t3 = gemvQuantTile(3, large);
    it(`${format}: 1 row, ${small}->${t1.WG_N * t1.NT * 2 + 3}`, () => check({ format, rows: 1, K: small, N: t1.WG_N * t1.NT * 2 + 3, seed: 1 }));
    it(`${format}: 1 row, ${large}->${t1.WG_N * t1.NT + 3}`, () => check({ format, rows: 1, K: large, N: t1.WG_N * t1.NT + 3, seed: 2 }));
    it(`${format}: 3 rows, ${large}->${t3.WG_N * t3.NT + 1}`, () => check({ format, rows: 3, K: large, N: t3.WG_N * t3.NT + 1, seed: 3 }));
  }
  it('q4_k: 16 rows', () => check({ format: 'q4_k', rows: 16, K: 512, N: 5, seed: 4 }));
  it('q8_0: 9 rows', () => check({ format: 'q8_0', rows: 9, K: 96, N: 13, seed: 5 }));

  it('refuses a K that is not whole blocks', async () => {
    const gpu = await testGpu();
    const kernel = new GemvKernel(gpu, { weightDtype: 'q6_k', weightLayout: 'nk', rows: 1, aligned: false });
    const buf = poisonedBuffer(gpu, 'test.any', 1024);
    expect(() => kernel.setShape(kernel.bind('test.gemv', buf, buf, buf), { rows: 1, N: 1, K: 128 })).toThrow(/256-element blocks/);
  });

  // Each mutant compiles, raises no GPU error and gives wrong numbers.
  it('gemv_quant: a mutant that skips every other pass of a thread over its units fails', async () => {
    const K = kFor('q4_k', 35);
    await expectMutantFails(mutation('lib/gemv_core', 'u < qu_units(K); u += WG_K)', 'u < qu_units(K); u += 2u * WG_K)'),
      (broken) => check({ format: 'q4_k', rows: 1, K, N: 9, seed: 6 }, broken), /outside atol/);
  });
  it('gemv_quant: a mutant that stores the first column of each thread for all its columns fails', async () => {
    await expectMutantFails(mutation('gemv_quant', 'let v = core_sum(r, c / NT, c % NT);', 'let v = core_sum(r, c / NT, 0u);'),
      (broken) => check({ format: 'q8_0', rows: 1, K: 96, N: 9, seed: 7 }, broken), /outside atol/);
  });
  const decodeMutants: [QuantFormat, string, string][] = [
    ['q8_0', 'qu_set4(&q, 12u, qu_window(at + 52u));', 'qu_set4(&q, 12u, qu_window(at + 51u));'],
    ['q4_k', '(h.w & 0x0f0f0f0fu) | ((h.y >> 2u) & 0x30303030u)', '(h.w & 0x0f0f0f0fu) | ((h.y >> 2u) & 0x10101010u)'],
    ['q5_k', '(((q.c[8u + i] >> (seg >> 1u)) & 0x01010101u) << 4u)', '(((q.c[8u + i] >> (seg & 1u)) & 0x01010101u) << 4u)'],
    ['q6_k', '(((q.c[8u + g] >> (2u * seg)) & 0x03030303u) << 4u), 32.0)', '(((q.c[8u + g] >> (2u * seg)) & 0x03030303u) << 4u), 31.0)'],
    ['mxfp4', 'vec4<u32>(0xc8643210u)', 'vec4<u32>(0xc8653210u)'],
  ];
  for (const [format, from, to] of decodeMutants) {
    it(`a ${format} unit-decode mutant fails the one-hot check`, async () => {
      await expectMutantFails(mutation('lib/quant_unit', from, to), (broken) => checkOneHot(format, broken), /differ/);
    });
  }
});

describe('tiled matmul on quantised weights', () => {
  for (const config of [MATMUL_LARGE, MATMUL_MID]) {
    const tileN = config.tile.WG_N * 8;
    for (const format of FIXTURE_FORMATS) {
      const K = kFor(format, 1, QUANT_BLOCKS[format].elements === 32); // 96 or 256: several TILE_K steps, sub-blocks split across units
      it(`${config.shader} ${format}: 19 rows, ${K}->${tileN + 5}`, () =>
        check({ format, rows: 19, K, N: tileN + 5, seed: 6, matmul: config }));
    }
  }

  it('a mutant that stages the wrong group of a sub-block fails', async () => {
    await expectMutantFails(mutation('lib/matmul_stage', 'let hi = quant_group(b, g + 1u);', 'let hi = quant_group(b, g);'),
      (broken) => check({ format: 'q6_k', rows: 19, K: 256, N: 7, seed: 7, matmul: MATMUL_MID }, broken), /outside atol/);
  });
});
