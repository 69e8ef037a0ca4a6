// DeepSeek (MLA on the compressed cache) through the session: a prompt prefilled in chunks that start mid-cache, and
// stepping back, which rewrites cache rows in place.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { relativeError, sessionOpener } from '../support/sessions';

const FIXTURE = join(__dirname, '..', 'fixtures', 'deepseek_v2');
const golden = JSON.parse(readFileSync(join(FIXTURE, 'golden.json'), 'utf8')) as {
  input_ids: number[];
  prefill: { logits: number[][] };
  decode: { input_id: number; logits: number[] }[];
};

const open = sessionOpener(FIXTURE, { contextLength: 48, maxTokensPerStep: 5 });


describe('DeepSeek-V2 session', () => {
  it("a prompt fed 5 tokens per step gives transformers' logits for the last token and the next decode step", async () => {
    const s = await open();
    await s.feed(golden.input_ids); // 28 tokens: 6 steps, all but the first starting mid-cache
    expect(relativeError(await s.lastLogits(), golden.prefill.logits.at(-1)!)).toBeLessThan(1e-4);
    await s.feed([golden.decode[0].input_id]);
    expect(relativeError(await s.lastLogits(), golden.decode[0].logits)).toBeLessThan(1e-4);
  });

  it('stepping back and feeding the same tokens again gives the same logits', async () => {
    const s = await open({ maxTokensPerStep: 16 });
    await s.feed(golden.input_ids);
    const first = await s.lastLogits();
    await s.back(10);
    await s.feed(golden.input_ids.slice(-10).reverse()); // other tokens into the same cache rows
    expect(relativeError(await s.lastLogits(), first)).toBeGreaterThan(1e-3);
    await s.back(10);
    await s.feed(golden.input_ids.slice(-10));
    expect(relativeError(await s.lastLogits(), first)).toBeLessThan(1e-6);
  });
});
