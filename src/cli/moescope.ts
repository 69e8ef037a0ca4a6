// moescope CLI.
//   moescope run --model DIR --prompt "…" [--max-tokens N] [--temperature T] [--top-p P] [--seed S] [--top-k K]
//                [--context N] [--on-full stop|slide] [--memory 40GB] [--prompt-ids IDS] [--logits-top N] [--json]
//   moescope analyze pathways|atlas|corpus|merge|align|attention --model DIR … [--json] [--svg DIR [--png]]  (src/cli/analyze.ts)
// Prints the generated text and a per-layer routing summary (or one JSON object with --json); load progress on stderr.
import { parseArgs } from 'node:util';
import { requestNodeGpu, releaseNodeGpu } from '../engine/node/device-node';
import { loadModel } from '../loading/load-model';
import type { Session } from '../engine/model/session';
import { nodeFolder } from '../io/node-source';
import type { RoutingSnapshot } from '../engine/session-api';
import { formatBytes, roundUpGB } from '../io/memory';
import { bitsPerWeight, type FormatGroupRow } from '../model/weight-formats';
import { formatBytes as formatBinaryBytes } from '../viz/panels/model-info';
import { parseBytes } from './args';
import { analyze, ANALYZE_USAGE } from './analyze';
import { IMPORT_USAGE, REPORT_USAGE, TRACE_USAGE, importCommand, reportCommand, traceCommand } from './trace-commands';

const USAGE = `usage: moescope run --model DIR (--prompt TEXT | --prompt-ids IDS) [--max-tokens N] [--temperature T] [--top-p P] [--seed S]
                    [--top-k K] [--context N] [--on-full stop|slide] [--ignore-eos] [--memory SIZE] [--logits-top N]
                    [--quiet] [--json]

  --model DIR        a Hugging Face model folder (config.json, *.safetensors, tokenizer.json) or a folder with
                     one GGUF file (Q8_0, Q4_K, Q5_K, Q6_K, MXFP4, F16, BF16, F32 tensors)
  --prompt TEXT      the prompt (special tokens as the tokenizer adds them); or --prompt-ids
  --max-tokens N     tokens to generate (default 16)
  --temperature T    0 = greedy (default); otherwise seeded sampling with --top-p (default 1) and --seed (default 0)
  --top-k K          route each token to K experts instead of the model's own k (what-if)
  --context N        KV-cache length in tokens (default 1024, or the model's maximum if smaller)
  --on-full MODE     when the context fills before --max-tokens: stop (default; says so on stderr and in --json's
                     "stopped") or slide (keep the last half of the context, run it again, go on generating)
  --ignore-eos       keep generating past the end-of-sequence token (long runs)
  --memory SIZE      GPU memory the model may take, e.g. 40GB or 512MiB (default: what the adapter reports, else 4 GiB)
  --prompt-ids IDS   comma-separated token ids to feed instead of encoding --prompt (e.g. to match another engine)
  --logits-top N     with --json: the N largest logits (ids, values) each generated token was drawn from
  --quiet            no load progress on stderr
  --json             one JSON object: text, token ids and pieces, per-layer routing summary, timings, GPU memory`;

