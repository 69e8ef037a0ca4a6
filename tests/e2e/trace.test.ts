// End-to-end: routing traces in the dashboard (headless Chromium, SwiftShader WebGPU). A synthetic DeepSeek-V3-shaped
// trace (61 layers, 58 of them MoE × 256 experts, k = 8) of 100,000 tokens, generated here, opens in under 3 s and
// scrubs at ≤ 16 ms per step; the views show the trace's counts; what it did not record is said, not drawn as zeros;
// a truncated trace and a mismatched config.json leave the current model in place with the file and field named.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CDPSession, Page } from 'puppeteer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeTrace } from '../../src/trace/writer';
import { TraceFile } from '../../src/trace/reader';
import { TraceTimeline } from '../../src/trace/timeline';
import { comparePlacements } from '../../src/trace/placement';
import { MemorySource } from '../../src/io/source';
import { synthTrace } from '../support/trace';
import { ARTIFACTS, openPage, pickFiles, startHarness, waitForApp, type Harness, type PageLog } from './support/browser';

type Hook = NonNullable<Window['__moescope']>;

let h: Harness;
let page: Page;
let log: PageLog;
let cdp: CDPSession;
const dir = mkdtempSync(join(tmpdir(), 'moescope-trace-e2e-'));
const deepseek = JSON.parse(readFileSync('public/configs/deepseek-v3.json', 'utf8'));
const TOKENS = 100_000;
const big = synthTrace(deepseek, { tokens: TOKENS, sequences: 4, unknownEvery: 97, engine: 'vllm', period: 4096 });
const bigPath = join(dir, 'deepseek-v3-100k.safetensors');
const bigBytes = encodeTrace(big.meta, big.arrays);
writeFileSync(bigPath, bigBytes);

beforeAll(async () => {
  h = await startHarness();
  ({ page, log } = await openPage(h));
  await page.goto(`${h.origin}/?model=config:mixtral-8x7b.json`);
  await waitForApp(page);
  cdp = await page.createCDPSession();
  await cdp.send('Performance.enable', { timeDomain: 'threadTicks' });
}, 180_000);

afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

const hook = <T, A = undefined>(fn: (m: Hook, arg: A) => T | Promise<T>, arg?: A): Promise<T> =>
  page.evaluate(async (src, a) => {
    const f = new Function('m', 'a', `return (${src})(m, a)`) as (m: Hook, a: unknown) => T;
    return f(window.__moescope!, a);
  }, fn.toString(), arg as unknown) as Promise<T>;

/** Counts [layers, experts] of trace tokens [a, b), all 61 layers (dense ones zero). */
function countsBetween(a: number, b: number): Uint32Array {
  const E = 256, K = 8, moe = big.meta.moeLayers, M = moe.length;
  const out = new Uint32Array(61 * E);
  for (let t = a; t < b; t++) {
    for (let m = 0; m < M; m++) {
      for (let k = 0; k < K; k++) {
        const e = big.arrays.experts[(t * M + m) * K + k];
        if (e >= 0) out[moe[m] * E + e]++;
      }
    }
  }
  return out;
}

/**
 * CPU seconds of the page's main thread (Chrome's ThreadTime metric): what the page itself spent, whatever else the
 * shared test machine is running (its wall-clock times are logged beside it).
 */
async function threadTime(): Promise<number> {
  const { metrics } = await cdp.send('Performance.getMetrics');
  return metrics.find((m) => m.name === 'ThreadTime')!.value;
}

