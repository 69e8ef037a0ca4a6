// Session.onStepLogits: every step's logits rows come back (in chunks of maxTokensPerStep, and for generated tokens)
// equal to what transformers computed for the Mixtral fixture, and stepping does not wait for them.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StepLogits } from '../../src/engine/session-api';
import { nodeFolder } from '../../src/io/node-source';
import { loadModel } from '../../src/loading/load-model';
import { testGpu } from '../support/gpu';

const DIR = join(__dirname, '..', 'fixtures', 'mixtral');
const golden = JSON.parse(readFileSync(join(DIR, 'golden.json'), 'utf8')) as {
  input_ids: number[];
  prefill: { logits: number[][] };
  decode: { position: number; logits: number[] }[];
  generated_ids: number[];
};

describe('step logits read-back', () => {
  it('hands over every row of every step, matching transformers, without holding the steps', async () => {
    const gpu = await testGpu();
    // 27 prompt tokens in steps of at most 10: three steps of 10, 10 and 7 rows.
    const session = await loadModel(gpu, await nodeFolder(DIR), { contextLength: 64, maxTokensPerStep: 10 });
    const pending: Promise<StepLogits>[] = [];
    session.onStepLogits((p) => pending.push(p));
    await session.feed(golden.input_ids);
    // All three steps were submitted before any read-back was awaited.
    expect(pending.length).toBe(3);
    const id = await session.generate({ temperature: 0, topP: 1, seed: 0 });
    expect(id).toBe(golden.generated_ids[0]);
    const steps = await Promise.all(pending);
    expect(steps.map((s) => [s.start, s.ids.length])).toEqual([[0, 10], [10, 10], [20, 7], [27, 1]]);
    const V = session.config.vocabSize;
    const rows = steps.flatMap((s) => Array.from(s.ids, (_, r) => ({ position: s.start + r, row: s.logits.subarray(r * V, (r + 1) * V) })));
    const expected = [...golden.prefill.logits, golden.decode.find((d) => d.position === 27)!.logits];
    expect(rows.length).toBe(expected.length);
    for (const { position, row } of rows) {
      const e = expected[position];
      const scale = Math.max(...e.map(Math.abs));
      const worst = Math.max(...Array.from(row, (v, i) => Math.abs(v - e[i])));
      expect(worst / scale, `position ${position}`).toBeLessThan(1e-4);
    }
    expect(steps[0].ids).toEqual(Uint32Array.from(golden.input_ids.slice(0, 10)));
    session.onStepLogits(null);
    await session.feed([id]);
    expect(pending.length).toBe(4);
    session.destroy();
  }, 120_000);
});
