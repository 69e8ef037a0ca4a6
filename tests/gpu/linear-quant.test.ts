// Linear layers on block-quantised weights: the GEMV (shaders/gemv.wgsl) and both tiled matmuls (matmul.wgsl,
// matmul_kmajor.wgsl through lib/matmul_stage), decoding with lib/quant, against a float64 matmul of the float64
// dequantisation. Sizes come from the tiles: GEMV rows of K/32 sub-blocks below and above one pass of its WG_K
// threads, N with a tail of the GEMV's WG_N·NT and of the matmul's 128-column tiles, K over several TILE_K steps.
import { describe, expect, it } from 'vitest';
import { GEMV_TILE_QUANT, GemvKernel, gemvBucket } from '../../src/engine/kernels/gemv';
import { MATMUL_LARGE, MATMUL_MID, MatmulKernel, type MatmulConfig } from '../../src/engine/kernels/matmul';
import { submitPass, uploadBuffer } from '../../src/engine/kernels/common';
import { QUANT_BLOCKS, type QuantFormat } from '../../src/model/dtypes';
import { dequantRef } from '../../src/reference/dequant';
import { matmulRef } from '../../src/reference/matmul';
import { expectClose, poisonedBuffer, readF32, testGpu } from '../support/gpu';
import { FIXTURE_FORMATS, padTo4, randomBlocks } from '../support/gguf-blocks';
import { randomF32 } from '../support/random';
import { expectMutantFails, mutation } from '../support/mutant';
import type { Gpu } from '../../src/engine/gpu';

const T = GEMV_TILE_QUANT;
const BLOCK_N = T.WG_N * T.NT;

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
    const kernel = new GemvKernel(gpu, { weightDtype: format, weightLayout: 'nk', rows: gemvBucket(rows), aligned: false });
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

/** K with `subs` 32-element sub-blocks, rounded up to whole blocks of the format. */
const kFor = (format: QuantFormat, subs: number) => Math.ceil((subs * 32) / QUANT_BLOCKS[format].elements) * QUANT_BLOCKS[format].elements;

describe('gemv on quantised weights', () => {
  for (const format of FIXTURE_FORMATS) {
    // Fewer sub-blocks than WG_K threads; then more, with a tail (K-quants: 8 sub-blocks per block).
    const small = kFor(format, T.WG_K / 2);
    const large = kFor(format, T.WG_K + 5);
    it(`${format}: 1 row, ${small}->${BLOCK_N * 2 + 3}`, () => check({ format, rows: 1, K: small, N: BLOCK_N * 2 + 3, seed: 1 }));
    it(`${format}: 3 rows, ${large}->${BLOCK_N + 1}`, () => check({ format, rows: 3, K: large, N: BLOCK_N + 1, seed: 2 }));
  }
  it('q4_k: 16 rows', () => check({ format: 'q4_k', rows: 16, K: 512, N: 5, seed: 3 }));
  it('q8_0: 9 rows', () => check({ format: 'q8_0', rows: 9, K: 96, N: 13, seed: 4 }));

  it('refuses a K that is not whole blocks', async () => {
    const gpu = await testGpu();
    const kernel = new GemvKernel(gpu, { weightDtype: 'q6_k', weightLayout: 'nk', rows: 1, aligned: false });
    const buf = poisonedBuffer(gpu, 'test.any', 1024);
    expect(() => kernel.setShape(kernel.bind('test.gemv', buf, buf, buf), { rows: 1, N: 1, K: 128 })).toThrow(/256-element blocks/);
  });

  it('a mutant that drops the last 4 elements of every sub-block fails', async () => {
    await expectMutantFails(mutation('gemv', 'for (var g = 0u; g < 8u; g++) { s += dot', 'for (var g = 0u; g < 7u; g++) { s += dot'),
      (broken) => check({ format: 'q4_k', rows: 3, K: 512, N: 9, seed: 5 }, broken), /outside atol/);
  });
});

describe('tiled matmul on quantised weights', () => {
  for (const config of [MATMUL_LARGE, MATMUL_MID]) {
    const tileN = config.tile.WG_N * 8;
    for (const format of FIXTURE_FORMATS) {
      const K = kFor(format, 3); // 96 or 256: several TILE_K steps, sub-blocks split across units
      it(`${config.shader} ${format}: 19 rows, ${K}->${tileN + 5}`, () =>
        check({ format, rows: 19, K, N: tileN + 5, seed: 6, matmul: config }));
    }
  }

  it('a mutant that stages the wrong group of a sub-block fails', async () => {
    await expectMutantFails(mutation('lib/matmul_stage', 'let hi = quant_group(b, g + 1u);', 'let hi = quant_group(b, g);'),
      (broken) => check({ format: 'q6_k', rows: 19, K: 256, N: 7, seed: 7, matmul: MATMUL_MID }, broken), /outside atol/);
  });
});
