// End-to-end: config-only models in headless Chromium (SwiftShader WebGPU). A bundled published config drawn as a
// skeleton, a 64 × 256 grid picked as a folder (the frame-loop budget), layer toggles, no console errors, no buffer
// mappings in the frame loop, a page for browsers without WebGPU.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'puppeteer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, openPage, pickFiles, startHarness, waitForApp, type Harness, type PageLog } from './support/browser';

type Hook = NonNullable<Window['__moescope']>;
declare global {
  interface Window {
    __maps: { total: number; inFrame: number };
  }
}

let h: Harness;
let page: Page;
let log: PageLog;

beforeAll(async () => {
  h = await startHarness();
  ({ page, log } = await openPage(h));
  await page.goto(`${h.origin}/?model=config:mixtral-8x7b.json`);
  await waitForApp(page);
}, 120_000);

/** Temporary model folders the tests write; removed at the end. */
const tempDirs: string[] = [];
const tempDir = (prefix: string): string => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
};

afterAll(async () => {
  await h?.close();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

const hook = <T>(fn: (m: Hook) => T | Promise<T>): Promise<T> =>
  page.evaluate(async (src) => {
    const f = new Function('m', `return (${src})(m)`) as (m: Hook) => T;
    return f(window.__moescope!);
  }, fn.toString()) as Promise<T>;

describe('config-only skeleton', () => {
  it('draws Mixtral-8x7B from its published config.json: 32 × 8 cells, all flat, all shown', async () => {
    expect(await hook((m) => m.modelId())).toBe('config:mixtral-8x7b.json');
    const layout = await hook((m) => m.layout());
    expect(layout).toMatchObject({ count: 256, numLayers: 32, numExperts: 8 });
    const values = await hook((m) => m.instanceValues());
    for (let i = 0; i < 256; i++) {
      expect(values[i * 4 + 2], `raw value of instance ${i}`).toBe(0); // nothing routed
      expect(values[i * 4 + 3], `visibility of instance ${i}`).toBe(1);
    }
    const note = await page.$eval('#model-note', (e) => e.textContent ?? '');
    expect(note).toMatch(/Config only: 46\.7B parameters, 32 layers × 8 experts, k = 2/);
    await page.screenshot({ path: join(ARTIFACTS, 'skeleton-mixtral.png') });
  });

  it('hiding a layer zeroes exactly its instances, solo keeps exactly one layer', async () => {
    await hook((m) => m.toggleLayer(5, false));
    let values = await hook((m) => m.instanceValues());
    const layout = (await hook((m) => m.layout()))!;
    for (let i = 0; i < layout.count; i++) {
      const shown = layout.layer[i] !== 5;
      expect(values[i * 4 + 3], `instance ${i} (layer ${layout.layer[i]})`).toBe(shown ? 1 : 0);
      if (!shown) expect(values[i * 4]).toBe(0);
    }
    await hook((m) => m.toggleLayer(5, true));
    await hook((m) => m.setParam('soloLayer', 3));
    values = await hook((m) => m.instanceValues());
    for (let i = 0; i < layout.count; i++) expect(values[i * 4 + 3]).toBe(layout.layer[i] === 3 ? 1 : 0);
    await page.screenshot({ path: join(ARTIFACTS, 'skeleton-solo-layer3.png') });
    await hook((m) => m.setParam('soloLayer', -1));
    // The URL carries the state.
    await hook((m) => m.toggleLayer(7, false));
    await new Promise((r) => setTimeout(r, 500));
    expect(new URL(page.url()).searchParams.get('hide')).toBe('7');
    await hook((m) => m.toggleLayer(7, true));
  });

  it('keeps the frame loop under 4 ms of CPU for a 64 × 256 grid picked as files, with no buffer mappings', async () => {
    const dir = tempDir('moescope-64x256-');
    // A synthetic 64-layer, 256-expert config (DeepSeek-V3's, with every layer MoE): config only, no weights.
    const ds = JSON.parse(readFileSync('public/configs/deepseek-v3.json', 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...ds, num_hidden_layers: 64, first_k_dense_replace: 0 }));
    await pickFiles(page, [join(dir, 'config.json')]);
    await page.waitForFunction(() => window.__moescope!.layout()?.numLayers === 64, { timeout: 60_000 });
    // Every expert a bar of its own (not in groups of 16): the frame budget holds for the full grid.
    await hook((m) => m.setParam('groupExperts', false));
    await page.waitForFunction(() => window.__moescope!.layout()?.groupSize === 1, { timeout: 60_000 });
    const layout = (await hook((m) => m.layout()))!;
    expect(layout.numExperts).toBe(256);
    expect(layout.count).toBe(64 * (256 + 1)); // plus one shared-expert cell per layer
    // SwiftShader rasterises 16k boxes at a few frames per second: the GPU sets the frame rate here, while this
    // measures the CPU time of the frame callback (compute dispatch + three.js render call).
    await hook((m) => m.waitFrames(4)); // let the camera settle
    const maps0 = await page.evaluate(() => ({ ...window.__maps }));
    await hook((m) => m.waitFrames(30));
    const maps1 = await page.evaluate(() => ({ ...window.__maps }));
    const times = await hook((m) => m.frameTimes(30));
    const sorted = [...times].sort((a, b) => a - b);
    const mean = times.reduce((s, t) => s + t, 0) / times.length;
    const median = sorted[Math.floor(sorted.length / 2)];
    console.log(`64×256 frame CPU: mean ${mean.toFixed(2)} ms, median ${median.toFixed(2)} ms, p95 ${sorted[Math.floor(sorted.length * 0.95)].toFixed(2)} ms over ${times.length} frames`);
    // Wall time of the frame callback: on two cores shared with other test files' SwiftShader work, single frames
    // get preempted, so the typical frame (median) is held to the budget, and the mean to twice it.
    expect(median).toBeLessThan(4);
    expect(mean).toBeLessThan(8);
    expect(maps1.total - maps0.total, 'buffer mappings while only frames ran').toBe(0);
    expect(maps1.inFrame).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, 'skeleton-64x256.png') });
  }, 120_000);

  it('shows an error in the page for a bad folder and keeps the current model', async () => {
    const dir = tempDir('moescope-bad-');
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2', n_layer: 12 }));
    const before = await hook((m) => m.modelId());
    await pickFiles(page, [join(dir, 'config.json')]);
    await page.waitForFunction(() => window.__moescope!.errors().length > 0, { timeout: 30_000 });
    const errors = await hook((m) => m.errors());
    expect(errors.join('\n')).toMatch(/config\.json.*model_type/);
    expect(await hook((m) => m.modelId())).toBe(before);
    await page.screenshot({ path: join(ARTIFACTS, 'skeleton-bad-folder.png') });
    await page.$$eval('#errors .error button', (bs) => bs.forEach((b) => (b as HTMLButtonElement).click()));
  });

  it('opens a model folder dropped on the page (config only: no weights in it)', async () => {
    const root = tempDir('moescope-drop-');
    const dir = join(root, 'OLMoE-1B-7B');
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), readFileSync('public/configs/olmoe-1b-7b.json'));
    const cdp = await page.createCDPSession();
    const data = { items: [], files: [dir], dragOperationsMask: 1 };
    for (const type of ['dragEnter', 'dragOver', 'drop'] as const) {
      await cdp.send('Input.dispatchDragEvent', { type, x: 400, y: 300, data });
    }
    await page.waitForFunction(() => window.__moescope!.modelId() === 'folder:OLMoE-1B-7B', { timeout: 30_000 });
    expect(await hook((m) => m.layout()?.count)).toBe(16 * 64);
    expect(await page.$eval('#model-name', (e) => e.textContent)).toBe('OLMoE-1B-7B');
    expect(await page.$eval('#drop-overlay', (e) => (e as HTMLElement).hidden)).toBe(true);
    await cdp.detach();
  });

  it('exports a PNG of the 3D view', async () => {
    expect(await hook((m) => m.png())).toBeGreaterThan(2000);
  });

  it('restores the view from the URL in a new page', async () => {
    const { page: p, log: l } = await openPage(h);
    await p.goto(`${h.origin}/?model=config:olmoe-1b-7b.json&colormap=magma&mode=probability&hide=2,5&heightScale=2`);
    await waitForApp(p);
    const state = await p.evaluate(() => {
      const m = window.__moescope!;
      return { id: m.modelId(), params: { ...m.app.state.params }, hidden: [...m.app.state.hidden].sort() };
    });
    expect(state.id).toBe('config:olmoe-1b-7b.json');
    expect(state.params).toMatchObject({ colormap: 'magma', mode: 'probability', heightScale: 2 });
    expect(state.hidden).toEqual([2, 5]);
    const values = await p.evaluate(() => window.__moescope!.instanceValues());
    const layout = (await p.evaluate(() => window.__moescope!.layout()))!;
    for (let i = 0; i < layout.count; i++) expect(values[i * 4 + 3]).toBe([2, 5].includes(layout.layer[i]) ? 0 : 1);
    await p.screenshot({ path: join(ARTIFACTS, 'skeleton-olmoe-from-url.png') });
    expect(l.errors).toEqual([]);
    await p.close();
  });

  it('the GPU-memory setting is remembered; a model over it is drawn with a message naming the setting and the size', async () => {
    const { page: p, log: l } = await openPage(h);
    await p.goto(`${h.origin}/?model=config:olmoe-1b-7b.json`);
    await waitForApp(p);
    const setMemory = (value: string) =>
      p.$eval('#memory-input', (e, v) => {
        (e as HTMLInputElement).value = v;
        e.dispatchEvent(new Event('change'));
      }, value);
    expect(await p.$eval('#memory-input', (e) => (e as HTMLInputElement).placeholder)).toMatch(/ \(device\)$/);
    await setMemory('1MB');
    expect(await p.evaluate(() => localStorage.getItem('moescope.gpuMemory'))).toBe('1MB');
    await p.evaluate(() => window.__moescope!.open('demo:moescope-demo'));
    expect(await p.evaluate(() => window.__moescope!.hasSession())).toBe(false);
    const note = await p.$eval('#model-note', (e) => e.textContent ?? '');
    expect(note).toMatch(/the memory budget is ~1\.0 MB \(GPU memory set to 1MB in this browser\); set GPU memory \(beside the model list\) to [\d.]+GB or more/);
    // Remembered across pages; an invalid value is refused and the remembered one kept; clearing it lets the model run.
    await p.reload();
    await waitForApp(p);
    expect(await p.$eval('#memory-input', (e) => (e as HTMLInputElement).value)).toBe('1MB');
    await setMemory('lots');
    expect(await p.evaluate(() => localStorage.getItem('moescope.gpuMemory'))).toBe('1MB');
    expect(await p.evaluate(() => window.__moescope!.errors().join(' '))).toMatch(/GPU memory: "lots" is not a size/);
    await setMemory('');
    await p.evaluate(() => window.__moescope!.open('demo:moescope-demo'));
    expect(await p.evaluate(() => window.__moescope!.hasSession())).toBe(true);
    expect(l.errors.filter((e) => !/is not a size/.test(e))).toEqual([]);
    await p.close();
  });

  it('logged no console errors', () => {
    expect(log.errors).toEqual([]);
  });
});

