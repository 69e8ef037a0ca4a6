// End-to-end on the bundled demo model (6 layers × 8 experts, 4 heads; the page at `/` opens on it): the attention-flow
// panel records the engine's attention only while open and draws what the engine's probe read, aggregated as chosen.
import { join } from 'node:path';
import type { Page } from 'puppeteer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, openPage, startHarness, waitForApp, type Harness, type PageLog } from './support/browser';
import { hookOf, type HookCall } from './support/fixture-page';

let h: Harness;
let page: Page;
let log: PageLog;
let hook: HookCall;

beforeAll(async () => {
  h = await startHarness();
  ({ page, log } = await openPage(h, 1280, 1000));
  hook = hookOf(page);
  await page.goto(h.origin);
  await waitForApp(page);
  await page.waitForFunction(() => window.__moescope!.hasSession() || window.__moescope!.errors().length > 0, { timeout: 90_000 });
  await hook((m) => m.settle());
}, 200_000);

afterAll(async () => {
  await h?.close();
});

describe('attention flow', () => {
  it('records only while open; draws the engine’s weights of the current token, mean, max and per head', async () => {
    await hook((m) => m.step(4));
    expect((await hook((m) => m.attention())).recording).toBe(false);
    await page.evaluate(() => {
      const box = document.getElementById('attention-box') as HTMLDetailsElement;
      box.open = true;
      box.scrollIntoView();
    });
    await page.waitForFunction(() => window.__moescope!.attention().recording, { timeout: 10_000 });
    await hook((m) => m.step(1));
    await page.waitForFunction(() => window.__moescope!.attention().drawn !== null, { timeout: 30_000 });
    await page.select('#attention-layer', '3');
    const { drawn, flow } = await hook((m) => m.attention());
    expect(flow!.position).toBe(4);
    const H = flow!.heads, keys = 5, layer = 3;
    expect(H).toBe(4);
    const row = (h: number) => flow!.weights.slice((layer * H + h) * keys, (layer * H + h + 1) * keys);
    // Each head's weights are a softmax over the 5 keys (the demo model has no sinks).
    for (let hd = 0; hd < H; hd++) expect(row(hd).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    const mean = Array.from({ length: keys }, (_, k) => (row(0)[k] + row(1)[k] + row(2)[k] + row(3)[k]) / H);
    expect(drawn!.layer).toBe(layer);
    expect(drawn!.aggregate).toBe('mean');
    expect(drawn!.sink).toBeNull();
    drawn!.values.forEach((v, k) => expect(v).toBeCloseTo(mean[k], 6));
    expect(drawn!.tokens).toEqual(await hook((m) => m.app.stepper!.processed.slice(0, 5).map((t) => t.text)));
    await page.screenshot({ path: join(ARTIFACTS, 'attention-flow-mean.png') });

    await page.select('#attention-heads', 'max');
    const max = (await hook((m) => m.attention())).drawn!;
    max.values.forEach((v, k) => expect(v).toBe(Math.max(row(0)[k], row(1)[k], row(2)[k], row(3)[k])));
    await page.select('#attention-heads', 'heads');
    const each = (await hook((m) => m.attention())).drawn!;
    expect(each.rows).toEqual(['head 0', 'head 1', 'head 2', 'head 3']);
    expect(each.values).toEqual([0, 1, 2, 3].flatMap((hd) => row(hd)));
    // The hover readout names the key and its weight.
    const box = (await page.$('#attention-flow canvas'))!;
    const rect = (await box.boundingBox())!;
    await page.mouse.move(rect.x + rect.width - 8, rect.y + 16 + 3);
    expect(await page.$eval('#attention-flow .note', (e) => e.textContent)).toMatch(/head 0 · key #4 ".*": weight \d\.\d{4}/);
    await page.screenshot({ path: join(ARTIFACTS, 'attention-flow-heads.png') });

    // Stepping back leaves no stale weights; closing detaches the probe from the engine.
    await hook((m) => m.back(1));
    expect((await hook((m) => m.attention())).drawn).toBeNull();
    await page.evaluate(() => ((document.getElementById('attention-box') as HTMLDetailsElement).open = false));
    await page.waitForFunction(() => !window.__moescope!.attention().recording, { timeout: 10_000 });
  }, 200_000);
});

describe('the whole session', () => {
  it('logged no console errors and showed no error in the page', async () => {
    expect(log.errors).toEqual([]);
    expect(await hook((m) => m.errors())).toEqual([]);
  });
});
