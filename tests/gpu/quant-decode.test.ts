// Decoding of block-quantised weights in WGSL (shaders/lib/quant.wgsl), through the embedding gather, which writes
// decoded rows unchanged (scale 1): every value must equal gguf-py's dequantisation bit for bit.
import { describe, expect, it } from 'vitest';
import { EmbeddingKernel } from '../../src/engine/kernels/embedding';
import { submitPass, uploadBuffer } from '../../src/engine/kernels/common';
import type { QuantFormat } from '../../src/model/dtypes';
import { dequantRef } from '../../src/reference/dequant';
import { poisonedBuffer, readF32, testGpu } from '../support/gpu';
import { FIXTURE_FORMATS, blockFixture, hfMxfp4Fixture, padTo4, randomBlocks } from '../support/gguf-blocks';
import { repackHfMxfp4 } from '../../src/io/mxfp4';
import { expectMutantFails, mutation } from '../support/mutant';
import type { Gpu } from '../../src/engine/gpu';

/** Gathers rows `ids` of a [vocab, hidden] table of blocks; returns the f32 bits of the output. */
async function gather(gpu: Gpu, format: QuantFormat, blocks: Uint8Array, vocab: number, hidden: number, ids: number[]) {
  const kernel = new EmbeddingKernel(gpu, format);
  const out = poisonedBuffer(gpu, 'test.out', ids.length * hidden);
  const b = kernel.bind('test.gather', uploadBuffer(gpu, 'test.ids', new Uint32Array(ids)), uploadBuffer(gpu, 'test.table', padTo4(blocks)), out,
    { vocab, hidden });
  kernel.setShape(b, { tokens: ids.length });
  submitPass(gpu, 'test', (pass) => kernel.encode(pass, b, ids.length));
  const values = await readF32(gpu, out, ids.length * hidden);
  expect(gpu.recentErrors).toEqual([]);
  return new Uint32Array(values.buffer);
}

/** The rows `ids` of `values` ([*, hidden]) as f32 bits. */
function rowsBits(values: ArrayLike<number>, hidden: number, ids: number[]): Uint32Array {
  const out = new Float32Array(ids.length * hidden);
  ids.forEach((id, t) => { for (let c = 0; c < hidden; c++) out[t * hidden + c] = values[id * hidden + c]; });
  return new Uint32Array(out.buffer);
}

function expectBits(got: Uint32Array, want: Uint32Array, what: string): void {
  let first = -1;
  let count = 0;
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) { count++; if (first < 0) first = i; }
  const f = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0];
  expect(count, `${what}: ${count} values differ, first [${first}] ${f(got[first])} vs ${f(want[first])}`).toBe(0);
}

async function checkFixture(format: QuantFormat, gpu?: Gpu) {
  gpu ??= await testGpu();
  const f = blockFixture(format);
  // Every row, backwards and with a repeat: rows start mid-word for 34-, 210- and 17-byte blocks.
  const ids = [...Array(f.rows).keys()].reverse().concat([1]);
  expectBits(await gather(gpu, format, f.bytes, f.rows, f.cols, ids), rowsBits(f.values, f.cols, ids), `${format} fixture`);
}

describe('quantised decode equals gguf-py bit for bit', () => {
  for (const format of FIXTURE_FORMATS) it(`${format}: gguf-py fixture blocks`, () => checkFixture(format));

  it('mxfp4: Hugging Face gpt-oss blocks repacked, against transformers', async () => {
    const gpu = await testGpu();
    const f = hfMxfp4Fixture();
    const rows = f.count / 5; // [E·N rows, 5 blocks of 32]
    const ids = [...Array(rows).keys()];
    const got = await gather(gpu, 'mxfp4', repackHfMxfp4('hf', f.blocks, f.scales, f.count), rows, 160, ids);
    expectBits(got, new Uint32Array(f.values.buffer), 'mxfp4 from the HF layout');
  });

  // More rows than one workgroup's threads have sub-blocks for (grid-stride loop), against the float64 reference.
  for (const format of FIXTURE_FORMATS) {
    it(`${format}: 37 random rows of 2 blocks`, async () => {
      const gpu = await testGpu();
      const hidden = format === 'q8_0' || format === 'mxfp4' ? 64 : 512;
      const vocab = 37;
      const blocks = randomBlocks(format, vocab, hidden, 7);
      const ids = [...Array(300).keys()].map((i) => (i * 11) % vocab);
      const want = rowsBits(Float32Array.from(dequantRef(format, blocks, vocab * hidden)), hidden, ids);
      expectBits(await gather(gpu, format, blocks, vocab, hidden, ids), want, `${format} random`);
    });
  }

  // Each mutant compiles, raises no GPU error, and decodes wrong values.
  const mutants: [QuantFormat, string, string][] = [
    ['q8_0', 'signed_bytes4(q_u32(b.at + 2u + 4u * g))', 'signed_bytes4(q_u32(b.at + 4u * g))'],
    ['q4_k', 'return vec2<f32>(f32(q_u8(at + j) & 63u)', 'return vec2<f32>(f32(q_u8(at + j) & 31u)'],
    ['q5_k', '>> vec4<u32>(b.j)) & vec4<u32>(1u)) << vec4<u32>(4u)', '>> vec4<u32>(b.j)) & vec4<u32>(1u)) << vec4<u32>(3u)'],
    ['q6_k', 'select(b.d.x, b.d.y, g >= 4u)', 'select(b.d.x, b.d.y, g >= 3u)'],
    ['mxfp4', '(m >> vec4<u32>(1u)) - vec4<u32>(1u)', '(m >> vec4<u32>(1u)) - vec4<u32>(0u)'],
  ];
  for (const [format, from, to] of mutants) {
    it(`a ${format} decode mutant fails`, async () => {
      await expectMutantFails(mutation('lib/quant', from, to), (broken) => checkFixture(format, broken), /values differ/);
    });
  }
});
