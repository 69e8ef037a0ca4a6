// End-to-end: what-ifs against their baseline, on the Mixtral golden fixture picked as files. The original routing and
// predictions are kept when a what-if starts (they equal what transformers computed), the diff counts changed routes,
// the next-token panel shows the original beside the what-if with a KL divergence, metric histories of the two
// policies are separate series, temperature and capacity say what they do, and capacity means the same stepped or
// batched.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'puppeteer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, startHarness, type Harness, type PageLog } from './support/browser';
import { MIXTRAL_FIXTURE as FIXTURE, openMixtralFixture, type HookCall } from './support/fixture-page';

const golden = JSON.parse(readFileSync(join(FIXTURE, 'golden.json'), 'utf8')) as {
  prompt: string;
  num_experts: number;
  prefill: { logits: number[][]; routing: { layer: number; ids: number[][] }[] };
};
const E = golden.num_experts;
const L = golden.prefill.routing.length;
const T = 20;

let h: Harness;
let page: Page;
let log: PageLog;
let hook: HookCall;


/** Wait until the panels have caught up with the engine (snapshots, read-backs, a drawn frame). */
async function settled(): Promise<void> {
  await hook((m) => m.settle());
  await page.waitForFunction((t) => window.__moescope!.app.output.next.length >= t, { timeout: 30_000 }, T);
  await hook((m) => m.settle());
}

beforeAll(async () => {
  h = await startHarness();
  ({ page, log, hook } = await openMixtralFixture(h, 1280, 1000));
  await hook((m) => m.useText('The expert said "café": route(x, k=2) 🙂'));
  await hook((m) => m.step(20));
  await settled();
}, 240_000);

afterAll(async () => {
  await h?.close();
});

describe('what-ifs have a baseline', () => {
  it('k = 3 keeps the original routing and predictions, counts the changed routes and shows them side by side', async () => {
    expect(await page.$eval('#whatif-summary', (e) => e.textContent)).toMatch(/No what-if on/);
    await hook((m) => m.setParam('topK', 3));
    await settled();
    const base = await hook((m) => {
      const b = m.app.baseline.current!;
      return { position: b.position, counts: [...b.routing.counts], assigned: [...b.routing.assigned] };
    });
    // The baseline is the original routing: what transformers routed for the 20 tokens.
    const goldenCounts = new Array(L * E).fill(0);
    for (const r of golden.prefill.routing) for (const ids of r.ids.slice(0, T)) for (const e of ids) goldenCounts[r.layer * E + e]++;
    expect(base.position).toBe(T);
    expect(base.counts).toEqual(goldenCounts);
    const now = (await hook((m) => m.engineState()))!;
    expect(now.counts).not.toEqual(goldenCounts);
    // Changed routes: (token, layer) pairs whose set of experts differs.
    let changed = 0;
    for (let p = 0; p < T; p++) {
      for (let l = 0; l < L; l++) {
        const set = (a: number[]) => a.slice((p * L + l) * 8, (p * L + l + 1) * 8).filter((e) => e !== 0xffffffff).sort().join();
        if (set(base.assigned) !== set(now.chosen)) changed++;
      }
    }
    expect(changed).toBeGreaterThan(0);
    const summary = await page.$eval('#whatif-summary', (e) => e.textContent ?? '');
    expect(summary).toContain(`What-if: k = 3. Against the original routing of tokens 0–19: ${changed} of ${T * L} (token, layer) routes changed`);
    expect(await page.$eval('#whatif-canvas', (e) => (e as HTMLCanvasElement).hidden)).toBe(false);

    // Next token after position 19: ghost marks at the original probabilities (transformers' softmax) and a KL.
    const row = golden.prefill.logits[T - 1];
    const m = Math.max(...row);
    const z = row.reduce((s, x) => s + Math.exp(x - m), 0);
    const ghosts = await page.$$eval('#next-token .next-row', (els) =>
      els.map((e) => ({ id: Number((e as HTMLElement).dataset.id), q: (e.querySelector('.next-ghost') as HTMLElement | null)?.style.getPropertyValue('--q') })),
    );
    expect(ghosts.length).toBe(8);
    for (const g of ghosts) expect(Number(g.q)).toBeCloseTo(Math.exp(row[g.id] - m) / z, 4);
    expect(await page.$eval('#next-token .next-original', (e) => e.textContent)).toMatch(/KL\(original ‖ what-if\) \d+\.\d\d bits; top token/);
    // Metric histories: the original's is a series of its own.
    expect(await page.$eval('#metrics', (e) => e.textContent)).toContain('original mean');
    await page.evaluate(() => document.getElementById('whatif-panel')!.scrollIntoView());
    await page.screenshot({ path: join(ARTIFACTS, 'whatif-k3-diff.png') });
    await page.evaluate(() => document.getElementById('output-panel')!.scrollIntoView());
    await page.screenshot({ path: join(ARTIFACTS, 'whatif-k3-next-token.png') });
  }, 120_000);

  it('back to the original policy drops the baseline; temperature 4 says why nothing moved', async () => {
    await hook((m) => m.setParam('topK', 0));
    await settled();
    expect(await hook((m) => m.app.baseline.current)).toBeNull();
    await hook((m) => m.setParam('temperature', 4));
    await settled();
    expect(await page.$eval('#whatif-summary', (e) => e.textContent)).toContain(`0 of ${T * L} (token, layer) routes changed`);
    expect(await page.$eval('#whatif-notes', (e) => e.textContent)).toMatch(/keeps their order.*same top-k experts are chosen/);
    await hook((m) => m.setParam('temperature', 1));
    await settled();
  }, 120_000);

  it('capacity means the same stepped one token at a time as in a batch, and says per what window', async () => {
    await hook((m) => m.setParam('overflow', 'drop'));
    await hook((m) => m.setParam('capacityFactor', 0.5));
    await settled();
    const batched = (await hook((m) => m.engineState()))!;
    expect(batched.counts.reduce((s, x) => s + x, 0)).toBeLessThan(2 * L * T); // some assignments were dropped
    await hook((m) => m.back(3));
    for (let i = 0; i < 3; i++) await hook((m) => m.step(1));
    const stepped = (await hook((m) => m.engineState()))!;
    expect(stepped.position).toBe(T);
    expect(stepped.counts).toEqual(batched.counts);
    expect(await page.$eval('#whatif-notes', (e) => e.textContent)).toMatch(/Capacity applies per window of \d+ tokens/);
    await hook((m) => m.setParam('capacityFactor', 0));
    await settled();
  }, 120_000);

  it('logged no console errors', () => {
    expect(log.errors).toEqual([]);
  });
});