describe('trace replay in the dashboard', () => {
  it('opens a 100,000-token 61 × 256, k = 8 trace in under 3 s', async () => {
    const [cpu0, wall0] = [await threadTime(), Date.now()];
    await pickFiles(page, [bigPath]);
    await page.waitForFunction(() => (window as any).__moescope.modelId()?.startsWith('trace:'), { timeout: 60_000, polling: 20 });
    const [cpu, wall] = [(await threadTime()) - cpu0, Date.now() - wall0];
    console.log(`trace of ${TOKENS} tokens (${(bigBytes.byteLength / 2 ** 20).toFixed(1)} MiB) open: ${(cpu * 1000).toFixed(0)} ms main-thread CPU, ${wall} ms wall`);
    expect(cpu).toBeLessThan(3);
    expect(await hook((m) => m.layout())).toMatchObject({ numLayers: 61, numExperts: 256 });
    const note = await page.$eval('#model-note', (e) => e.textContent ?? '');
    expect(note).toMatch(/Trace from vllm: 100000 tokens in 4 request\(s\)/);
    expect(note).toMatch(/Not recorded: token texts, gate weights, router probabilities/);
  }, 120_000);

  it('scrubs through the trace at ≤ 16 ms CPU per step, and the routing buffers hold the trace\'s counts there', async () => {
    // A drag over the whole trace and back (18 steps of ~11,000 tokens), then a few single-token steps.
    const sweep = Array.from({ length: 10 }, (_, i) => Math.round((i * TOKENS) / 9));
    const positions = [...sweep, ...sweep.slice(0, -1).reverse(), 1, 2, 1];
    await hook((m) => m.settle());
    const cpu: number[] = [], wall: number[] = [];
    for (const p of positions) {
      const before = await threadTime();
      // One scrub step: the seek and the frame that shows it.
      wall.push(await hook(async (m, at: number) => {
        const t0 = performance.now();
        await m.app.stepper!.seek(at);
        await m.waitFrames(1);
        return performance.now() - t0;
      }, p));
      cpu.push((await threadTime() - before) * 1000);
      await hook((m) => m.settle());
    }
    console.log(`scrub steps, main-thread CPU (ms): ${cpu.map((t) => t.toFixed(1)).join(' ')}; wall (ms): ${wall.map((t) => t.toFixed(1)).join(' ')}`);
    // On a machine shared with other jobs single steps spike (garbage collection, another process's cache misses):
    // the median step must fit a 60 Hz frame; the 90th percentile and the worst are logged for docs/benchmarks.md.
    const sorted = [...cpu].sort((a, b) => a - b);
    console.log(`scrub CPU median ${sorted[sorted.length >> 1].toFixed(1)} ms, p90 ${sorted[Math.floor(0.9 * sorted.length)].toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms`);
    expect(sorted[sorted.length >> 1]).toBeLessThanOrEqual(16);
    // The frame callback's own wall time (its budget is tests/e2e/skeleton.test.ts's); logged for docs/benchmarks.md.
    const frames = await hook((m) => m.frameTimes(30));
    console.log(`frame callback while scrubbing (ms, wall): max ${Math.max(...frames).toFixed(2)}`);
    await hook((m) => m.app.stepper!.seek(77_777));
    const state = (await hook((m) => m.engineState()))!;
    expect(state.position).toBe(77_777);
    expect(state.counts).toEqual(Array.from(countsBetween(0, 77_777)));
    // Far past the per-token record: the strip's processed tokens stay readable (not dark text on no colour).
    await page.waitForFunction(() => document.querySelector('#strip .tok.current') !== null, { timeout: 30_000 });
    const current = await page.$eval('#strip .tok.current', (el) => [el.className, getComputedStyle(el).color, el.getAttribute('title')]);
    expect(current[0]).toContain('unrecorded');
    expect(current[1]).not.toBe('rgb(14, 16, 21)');
    expect(current[2]).toMatch(/outside the per-token record/);
    await page.screenshot({ path: join(ARTIFACTS, 'trace-deepseek-100k.png') });
  }, 300_000);

  it('replays one request from its start when it is picked (the samples list holds the whole trace and each request)', async () => {
    expect(await hook((m) => m.app.model!.samples.map((s) => s.text))).toEqual(['trace', 'request 0', 'request 1', 'request 2', 'request 3']);
    await hook((m) => m.app.useText('request 1', 'trace', 2));
    await hook((m) => m.app.stepper!.seek(1_000));
    const state = (await hook((m) => m.engineState()))!;
    expect(state.position).toBe(1_000);
    expect(state.counts).toEqual(Array.from(countsBetween(25_000, 26_000)));
    await hook((m) => m.app.useText('trace', 'trace', 0));
  }, 120_000);

  it('the placement panel compares expert maps over the replayed tokens, as src/trace/placement.ts computes them', async () => {
    await hook((m) => m.app.stepper!.seek(40_000));
    await page.$eval('#placement-gpus', (e) => ((e as HTMLInputElement).value = '8'));
    await page.click('#placement-run');
    await page.waitForSelector('#placement table tr:nth-child(4)', { timeout: 60_000 });
    const rows = await page.$$eval('#placement table tr', (trs) => trs.slice(1).map((tr) => [...tr.children].map((td) => td.textContent)));
    // The same figures computed here from the trace file (the session's checkpoints are 128 tokens: steps of 256).
    const timeline = await TraceTimeline.build(await TraceFile.open(new MemorySource('big', bigBytes)), { interval: 128 });
    const { placements } = await comparePlacements(timeline, 0, 40_000, 58, 256, { gpus: 8, replicas: 8, capacityFactor: 1.25, stepSize: 256 });
    expect(rows.map((r) => r.slice(1, 4))).toEqual(
      placements.map((p) => [p.meanStraggler.toFixed(2), p.worstStraggler.toFixed(2), `${(100 * p.droppedShare).toFixed(1)} %`]),
    );
    expect(placements[2].meanStraggler).toBeLessThan(placements[0].meanStraggler);
  }, 120_000);

  it('says what was not recorded instead of drawing zeros', async () => {
    await hook((m) => m.setParam('mode', 'probability'));
    expect((await hook((m) => m.errors())).join('\n')).toMatch(/router probabilities were not recorded by vllm\. Showing the load/);
    expect(await hook((m) => m.app.state.params.mode)).toBe('load');
    // The metrics that need probabilities (or drop records) are disabled and say why.
    const auxText = await hook(() => {
      const o = [...(document.querySelector('#metrics select') as HTMLSelectElement).options].find((x) => x.value === 'auxLoss')!;
      return `${o.disabled} ${o.text}`;
    });
    expect(auxText).toMatch(/^true .*router probabilities were not recorded by vllm/);
    await hook(async () => document.querySelectorAll('#errors .error button').forEach((b) => (b as HTMLElement).click()));
  });

  it('a truncated trace and a config.json of another model are refused; the trace stays open', async () => {
    const cut = join(dir, 'cut.safetensors');
    writeFileSync(cut, bigBytes.subarray(0, 4_000_000));
    await pickFiles(page, [cut]);
    await page.waitForFunction(() => (window as any).__moescope.errors().length > 0, { timeout: 30_000 });
    expect((await hook((m) => m.errors())).join('\n')).toMatch(/cut\.safetensors: tensor "\w+": data_offsets .* run past the end/);
    expect(await hook((m) => m.modelId())).toBe('trace:deepseek-v3-100k.safetensors');
    await hook(async () => document.querySelectorAll('#errors .error button').forEach((b) => (b as HTMLElement).click()));
    const small = synthTrace(deepseek, { tokens: 50 });
    const smallPath = join(dir, 'small.safetensors');
    writeFileSync(smallPath, encodeTrace(small.meta, small.arrays));
    const cfgDir = mkdtempSync(join(dir, 'cfg-'));
    writeFileSync(join(cfgDir, 'config.json'), readFileSync('public/configs/mixtral-8x7b.json'));
    await pickFiles(page, [smallPath, join(cfgDir, 'config.json')]);
    await page.waitForFunction(() => (window as any).__moescope.errors().length > 0, { timeout: 30_000 });
    expect((await hook((m) => m.errors())).join('\n')).toMatch(/config\.json: field "num_hidden_layers": 32 does not match the trace small\.safetensors \(61\)/);
    expect(await hook((m) => m.modelId())).toBe('trace:deepseek-v3-100k.safetensors');
    expect(log.errors.filter((e) => !/favicon/.test(e))).toEqual([]);
  }, 120_000);

  it('two traces picked together: compare mode replays the second on the same positions', async () => {
    const qwen3 = JSON.parse(readFileSync('tests/fixtures/qwen3_moe/config.json', 'utf8'));
    const a = synthTrace(qwen3, { tokens: 60, sequences: 2, seed: 3 });
    const b = synthTrace(qwen3, { tokens: 60, sequences: 2, seed: 4 });
    const [pa, pb] = [join(dir, 'a.safetensors'), join(dir, 'b.safetensors')];
    writeFileSync(pa, encodeTrace(a.meta, a.arrays));
    writeFileSync(pb, encodeTrace(b.meta, b.arrays));
    await hook(async () => document.querySelectorAll('#errors .error button').forEach((b) => (b as HTMLElement).click()));
    await pickFiles(page, [pa, pb]);
    await page.waitForFunction(() => (window as any).__moescope.modelId() === 'trace:a.safetensors', { timeout: 60_000 });
    expect(await page.$eval('#compare', (e) => [(e as HTMLButtonElement).disabled, e.textContent])).toEqual([false, 'compare with b.safetensors']);
    await hook((m) => m.app.stepper!.seek(20));
    await page.click('#compare');
    await page.waitForFunction(() => !(document.getElementById('compare-canvas') as HTMLCanvasElement).hidden, { timeout: 60_000 });
    expect(await page.$eval('#compare-note', (e) => e.textContent)).toMatch(/^b\.safetensors against a\.safetensors\./);
    expect(await hook((m) => m.errors())).toEqual([]);
  }, 120_000);
});
