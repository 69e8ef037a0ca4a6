// The dashboard in Chromium on a real GPU: serves a development build of the page (the test hook included), opens it
// in Chromium on an X display, and measures what the e2e suite measures on SwiftShader plus what only a real GPU can
// answer: which adapter the page got, step latency (click → panels updated), the page's own share of a step, play's
// delivered rate against its setting, frame time while stepping at 64 layers × 256 experts, and memory.
//
// Packed and run by tools/gpu-chromium.sh (which esbuilds this file with puppeteer-core into one .mjs); the JSON and
// screenshots go to --out. Flags: --dist DIR (the built page), --chromium PATH, --out DIR, --wide MODEL_ID.
import { appendFileSync, createReadStream, mkdirSync, statSync, writeFileSync } from 'node:fs';
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

// Chromium on an X display (Xvfb), its GL through ANGLE on NVIDIA's Vulkan driver, with Vulkan surfaces off: the
// configuration that gave the page the H200 (2026-11-30). What did not, and why (each attempt's chrome://gpu goes to
// chrome-gpu.txt):
// - headless: Chromium asks Vulkan for VK_EXT_headless_surface, which NVIDIA's driver lacks;
// - any GL in software (ANGLE on SwiftShader, or Mesa's llvmpipe through GLX on Xvfb): the page gets SwiftShader;
// - NVIDIA's EGL under ANGLE's EGL backend (headless): GL and WebGPU report "hardware accelerated" and Dawn lists the
//   H200 as available, yet requestAdapter() gives SwiftShader;
// - ANGLE on Vulkan with Vulkan surfaces on: the page gets the H200, then the GPU process dies presenting to Xvfb
//   (vkCreateSwapchainKHR fails: Xvfb has no DRI3) and WebGPU is gone.
// The configurations are tried in order until the page's adapter is a real GPU.
const COMMON = ['--ozone-platform=x11', '--enable-logging=stderr', '--vmodule=*webgpu*=2,*dawn*=2', '--no-sandbox',
  '--enable-unsafe-webgpu', '--ignore-gpu-blocklist', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--window-size=1400,900', '--disable-gpu-watchdog'];
const NVIDIA_EGL = process.env.NVIDIA_EGL_VENDOR ?? '/usr/share/glvnd/egl_vendor.d/10_nvidia.json';
const VULKAN = ['--use-angle=vulkan', '--enable-features=Vulkan,DefaultANGLEVulkan,VulkanFromANGLE', '--use-vulkan=native'];
// Names starting with 'headless' run without the X display (new headless mode).
const CONFIGS: Record<string, { flags: string[]; env?: Record<string, string> }> = {
  'x11-angle-vulkan-no-surface': { flags: [...VULKAN, '--disable-vulkan-surface'] },
  'x11-angle-vulkan-software-compositing': { flags: [...VULKAN, '--disable-gpu-compositing'] },
  'headless-egl-nvidia': { flags: ['--use-angle=gl-egl'], env: { __EGL_VENDOR_LIBRARY_FILENAMES: NVIDIA_EGL } },
  'x11-mesa-glx-angle-gl': { flags: ['--use-angle=gl'] },
};

/** chrome://gpu as text (its sections live in shadow roots): feature status, GL strings, Dawn's adapters. */
async function gpuInternals(browser: Browser): Promise<string> {
  const page = await browser.newPage();
  try {
    await page.goto('chrome://gpu');
    await new Promise((r) => setTimeout(r, 3000));
    return await page.evaluate(() => {
      const text = (n: Node): string => {
        const el = n as Element;
        let t = el.shadowRoot ? text(el.shadowRoot) : '';
        for (const c of Array.from(n.childNodes)) t += c.nodeType === 3 ? c.textContent : c.nodeType === 1 ? text(c) : '';
        if (el.tagName && /^(DIV|TR|LI|H3|H2|P)$/.test(el.tagName)) t += '\n';
        return t;
      };
      return text(document.body).replace(/\n\s*\n+/g, '\n');
    });
  } finally {
    await page.close();
  }
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : NaN; };
const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN; };
const summary = (xs: number[]) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), p95: pct(xs, 0.95), n: xs.length });

async function adapterOf(page: Page) {
  return page.evaluate(async () => {
    if (!navigator.gpu) return { error: `navigator.gpu missing (secure: ${window.isSecureContext})` };
    const a = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!a) return { error: 'requestAdapter() returned null' };
    const i = a.info;
    // What the other requests give (Chromium may choose differently by power preference).
    const others: Record<string, string> = {};
    for (const [name, options] of [['default', {}], ['low-power', { powerPreference: 'low-power' }]] as const) {
      const o = await navigator.gpu.requestAdapter(options as GPURequestAdapterOptions);
      others[name] = o ? `${o.info.vendor} ${o.info.architecture} ${o.info.description}` : 'null';
    }
    return { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description,
      isFallbackAdapter: (i as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter, others,
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
      while (app.snapshots.current?.position !== target || app.snapshots.deliveredAt < t0) {
        if (performance.now() - t0 > 30_000) throw new Error(`step to ${target}: no panels after 30 s`);
        await new Promise((r) => setTimeout(r, 0));
      }
      total.push(app.snapshots.deliveredAt - t0);
      share.push(Math.max(0, app.snapshots.deliveredAt - gpuDone));
    }
    return { total, share };
  }, n);
}

/**
 * A text long enough that play never reaches its end within one measurement (a stepper at the end of its text
 * pauses, which would cut the delivered rate short): ~2,400 characters, hundreds of tokens under any tokenizer.
 */
