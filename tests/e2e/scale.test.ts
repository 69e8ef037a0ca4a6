// End-to-end: large models at their default framing. DeepSeek-V3 (61 × 256, its published config) and a 94 × 128
// grid fit the view with labels that never overlap, and Mixtral is drawn the same way round as the demo model
// (experts across, layer 0 in front).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'puppeteer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, openPage, pickFiles, waitForApp, type PageLog } from './support/browser';
import { harnessForFile } from './support/fixture-page';

const harness = harnessForFile();
let page: Page;
let log: PageLog;
const dir = mkdtempSync(join(tmpdir(), 'moescope-94x128-'));

beforeAll(async () => {
  ({ page, log } = await openPage(harness(), 1280, 800));
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Framed {
  corners: ({ x: number; y: number } | null)[];
  canvas: { width: number; height: number };
  labels: { text: string; left: number; right: number; top: number; bottom: number }[];
}

/** Screen positions of the grid's floor corners, and the boxes of the labels on screen. */
function framed(): Promise<Framed> {
  return page.evaluate(() => {
    const m = window.__moescope!;
    const g = m.app.scene.layout!;
    const { minX, maxX, minZ, maxZ } = g.bounds;
    const corners = [minX, maxX].flatMap((x) => [minZ, maxZ].map((z) => m.app.scene.project(x, 0, z)));
    const c = m.app.scene.canvas;
    const view = document.getElementById('view')!.getBoundingClientRect();
    const labels = [...document.querySelectorAll('#labels .label')]
      .filter((e) => !(e as HTMLElement).hidden)
      .map((e) => {
        const r = e.getBoundingClientRect();
        return { text: e.textContent ?? '', left: r.left - view.left, right: r.right - view.left, top: r.top - view.top, bottom: r.bottom - view.top };
      });
    return { corners, canvas: { width: c.clientWidth, height: c.clientHeight }, labels };
  });
}

function expectLegible(f: Framed): void {
  for (const p of f.corners) {
    expect(p).not.toBeNull();
    expect(p!.x).toBeGreaterThanOrEqual(0);
    expect(p!.x).toBeLessThanOrEqual(f.canvas.width);
    expect(p!.y).toBeGreaterThanOrEqual(0);
    expect(p!.y).toBeLessThanOrEqual(f.canvas.height);
  }
  for (let i = 0; i < f.labels.length; i++) {
    for (let j = i + 1; j < f.labels.length; j++) {
      const a = f.labels[i];
      const b = f.labels[j];
      const overlap = a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
      expect(overlap, `labels "${a.text}" and "${b.text}" overlap`).toBe(false);
    }
  }
}

const waitForGrid = (layers: number) => page.waitForFunction((n) => window.__moescope!.layout()?.numLayers === n, { timeout: 60_000 }, layers);

describe('large models at default framing', () => {
  it('DeepSeek-V3, 61 layers × 256 experts: the whole grid on screen, labels thinned, none overlapping', async () => {
    await page.goto(`${harness().origin}/?model=config:deepseek-v3.json`);
    await waitForApp(page);
    await waitForGrid(61);
    await page.evaluate(() => window.__moescope!.waitFrames(3));
    const f = await framed();
    expectLegible(f);
    expect(f.labels.some((l) => l.text === 'L0')).toBe(true);
    expect(f.labels.filter((l) => /^\d+$/.test(l.text)).length).toBeGreaterThanOrEqual(8);
    await page.screenshot({ path: join(ARTIFACTS, 'scale-deepseek-v3-61x256.png') });
  }, 90_000);

  it('94 layers × 128 experts (picked config): the whole grid on screen, labels not overlapping', async () => {
    const ds = JSON.parse(readFileSync('public/configs/deepseek-v3.json', 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...ds, num_hidden_layers: 94, n_routed_experts: 128, first_k_dense_replace: 0, n_shared_experts: 0 }));
    await pickFiles(page, [join(dir, 'config.json')]);
    await waitForGrid(94);
    await page.evaluate(() => window.__moescope!.waitFrames(3));
    expectLegible(await framed());
    await page.screenshot({ path: join(ARTIFACTS, 'scale-94x128.png') });
  }, 90_000);

  it('Mixtral (32 × 8) is drawn the same way round as the demo model: experts across, layer 0 in front', async () => {
    await page.goto(`${harness().origin}/?model=config:mixtral-8x7b.json`);
    await waitForApp(page);
    await waitForGrid(32);
    await page.evaluate(() => window.__moescope!.waitFrames(3));
    const f = await framed();
    expectLegible(f);
    const at = (text: string) => f.labels.find((l) => l.text === text)!;
    expect(at('7').left).toBeGreaterThan(at('0').right); // experts left to right
    expect(at('L0').top).toBeGreaterThan(at('L31').bottom); // layer 0 at the front (lower on screen)
    await page.screenshot({ path: join(ARTIFACTS, 'scale-mixtral-32x8.png') });
  }, 90_000);

  it('logged no console errors', () => {
    expect(log.errors).toEqual([]);
  });
});
