// End-to-end on the bundled demo model (6 layers × 8 experts, 4 heads; the page at `/` opens on it): the attention-flow
// panel records the engine's attention only while open and draws what the engine's probe read, aggregated as chosen;
// the 3D view's causal-atlas mode draws the sweep's Δ log-likelihoods; compare mode's expert alignment against the
// early checkpoint is the matching `moescope analyze align` computes.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Page } from 'puppeteer';
import { beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, type PageLog } from './support/browser';
import { harnessForFile, openDemoModel, type HookCall } from './support/fixture-page';

const harness = harnessForFile();
let page: Page;
let log: PageLog;
let hook: HookCall;

beforeAll(async () => {
  ({ page, log, hook } = await openDemoModel(harness(), 1280, 1000));
}, 200_000);

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

describe('causal atlas in the 3D view', () => {
  it('bar values are the sweep’s Δ log-likelihood; the legend says so; a selected expert lists its most hurt tokens', async () => {
    // The focus layer's sweep (9 runs of 2 tokens: SwiftShader takes tens of seconds a run on a loaded machine).
    const at = await hook((m) => m.position());
    await (at > 2 ? hook((m) => m.back(m.position() - 2)) : hook((m) => m.step(2 - m.position())));
    expect(await hook((m) => m.position())).toBe(2);
    const layer = 2;
    await hook((m) => m.setParam('focusLayer', 2));
    await page.select('#atlas-scope', 'focus');
    await page.click('#atlas-run');
    // Polled, not one long waitForFunction: on a loaded machine the sweep outlasts the protocol's call timeout.
    const note = () => page.$eval('#atlas-note', (e) => e.textContent ?? '');
    for (let i = 0; i < 160 && !/runs of 2 tokens/.test(await note()); i++) await new Promise((r) => setTimeout(r, 5000));
    expect(await note()).toMatch(/9 runs of 2 tokens in [\d.]+ s/);
    await hook((m) => m.setParam('mode', 'atlas'));
    const atlas = (await hook((m) => m.atlas()))!;
    const [values, layout] = await Promise.all([hook((m) => m.instanceValues()), hook((m) => m.layout())]);
    expect(atlas.entries.map((e) => e.layer)).toEqual(new Array(8).fill(layer));
    const max = Math.max(...atlas.entries.map((e) => Math.abs(e.deltaLogLikelihood)));
    const scale = await hook((m) => m.app.state.params.heightScale);
    for (let i = 0; i < layout!.count; i++) {
      if (layout!.expert[i] < 0) continue;
      const e = atlas.entries.find((x) => x.layer === layout!.layer[i] && x.expert === layout!.expert[i]);
      if (!e) {
        // Not swept: no bar, the neutral "not run" colour, NaN (null once serialised) as its value.
        expect([values[i * 4], values[i * 4 + 1], values[i * 4 + 2] ?? NaN]).toEqual([0, -3, NaN]);
        continue;
      }
      expect(values[i * 4 + 2]).toBe(Math.fround(e.deltaLogLikelihood)); // raw value: the sweep's result
      expect(values[i * 4]).toBeCloseTo((1.5 * scale * Math.abs(e.deltaLogLikelihood)) / max, 5); // height
      expect(values[i * 4 + 1]).toBeCloseTo(0.5 - (0.5 * e.deltaLogLikelihood) / max, 5); // colour
    }
    expect(await page.$eval('#grid-legend', (e) => e.textContent)).toMatch(/\|Δ log-likelihood\| of the text when the expert is ablated/);
    // The most needed expert, selected: its most hurt token (the one predicted token of a 2-token text).
    const top = atlas.entries[0];
    const cell = layout!.layer.findIndex((l, j) => l === top.layer && layout!.expert[j] === top.expert);
    await page.evaluate((i) => window.__moescope!.app.state.selectCell(i), cell);
    expect(await page.$eval('#atlas-hurt', (e) => e.textContent)).toContain(`Layer ${top.layer}, expert ${top.expert} ablated`);
    expect(await page.$$eval('#atlas-hurt .chip', (c) => c.length)).toBe(top.mostHurt.length);
    await hook((m) => m.settle());
    await page.screenshot({ path: join(ARTIFACTS, 'atlas-view.png') });
    await page.evaluate(() => document.getElementById('atlas-panel')!.scrollIntoView());
    await page.screenshot({ path: join(ARTIFACTS, 'atlas-panel.png') });
    await hook((m) => m.setParam('mode', 'load'));
  }, 900_000);
});

describe('compare mode with experts aligned by weights', () => {
  it('matches the early checkpoint’s experts as `moescope analyze align` does, and says which similarity', async () => {
    const cli = JSON.parse(
      execFileSync('node', ['bin/moescope.mjs', 'analyze', 'align', '--model', 'public/models/moescope-demo', '--other', 'public/models/moescope-demo-early'], { encoding: 'utf8' }),
    ) as { layers: ({ match: number[]; matched: number[]; meanUnmatched: number } | null)[] };
    await page.click('#compare');
    await page.waitForFunction(() => !(document.getElementById('compare-canvas') as HTMLCanvasElement).hidden, { timeout: 120_000 });
    expect(await page.$eval('#compare-note', (e) => e.textContent)).toMatch(/compared by index/);
    await page.click('#compare-align');
    await page.waitForFunction(() => /aligned by weights/.test(document.getElementById('compare-note')!.textContent ?? ''), { timeout: 120_000 });
    const aligned = await hook((m) => {
      const a = m.app.compare.alignment!;
      return { match: a.layers.map((x) => x && x.match), meanMatched: a.meanMatched, meanUnmatched: a.meanUnmatched, moved: a.moved };
    });
    const live = cli.layers.filter((x) => x !== null);
    expect(aligned.match).toEqual(cli.layers.map((x) => x && x.match));
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    expect(aligned.meanMatched).toBeCloseTo(mean(live.flatMap((x) => x!.matched)), 6);
    expect(aligned.meanUnmatched).toBeCloseTo(mean(live.map((x) => x!.meanUnmatched)), 6);
    const note = await page.$eval('#compare-note', (e) => e.textContent ?? '');
    expect(note).toContain('Hungarian matching on the cosine of W_down·W_up');
    expect(note).toContain(`${aligned.moved} re-indexed`);
    await page.evaluate(() => document.getElementById('compare-panel')!.scrollIntoView());
    await page.screenshot({ path: join(ARTIFACTS, 'compare-aligned.png') });
    await page.click('#compare');
  }, 300_000);
});

describe('the whole session', () => {
  it('logged no console errors and showed no error in the page', async () => {
    expect(log.errors).toEqual([]);
    expect(await hook((m) => m.errors())).toEqual([]);
  });
});
