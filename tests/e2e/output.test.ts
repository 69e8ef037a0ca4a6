// End-to-end: the model's output beside its routing, on the Mixtral golden fixture (tests/fixtures/mixtral) picked as
// files. The next-token panel and the per-token surprisal are checked against the logits transformers computed for
// the same prompt (golden.json), and generated tokens must appear in the token strip.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'puppeteer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, startHarness, type Harness, type PageLog } from './support/browser';
import { MIXTRAL_FIXTURE as FIXTURE, openMixtralFixture, type HookCall } from './support/fixture-page';

const golden = JSON.parse(readFileSync(join(FIXTURE, 'golden.json'), 'utf8')) as {
  prompt: string;
  input_ids: number[];
  generated_ids: number[];
  prefill: { logits: number[][] };
};

/** Softmax of a logits row, float64. */
function softmax(row: number[]): number[] {
  const m = Math.max(...row);
  const e = row.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

let h: Harness;
let page: Page;
let log: PageLog;
let hook: HookCall;


beforeAll(async () => {
  h = await startHarness();
  ({ page, log, hook } = await openMixtralFixture(h, 1280, 900));
  await hook((m) => m.settle());
}, 180_000);

afterAll(async () => {
  await h?.close();
});

describe('output beside routing', () => {
  it('shows the next-token distribution and every token’s surprisal as transformers computed them', async () => {
    await hook((m) => m.useText('The expert said "café": route(x, k=2) 🙂'));
    // Three steps of different sizes: surprisal must also be right across step boundaries.
    for (const n of [10, 1, 16]) await page.evaluate((k) => window.__moescope!.step(k), n);
    const T = golden.input_ids.length;
    await page.waitForFunction((t) => window.__moescope!.app.output.next.length === t && document.querySelectorAll('#next-token .next-row').length > 0, { timeout: 30_000 }, T);
    // Next token after the last prompt token: transformers' top 8, in order, with their probabilities.
    const last = softmax(golden.prefill.logits[T - 1]);
    const order = last.map((_, i) => i).sort((a, b) => last[b] - last[a] || a - b);
    const rows = await page.$$eval('#next-token .next-row', (els) => els.map((e) => ({ id: Number((e as HTMLElement).dataset.id), p: e.querySelector('.next-p')!.textContent })));
    expect(rows.map((r) => r.id)).toEqual(order.slice(0, 8));
    rows.forEach((r) => expect(r.p).toBe(`${(last[r.id] * 100).toFixed(1)}%`));
    expect(rows[0].id).toBe(golden.generated_ids[0]); // greedy decoding takes the top token
    // Surprisal of token p = −ln softmax(logits[p − 1])[id_p].
    const surprisal = await hook((m) => m.app.output.surprisal.map((s) => (Number.isFinite(s) ? s : null)));
    expect(surprisal[0]).toBeNull();
    for (let p = 1; p < T; p++) {
      const expected = -Math.log(softmax(golden.prefill.logits[p - 1])[golden.input_ids[p]]);
      expect(surprisal[p], `position ${p}`).toBeCloseTo(expected, 3);
    }
    const summary = await page.$eval('#surprisal .surprisal-summary', (e) => e.textContent ?? '');
    expect(summary).toMatch(/mean surprisal \d+\.\d\d bits\/token over 26 tokens/);
    await page.evaluate(() => document.getElementById('output-panel')!.scrollIntoView());
    await page.screenshot({ path: join(ARTIFACTS, 'output-next-token.png') });
  }, 120_000);

  it('a selected token shows what the model predicted after it and where the actual next token ranked', async () => {
    await hook((m) => m.app.state.selectToken(3));
    await page.waitForFunction(() => /#3\)/.test(document.querySelector('#next-token .next-caption')?.textContent ?? ''), { timeout: 10_000 });
    const p = softmax(golden.prefill.logits[3]);
    const next = golden.input_ids[4];
    const rank = p.filter((x, i) => x > p[next] || (x === p[next] && i < next)).length;
    const foot = await page.$eval('#next-token .note', (e) => e.textContent ?? '');
    expect(foot).toContain(`p = ${(p[next] * 100).toFixed(2)}%, rank ${rank + 1}`);
    await hook((m) => m.app.state.selectToken(null));
  });

  it('generated tokens appear in the token strip, marked as generated', async () => {
    await hook((m) => m.setParam('sampleTemperature', 0));
    await hook((m) => m.setParam('stepMode', 'generate'));
    await hook((m) => m.step(3));
    const texts = await hook((m) => m.stripTexts());
    expect(texts.length).toBe(golden.input_ids.length + 3);
    const generated = await page.$$eval('#strip .tok.gen', (els) => els.map((e) => e.textContent ?? ''));
    const last = await hook((m) => m.app.stepper!.processed.slice(-3).map((t) => ({ id: t.id, text: m.app.model!.tokenizer!.tokenText(t.id) })));
    expect(last.map((t) => t.id)).toEqual(golden.generated_ids.slice(0, 3));
    expect(generated).toEqual(last.map((t) => t.text));
    await page.evaluate(() => document.getElementById('strip')!.scrollIntoView());
    await page.screenshot({ path: join(ARTIFACTS, 'output-generated-strip.png') });
    await hook((m) => m.setParam('stepMode', 'scan'));
  }, 60_000);

  it('logged no console errors', () => {
    expect(log.errors).toEqual([]);
  });
});