export interface RunSummary {
  model: string;
  family: string;
  prompt: string;
  promptIds: number[];
  generatedIds: number[];
  /** Why generation ended before --max-tokens: the end-of-sequence token, or a full context (with --on-full stop). */
  stopped: 'eos' | 'context full' | null;
  /** Times the window slid (--on-full slide); the routing summary covers the tokens in the last window. */
  slides: number;
  /** At the end of the run: GPU buffers alive and made in all, JS heap in use (a long run should match a short one). */
  resources: { liveGpuBuffers: number; gpuBuffersCreated: number; heapMiB: number };
  text: string;
  tokens: { id: number; text: string; generated: boolean }[];
  parameters: { total: number; activePerToken: number };
  /** Seconds: loading (config to weights on the GPU and pipelines built), feeding the prompt to the first generated
   * token, and all generation; peak host memory (resident set) of the process in bytes. */
  timings: { loadSeconds: number; firstTokenSeconds: number; generateSeconds: number; peakHostBytes: number };
  /** GPU bytes the engine allocated, by module. */
  gpuMemory: { module: string; bytes: number }[];
  /** With --logits-top N: per generated token, the N largest logits of the distribution it was drawn from. */
  stepLogits?: { ids: number[]; values: number[] }[];
  /** Tokens (positions in the last window) a layer's router found NaN or ±Inf for; they are not in the counts. */
  nonFinite: { position: number; layer: number }[];
  /** Format, parameters and bytes per tensor group, as loaded. */
  weights: FormatGroupRow[];
  layers: {
    layer: number;
    moe: boolean;
    counts: number[];
    topExperts: { expert: number; share: number }[];
    cv: number;
    entropy: number;
    balancedness: number;
    deadExperts: number;
    auxLoss: number;
  }[];
}

export interface Generation {
  promptIds: number[];
  generatedIds: number[];
  stopped: RunSummary['stopped'];
  slides: number;
}

export function summarize(
  session: Session, model: string, prompt: string, run: Generation, snap: RoutingSnapshot, timings: RunSummary['timings'],
): RunSummary {
  const c = session.config;
  const { promptIds, generatedIds } = run;
  const E = c.numExperts;
  return {
    model,
    family: c.family,
    prompt,
    promptIds,
    generatedIds,
    stopped: run.stopped,
    slides: run.slides,
    resources: {
      liveGpuBuffers: session.gpu.liveBuffers,
      gpuBuffersCreated: session.gpu.bufferCounts.created,
      heapMiB: Math.round((process.memoryUsage().heapUsed / 2 ** 20) * 10) / 10,
    },
    text: session.tokenizer.decode(generatedIds, { skipSpecialTokens: true }),
    tokens: [...promptIds, ...generatedIds].map((id, i) => ({ id, text: session.tokenizer.piece(id).text, generated: i >= promptIds.length })),
    parameters: { total: session.parameters.total, activePerToken: session.parameters.activePerToken },
    timings,
    gpuMemory: session.memory(),
    nonFinite: snap.nonFinite.map(({ position, layer }) => ({ position, layer })),
    weights: [...session.weightFormats],
    layers: c.moeLayers.map((moe, l) => {
      const counts = Array.from(snap.counts.subarray(l * E, (l + 1) * E));
      const sum = counts.reduce((a, b) => a + b, 0) || 1;
      const m = snap.metrics[l];
      return {
        layer: l,
        moe,
        counts,
        topExperts: counts
          .map((n, expert) => ({ expert, share: n / sum }))
          .sort((a, b) => b.share - a.share || a.expert - b.expert)
          .slice(0, 3),
        cv: m.cv,
        entropy: m.entropy,
        balancedness: m.balancedness,
        deadExperts: m.deadExperts,
        auxLoss: m.auxLoss,
      };
    }),
  };
}

