// Whole-model benchmark: load time, prefill and decode of a model folder on this GPU, with the floors beside them.
//
//   npx tsx src/cli/bench-model.ts --model DIR [--prompt-tokens 512] [--decode-tokens 64] [--trials 5]
//                                  [--memory 40GB] [--profile module|dispatch] [--record-cost] [--out FILE]
//                                  [--torch FILE] [--markdown FILE]
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
//
// Also measured: the CPU time of recording and submitting one decode step (src/bench/recording.ts; median, min and
// max over RECORDING_STEPS steps after a warm-up, the queue drained before each). --record-cost loads the model a
// second time with the routing record off (DecoderOptions.routingRecord: no ring rows, no probability and gate sums)
// and times generateMany() on both, interleaved, so the record's share of a decode step is measured. --profile
// module times one pass per module of a decode step; --profile dispatch one pass per dispatch, ranked
// (src/engine/dispatch-profiler.ts).
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { releaseNodeGpu, requestNodeGpu } from '../engine/node/device-node';
import { loadModel, type LoadOptions } from '../loading/load-model';
import type { Gpu } from '../engine/gpu';
import type { Session } from '../engine/model/session';
import { nodeFolder } from '../io/node-source';
import { countParameters, type MoeConfig } from '../model/config';
import { median } from '../bench/timing';
import { parseBytes } from './args';
import { roundUpGB } from '../io/memory';
import { recordingMillis } from '../bench/recording';
import { timingsByKernel, type DispatchTiming } from '../engine/dispatch-profiler';

/** Decode steps timed for the recording CPU time (after RECORDING_WARMUP untimed ones). */
const RECORDING_STEPS = 60;
const RECORDING_WARMUP = 10;

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
  /** CPU ms to record and submit one decode step (encoder, encodeStep, finish, submit), the queue drained before each. */
  recordingMs: Stat;
  /** With --record-cost: generateMany() ms per token with the routing record on and off, interleaved trials. */
  recordCost?: { onMs: Stat; offMs: Stat };
  /** With --profile module: GPU µs per decode step by module (one compute pass per module), summed over layers. */
  decodeProfile?: { module: string; micros: number }[];
  /** With --profile dispatch: every dispatch of a decode step, its own timed pass each, in step order. */
  decodeDispatches?: DispatchTiming[];
}

export type ProfileMode = 'module' | 'dispatch';

/**
 * `n` decode tokens timed with timestamp queries after a prefill of `prompt`: one pass per module (layers summed by
 * module kind: attention, moe, mlp, …) or one pass per dispatch.
 */
async function profileDecode(
  model: string, prompt: number[], n: number, mode: ProfileMode, memoryBytes?: number,
): Promise<Pick<ModelBenchResult, 'decodeProfile' | 'decodeDispatches'>> {
  const gpu = await requestNodeGpu('bench-model.profile');
  const session = await loadModel(gpu, await nodeFolder(model), {
    contextLength: prompt.length + n + 1,
    maxTokensPerStep: Math.min(prompt.length, 512),
    memory: memoryBytes === undefined ? undefined : { bytes: memoryBytes, origin: 'set with --memory' },
    profile: mode === 'dispatch' ? 'dispatch' : true,
  });
  try {
    await session.feed(prompt);
    await settle(session);
    session.profiler?.reset();
    session.dispatchProfiler?.reset();
    for (let i = 0; i < n; i++) await session.generate();
    await settle(session);
    if (gpu.recentErrors.length) throw new Error(`the GPU reported an error while profiling: ${gpu.recentErrors[0].message}`);
    if (mode === 'dispatch') return { decodeDispatches: session.dispatchTimings() };
    const byModule = new Map<string, number>();
    for (const t of session.timings()) {
      const module = t.name.replace(/^Layer\d+\./, '');
      byModule.set(module, (byModule.get(module) ?? 0) + t.micros);
    }
    return { decodeProfile: [...byModule].map(([module, micros]) => ({ module, micros })) };
  } finally {
    session.destroy();
    releaseNodeGpu(gpu);
  }
}

/** Loads `model` again with the routing record off and times generateMany() on both sessions, trials interleaved. */
async function recordCost(
  gpu: Gpu, on: Session, model: string, load: LoadOptions, prompt: number[], n: number, trials: number,
): Promise<{ onMs: Stat; offMs: Stat }> {
  const off = await loadModel(gpu, await nodeFolder(model), { ...load, routingRecord: false });
  try {
    const onMs: number[] = [], offMs: number[] = [];
    for (let t = 0; t < trials; t++) {
      const a = await timeDecode(on, prompt, n, true);
      const b = await timeDecode(off, prompt, n, true);
      if (a.ids.join() !== b.ids.join()) throw new Error('the routing record changed the greedy ids');
      onMs.push(a.ms);
      offMs.push(b.ms);
    }
    return { onMs: stat(onMs), offMs: stat(offMs) };
  } finally {
    off.destroy();
  }
}

