// End-to-end: the page says what is on screen. A first-run tour (once), a legend with a colour bar for the 3D view
// that follows the mode, axis titles, expert ids in one identity colour across the grid, the heatmap and the token
// strip, a heatmap colour bar and hover readout, metric charts with hover readouts, and an obvious way in (a button
// that opens the folder picker). Mixtral golden fixture for the running model.
import { join } from 'node:path';
import type { Page } from 'puppeteer';
import { beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, openPage, waitForApp, type PageLog } from './support/browser';
import { harnessForFile, openMixtralFixture, type HookCall } from './support/fixture-page';

const harness = harnessForFile();
let page: Page;
let hook: HookCall;
let log: PageLog;

describe('a first visit', () => {
  it('shows a short tour once, and the "?" button brings it back', async () => {
    const h = harness();
    const { page: p, log: l } = await openPage(h, 1280, 800, true);
    await p.goto(`${h.origin}/?model=config:mixtral-8x7b.json`);
    await waitForApp(p);
    expect(await p.$eval('#tour', (e) => (e as HTMLElement).hidden)).toBe(false);
    const titles: string[] = [];
    for (;;) {
      titles.push(await p.$eval('#tour-body strong', (e) => e.textContent ?? ''));
      if ((await p.$eval('#tour-next', (e) => e.textContent)) === 'done') break;
      await p.click('#tour-next');
    }
    expect(titles).toEqual(['1/5 · Layers × experts', '2/5 · Height and colour', '3/5 · Step through a text', '4/5 · What the model does', '5/5 · Your own model']);
    await p.screenshot({ path: join(ARTIFACTS, 'tour-last-step.png') });
    await p.click('#tour-next');
    expect(await p.$eval('#tour', (e) => (e as HTMLElement).hidden)).toBe(true);
    await p.reload();
    await waitForApp(p);
    expect(await p.$eval('#tour', (e) => (e as HTMLElement).hidden)).toBe(true);
    await p.click('#tour-open');
    expect(await p.$eval('#tour', (e) => (e as HTMLElement).hidden)).toBe(false);
    // The way in: the header's button opens the folder picker.
    const [chooser] = await Promise.all([p.waitForFileChooser({ timeout: 5000 }), p.click('#open-folder')]);
    expect(chooser.isMultiple()).toBe(true);
    await chooser.cancel();
    expect(l.errors).toEqual([]);
    await p.close();
  }, 120_000);
});

describe('what is on screen', () => {
  beforeAll(async () => {
    ({ page, log, hook } = await openMixtralFixture(harness(), 1280, 900));
    await hook((m) => m.useText('The expert said "café": route(x, k=2) 🙂'));
    await hook((m) => m.step(27));
  }, 180_000);

  it('the 3D view has a legend that follows the mode, with a colour bar and the fixed colours', async () => {
    const legend = () => page.$eval('#grid-legend', (e) => e.textContent ?? '');
    expect(await legend()).toMatch(/height: tokens the expert took \/ the layer’s fair share/);
    expect(await legend()).toMatch(/ablated expert.*shared expert.*dense layer/);
    expect(await page.$eval('#grid-legend .colorbar', (e) => (e as HTMLElement).style.background)).toMatch(/linear-gradient/);
    await hook((m) => m.setParam('mode', 'dropped'));
    expect(await legend()).toMatch(/dropped or re-routed.*all dropped.*all re-routed/);
    await hook((m) => m.setParam('mode', 'load'));
    const titles = await page.$$eval('#labels .axis-title:not([hidden])', (els) => els.map((e) => e.textContent));
    expect(titles).toEqual(['expert id', 'layer']);
    await page.screenshot({ path: join(ARTIFACTS, 'legend-grid.png') });
  });

  it('expert ids have one colour in the grid labels, the heatmap and the token strip', async () => {
    const labels = await page.$$eval('#labels .expert-label', (els) => els.map((e) => getComputedStyle(e).color));
    expect(new Set(labels).size).toBe(8);
    // Each processed token's strip colour is the label colour of its top expert in the focus layer.
    const strip = await page.$$eval('#strip .tok.done', (els) => els.map((e) => getComputedStyle(e).backgroundColor));
    const top = await hook((m) => {
      const s = m.app.snapshots.current!;
      const out: number[] = [];
      for (let p = 0; p < s.position; p++) {
        let best = -1;
        let w = -1;
        for (let k = 0; k < 8; k++) {
          const i = (p * s.numLayers + 0) * 8 + k;
          if (s.assigned[i] !== 0xffffffff && s.weights[i] > w) [best, w] = [s.assigned[i], s.weights[i]];
        }
        out.push(best);
      }
      return out;
    });
    expect(strip.length).toBe(27);
    strip.forEach((c, p) => expect(c, `token ${p}`).toBe(labels[top[p]]));
  });

  it('the heatmap has a colour bar, axis words, and a hover readout of the cell', async () => {
    expect(await page.$eval('#heatmap .heatmap-legend', (e) => e.textContent)).toMatch(/gate weight 0.*0\.5.*1.*not chosen/);
    await page.evaluate(() => document.getElementById('heatmap')!.scrollIntoView());
    const box = (await (await page.$('#heatmap canvas'))!.boundingBox())!;
    // Row 0 (the first token), the last expert column.
    const x = box.x + box.width - 6;
    const y = box.y + ((28 + 2) / 220) * box.height;
    await page.mouse.move(x, y);
    const title = await page.$eval('#heatmap canvas', (e) => (e as HTMLCanvasElement).title);
    expect(title).toMatch(/^#0 "<s>" · expert 7: gate weight \d\.\d{3}$/);
  });

  it('the metrics chart has a hover readout per series', async () => {
    expect(await page.$$eval('#metrics .u-legend .u-series', (els) => els.length)).toBeGreaterThanOrEqual(3);
    await page.evaluate(() => document.getElementById('metrics')!.scrollIntoView());
    const plot = (await (await page.$('#metrics .u-over'))!.boundingBox())!;
    await page.mouse.move(plot.x + plot.width - 2, plot.y + plot.height / 2);
    const readout = await page.$$eval('#metrics .u-legend .u-series .u-value', (els) => els.map((e) => e.textContent));
    expect(readout[0]).toBe('27'); // the token position under the pointer
    expect(readout[1]).toMatch(/^\d+\.\d{3}$/); // the mean at that position
    await page.screenshot({ path: join(ARTIFACTS, 'legend-panels.png') });
  });

  it('logged no console errors', () => {
    expect(log.errors).toEqual([]);
  });
});
