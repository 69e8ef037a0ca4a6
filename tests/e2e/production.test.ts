// End-to-end on the production build (vite build + vite preview on a free port), as it would be deployed: the test
// hook is not in the bundle, and the page runs the bundled demo model under index.html's Content-Security-Policy
// without a single `securitypolicyviolation` event. Driven through the page's own controls (no test hook there).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer';
import { build, preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, CHROMIUM_ARGS, openPage, type PageLog } from './support/browser';

declare global {
  interface Window {
    __csp: string[];
  }
}

const outDir = mkdtempSync(join(tmpdir(), 'moescope-dist-'));
let server: PreviewServer;
let browser: Browser;
let page: Page;
let log: PageLog;
let origin: string;

/** Every file of the build's output, recursively. */
function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? files(join(dir, d.name)) : [join(dir, d.name)]));
}

beforeAll(async () => {
  // As `npm run build` does: vitest sets NODE_ENV=test, under which Vite would make a development build.
  const env = process.env.NODE_ENV;
  process.env.NODE_ENV = 'production';
  try {
    await build({ root: resolve('.'), mode: 'production', logLevel: 'error', build: { outDir, emptyOutDir: true } });
  } finally {
    process.env.NODE_ENV = env;
  }
  server = await preview({ root: resolve('.'), logLevel: 'error', build: { outDir }, preview: { host: '127.0.0.1', port: 0, strictPort: false } });
  const address = server.httpServer.address();
  if (!address || typeof address === 'string') throw new Error('vite preview has no port');
  origin = `http://127.0.0.1:${address.port}`;
  browser = await puppeteer.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS, timeout: 120_000, protocolTimeout: 300_000 });
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((r) => (server ? server.httpServer.close(() => r()) : r()));
  rmSync(outDir, { recursive: true, force: true });
});

describe('the production build', () => {
  it('ships no test hook', () => {
    const scripts = files(outDir).filter((f) => f.endsWith('.js'));
    expect(scripts.length).toBeGreaterThan(0);
    const hooked = scripts.filter((f) => /__moescope\b|installTestHook/.test(readFileSync(f, 'utf8')));
    expect(hooked).toEqual([]);
  });

  it('keeps the policy of index.html as it is (no inline style allowance)', () => {
    const html = readFileSync(join(outDir, 'index.html'), 'utf8');
    const policy = /http-equiv="Content-Security-Policy"\s+content="([^"]*)"/.exec(html)?.[1] ?? '';
    expect(policy).toContain("script-src 'self'; style-src 'self';");
    expect(policy).not.toMatch(/unsafe-inline|unsafe-eval/);
    expect(html).not.toMatch(/<style|<script>/);
  });

  it('runs the demo model under its Content-Security-Policy with no violation', async () => {
    ({ page, log } = await openPage({ browser }));
    await page.evaluateOnNewDocument(() => {
      window.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective}: ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
    });
    await page.goto(origin);
    // Loaded: the first sample's tokens are in the strip and the position reads "0 / n".
    await page.waitForFunction(() => /^0 \/ \d+$/.test(document.getElementById('position')!.textContent ?? ''), { timeout: 150_000, polling: 250 });
    expect(await page.evaluate(() => typeof (window as unknown as { __moescope?: unknown }).__moescope)).toBe('undefined');
    await page.click('#forward');
    await page.click('#forward');
    await page.waitForFunction(() => /^2 \//.test(document.getElementById('position')!.textContent ?? ''), { timeout: 120_000, polling: 250 });
    // The panels got a snapshot: the first tokens are coloured by their expert.
    await page.waitForFunction(() => document.querySelectorAll('#strip .tok.done').length === 2, { timeout: 60_000, polling: 250 });
    // lil-gui is styled from our stylesheet (its rules apply without an injected <style>).
    const guiFont = await page.$eval('.lil-gui.lil-root', (e) => getComputedStyle(e).getPropertyValue('--font-size').trim());
    expect(guiFont).not.toBe('');
    await page.screenshot({ path: join(ARTIFACTS, 'production-csp.png') });
    expect(await page.evaluate(() => window.__csp)).toEqual([]);
    expect(await page.$$eval('style', (s) => s.length)).toBe(0);
    expect(log.errors).toEqual([]);
  }, 300_000);
});