export function formatText(s: RunSummary): string {
  const lines = [
    `${s.model} (${s.family}): ${(s.parameters.total / 1e6).toFixed(2)}M parameters, ${(s.parameters.activePerToken / 1e6).toFixed(2)}M active per token`,
    ...s.weights.map((w) =>
      `  ${w.group.padEnd(15)} ${w.format.toUpperCase().padEnd(6)} ${(w.params / 1e6).toFixed(2).padStart(9)}M params ` +
        `${formatBinaryBytes(w.bytes).padStart(10)}  ${bitsPerWeight(w.format)} bits/weight`),
    '',
    s.prompt + s.text,
    '',
    `loaded in ${s.timings.loadSeconds.toFixed(1)} s; first token ${s.timings.firstTokenSeconds.toFixed(2)} s after the prompt; ` +
      `GPU memory ${formatBytes(s.gpuMemory.reduce((n, m) => n + m.bytes, 0))}`,
    '',
    s.slides > 0
      ? `routing over the last window (the context slid ${s.slides} time${s.slides === 1 ? '' : 's'}; ${s.promptIds.length} prompt + ${s.generatedIds.length} generated tokens in all):`
      : `routing over ${s.tokens.length} tokens (${s.promptIds.length} prompt + ${s.generatedIds.length} generated):`,
    'layer  top experts (share)            load CV  entropy  balance  dead  aux loss',
  ];
  for (const l of s.layers) {
    if (!l.moe) {
      lines.push(`${String(l.layer).padStart(5)}  dense FFN`);
      continue;
    }
    const top = l.topExperts.map((t) => `${t.expert}:${(t.share * 100).toFixed(0)}%`).join(' ').padEnd(30);
    lines.push(
      `${String(l.layer).padStart(5)}  ${top} ${l.cv.toFixed(3).padStart(7)}  ${l.entropy.toFixed(3).padStart(7)}  ` +
        `${l.balancedness.toFixed(3).padStart(7)}  ${String(l.deadExperts).padStart(4)}  ${l.auxLoss.toFixed(3).padStart(8)}`,
    );
  }
  lines.push('', `GPU buffers alive at the end: ${s.resources.liveGpuBuffers} (${s.resources.gpuBuffersCreated} made in all); JS heap ${s.resources.heapMiB} MiB`);
  if (s.nonFinite.length > 0) {
    const first = s.nonFinite[0];
    lines.push(
      '',
      `warning: NaN or Inf reached the router ${s.nonFinite.length} time(s), first at token ${first.position} in layer ${first.layer}; ` +
        'those tokens are not routed there and not counted above',
    );
  }
  return lines.join('\n');
}

async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      prompt: { type: 'string' },
      'max-tokens': { type: 'string', default: '16' },
      temperature: { type: 'string', default: '0' },
      'top-p': { type: 'string', default: '1' },
      seed: { type: 'string', default: '0' },
      'top-k': { type: 'string' },
      context: { type: 'string' },
      'on-full': { type: 'string', default: 'stop' },
      'ignore-eos': { type: 'boolean', default: false },
      memory: { type: 'string' },
      'prompt-ids': { type: 'string' },
      'logits-top': { type: 'string' },
      quiet: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  if (!values.model || (values.prompt === undefined && values['prompt-ids'] === undefined)) {
    console.error(USAGE);
    return 2;
  }
  const number = (name: string, v: string | undefined, integer = true): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < 0) {
      throw new Error(`--${name} must be a ${integer ? 'non-negative integer' : 'non-negative number'}, got "${v}"`);
    }
    return n;
  };
  const maxTokens = number('max-tokens', values['max-tokens']);
  const onFull = values['on-full'];
  if (onFull !== 'stop' && onFull !== 'slide') throw new Error(`--on-full must be stop or slide, got "${onFull}"`);
  const sampling = {
    temperature: number('temperature', values.temperature, false),
    topP: number('top-p', values['top-p'], false),
    seed: number('seed', values.seed),
  };
  const memory = values.memory === undefined ? undefined : { bytes: parseBytes(values.memory, '--memory'), origin: 'set with --memory' };
  const givenIds = values['prompt-ids']?.split(',').map((v) => number('prompt-ids', v.trim()));
  const started = performance.now();
  const gpu = await requestNodeGpu('moescope-cli');
  try {
    const folder = await nodeFolder(values.model);
    const contextLength = values.context ? number('context', values.context) : undefined;
    const session = await loadModel(gpu, folder, {
      contextLength,
      name: values.model,
      memory,
      raiseBudget: (needed) => `run with --memory ${roundUpGB(needed)} or more`,
      onProgress: values.quiet ? undefined : progressLine(),
    });
    await gpu.device.queue.onSubmittedWorkDone();
    const loaded = performance.now();
    const prompt = values.prompt ?? session.tokenizer.decode(givenIds!);
    const promptIds = givenIds ?? session.tokenizer.encode(prompt);
    if (promptIds.length === 0) throw new Error('the prompt encodes to no tokens');
    const outOfRange = promptIds.find((id) => id >= session.config.vocabSize);
    if (outOfRange !== undefined) throw new Error(`--prompt-ids: ${outOfRange} is past the model's vocab_size ${session.config.vocabSize}`);
    if (values['top-k'] !== undefined) session.setPolicy({ ...session.getPolicy(), topK: number('top-k', values['top-k']) });
    if (promptIds.length > session.contextLength) {
      throw new Error(`the prompt has ${promptIds.length} tokens; the context holds ${session.contextLength}`);
    }
    const fed = performance.now();
    await session.feed(promptIds);
    let firstToken = NaN;
    const run: Generation = { promptIds, generatedIds: [], stopped: null, slides: 0 };
    const eos = session.tokenizer.eosId;
    const logitsTop = values['logits-top'] === undefined ? 0 : number('logits-top', values['logits-top']);
    const stepLogits: { ids: number[]; values: number[] }[] = [];
    while (run.generatedIds.length < maxTokens) {
      if (session.position === session.contextLength) {
        if (onFull === 'stop') {
          run.stopped = 'context full';
          console.error(
            `moescope: the context of ${session.contextLength} tokens is full after ${run.generatedIds.length} generated tokens; ` +
              'stopped (--on-full slide keeps going over the last half, --context N makes it longer)',
          );
          break;
        }
        await session.slide(Math.floor(session.contextLength / 2) || 1);
        run.slides++;
      }
      if (logitsTop > 0) stepLogits.push(topLogits(await session.lastLogits(), logitsTop));
      const id = await session.generate(sampling);
      if (run.generatedIds.length === 0) firstToken = performance.now();
      run.generatedIds.push(id);
      if (id === eos && !values['ignore-eos']) {
        run.stopped = 'eos';
        break;
      }
    }
    const done = performance.now();
    const timings = {
      loadSeconds: (loaded - started) / 1000,
      firstTokenSeconds: (firstToken - fed) / 1000,
      generateSeconds: (done - fed) / 1000,
      peakHostBytes: process.resourceUsage().maxRSS * 1024,
    };
    const summary = summarize(session, values.model, prompt, run, await session.snapshot(), timings);
    if (logitsTop > 0) summary.stepLogits = stepLogits;
    console.log(values.json ? JSON.stringify(summary, null, 2) : formatText(summary));
    session.destroy();
    return 0;
  } finally {
    releaseNodeGpu(gpu);
  }
}

