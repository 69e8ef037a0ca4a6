// Whole-model benchmark: load time, prefill and decode of a model folder on this GPU, with the floors beside them.
//
//   npx tsx src/cli/bench-model.ts --model DIR [--prompt-tokens 512] [--decode-tokens 64] [--trials 5]
//                                  [--memory 40GB] [--profile] [--out FILE] [--torch FILE] [--markdown FILE]
//
// Token ids are synthetic and the same in tools/bench_model_torch.py: id_i = (7919·i + 13) mod min(vocab, 32768),
// so both sides run identical inputs without a tokenizer. Trials are interleaved (prefill, decode, prefill, …) and
// each figure is the median with min and max; a row whose spread (max − min) / median exceeds 10 % is measured
// again once, and the spread is printed either way. Warm-up is checked, not assumed: the first trials run until two
// successive medians agree within 5 %.
//
// Decode is timed two ways: `generate()` (reads each sampled id back before the next step: what a caller who needs
// every token pays) and `generateMany()` (ids stay on the GPU, read once: the engine's own speed).
// With --torch (written by tools/bench_model_torch.py on the same machine) it prints ratios and checks that the
// greedy ids agree.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { releaseNodeGpu, requestNodeGpu } from '../engine/node/device-node';
import { loadModel } from '../loading/load-model';
import type { Session } from '../engine/model/session';
import { nodeFolder } from '../io/node-source';
import { countParameters, type MoeConfig } from '../model/config';
import { median } from '../bench/timing';
import { parseBytes } from './args';
import { roundUpGB } from '../io/memory';

export const syntheticIds = (n: number, vocab: number): number[] =>
  Array.from({ length: n }, (_, i) => (7919 * i + 13) % Math.min(vocab, 32768));

export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}
const stat = (xs: number[]): Stat => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length });
const spread = (s: Stat) => (s.max - s.min) / s.median;

/** Bytes one decode step must read at least: every active weight once (lm head whole, one embedding row). */
export function decodeWeightBytes(c: MoeConfig, weightBytesPerElement: number): number {
  const p = countParameters(c);
  const read = c.tieWordEmbeddings ? p.activePerToken + c.hiddenSize : p.activePerToken - p.embedding + c.hiddenSize;
  return read * weightBytesPerElement;
}

/** FLOPs of a forward over T tokens: 2 per active weight per token (attention scores excluded). */
export function forwardFlops(c: MoeConfig, T: number): number {
  const p = countParameters(c);
  return 2 * (p.activePerToken - p.embedding + (c.tieWordEmbeddings ? p.embedding : 0)) * T;
}

async function settle(session: Session): Promise<void> {
  await session.gpu.device.queue.onSubmittedWorkDone();
}

async function timePrefill(session: Session, ids: number[]): Promise<number> {
  await session.reset();
  await settle(session);
  const t0 = performance.now();
  await session.feed(ids);
  await settle(session);
  return performance.now() - t0;
}

/** ms per decoded token after a prefill of `prompt`; also the ids generated. */
async function timeDecode(session: Session, prompt: number[], n: number, ahead: boolean): Promise<{ ms: number; ids: number[] }> {
  await session.reset();
  await session.feed(prompt);
  await settle(session);
  const t0 = performance.now();
  let ids: number[];
  if (ahead) ids = await session.generateMany(n);
  else {
    ids = [];
    for (let i = 0; i < n; i++) ids.push(await session.generate());
  }
  await settle(session);
  return { ms: (performance.now() - t0) / n, ids };
}

/** Repeats `once` until two successive medians of 3 agree within 5 % (at most 12 runs); returns how many it took. */
async function warmUp(once: () => Promise<number>): Promise<number> {
  const xs: number[] = [];
  let previous = Infinity;
  for (let i = 0; i < 12; i++) {
    xs.push(await once());
    if (xs.length >= 3) {
      const m = median(xs.slice(-3));
      if (Math.abs(m - previous) / m < 0.05) return xs.length;
      previous = m;
    }
  }
  return xs.length;
}

export interface ModelBenchResult {
  model: string;
  family: string;
  adapter: string;
  dtype: string;
  parameters: { total: number; activePerToken: number };
  loadMs: number;
  gpuBytes: number;
  promptTokens: number;
  decodeTokens: number;
  warmupRuns: number;
  prefillMs: Stat;
  decodeSyncMs: Stat;
  decodeAheadMs: Stat;
  greedyIds: number[];
  floors: { decodeWeightBytes: number; prefillFlops: number };
  /** With --profile: GPU µs per decode step by module (one compute pass per module), summed over layers. */
  decodeProfile?: { module: string; micros: number }[];
}

