// End-to-end on the bundled demo model (public/models/<name>/, trained by tools/train_demo_model.py): the page opens
// on it, its samples fill the picker, stepping shows in the 3D view exactly the engine's counts, the load bars split
// by the samples' domain labels, and compare mode runs the early checkpoint beside it.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'puppeteer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, openPage, startHarness, waitForApp, type Harness, type PageLog } from './support/browser';

type Hook = NonNullable<Window['__moescope']>;

const models = existsSync('public/models')
  ? readdirSync('public/models').filter((d) => existsSync(join('public/models', d, 'config.json'))).sort()
  : [];
const demo = models.find((m) => !m.endsWith('-early'));
const early = demo && models.includes(`${demo}-early`) ? `${demo}-early` : null;

let h: Harness;
let page: Page;
let log: PageLog;

const hook = <T>(fn: (m: Hook) => T | Promise<T>): Promise<T> =>
  page.evaluate(async (src) => {
    const f = new Function('m', `return (${src})(m)`) as (m: Hook) => T;
    return f(window.__moescope!);
  }, fn.toString()) as Promise<T>;

describe.skipIf(!demo)(`the bundled demo model (${demo ?? 'not present'})`, () => {
  beforeAll(async () => {
    h = await startHarness();
    ({ page, log } = await openPage(h));
    await page.goto(h.origin);
    await waitForApp(page);
    await page.waitForFunction(() => window.__moescope!.hasSession() || window.__moescope!.errors().length > 0, { timeout: 90_000 });
    await hook((m) => m.settle());
  }, 180_000);

  afterAll(async () => {
    await h?.close();
  });

  it('opens on the demo model with its samples in the picker and the first sample as text', async () => {
    expect(await hook((m) => m.errors())).toEqual([]);
    expect(await hook((m) => m.modelId())).toBe(`demo:${demo}`);
    const samples = await hook((m) => m.app.model!.samples.length);
    expect(samples).toBeGreaterThan(0);
    expect(await page.$$eval('#samples option', (o) => o.length)).toBe(samples + 1);
    expect((await hook((m) => m.stripTexts())).length).toBeGreaterThan(20);
  });

  // The demo model (6 layers, hidden 256) takes seconds per step on SwiftShader, so this file steps few tokens, in one
  // teacher-forced step; the single-step, step-back and k checks run on the small golden fixture (session.test.ts).
  it('a prose sample stepped 8 tokens: the 3D view holds the engine’s counts; load bars split by domain, genre, part of speech', async () => {
    const prose = await hook((m) => m.app.model!.samples.findIndex((s) => s.posSpans !== undefined));
    expect(prose).toBeGreaterThanOrEqual(0);
    await page.select('#samples', String(prose));
    await hook((m) => m.settle());
    await hook((m) => m.step(8));
    const [values, layout, engine] = await Promise.all([
      hook((m) => m.instanceValues()),
      hook((m) => m.layout()),
      hook((m) => m.engineState()),
    ]);
    const E = layout!.numExperts;
    const raw = new Array(layout!.numLayers * E).fill(0);
    layout!.layer.forEach((l, i) => {
      if (layout!.expert[i] >= 0) raw[l * E + layout!.expert[i]] = values[i * 4 + 2];
    });
    expect(engine!.position).toBe(8);
    expect(raw).toEqual(engine!.counts);
    expect(engine!.ringCounts).toEqual(engine!.counts);
    await hook((m) => m.app.selectToken(5));
    await hook((m) => m.settle());
    await page.screenshot({ path: join(ARTIFACTS, 'demo-8-tokens.png') });

    const legend = () => page.$$eval('#loadbars .legend-item', (els) => els.map((e) => e.textContent ?? ''));
    expect(await legend()).toEqual(['prose']);
    await page.select('#loadbars-split', 'genre');
    const genre = await hook((m) => m.app.stepper!.planned[1].genre);
    expect(await legend()).toEqual([genre]);
    await page.select('#loadbars-split', 'pos');
    const tags = await legend();
    expect(tags.some((t) => ['NOUN', 'VERB', 'DET', 'ADP', 'PRON'].includes(t))).toBe(true);
    await page.evaluate(() => document.getElementById('loadbars')!.scrollIntoView());
    await page.screenshot({ path: join(ARTIFACTS, 'demo-load-bars-pos.png') });
    await page.select('#loadbars-split', 'domain');
  }, 150_000);

  it.skipIf(!early)('compare mode runs the early checkpoint on the same tokens', async () => {
    await page.click('#compare');
    await page.waitForFunction(() => !(document.getElementById('compare-canvas') as HTMLCanvasElement).hidden, { timeout: 90_000 });
    expect(await page.$eval('#compare-note', (e) => e.textContent)).toMatch(/same experts/);
    expect(await hook((m) => m.position())).toBe(8);
    await page.evaluate(() => document.getElementById('compare-panel')!.scrollIntoView());
    await page.screenshot({ path: join(ARTIFACTS, 'demo-compare.png') });
    await page.click('#compare');
  }, 150_000);

  it('logged no console errors', async () => {
    expect(log.errors).toEqual([]);
    expect(await hook((m) => m.errors())).toEqual([]);
  });
});
