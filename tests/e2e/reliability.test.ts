// The page under stress: a destroyed GPU device (recovered by a reload on the URL state, then reported), and a few
// hundred random actions issued in quick succession (steps, step-backs, play/pause, policy changes, model switches)
// after which the 3D view, the engine's counts and its per-token ring agree.
import { join } from 'node:path';
import type { Page } from 'puppeteer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPage, pickFiles, startHarness, waitForApp, type Harness } from './support/browser';

type Hook = NonNullable<Window['__moescope']>;
let h: Harness;
let page: Page;

const hook = <T>(fn: (m: Hook) => T | Promise<T>): Promise<T> =>
  page.evaluate(async (src) => {
    const f = new Function('m', `return (${src})(m)`) as (m: Hook) => T;
    return f(window.__moescope!);
  }, fn.toString()) as Promise<T>;

/** The view's raw per-cell counts in [layer, expert] order, beside the engine's counts and its ring's. */
async function agreement() {
  const [values, layout, engine, position] = await Promise.all([
    hook((m) => m.instanceValues()), hook((m) => m.layout()), hook((m) => m.engineState()), hook((m) => m.position()),
  ]);
  const E = layout!.numExperts;
  const view = new Array(layout!.numLayers * E).fill(0);
  layout!.layer.forEach((l, i) => {
    if (layout!.expert[i] >= 0) view[l * E + layout!.expert[i]] = values[i * 4 + 2];
  });
  return { view, engine: engine!, position };
}

beforeAll(async () => {
  h = await startHarness();
  ({ page } = await openPage(h, 1024, 700));
}, 180_000);
afterAll(async () => {
  await h?.close();
});

describe('a lost device', () => {
  it('the page re-creates it, uploads the model again, returns to the same token and says so', async () => {
    await page.goto(h.origin, { timeout: 300_000 });
    // Generous limits: on a loaded two-core machine the demo model's first load and pipelines take minutes.
    await waitForApp(page, 300_000);
    await page.waitForFunction(() => window.__moescope!.hasSession(), { timeout: 300_000 });
    await hook((m) => m.settle());
    await hook((m) => m.step(3));
    const before = await agreement();
    expect(before.position).toBe(3);
    await new Promise((r) => setTimeout(r, 500)); // the URL is written a moment after a step
    // Destroyed after this evaluate returns: the reload it causes would otherwise tear down the evaluate's own context.
    await Promise.all([
      page.waitForNavigation({ timeout: 300_000 }),
      page.evaluate(() => void setTimeout(() => window.__moescope!.loseDevice(), 0)),
    ]);
    await waitForApp(page, 300_000);
    await page.waitForFunction(() => window.__moescope!.position() === 3 || window.__moescope!.errors().length > 0, { timeout: 300_000 });
    await hook((m) => m.settle());
    expect(await hook((m) => m.errors())).toEqual([]);
    const notices = await hook((m) => m.notices());
    expect(notices.join(' ')).toMatch(/The GPU device was lost \(destroyed\)\. The page requested a new one, uploaded .* again and returned to token 3/);
    const after = await agreement();
    expect(after.engine.counts).toEqual(before.engine.counts);
    expect(after.engine.chosen).toEqual(before.engine.chosen);
    expect(after.view).toEqual(after.engine.counts);
  }, 900_000);
});

describe('random actions in quick succession', () => {
  it('300 steps, step-backs, plays, policy changes and model switches leave view, panels and engine agreeing', async () => {
    await page.goto(`${h.origin}/?model=config:mixtral-8x7b.json`, { timeout: 300_000 });
    await waitForApp(page, 300_000);
    const fixture = 'tests/fixtures/mixtral';
    await pickFiles(page, ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].map((f) => join(fixture, f)));
    await page.waitForFunction(() => window.__moescope!.hasSession(), { timeout: 300_000 });
    await hook((m) => m.settle());
    const picked = await hook((m) => m.modelId());
    // In batches of 50 (one page call each, so none outlives the protocol's time limit on a loaded machine); the
    // random sequence continues across batches.
    const batch = (pickedId: string | null, n: number, seed: number, last: boolean) => page.evaluate(async (pickedId, n, seed0, last) => {
      const m = window.__moescope!;
      const app = m.app;
      let seed = seed0;
      const rand = (k: number) => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed % k;
      };
      const counts: Record<string, number> = {};
      const pending: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) {
        const kind = ['step', 'step', 'step', 'back', 'back', 'play', 'pause', 'k', 'noise', 'capacity', 'model'][rand(11)];
        counts[kind] = (counts[kind] ?? 0) + 1;
        const st = app.stepper;
        if (kind === 'step') pending.push(st?.forward(1 + rand(3)) ?? Promise.resolve());
        else if (kind === 'back') pending.push(st?.back(1 + rand(2)) ?? Promise.resolve());
        else if (kind === 'play') st?.play();
        else if (kind === 'pause') st?.pause();
        else if (kind === 'k') app.state.setParam('topK', rand(4));
        else if (kind === 'noise') app.state.setParam('noiseStd', rand(2) * 0.5);
        else if (kind === 'capacity') app.state.setParam('capacityFactor', rand(2) * 1.25);
        else if (kind === 'model') pending.push(app.open(app.model?.id === pickedId ? 'config:mixtral-8x7b.json' : pickedId!));
        // Mostly back to back; now and then a short pause, as a person clicking fast would leave.
        if (rand(4) === 0) await new Promise((r) => setTimeout(r, rand(30)));
      }
      await Promise.allSettled(pending);
      if (last) {
        if (app.model?.id !== pickedId) await app.open(pickedId!);
        app.stepper?.pause();
        await m.settle();
      }
      return { counts, seed };
    }, pickedId, n, seed, last);
    const ran: Record<string, number> = {};
    let seed = 12345;
    for (let b = 0; b < 6; b++) {
      const out = await batch(picked, 50, seed, b === 5);
      seed = out.seed;
      for (const [k, v] of Object.entries(out.counts)) ran[k] = (ran[k] ?? 0) + v;
    }
    expect(Object.values(ran).reduce((a, b) => a + b, 0)).toBe(300);
    expect(await hook((m) => m.errors())).toEqual([]);
    // One more step so the check covers a live model, then the three views of the routing record must agree.
    await hook((m) => m.step(1));
    const { view, engine, position } = await agreement();
    expect(engine.position).toBe(position);
    expect(engine.counts).toEqual(engine.ringCounts);
    expect(view).toEqual(engine.counts);
    const k = await hook((m) => m.app.state.policy(m.app.model!.config.router.topK).topK ?? m.app.model!.config.router.topK);
    for (let l = 0; l < 2; l++) {
      expect(engine.counts.slice(l * 8, (l + 1) * 8).reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(position * k);
    }
    expect(await hook((m) => m.app.stepper!.processed.length)).toBe(position);
  }, 900_000);
});
