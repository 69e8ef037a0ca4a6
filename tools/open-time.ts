// How long the page takes to open a model picked as files, in headless Chromium on SwiftShader (the e2e harness):
// from the files picked to a running session with its first step's panels (`open`), split at the session's arrival
// (`load`: read, upload, pipelines, decoder; `first step`: the rest). The load's own phases come from
// Session.loadPhases where the page reports them. One fresh page per run.
//   npx tsx tools/open-time.ts --model DIR [--runs 3]
// DIR: config.json, model.safetensors, tokenizer.json (e.g. tools/random_model.py --shape wide-64x256's output, with a
// byte-level tokenizer.json).
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openPage, pickFiles, startHarness, waitForApp } from '../tests/e2e/support/browser';

const arg = (name: string, fallback?: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  if (i > 0) return process.argv[i + 1];
  if (fallback === undefined) throw new Error(`--${name} is required`);
  return fallback;
};
const dir = resolve(arg('model'));
const runs = Number(arg('runs', '3'));
const files = readdirSync(dir).filter((f) => /\.(json|safetensors)$/.test(f)).map((f) => join(dir, f));

const h = await startHarness();
try {
  for (let run = 0; run < runs; run++) {
    const { page, log } = await openPage(h, 1280, 800);
    await page.goto(`${h.origin}/?model=config:deepseek-v3.json`);
    await waitForApp(page);
    const t0 = Date.now();
    await pickFiles(page, files);
    await page.waitForFunction(() => window.__moescope!.hasSession() || window.__moescope!.errors().length > 0, { timeout: 600_000, polling: 50 });
    const loadMs = Date.now() - t0;
    await page.waitForFunction(() => window.__moescope!.snapshots() > 0 || window.__moescope!.errors().length > 0, { timeout: 600_000, polling: 50 });
    const openMs = Date.now() - t0;
    const page_ = await page.evaluate(() => ({
      errors: window.__moescope!.errors(),
      phases: (window.__moescope!.app.model?.session as unknown as { loadPhases?: unknown } | undefined)?.loadPhases ?? null,
    }));
    console.log(JSON.stringify({ run, openMs, loadMs, firstStepMs: openMs - loadMs, phases: page_.phases, errors: page_.errors, consoleErrors: log.errors.slice(0, 5) }));
    await page.close();
  }
} finally {
  await h.close();
}
