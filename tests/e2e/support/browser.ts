// Serving the app and driving headless Chromium (SwiftShader WebGPU) for the end-to-end tests.
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import puppeteer, { type Browser, type ElementHandle, type Page } from 'puppeteer';
import { createServer, type ViteDevServer } from 'vite';

/** Flags that give headless Chromium a SwiftShader WebGPU adapter that can also draw to a canvas. */
export const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-angle=swiftshader',
  '--use-vulkan=swiftshader',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export const ARTIFACTS = resolve('tests/artifacts');

export interface Harness {
  server: ViteDevServer;
  browser: Browser;
  origin: string;
  close(): Promise<void>;
}

/** Vite's dev server on a free localhost port and a headless Chromium. */
export async function startHarness(): Promise<Harness> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const server = await createServer({
    root: resolve('.'),
    logLevel: 'error',
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false },
    clearScreen: false,
  });
  await server.listen();
  const address = server.httpServer?.address();
  if (!address || typeof address === 'string') throw new Error('Vite server has no port');
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    // Under a loaded two-core machine (other test files compiling shaders on SwiftShader) start-up can be slow.
    timeout: 120_000,
    protocolTimeout: 300_000,
  });
  return {
    server,
    browser,
    origin: `http://127.0.0.1:${address.port}`,
    async close() {
      await browser.close();
      await server.close();
    },
  };
}

export interface PageLog {
  errors: string[];
  all: string[];
}

/** A page that records console errors, page errors and failed requests, and counts buffer mappings in frames. */
export async function openPage(h: Pick<Harness, 'browser'>, width = 1280, height = 800, tour = false): Promise<{ page: Page; log: PageLog }> {
  const page = await h.browser.newPage();
  await page.setViewport({ width, height });
  const log: PageLog = { errors: [], all: [] };
  page.on('console', (m) => {
    log.all.push(`${m.type()}: ${m.text()}`);
    if (m.type() === 'error') log.errors.push(m.text());
  });
  page.on('pageerror', (e) => log.errors.push(`pageerror: ${(e as Error).message}`));
  // Aborted requests are not failures: the model loader cancels a streamed GET once it has the bytes it needs.
  page.on('requestfailed', (r) => {
    if (r.failure()?.errorText !== 'net::ERR_ABORTED') log.errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  // Count GPUBuffer.mapAsync calls: in total, and those made while the app's frame callback runs. Pages start as a
  // returning user's (first-run tour seen) unless `tour` is asked for.
  await page.evaluateOnNewDocument((showTour) => {
    if (!showTour) localStorage.setItem('moescope.tour', 'done');
    const w = window as unknown as { __maps: { total: number; inFrame: number }; __moescope?: { inFrame: boolean } };
    w.__maps = { total: 0, inFrame: 0 };
    const proto = (globalThis as unknown as { GPUBuffer?: { prototype: GPUBuffer } }).GPUBuffer?.prototype;
    if (!proto) return;
    const original = proto.mapAsync;
    proto.mapAsync = function (this: GPUBuffer, ...args: Parameters<GPUBuffer['mapAsync']>) {
      w.__maps.total++;
      if (w.__moescope?.inFrame) w.__maps.inFrame++;
      return original.apply(this, args);
    };
  }, tour);
  return { page, log };
}

/**
 * Throws at once, with the reason, when the loaded page has no WebGPU adapter: the tests that need one would
 * otherwise only time out.
 */
export async function requireWebGpu(page: Page): Promise<void> {
  const probe = () =>
    page.evaluate(async () => {
      if (!navigator.gpu) return `navigator.gpu is missing (secure context: ${window.isSecureContext})`;
      try {
        return (await navigator.gpu.requestAdapter()) ? null : 'navigator.gpu.requestAdapter() returned null';
      } catch (e) {
        return `navigator.gpu.requestAdapter() threw ${String(e)}`;
      }
    });
  let reason: string | null = null;
  // A page that navigates while the probe runs (a test reloading it, say): probe the new page.
  for (let attempt = 0; ; attempt++) {
    try {
      reason = await probe();
      break;
    } catch (e) {
      if (attempt >= 5 || !/Execution context was destroyed|Cannot find context/.test(String(e))) throw e;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  if (reason) {
    throw new Error(`no WebGPU adapter in the page at ${page.url()}: ${reason}. Chromium ran with ${CHROMIUM_ARGS.join(' ')} ` +
      '(SwiftShader needs /usr/lib/chromium/vk_swiftshader_icd.json; see ARCHITECTURE.md, environment facts)');
  }
}

/**
 * Wait until the app has a model on screen, with the page's own time limit. Fails at once when the page has no
 * WebGPU adapter, and with the page's own text when it shows its no-WebGPU notice.
 */
export async function waitForApp(page: Page, timeout = 90_000): Promise<void> {
  await requireWebGpu(page);
  await page.waitForFunction(
    () => {
      const h = (window as unknown as { __moescope?: { modelId(): string | null; frames(): number } }).__moescope;
      return (h && h.modelId() !== null && h.frames() > 2) || !document.getElementById('nogpu')!.hidden;
    },
    { timeout, polling: 200 },
  );
  const notice = await page.$eval('#nogpu', (e) => ((e as HTMLElement).hidden ? null : e.textContent));
  if (notice !== null) throw new Error(`the page shows its no-WebGPU notice: ${notice}`);
}

/** Pick files through the page's "open model files…" input, as a user would. */
export async function pickFiles(page: Page, paths: string[]): Promise<void> {
  const input = (await page.$('#files-input')) as ElementHandle<HTMLInputElement> | null;
  if (!input) throw new Error('the page has no #files-input');
  await input.uploadFile(...paths);
}