/** The n largest values of a logits row, largest first (ties: lower id first). */
function topLogits(row: Float32Array, n: number): { ids: number[]; values: number[] } {
  const ids = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b).slice(0, n);
  return { ids, values: ids.map((i) => row[i]) };
}

/** Load progress on stderr: one rewritten line on a terminal, else a line per 10 %. */
function progressLine(): (done: number, total: number) => void {
  let shown = -1;
  return (done, total) => {
    const tenth = total > 0 ? Math.floor((done / total) * 10) : 10;
    if (process.stderr.isTTY) {
      process.stderr.write(`\rloading weights ${formatBytes(done)} / ${formatBytes(total)}${done >= total ? '\n' : ''}`);
    } else if (tenth > shown) {
      shown = tenth;
      process.stderr.write(`loading weights ${formatBytes(done)} / ${formatBytes(total)}\n`);
    }
  };
}

async function main(): Promise<number> {
  const [command, ...rest] = process.argv.slice(2);
  try {
    if (command === 'run') return await run(rest);
    if (command === 'analyze') return await analyze(rest);
    if (command === 'trace') return await traceCommand(rest);
    if (command === 'import') return await importCommand(rest);
    if (command === 'report') return await reportCommand(rest);
    const all = [USAGE, ANALYZE_USAGE, TRACE_USAGE, IMPORT_USAGE, REPORT_USAGE].join('\n\n');
    console.error(command === undefined || command === '--help' || command === '-h' ? all : `unknown command "${command}"\n${all}`);
    return command === undefined || command === '--help' || command === '-h' ? 0 : 2;
  } catch (e) {
    console.error(`moescope: ${(e as Error).message}`);
    return 1;
  }
}

process.exitCode = await main();