const PLAY_TEXT = 'The router sends each token to a few experts, and only the chosen experts do the work. '.repeat(28);

/**
 * Play at `speed` tokens/s for `ms` from the start of PLAY_TEXT; the delivered rate, what the page shows beside
 * play, and rAF frame intervals over that time. `ranOut`: play stopped by itself (end of text or context).
 */
async function play(page: Page, speed: number, ms: number) {
  await page.evaluate((text) => window.__moescope!.useText(text), PLAY_TEXT);
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
    const reported = app.stepper!.playRate; // what the page shows beside play (cleared by pause)
    const shown = document.getElementById('play-rate')?.textContent ?? null;
    const ranOut = !app.stepper!.playing;
    app.stepper!.pause();
    running = false;
    const seconds = (performance.now() - t0) / 1000;
    await m.settle();
    return { speed, delivered: (app.stepper!.position - p0) / seconds, reported, shown, ranOut,
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

/** The figures measured so far, written out at once (a later phase may hang or be cut off by the call's limit). */
function progress(result: Record<string, unknown>) {
  writeFileSync(join(out, 'gpu-page-partial.json'), JSON.stringify(result, null, 2));
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
  if (!process.env.GPU_PAGE_SKIP_DEMO) {
  const lat = await stepLatency(page, 20);
  result.demoStep = { clickToPanelsMs: summary(lat.total), pageShareMs: summary(lat.share) };
  progress(result);
  const plays = [];
  for (const speed of [4, 16, 64]) {
    const p = await play(page, speed, 5000);
    plays.push({ speed, delivered: p.delivered, reported: p.reported, shown: p.shown, ranOut: p.ranOut, frameIntervalMs: summary(p.frameIntervals), frameCpuMs: summary(p.frameCpu) });
  }
  result.demoPlay = plays;
  }
  result.demoMemory = await memory(page);
  progress(result);
  await page.screenshot({ path: join(out, 'gpu-page-demo.png') }).catch((e) => { result.screenshotError = String(e); });

  // 64 layers × 256 experts, running (random weights made on this machine by tools/random_model.py).
  const t1 = Date.now();
  await page.goto(`${origin}/?model=${encodeURIComponent(wideModel)}`);
  try {
    await waitForSession(page, Number(process.env.GPU_PAGE_WIDE_TIMEOUT_MS ?? 300_000));
  } catch (e) {
    // What the page says instead (an error panel, a load still running), with its console.
    result.wideError = String(e);
    result.widePage = await page.evaluate(() => document.body.innerText.slice(0, 3000)).catch((x) => String(x));
    result.consoleErrors = errors.slice(0, 20);
    await page.screenshot({ path: join(out, 'gpu-page-64x256.png') }).catch(() => undefined);
    progress(result);
    throw e;
  }
  result.wideOpenMs = Date.now() - t1;
  progress(result);
  result.wideModel = await page.evaluate(() => {
    const c = window.__moescope!.app.model!.config;
    const session = window.__moescope!.app.model!.session as unknown as { loadPhases?: Record<string, number> } | null;
    return { id: window.__moescope!.modelId(), layers: c.numLayers, experts: c.numExperts, running: window.__moescope!.hasSession(),
      loadPhasesMs: session?.loadPhases ?? null };
  });
  if ((result.wideModel as { running: boolean }).running && !process.env.GPU_PAGE_SKIP_WIDE_STEPS) {
    await page.evaluate(() => window.__moescope!.step(4));
    const wl = await stepLatency(page, 10);
    result.wideStep = { clickToPanelsMs: summary(wl.total), pageShareMs: summary(wl.share) };
    result.widePlay = [];
    for (const speed of [4, 16]) {
      const wp = await play(page, speed, 6000);
      (result.widePlay as unknown[]).push({ speed, delivered: wp.delivered, reported: wp.reported, shown: wp.shown, ranOut: wp.ranOut,
        frameIntervalMs: summary(wp.frameIntervals), frameCpuMs: summary(wp.frameCpu) });
      progress(result);
    }
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
  for (const [name, { flags, env }] of Object.entries(CONFIGS)) {
    if (process.env.GPU_PAGE_ONLY && process.env.GPU_PAGE_ONLY !== name) continue;
    let browser: Browser | null = null;
    const attempt: Record<string, unknown> = { config: name, flags, env };
    (report.tried as unknown[]).push(attempt);
    try {
      const headless = name.startsWith('headless');
      const common = headless ? COMMON.filter((f) => f !== '--ozone-platform=x11') : COMMON;
      browser = await puppeteer.launch({ executablePath: chromium, headless, args: [...common, ...flags],
        env: { ...process.env, LD_LIBRARY_PATH: process.env.CHR_LIBS ?? '', ...env },
        dumpio: true, timeout: 60_000, protocolTimeout: 600_000 });
      attempt.version = await browser.version();
      const probe = await browser.newPage();
      await probe.goto(`${origin}/probe.html`);
      attempt.adapter = await adapterOf(probe);
      await probe.close();
      console.log(name, JSON.stringify(attempt.adapter));
      const internals = await gpuInternals(browser).catch((e) => `chrome://gpu failed: ${e}`);
      appendFileSync(join(out, 'chrome-gpu.txt'), `\n\n######## ${name}\n${internals}`);
      const again = await browser.newPage();
      await again.goto(`${origin}/probe.html`);
      attempt.adapterAfterGpuPage = JSON.stringify(await adapterOf(again)).slice(0, 300);
      await again.close();
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