/** One pass per module timed over `n` decode tokens; layers summed by module kind (attention, moe, mlp, …). */
async function profileDecode(model: string, prompt: number[], n: number, memoryBytes?: number): Promise<{ module: string; micros: number }[]> {
  const gpu = await requestNodeGpu('bench-model.profile');
  const session = await loadModel(gpu, await nodeFolder(model), {
    contextLength: prompt.length + n + 1,
    maxTokensPerStep: Math.min(prompt.length, 512),
    memory: memoryBytes === undefined ? undefined : { bytes: memoryBytes, origin: 'set with --memory' },
    profile: true,
  });
  await session.feed(prompt);
  await settle(session);
  session.profiler?.reset();
  for (let i = 0; i < n; i++) await session.generate();
  await settle(session);
  await session.profiler?.collect();
  const byModule = new Map<string, number>();
  for (const t of session.timings()) {
    const module = t.name.replace(/^Layer\d+\./, '');
    byModule.set(module, (byModule.get(module) ?? 0) + t.micros);
  }
  session.destroy();
  releaseNodeGpu(gpu);
  return [...byModule].map(([module, micros]) => ({ module, micros }));
}

export async function benchModel(opts: {
  model: string;
  promptTokens: number;
  decodeTokens: number;
  trials: number;
  memoryBytes?: number;
  profile?: boolean;
}): Promise<ModelBenchResult> {
  const gpu = await requestNodeGpu('bench-model');
  const t0 = performance.now();
  const session = await loadModel(gpu, await nodeFolder(opts.model), {
    contextLength: opts.promptTokens + opts.decodeTokens + 1,
    maxTokensPerStep: Math.min(opts.promptTokens, 512),
    memory: opts.memoryBytes === undefined ? undefined : { bytes: opts.memoryBytes, origin: 'set with --memory' },
    raiseBudget: (needed) => `run with --memory ${roundUpGB(needed)} or more`,
  });
  await settle(session);
  const loadMs = performance.now() - t0;
  const c = session.config;
  const prompt = syntheticIds(opts.promptTokens, c.vocabSize);
  const warmupRuns = await warmUp(() => timePrefill(session, prompt));

  const measure = async () => {
    const prefill: number[] = [], sync: number[] = [], ahead: number[] = [];
    let greedy: number[] = [];
    for (let t = 0; t < opts.trials; t++) {
      prefill.push(await timePrefill(session, prompt));
      const s = await timeDecode(session, prompt, opts.decodeTokens, false);
      sync.push(s.ms);
      const a = await timeDecode(session, prompt, opts.decodeTokens, true);
      ahead.push(a.ms);
      if (a.ids.join() !== s.ids.join()) throw new Error('generateMany and generate disagree on the greedy ids');
      greedy = a.ids;
    }
    return { prefill: stat(prefill), sync: stat(sync), ahead: stat(ahead), greedy };
  };
  let m = await measure();
  if ([m.prefill, m.sync, m.ahead].some((s) => spread(s) > 0.1)) m = await measure();
  // A GPU error (an invalid dispatch, say) drops the whole command buffer and leaves nothing to time.
  if (gpu.recentErrors.length) throw new Error(`the GPU reported an error, timings void: ${gpu.recentErrors[0].message}`);
  const result: ModelBenchResult = {
    model: opts.model,
    family: c.family,
    adapter: gpu.adapter.description,
    dtype: c.weightDtype,
    parameters: { total: session.parameters.total, activePerToken: session.parameters.activePerToken },
    loadMs,
    gpuBytes: session.memory().reduce((n, x) => n + x.bytes, 0),
    promptTokens: opts.promptTokens,
    decodeTokens: opts.decodeTokens,
    warmupRuns,
    prefillMs: m.prefill,
    decodeSyncMs: m.sync,
    decodeAheadMs: m.ahead,
    greedyIds: m.greedy,
    floors: {
      // Mean bytes per parameter as loaded (quantised formats mix block sizes; exact when one format holds all).
      decodeWeightBytes: decodeWeightBytes(c, session.memory().find((m) => m.module === 'weights')!.bytes / session.parameters.total),
      prefillFlops: forwardFlops(c, opts.promptTokens),
    },
  };
  session.destroy();
  releaseNodeGpu(gpu);
  if (opts.profile) result.decodeProfile = await profileDecode(opts.model, prompt, Math.min(16, opts.decodeTokens), opts.memoryBytes);
  return result;
}

interface TorchSide {
  copyBandwidth: number; // bytes/s, device-to-device copy
  f32Flops: number; // FLOP/s, cuBLAS f32 (TF32 off)
  runs: { dtype: string; prefillMs: Stat; decodeMs: Stat; greedyIds: number[] }[];
}

const fmt = (s: Stat, digits = 2) => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;