describe('without WebGPU', () => {
  it('says what the page needs instead of showing a blank canvas', async () => {
    const { page: p, log: l } = await openPage(h);
    await p.evaluateOnNewDocument(() => {
      Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
      delete (Navigator.prototype as unknown as Record<string, unknown>).gpu;
    });
    await p.goto(h.origin);
    await p.waitForSelector('#nogpu:not([hidden])', { timeout: 30_000 });
    const text = await p.$eval('#nogpu', (e) => e.textContent ?? '');
    expect(text).toMatch(/needs WebGPU/);
    expect(text).toMatch(/navigator\.gpu is missing/);
    expect(await p.$eval('#app', (e) => (e as HTMLElement).hidden)).toBe(true);
    await p.screenshot({ path: join(ARTIFACTS, 'no-webgpu.png') });
    expect(l.errors).toEqual([]);
    await p.close();
  });

  it('a test that needs WebGPU fails at once, naming the reason, instead of timing out', async () => {
    const { page: p } = await openPage(h);
    await p.evaluateOnNewDocument(() => {
      delete (Navigator.prototype as unknown as Record<string, unknown>).gpu;
    });
    await p.goto(h.origin);
    const started = Date.now();
    await expect(waitForApp(p)).rejects.toThrow(/no WebGPU adapter in the page .*: navigator\.gpu is missing/);
    expect(Date.now() - started).toBeLessThan(10_000);
    await p.close();
  });
});
