// The pathways panel in the dashboard, on the Mixtral golden fixture (2 layers × 8 experts, top-2) picked as files:
// after the whole prompt, the co-activation of layer 0 and its transitions to layer 1 are what transformers routed
// (golden.json), counted here independently; the panel follows the focus layer.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'puppeteer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, startHarness, type Harness } from './support/browser';
import { MIXTRAL_FIXTURE as FIXTURE, openMixtralFixture, type HookCall } from './support/fixture-page';

const golden = JSON.parse(readFileSync(join(FIXTURE, 'golden.json'), 'utf8')) as {
  prompt: string;
  input_ids: number[];
  num_experts: number;
  prefill: { routing: { layer: number; ids: number[][] }[] };
};
const E = golden.num_experts;

let h: Harness;
let page: Page;
let hook: HookCall;

beforeAll(async () => {
  h = await startHarness();
  ({ page, hook } = await openMixtralFixture(h, 1280, 900));
  expect(await hook((m) => m.errors())).toEqual([]);
  await hook((m) => m.settle());
}, 400_000);

afterAll(async () => {
  await h?.close();
});

describe('pathways panel', () => {
  it('shows the co-activation and transitions transformers routed, for the focus layer', async () => {
    await hook((m) => m.useText('The expert said "café": route(x, k=2) 🙂'));
    const T = golden.input_ids.length;
    await hook((m) => m.step(27));
    expect(await hook((m) => m.position())).toBe(T);
    await hook((m) => m.setParam('focusLayer', 0));
    await hook((m) => m.settle());
    const d = (await hook((m) => m.pathways()))!;
    const [l0, l1] = golden.prefill.routing.map((r) => r.ids);
    const co = Array.from({ length: E * E }, (_, x) => {
      const [i, j] = [Math.floor(x / E), x % E];
      return i === j ? 0 : l0.filter((p) => p.includes(i) && p.includes(j)).length;
    });
    const flow = Array.from({ length: E * E }, (_, x) => l0.filter((p, t) => p.includes(Math.floor(x / E)) && l1[t].includes(x % E)).length);
    expect(d.layer).toBe(0);
    expect(d.next).toBe(1);
    expect(d.tokens).toBe(T);
    expect(d.coactivation).toEqual(co);
    expect(d.transitions).toEqual(flow);
    await page.evaluate(() => document.getElementById('pathways')!.scrollIntoView());
    await page.screenshot({ path: join(ARTIFACTS, 'pathways-layer0.png') });

    // The last layer has no next layer: co-activation only.
    await hook((m) => m.setParam('focusLayer', 1));
    await hook((m) => m.settle());
    const last = (await hook((m) => m.pathways()))!;
    expect(last.layer).toBe(1);
    expect(last.transitions).toBeNull();
    expect(last.coactivation.reduce((a, b) => a + b, 0)).toBe(2 * T);
    expect(await page.$eval('#pathways .note', (e) => e.textContent)).toContain('no next layer');
  }, 400_000);
});
