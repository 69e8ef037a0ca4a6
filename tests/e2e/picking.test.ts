// End-to-end: direct manipulation that is right, on the Mixtral golden fixture. Pointing at the top of a tall bar
// picks that bar (not the cell whose floor lies under the pointer), the token path skips hidden and un-soloed layers,
// and tokens dropped by capacity are marked in the strip.
import { join } from 'node:path';
import type { Page } from 'puppeteer';
import { beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, type PageLog } from './support/browser';
import { harnessForFile, openMixtralFixture, type HookCall } from './support/fixture-page';

const harness = harnessForFile();
let page: Page;
let hook: HookCall;
let log: PageLog;

beforeAll(async () => {
  ({ page, log, hook } = await openMixtralFixture(harness(), 1280, 800));
  await hook((m) => m.useText('The expert said "café": route(x, k=2) 🙂'));
  await hook((m) => m.step(20));
  await hook((m) => m.setParam('heightScale', 3)); // tall bars: their tops stand over the row behind
}, 240_000);

describe('picking and paths', () => {
  it('pointing at the top of a tall bar picks that bar, not the cell on the floor under the pointer', async () => {
    const values = await hook((m) => m.instanceValues());
    const layout = (await hook((m) => m.layout()))!;
    // The tallest bar of layer 0 (the front row).
    let tallest = -1;
    for (let i = 0; i < layout.count; i++) if (layout.layer[i] === 0 && (tallest < 0 || values[i * 4] > values[tallest * 4])) tallest = i;
    const expert = layout.expert[tallest];
    const where = await page.evaluate(
      (i, h) => {
        const m = window.__moescope!;
        const g = m.app.scene.layout!;
        const [x, z, , d] = [g.rect[i * 4], g.rect[i * 4 + 1], g.rect[i * 4 + 2], g.rect[i * 4 + 3]];
        const r = m.app.scene.canvas.getBoundingClientRect();
        const top = m.app.scene.project(x, h * 0.92, z)!;
        const farEdge = m.app.scene.project(x, 0, z - d / 2)!;
        return { x: r.left + top.x, y: r.top + top.y, farEdgeY: r.top + farEdge.y };
      },
      tallest,
      values[tallest * 4],
    );
    // The precondition of the old defect: the pointer is above the bar's footprint on screen, so the floor under it
    // belongs to another cell (or to none).
    expect(where.y).toBeLessThan(where.farEdgeY);
    await page.mouse.move(where.x, where.y);
    await page.waitForFunction(() => !document.getElementById('tooltip')!.hidden, { timeout: 5000 });
    expect(await page.$eval('#tooltip', (e) => e.textContent)).toContain(`layer 0 · expert ${expert}`);
    await page.screenshot({ path: join(ARTIFACTS, 'picking-bar-top.png') });
    await page.mouse.move(5, 5);
  });

  it('the selected token’s path passes only through shown layers', async () => {
    await hook((m) => m.app.state.selectToken(5));
    await hook((m) => m.settle());
    const length = () => hook((m) => m.app.scene.pathLength);
    expect(await length()).toBe(4); // 2 layers × k = 2
    await hook((m) => m.toggleLayer(1, false));
    expect(await length()).toBe(2);
    await hook((m) => m.toggleLayer(1, true));
    await hook((m) => m.setParam('soloLayer', 1));
    expect(await length()).toBe(2);
    await hook((m) => m.setParam('soloLayer', -1));
    expect(await length()).toBe(4);
    await hook((m) => m.app.state.selectToken(null));
  });

  it('tokens that capacity dropped in the focus layer are marked in the strip', async () => {
    await hook((m) => m.setParam('overflow', 'drop'));
    await hook((m) => m.setParam('capacityFactor', 0.25));
    const dropped = await hook((m) => {
      const s = m.app.snapshots.current!;
      const out: number[] = [];
      for (let p = 0; p < s.position; p++) {
        let any = false;
        for (let k = 0; k < 8; k++) if (s.assigned[(p * s.numLayers + 0) * 8 + k] !== 0xffffffff) any = true;
        if (!any) out.push(p);
      }
      return out;
    });
    expect(dropped.length).toBeGreaterThan(0);
    const marked = await page.$$eval('#strip .tok.dropped', (els) => els.map((e) => Number((e as HTMLElement).dataset.pos)));
    expect(marked).toEqual(dropped);
    const style = await page.$eval('#strip .tok.dropped', (e) => ({ color: getComputedStyle(e).color, title: (e as HTMLElement).title }));
    expect(style.color).toBe('rgb(255, 179, 184)');
    expect(style.title).toContain('dropped by capacity');
    await page.evaluate(() => document.getElementById('strip')!.scrollIntoView());
    await page.screenshot({ path: join(ARTIFACTS, 'picking-dropped-tokens.png') });
    await hook((m) => m.setParam('capacityFactor', 0));
  }, 120_000);

  it('logged no console errors', () => {
    expect(log.errors).toEqual([]);
  });
});