export function markdown(r: ModelBenchResult, torch?: TorchSide): string {
  const lines = [
    `### ${r.model} (${r.family}, ${r.dtype}; ${(r.parameters.total / 1e6).toFixed(1)}M parameters, ` +
      `${(r.parameters.activePerToken / 1e6).toFixed(1)}M active)`,
    '',
    `${r.adapter}; load ${(r.loadMs / 1000).toFixed(2)} s, GPU memory ${(r.gpuBytes / 2 ** 30).toFixed(2)} GiB; ` +
      `warm-up ${r.warmupRuns} runs; medians of ${r.prefillMs.n} interleaved trials (min–max).`,
    '',
    '| case | ours | transformers | floor | ours ÷ floor | transformers ÷ ours |',
    '|---|---|---|---|---|---|',
  ];
  const floorDecode = torch ? (r.floors.decodeWeightBytes / torch.copyBandwidth) * 1e3 : null;
  const floorPrefill = torch ? (r.floors.prefillFlops / torch.f32Flops) * 1e3 : null;
  const row = (name: string, ours: Stat, theirs: Stat | undefined, floor: number | null) =>
    `| ${name} | ${fmt(ours, 3)} ms | ${theirs ? fmt(theirs, 3) + ' ms' : '–'} | ${floor !== null ? floor.toFixed(3) + ' ms' : '–'} | ` +
    `${floor !== null ? (ours.median / floor).toFixed(1) + '×' : '–'} | ${theirs ? (theirs.median / ours.median).toFixed(1) + '×' : '–'} |`;
  const t = (dtype: string) => torch?.runs.find((x) => x.dtype === dtype);
  for (const dtype of torch ? torch.runs.map((x) => x.dtype) : ['']) {
    const th = t(dtype);
    const label = dtype ? ` vs transformers ${dtype}` : '';
    lines.push(row(`prefill ${r.promptTokens} tokens${label}`, r.prefillMs, th?.prefillMs, floorPrefill));
    lines.push(row(`decode, per token, generate()${label}`, r.decodeSyncMs, th?.decodeMs, floorDecode));
    lines.push(row(`decode, per token, generateMany()${label}`, r.decodeAheadMs, th?.decodeMs, floorDecode));
  }
  lines.push('');
  lines.push(
    `Floors: decode reads ${(r.floors.decodeWeightBytes / 1e6).toFixed(1)} MB of weights per token` +
      (torch ? ` at the measured copy bandwidth ${(torch.copyBandwidth / 1e12).toFixed(2)} TB/s` : '') +
      `; prefill is ${(r.floors.prefillFlops / 1e12).toFixed(3)} TFLOP` +
      (torch ? ` at cuBLAS f32 ${(torch.f32Flops / 1e12).toFixed(1)} TFLOP/s.` : '.'),
  );
  if (r.decodeProfile) {
    const total = r.decodeProfile.reduce((a, x) => a + x.micros, 0);
    lines.push(`Decode step by module (one pass each, so slower than the fused step): ` +
      r.decodeProfile.map((x) => `${x.module} ${x.micros.toFixed(0)} µs`).join(', ') + `; total ${total.toFixed(0)} µs.`);
  }
  for (const run of torch?.runs ?? []) {
    const n = Math.min(run.greedyIds.length, r.greedyIds.length);
    let same = 0;
    while (same < n && run.greedyIds[same] === r.greedyIds[same]) same++;
    lines.push(`Greedy ids vs transformers ${run.dtype}: first ${same} of ${n} identical.`);
  }
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      'prompt-tokens': { type: 'string', default: '512' },
      'decode-tokens': { type: 'string', default: '64' },
      trials: { type: 'string', default: '5' },
      memory: { type: 'string' },
      out: { type: 'string' },
      torch: { type: 'string' },
      markdown: { type: 'string' },
      profile: { type: 'boolean', default: false },
    },
  });
  if (!values.model) throw new Error('usage: bench-model --model DIR [--prompt-tokens N] [--decode-tokens N] [--trials N] [--memory 40GB] [--out FILE] [--torch FILE] [--markdown FILE]');
  const result = await benchModel({
    model: values.model,
    promptTokens: Number(values['prompt-tokens']),
    decodeTokens: Number(values['decode-tokens']),
    trials: Math.max(5, Number(values.trials)),
    memoryBytes: values.memory ? parseBytes(values.memory, '--memory') : undefined,
    profile: values.profile,
  });
  if (values.out) writeFileSync(values.out, JSON.stringify(result, null, 1));
  const torch = values.torch ? (JSON.parse(readFileSync(values.torch, 'utf8')) as TorchSide) : undefined;
  const md = markdown(result, torch);
  if (values.markdown) writeFileSync(values.markdown, md);
  process.stdout.write(md);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    console.error(`bench-model: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  });
}
