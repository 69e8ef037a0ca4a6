// The expert inspector's weight reader on GGUF files: layer 0 of each gguf-py fixture (Q8_0 or MXFP4 gate/up, F16,
// BF16 or F32 down, F32 router) against the same layer of the transformers checkpoint it was written from, within
// the rounding of each tensor's format; and of the split file, equal to the single file.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeFolder } from '../../src/io/node-source';
import { ExpertWeightReader } from '../../src/ui/expert-weights';

const FIXTURES = join(__dirname, '..', 'fixtures');
const read = async (dir: string) => new ExpertWeightReader(await nodeFolder(join(FIXTURES, dir))).read(0);

/** Largest |a − b| over the largest |b|, across every expert's rows. */
function relativeGap(a: Float32Array[], b: Float32Array[]): number {
  let err = 0, ref = 0;
  b.forEach((row, e) => row.forEach((v, i) => { ref = Math.max(ref, Math.abs(v)); err = Math.max(err, Math.abs(a[e][i] - v)); }));
  return err / ref;
}

describe('expert weights of GGUF models', () => {
  // gate/up: mixtral and olmoe Q8_0, qwen3_moe and gpt_oss MXFP4 (a quarter of the largest value at most).
  for (const [family, gateUpTol] of [['mixtral', 8e-3], ['olmoe', 8e-3], ['qwen3_moe', 0.25], ['gpt_oss', 0.25]] as const) {
    it(`${family}: within the rounding of the GGUF formats`, async () => {
      const [gguf, hf] = await Promise.all([read(`gguf-${family}`), read(family)]);
      expect(gguf.gateUp.length).toBe(hf.gateUp.length);
      expect(relativeGap(gguf.gateUp, hf.gateUp), 'gate/up').toBeLessThanOrEqual(gateUpTol);
      expect(relativeGap(gguf.gateUp, hf.gateUp), 'gate/up is the dequantised tensor, not raw bytes').toBeGreaterThan(0);
      expect(relativeGap(gguf.down, hf.down), 'down').toBeLessThanOrEqual(8e-3);
      expect(relativeGap(gguf.router, hf.router), 'router (F32)').toBe(0);
    });
  }

  it('a split GGUF reads as the single file', async () => {
    const [split, single] = await Promise.all([read('gguf-olmoe-split'), read('gguf-olmoe')]);
    expect(split).toEqual(single);
  });
});
