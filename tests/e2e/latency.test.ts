// End-to-end on the bundled demo model (the page at /): the page's own share of a step, from the step's GPU work
// done to the panels drawn from its snapshot, stays within 100 ms on SwiftShader.
import type { Page } from 'puppeteer';
import { beforeAll, describe, expect, it } from 'vitest';
import { openPage, waitForApp, type PageLog } from './support/browser';
import { harnessForFile, hookOf, type HookCall } from './support/fixture-page';

const harness = harnessForFile();
let page: Page;
let hook: HookCall;
let log: PageLog;

beforeAll(async () => {
  ({ page, log } = await openPage(harness(), 1280, 800));
  hook = hookOf(page);
  await page.goto(harness().origin);
  await waitForApp(page, 200_000);
  await page.waitForFunction(() => window.__moescope!.hasSession() || window.__moescope!.errors().length > 0, { timeout: 120_000 });
  await hook((m) => m.step(4)); // compiles every pipeline once
}, 420_000);

describe('stepping the demo model', () => {
  it('draws the panels within 100 ms of a step’s GPU work', async () => {
    const shares = await page.evaluate(async () => {
      const m = window.__moescope!;
      const app = m.app;
      const out: number[] = [];
      for (let i = 0; i < 4; i++) {
        await m.settle();
        const target = app.stepper!.position + 1;
        await app.stepper!.forward(1);
        await app.gpu.device.queue.onSubmittedWorkDone();
        const gpuDone = performance.now();
        while (app.snapshots.current?.position !== target || app.snapshots.deliveredAt === 0) await new Promise((r) => setTimeout(r, 1));
        while (app.snapshots.deliveredAt < gpuDone - 1000) await new Promise((r) => setTimeout(r, 1));
        out.push(Math.max(0, app.snapshots.deliveredAt - gpuDone));
      }
      return out;
    });
    console.log(`page's share of a step (GPU work done → panels drawn), ms: ${shares.map((s) => s.toFixed(1)).join(', ')}`);
    const sorted = [...shares].sort((a, b) => a - b);
    expect(sorted[Math.floor(sorted.length / 2)]).toBeLessThanOrEqual(100);
  }, 120_000);

  it('logged no console errors', () => {
    expect(log.errors).toEqual([]);
  });
});
