// The dashboard in Chromium on a real GPU: serves a development build of the page (the test hook included), opens it
// in Chromium on an X display, and measures what the e2e suite measures on SwiftShader plus what only a real GPU can
// answer: which adapter the page got, step latency (click → panels updated), the page's own share of a step, play's
// delivered rate against its setting, frame time while stepping at 64 layers × 256 experts, and memory.
//
// Packed and run by tools/gpu-chromium.sh (which esbuilds this file with puppeteer-core into one .mjs); the JSON and
// screenshots go to --out. Flags: --dist DIR (the built page), --chromium PATH, --out DIR, --wide MODEL_ID.
import { createReadStream, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize, resolve } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const dist = resolve(arg('dist', 'dist'));
const out = resolve(arg('out', process.env.OUT ?? 'bench/results'));
const chromium = arg('chromium', '/tmp/chr/chromium/chromium');
const wideModel = arg('wide', 'demo:wide-64x256');
mkdirSync(out, { recursive: true });

const TYPES: Record<string, string> = {
  '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.txt': 'text/plain',
};

/** A static server for the built page with single-range requests (the model loader reads checkpoints by ranges). */
function serve(root: string): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    let file = join(root, path.endsWith('/') ? `${path}index.html` : path);
    let size: number;
    try {
      size = statSync(file).size;
    } catch {
      res.writeHead(404).end();
      return;
    }
    const headers: Record<string, string | number> = {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'accept-ranges': 'bytes',
      'cache-control': 'no-store',
    };
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = size - 1;
    let status = 200;
    if (range) {
      start = range[1] ? Number(range[1]) : Math.max(0, size - Number(range[2]));
      end = range[1] && range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      if (start > end) {
        res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
        return;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['content-length'] = end - start + 1;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') res.end();
    else createReadStream(file, { start, end }).pipe(res);
    file = '';
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => {
    const a = server.address();
    ok({ server, origin: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}` });
  }));
}

// Chromium on an X display (Xvfb): headless Chromium asks Vulkan for VK_EXT_headless_surface, which NVIDIA's driver
// lacks. WebGPU (Dawn) takes the NVIDIA Vulkan driver; the compositor's GL goes through ANGLE on SwiftShader, since
// NVIDIA's driver cannot present to Xvfb. Tried in order until the page's adapter is a real GPU.
const COMMON = ['--ozone-platform=x11', '--no-sandbox', '--enable-unsafe-webgpu', '--ignore-gpu-blocklist', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--window-size=1400,900',
  '--disable-gpu-watchdog'];
// Names starting with 'headless' run without the X display (new headless mode).
const CONFIGS: Record<string, string[]> = {
  'headless-vulkan-no-surface': ['--enable-features=Vulkan', '--use-vulkan=native', '--disable-vulkan-surface', '--use-angle=vulkan'],
  'x11-vulkan-no-surface': ['--enable-features=Vulkan', '--use-vulkan=native', '--disable-vulkan-surface', '--use-angle=swiftshader'],
  'headless-swangle-webgpu-high-performance': ['--use-angle=swiftshader', '--use-webgpu-power-preference=force-high-performance', '--use-webgpu-adapter=default'],
  'x11-swangle-webgpu-high-performance': ['--use-angle=swiftshader', '--use-webgpu-power-preference=force-high-performance', '--use-webgpu-adapter=default'],
  'vulkan-swiftshader-compositor': ['--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-angle=swiftshader'],
};

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : NaN; };
const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN; };
const summary = (xs: number[]) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), p95: pct(xs, 0.95), n: xs.length });

async function adapterOf(page: Page) {
  return page.evaluate(async () => {
    if (!navigator.gpu) return { error: `navigator.gpu missing (secure: ${window.isSecureContext})` };
    const a = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!a) return { error: 'requestAdapter() returned null' };
    const i = a.info;
    return { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description,
      maxBufferSize: a.limits.maxBufferSize, maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize,
      features: [...a.features].sort() };
  });
}

/** Wait for a model on screen; the page may reload itself on the way (it restores a lost device by reloading). */
async function waitForSession(page: Page, timeout: number) {
  const end = Date.now() + timeout;
  for (;;) {
    try {
      await page.waitForFunction(() => {
        const h = window.__moescope;
        return (h && h.hasSession() && h.frames() > 2) || (h && h.app.model && !h.app.model.session && h.frames() > 2) ||
          !document.getElementById('nogpu')!.hidden;
      }, { timeout: Math.max(1000, end - Date.now()), polling: 200 });
      const failure = await page.evaluate(() => window.__moescope ? null :
        `no app in the page: ${document.getElementById('nogpu')?.textContent?.trim().slice(0, 600)}`);
      if (failure) throw new Error(failure);
      await new Promise((r) => setTimeout(r, 1000));
      if (await page.evaluate(() => window.__moescope?.hasSession() ?? false)) return;
    } catch (e) {
      if (Date.now() > end || !/Execution context was destroyed|Cannot find context|detached/.test(String(e))) throw e;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** Click the step control's equivalent (the stepper) and time click → GPU work done → panels drawn. */
async function stepLatency(page: Page, n: number) {
  return page.evaluate(async (n) => {
    const m = window.__moescope!;
    const app = m.app;
    const total: number[] = [];
    const share: number[] = [];
    for (let i = 0; i < n; i++) {
      await m.settle();
      const target = app.stepper!.position + 1;
      const t0 = performance.now();
      const forward = app.stepper!.forward(1);
      await forward;
      await app.gpu.device.queue.onSubmittedWorkDone();
      const gpuDone = performance.now();
      while (app.snapshots.current?.position !== target || app.snapshots.deliveredAt < t0) await new Promise((r) => setTimeout(r, 0));
      total.push(app.snapshots.deliveredAt - t0);
      share.push(Math.max(0, app.snapshots.deliveredAt - gpuDone));
    }
    return { total, share };
  }, n);
}

/** Play at `speed` tokens/s for `ms`; the delivered rate and rAF frame intervals over that time. */
async function play(page: Page, speed: number, ms: number) {
  return page.evaluate(async (speed, ms) => {
    const m = window.__moescope!;
    const app = m.app;
    await m.setParam('speed', speed);
    const p0 = app.stepper!.position;
    const intervals: number[] = [];
    let last = performance.now();
    let running = true;
    const tick = (t: number) => { intervals.push(t - last); last = t; if (running) requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
    const t0 = performance.now();
    app.stepper!.play();
    await new Promise((r) => setTimeout(r, ms));
    app.stepper!.pause();
    running = false;
    const seconds = (performance.now() - t0) / 1000;
    await m.settle();
    return { speed, delivered: (app.stepper!.position - p0) / seconds, reported: app.stepper!.playRate,
      frameIntervals: intervals.slice(2), frameCpu: m.frameTimes(120) };
  }, speed, ms);
}

async function memory(page: Page) {
  return page.evaluate(() => {
    const pm = (performance as unknown as { memory?: { usedJSHeapSize: number; totalJSHeapSize: number } }).memory;
    return { jsHeapUsed: pm?.usedJSHeapSize ?? null, jsHeapTotal: pm?.totalJSHeapSize ?? null,
      memoryPanel: document.querySelector('#memory')?.textContent ?? document.querySelector('.memory')?.textContent ?? null };
  });
}

async function measure(browser: Browser, origin: string, config: string) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 900 });
  const errors: string[] = [];
  let reloads = 0;
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) reloads++; });
  page.on('pageerror', (e) => errors.push(`pageerror: ${(e as Error).message}`));
  await page.evaluateOnNewDocument(() => localStorage.setItem('moescope.tour', 'done'));
  const result: Record<string, unknown> = { config };
  const t0 = Date.now();
  await page.goto(`${origin}/`);
  await waitForSession(page, 120_000);
  result.demoOpenMs = Date.now() - t0;
  result.pageAdapter = await page.evaluate(() => {
    const d = window.__moescope!.app.gpu.device as GPUDevice & { adapterInfo?: GPUAdapterInfo };
    return d.adapterInfo ? { vendor: d.adapterInfo.vendor, architecture: d.adapterInfo.architecture, description: d.adapterInfo.description } : null;
  });
  await page.evaluate(() => window.__moescope!.step(4)); // every pipeline compiled once
  const lat = await stepLatency(page, 20);
  result.demoStep = { clickToPanelsMs: summary(lat.total), pageShareMs: summary(lat.share) };
  const plays = [];
  for (const speed of [4, 16, 64]) {
    const p = await play(page, speed, 5000);
    plays.push({ speed, delivered: p.delivered, reported: p.reported, frameIntervalMs: summary(p.frameIntervals), frameCpuMs: summary(p.frameCpu) });
  }
  result.demoPlay = plays;
  result.demoMemory = await memory(page);
  await page.screenshot({ path: join(out, 'gpu-page-demo.png') }).catch((e) => { result.screenshotError = String(e); });

  // 64 layers × 256 experts, running (random weights made on this machine by tools/random_model.py).
  const t1 = Date.now();
  await page.goto(`${origin}/?model=${encodeURIComponent(wideModel)}`);
  await waitForSession(page, 300_000);
  result.wideOpenMs = Date.now() - t1;
  result.wideModel = await page.evaluate(() => {
    const c = window.__moescope!.app.model!.config;
    return { id: window.__moescope!.modelId(), layers: c.numLayers, experts: c.numExperts, running: window.__moescope!.hasSession() };
  });
  if ((result.wideModel as { running: boolean }).running && !process.env.GPU_PAGE_SKIP_WIDE_STEPS) {
    await page.evaluate(() => window.__moescope!.step(4));
    const wl = await stepLatency(page, 10);
    result.wideStep = { clickToPanelsMs: summary(wl.total), pageShareMs: summary(wl.share) };
    const wp = await play(page, 16, 6000);
    result.widePlay = { speed: 16, delivered: wp.delivered, reported: wp.reported, frameIntervalMs: summary(wp.frameIntervals), frameCpuMs: summary(wp.frameCpu) };
  }
  result.wideMemory = await memory(page);
  await page.screenshot({ path: join(out, 'gpu-page-64x256.png') }).catch((e) => { result.screenshotError = String(e); });
  result.consoleErrors = errors.slice(0, 20);
  result.navigations = reloads;
  await page.close();
  return result;
}

async function main() {
  const { server, origin } = await serve(dist);
  const report: Record<string, unknown> = { when: new Date().toISOString(), chromium, tried: [] as unknown[] };
  for (const [name, flags] of Object.entries(CONFIGS)) {
    if (process.env.GPU_PAGE_ONLY && process.env.GPU_PAGE_ONLY !== name) continue;
    let browser: Browser | null = null;
    const attempt: Record<string, unknown> = { config: name, flags };
    (report.tried as unknown[]).push(attempt);
    try {
      const headless = name.startsWith('headless');
      const common = headless ? COMMON.filter((f) => f !== '--ozone-platform=x11') : COMMON;
      browser = await puppeteer.launch({ executablePath: chromium, headless, args: [...common, ...flags],
        env: { ...process.env, LD_LIBRARY_PATH: process.env.CHR_LIBS ?? '' },
        dumpio: process.env.GPU_PAGE_DUMPIO === '1', timeout: 60_000, protocolTimeout: 600_000 });
      attempt.version = await browser.version();
      const probe = await browser.newPage();
      await probe.goto(`${origin}/probe.html`);
      attempt.adapter = await adapterOf(probe);
      await probe.close();
      console.log(name, JSON.stringify(attempt.adapter));
      const a = attempt.adapter as { vendor?: string; description?: string };
      if (!process.env.GPU_PAGE_ANY_ADAPTER && !/nvidia/i.test(`${a.vendor} ${a.description}`)) continue;
      report.result = await measure(browser, origin, name);
      break;
    } catch (e) {
      attempt.error = String(e).slice(0, 2000);
      console.log(name, 'failed:', attempt.error);
    } finally {
      await browser?.close().catch(() => undefined);
      writeFileSync(join(out, 'gpu-page.json'), JSON.stringify(report, null, 2));
    }
  }
  server.close();
  console.log(JSON.stringify(report, null, 2).slice(0, 6000));
}

main().catch((e) => { console.error(e); process.exit(1); });
