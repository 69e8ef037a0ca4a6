// A page with the Mixtral golden fixture (tests/fixtures/mixtral, 2 layers × 8 experts) picked as files, as a user
// would open it, and a typed caller of the app's test hook.
import { join } from 'node:path';
import type { Page } from 'puppeteer';
import { afterAll, beforeAll } from 'vitest';
import { openPage, pickFiles, startHarness, waitForApp, type Harness, type PageLog } from './browser';

export type Hook = NonNullable<Window['__moescope']>;
export type HookCall = <T>(fn: (m: Hook) => T | Promise<T>) => Promise<T>;

export const MIXTRAL_FIXTURE = 'tests/fixtures/mixtral';

/** Run `fn` on the page's window.__moescope (a function's source, so it must not close over test variables). */
export function hookOf(page: Page): HookCall {
  return <T>(fn: (m: Hook) => T | Promise<T>) =>
    page.evaluate(async (src) => {
      const f = new Function('m', `return (${src})(m)`) as (m: Hook) => T;
      return f(window.__moescope!);
    }, fn.toString()) as Promise<T>;
}

export async function openMixtralFixture(h: Harness, width: number, height: number): Promise<{ page: Page; log: PageLog; hook: HookCall }> {
  const { page, log } = await openPage(h, width, height);
  await page.goto(`${h.origin}/?model=config:mixtral-8x7b.json`);
  await waitForApp(page);
  await pickFiles(page, ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].map((f) => join(MIXTRAL_FIXTURE, f)));
  await page.waitForFunction(() => window.__moescope!.hasSession() || window.__moescope!.errors().length > 0, { timeout: 90_000 });
  return { page, log, hook: hookOf(page) };
}

/** A page on the bundled demo model (the page at `/` opens on it), its session running. */
export async function openDemoModel(h: Harness, width: number, height: number): Promise<{ page: Page; log: PageLog; hook: HookCall }> {
  const { page, log } = await openPage(h, width, height);
  await page.goto(h.origin);
  await waitForApp(page);
  await page.waitForFunction(() => window.__moescope!.hasSession() || window.__moescope!.errors().length > 0, { timeout: 90_000 });
  const hook = hookOf(page);
  await hook((m) => m.settle());
  return { page, log, hook };
}

/** A harness started before the file's tests and closed after them; call the result inside tests and hooks. */
export function harnessForFile(): () => Harness {
  let h: Harness | null = null;
  beforeAll(async () => {
    h = await startHarness();
  }, 120_000);
  afterAll(async () => {
    await h?.close();
  });
  return () => h!;
}