export async function benchModel(opts: {
  model: string;
  promptTokens: number;
  decodeTokens: number;
  trials: number;
  memoryBytes?: number;
  profile?: ProfileMode;
  recordCost?: boolean;
}): Promise<ModelBenchResult> {
  const gpu = await requestNodeGpu('bench-model');
  const t0 = performance.now();
  const load: LoadOptions = {
    contextLength: opts.promptTokens + opts.decodeTokens + 1,
    maxTokensPerStep: Math.min(opts.promptTokens, 512),
    memory: opts.memoryBytes === undefined ? undefined : { bytes: opts.memoryBytes, origin: 'set with --memory' },
    raiseBudget: (needed) => `run with --memory ${roundUpGB(needed)} or more`,
  };
  const session = await loadModel(gpu, await nodeFolder(opts.model), load);
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
  await session.reset();
  await session.feed(prompt);
  const recording = await recordingMillis(gpu, session.decoder, prompt.length, {
    steps: RECORDING_STEPS, warmUp: RECORDING_WARMUP, span: opts.decodeTokens,
  });
  const cost = opts.recordCost ? await recordCost(gpu, session, opts.model, load, prompt, opts.decodeTokens, opts.trials) : undefined;
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
    recordingMs: stat(recording),
    ...(cost ? { recordCost: cost } : {}),
    floors: {
      // Mean bytes per parameter as loaded (quantised formats mix block sizes; exact when one format holds all).
      decodeWeightBytes: decodeWeightBytes(c, session.memory().find((m) => m.module === 'weights')!.bytes / session.parameters.total),
      prefillFlops: forwardFlops(c, opts.promptTokens),
    },
  };
  session.destroy();
  releaseNodeGpu(gpu);
  if (opts.profile) Object.assign(result, await profileDecode(opts.model, prompt, Math.min(16, opts.decodeTokens), opts.profile, opts.memoryBytes));
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
  lines.push(
    `Recording and submitting one decode step: ${fmt(r.recordingMs, 3)} ms of CPU (median (min–max) of ${r.recordingMs.n} steps, ` +
      'the queue drained before each).',
  );
  if (r.recordCost) {
    const { onMs, offMs } = r.recordCost;
    lines.push(
      `Routing record (statistics and token ring): generateMany() ${fmt(onMs, 3)} ms/token with it, ${fmt(offMs, 3)} ms ` +
        `without (${onMs.n} interleaved trials): ${(((onMs.median - offMs.median) / offMs.median) * 100).toFixed(1)} % of a decode step.`,
    );
  }
  if (r.decodeDispatches) lines.push('', ...dispatchTable(r.decodeDispatches));
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

/** The slowest dispatches of a decode step, ranked, and the step's time summed by kernel. */
export function dispatchTable(rows: readonly DispatchTiming[], top = 40): string[] {
  const total = rows.reduce((a, r) => a + r.micros, 0);
  const ranked = [...rows].sort((a, b) => b.micros - a.micros).slice(0, top);
  const mb = (b: number | null) => (b === null ? '–' : (b / 1e6).toFixed(3));
  const gbs = (r: DispatchTiming) => (r.weightBytes === null || r.micros <= 0 ? '–' : (r.weightBytes / r.micros / 1e3).toFixed(0));
  return [
    `Decode step per dispatch (each its own timed pass; ${rows.length} dispatches, ${total.toFixed(0)} µs summed). ` +
      `The ${ranked.length} slowest:`,
    '',
    '| # | dispatch | pipeline | workgroups | weights read (MB) | µs | weight GB/s |',
    '|---|---|---|---|---|---|---|',
    ...ranked.map((r) => `| ${r.index} | ${r.label} | ${r.pipeline} | ${r.workgroups.join('×')} | ${mb(r.weightBytes)} | ${r.micros.toFixed(1)} | ${gbs(r)} |`),
    '',
    'By kernel (layers summed):',
    '',
    '| kernel | dispatches | µs | share |',
    '|---|---|---|---|',
    ...timingsByKernel(rows).map((k) => `| ${k.kernel} | ${k.dispatches} | ${k.micros.toFixed(0)} | ${((k.micros / total) * 100).toFixed(1)} % |`),
    '',
  ];
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
      profile: { type: 'string' },
      'record-cost': { type: 'boolean', default: false },
    },
  });
  if (values.profile !== undefined && values.profile !== 'module' && values.profile !== 'dispatch') {
    throw new Error(`--profile ${values.profile}: expected module or dispatch`);
  }
  if (!values.model) {
    throw new Error('usage: bench-model --model DIR [--prompt-tokens N] [--decode-tokens N] [--trials N] [--memory 40GB] ' +
      '[--profile module|dispatch] [--record-cost] [--out FILE] [--torch FILE] [--markdown FILE]');
  }
  const result = await benchModel({
    model: values.model,
    promptTokens: Number(values['prompt-tokens']),
    decodeTokens: Number(values['decode-tokens']),
    trials: Math.max(5, Number(values.trials)),
    memoryBytes: values.memory ? parseBytes(values.memory, '--memory') : undefined,
    profile: values.profile,
    recordCost: values['record-cost'],
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
