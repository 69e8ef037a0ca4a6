// End-to-end: large models at their default framing. DeepSeek-V3 (61 × 256, its published config) and a 94 × 128
// grid fit the view with labels that never overlap, their experts drawn in groups of 16 (a group's bar is the sum of
// its experts' counts, checked on a replayed trace against the trace itself) that open with a click and close with
// Escape; a replay shows no what-if controls; Mixtral is drawn the same way round as the demo model (experts across,
// layer 0 in front).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'puppeteer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, openPage, pickFiles, waitForApp, type PageLog } from './support/browser';
import { harnessForFile, hookOf, type HookCall } from './support/fixture-page';
import { encodeTrace } from '../../src/trace/writer';
import { synthTrace } from '../support/trace';

const harness = harnessForFile();
let page: Page;
let log: PageLog;
let hook: HookCall;
const dir = mkdtempSync(join(tmpdir(), 'moescope-94x128-'));
const deepseek = JSON.parse(readFileSync('public/configs/deepseek-v3.json', 'utf8'));
const TOKENS = 400;
const trace = synthTrace(deepseek, { tokens: TOKENS, seed: 5 });

beforeAll(async () => {
  ({ page, log } = await openPage(harness(), 1280, 800));
  hook = hookOf(page);
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
    // Sixteen group bars a row, labelled with their expert ranges, every one of them shown.
    expect(f.labels.filter((l) => /^\d+–\d+$/.test(l.text)).map((l) => l.text)).toEqual(Array.from({ length: 16 }, (_, g) => `${16 * g}–${16 * g + 15}`));
    expect(f.labels.some((l) => l.text === 'expert group (16 experts a bar)')).toBe(true);
    expect(await page.$eval('#grid-legend', (e) => e.textContent)).toContain('Grouped: a bar sums 16 experts');
    await page.screenshot({ path: join(ARTIFACTS, 'scale-deepseek-v3-61x256.png') });
  }, 90_000);

  it('a replayed 61 × 256 trace: a group bar is the sum of its experts’ counts; a click opens the group, Escape closes it', async () => {
    const path = join(dir, 'deepseek-v3-400.safetensors');
    writeFileSync(path, encodeTrace(trace.meta, trace.arrays));
    await pickFiles(page, [path]);
    await page.waitForFunction(() => window.__moescope!.modelId() === 'trace:deepseek-v3-400.safetensors', { timeout: 60_000 });
    await hook((m) => m.app.stepper!.seek(400));
    // Counts [layers, experts] of the trace's 400 tokens, from the file's own arrays.
    const E = 256, K = 8, moe = trace.meta.moeLayers;
    const counts = new Array(61 * E).fill(0);
    for (let t = 0; t < TOKENS; t++) {
      for (let m = 0; m < moe.length; m++) for (let k = 0; k < K; k++) counts[moe[m] * E + trace.arrays.experts[(t * moe.length + m) * K + k]]++;
    }
    expect((await hook((m) => m.engineState()))!.counts).toEqual(counts);
    /** The raw value of every routed bar, and what its experts' counts sum to. */
    const bars = async () => {
      const [values, g] = await Promise.all([hook((m) => m.instanceValues()), hook((m) => m.layout())]);
      const drawn: number[] = [], summed: number[] = [];
      g!.kind.forEach((kind, i) => {
        if (kind !== 0) return;
        const c = g!.colFirst.indexOf(g!.expert[i]);
        let sum = 0;
        for (let e = g!.colFirst[c]; e < g!.colFirst[c + 1]; e++) sum += counts[g!.layer[i] * E + e];
        drawn.push(values[i * 4 + 2]);
        summed.push(sum);
      });
      return { drawn, summed, g: g! };
    };
    const grouped = await bars();
    expect(grouped.g).toMatchObject({ groupSize: 16, columns: 16, drill: null });
    expect(grouped.drawn.length).toBe(58 * 16);
    expect(grouped.drawn).toEqual(grouped.summed);
    expectLegible(await framed());

    // Open group 5 of the first MoE layer (layer 3, at the front) by clicking its bar.
    const at = (await hook((m) => m.cellPoint(3, 5 * 16 + 8)))!;
    await page.mouse.click(at.x, at.y);
    await page.waitForFunction(() => window.__moescope!.layout()?.drill === 5, { timeout: 30_000 });
    await page.evaluate(() => window.__moescope!.waitFrames(3));
    const open = await bars();
    expect(open.g.colFirst).toEqual(Array.from({ length: 17 }, (_, c) => 80 + c));
    expect(open.drawn).toEqual(open.summed);
    const f = await framed();
    expectLegible(f);
    expect(f.labels.filter((l) => /^\d+$/.test(l.text)).map((l) => l.text)).toEqual(Array.from({ length: 16 }, (_, c) => String(80 + c)));
    expect(await page.$eval('#grid-legend', (e) => e.textContent)).toContain('Experts 80–95, one bar each');
    await page.screenshot({ path: join(ARTIFACTS, 'scale-deepseek-v3-group-80-95.png') });
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => window.__moescope!.layout()?.drill === null, { timeout: 30_000 });
  }, 180_000);

  it('a replay shows no what-if controls (it routes nothing live) and keeps its view and playback controls', async () => {
    const shown = (title: string) =>
      page.evaluate((t) => {
        const folder = [...document.querySelectorAll('#gui .lil-title')].find((e) => e.textContent === t)?.parentElement;
        return folder ? getComputedStyle(folder).display !== 'none' : null;
      }, title);
    expect(await shown('Routing what-ifs')).toBe(false);
    expect(await shown('View')).toBe(true);
    expect(await shown('Playback')).toBe(true);
    expect(await page.$eval('#whatif-panel', (e) => (e as HTMLElement).hidden)).toBe(true);
    await hook((m) => m.back(1));
    expect(await hook((m) => m.position())).toBe(399);
    await page.screenshot({ path: join(ARTIFACTS, 'scale-trace-replay-controls.png') });
  }, 60_000);

  it('94 layers × 128 experts (picked config): the whole grid on screen, labels not overlapping', async () => {
    const ds = JSON.parse(readFileSync('public/configs/deepseek-v3.json', 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...ds, num_hidden_layers: 94, n_routed_experts: 128, first_k_dense_replace: 0, n_shared_experts: 0 }));
    await pickFiles(page, [join(dir, 'config.json')]);
    await waitForGrid(94);
    await page.evaluate(() => window.__moescope!.waitFrames(3));
    expect(await hook((m) => m.layout())).toMatchObject({ groupSize: 16, columns: 8, drill: null });
    const f = await framed();
    expectLegible(f);
    expect(f.labels.filter((l) => /^\d+–\d+$/.test(l.text)).length).toBe(8);
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
