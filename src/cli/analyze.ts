// moescope analyze: the analyses of src/analysis on a model, as JSON (--json) or text, with SVG/PNG figures (--svg).
//   pathways  co-activation, layer-to-layer transitions, cross-layer predictability of a text's routing
//   atlas     the causal expert atlas: every expert ablated in turn, ranked by Δ log-likelihood and KL
//   corpus    load by domain and domain–expert mutual information over a samples file (vs a second checkpoint)
//   merge     a layer's experts replaced by their average or one expert's copy: what the model predicts then
//   align     experts of two checkpoints matched by weight similarity
//   attention the last token's attention over the text per layer and head, from the attention kernels' probe
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { requestNodeGpu, releaseNodeGpu } from '../engine/node/device-node';
import type { Gpu } from '../engine/gpu';
import type { Session } from '../engine/model/session';
import { loadModel } from '../loading/load-model';
import { planTensorsF32 } from '../loading/plan-f32';
import { nodeFolder } from '../io/node-source';
import { openModel } from '../io/model';
import { parseJson } from '../io/source';
import { ablationSweep } from '../engine/analysis/ablation-sweep';
import { ExpertMerger, type MergeMode } from '../engine/analysis/expert-merge';
import { pathways, type RoutingRecord } from '../analysis/pathways';
import { AtlasBuilder, logSoftmaxRows, tokenLogProbs } from '../analysis/atlas';
import { CorpusAccumulator, corpusFromJson, specialisation, type CorpusText } from '../analysis/corpus';
import { alignLayer, type LayerAlignment } from '../analysis/alignment';
import { barsSvg, heatmapSvg } from '../analysis/figures';
import { writeFigure } from './figure-files';
import { K_MAX, NO_EXPERT } from '../model/limits';

export const ANALYZE_USAGE = `usage: moescope analyze COMMAND --model DIR [options] [--json] [--svg DIR [--png]]

  pathways  (--text T | --file F)               expert co-activation per layer, transitions l → l+1, predictability
  atlas     (--text T | --file F) [--top N]      ablate every expert in turn: Δ log-likelihood, KL, most hurt tokens
  atlas     --from ATLAS.json --svg DIR          the atlas figures again from a saved atlas --json output
  corpus    [--samples FILE] [--compare DIR2]    load by domain and MI(domain; expert) per layer (default samples:
                                                 DIR/samples.json); with --compare, the second checkpoint's experts
                                                 matched to the first's by weight similarity
  merge     --layer L (--average | --copy E) (--text T | --file F) [--max-tokens N]
                                                 what the model predicts with that layer's experts merged
  align     --other DIR2                         match the experts of two checkpoints, layer by layer
  attention (--text T | --file F)                the last token's attention weights per layer and head (a decode
                                                 step after the rest of the text), with the sink's share

  --context N    KV-cache length (default 1024, or the model's maximum if smaller)
  --text-tokens N  use only the first N tokens of each text (pathways, atlas, corpus, merge)
  --svg DIR      write the command's figures there as SVG; --png also renders PNGs with headless Chromium`;

const OPTIONS = {
  model: { type: 'string' },
  text: { type: 'string' },
  file: { type: 'string' },
  samples: { type: 'string' },
  compare: { type: 'string' },
  other: { type: 'string' },
  layer: { type: 'string' },
  copy: { type: 'string' },
  average: { type: 'boolean', default: false },
  top: { type: 'string' },
  from: { type: 'string' },
  'max-tokens': { type: 'string', default: '12' },
  'text-tokens': { type: 'string' },
  context: { type: 'string' },
  json: { type: 'boolean', default: false },
  svg: { type: 'string' },
  png: { type: 'boolean', default: false },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values'];

function count(name: string, v: string | undefined): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${v}"`);
  return n;
}

function need(values: Values, name: keyof Values): string {
  const v = values[name];
  if (typeof v !== 'string') throw new Error(`this command needs --${name}\n${ANALYZE_USAGE}`);
  return v;
}

async function open(gpu: Gpu, dir: string, values: Values): Promise<Session> {
  return loadModel(gpu, await nodeFolder(dir), { contextLength: values.context ? count('context', values.context) : undefined, name: dir });
}

async function inputText(values: Values): Promise<string> {
  if (values.text !== undefined) return values.text;
  if (values.file !== undefined) return readFile(values.file, 'utf8');
  throw new Error(`this command needs --text or --file\n${ANALYZE_USAGE}`);
}

/** Tokens of each text to use (--text-tokens), or Infinity. */
const textLimit = (values: Values) => (values['text-tokens'] !== undefined ? count('text-tokens', values['text-tokens']) : Infinity);

/** The text's token ids (the first --text-tokens of them when given); at least `min`, at most the context. */
function encode(session: Session, text: string, min: number, values: Values): number[] {
  const ids = session.tokenizer.encode(text).slice(0, textLimit(values));
  if (ids.length < min) throw new Error(`the text encodes to ${ids.length} tokens; this command needs at least ${min}`);
  if (ids.length > session.contextLength) throw new Error(`the text has ${ids.length} tokens; the context holds ${session.contextLength}`);
  return ids;
}

/** Opens --model, encodes the command's text (at least `min` tokens), runs `fn` on them, and closes the session. */
async function onText<T>(gpu: Gpu, values: Values, min: number, fn: (session: Session, ids: number[], dir: string) => Promise<T>): Promise<T> {
  const dir = need(values, 'model');
  const session = await open(gpu, dir, values);
  try {
    return await fn(session, encode(session, await inputText(values), min, values), dir);
  } finally {
    session.destroy();
  }
}

async function routingOf(session: Session, ids: number[]): Promise<RoutingRecord> {
  await session.reset();
  await session.feed(ids);
  const snap = await session.snapshot();
  return { tokens: Math.min(snap.position, session.routing.ringCapacity), numLayers: snap.numLayers, numExperts: snap.numExperts, chosen: snap.chosen };
}

/** A model folder's last path segment, for figure titles. */
const name = (dir: string) => dir.replace(/\/+$/, '').split('/').pop()!;
const range = (n: number, f: (i: number) => string = String) => Array.from({ length: n }, (_, i) => f(i));
const square = (m: ArrayLike<number>, E: number) => range(E).map((_, i) => Array.from(m).slice(i * E, (i + 1) * E));

async function figures(values: Values, list: [string, string][]): Promise<string[]> {
  if (!values.svg) return [];
  const written: string[] = [];
  for (const [name, svg] of list) written.push(...(await writeFigure(values.svg, name, svg, values.png ?? false)));
  return written;
}

async function analyzePathways(gpu: Gpu, values: Values) {
  return onText(gpu, values, 1, async (session, ids, dir) => {
    const p = pathways(await routingOf(session, ids));
    const E = p.numExperts;
    const experts = range(E);
    const written = await figures(values, [
      ['coactivation', heatmapSvg({
        title: `Expert co-activation per layer (${p.tokens} tokens)`, xLabel: 'expert', yLabel: 'expert', xTicks: experts, yTicks: experts,
        panels: p.coactivation.map((m, l) => ({ title: `layer ${l}`, values: square(m, E) })), valueLabel: 'tokens', scale: 'sequential',
      })],
      ['transitions', heatmapSvg({
        title: 'Expert transitions, layer l → l+1', xLabel: 'expert at l+1', yLabel: 'expert at l', xTicks: experts, yTicks: experts,
        panels: p.transitions.map((m, l) => ({ title: `${l} → ${l + 1}`, values: square(m, E) })), valueLabel: 'pairs', scale: 'sequential',
      })],
    ]);
    return {
      model: dir,
      tokens: p.tokens,
      coactivation: p.coactivation.map((m) => square(m, E)),
      transitions: p.transitions.map((m) => square(m, E)),
      predictability: p.predictability,
      figures: written,
    };
  });
}

async function analyzeAtlas(gpu: Gpu, values: Values) {
  return onText(gpu, values, 2, async (session, ids, dir) => {
    const c = session.config;
    // How often each expert fired on the text, beside what ablating it costs.
    const usage = (await routingOf(session, ids)).chosen;
    const fired = new Map<string, number>();
    usage.forEach((e, i) => {
      const key = `${Math.floor(i / K_MAX) % c.numLayers}.${e}`;
      if (e !== NO_EXPERT) fired.set(key, (fired.get(key) ?? 0) + 1);
    });
    await session.reset();
    const builder = new AtlasBuilder(ids, c.vocabSize);
    const started = performance.now();
    const cpuStart = process.cpuUsage();
    let runs = 0;
    await ablationSweep(session, ids, {
      onRun: (cell, logits) => {
        runs++;
        if (cell) builder.add(cell.layer, cell.expert, logits);
        else builder.setBase(logits);
      },
    });
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    // CPU time of the whole process (SwiftShader's threads included): on a shared machine, wall time alone misleads.
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const atlas = builder.build();
    const piece = (id: number) => session.tokenizer.piece(id).text;
    const entries = atlas.entries.map((e) => ({
      ...e,
      tokensRouted: fired.get(`${e.layer}.${e.expert}`) ?? 0,
      mostHurt: e.mostHurt.map((h) => ({ ...h, text: piece(h.id) })),
    }));
    const written = await atlasFigures(values, entries, c.numLayers, c.numExperts, ids.length);
    const top = values.top !== undefined ? count('top', values.top) : entries.length;
    return { model: dir, tokens: ids.length, logLikelihood: atlas.logLikelihood, predictedTokens: atlas.predictedTokens, runs, sweepSeconds: seconds, sweepCpuSeconds: cpuSeconds, entries: entries.slice(0, top), figures: written };
  });
}

interface AtlasCell {
  layer: number;
  expert: number;
  deltaLogLikelihood: number;
  meanKl: number;
}

/** The atlas's two layers × experts figures (Δ log-likelihood, mean KL). */
function atlasFigures(values: Values, entries: AtlasCell[], layers: number, experts: number, tokens: number): Promise<string[]> {
  const grid = (f: (e: AtlasCell) => number) =>
    range(layers).map((_, l) => range(experts).map((_, x) => {
      const e = entries.find((y) => y.layer === l && y.expert === x);
      return e ? f(e) : 0;
    }));
  const axes = { xLabel: 'expert', yLabel: 'layer', xTicks: range(experts), yTicks: range(layers) };
  return figures(values, [
    ['atlas-delta-ll', heatmapSvg({ ...axes, title: `Δ log-likelihood of the text when the expert is ablated (${tokens} tokens)`, panels: [{ title: 'Δ log p(text), nats', values: grid((e) => e.deltaLogLikelihood) }], valueLabel: 'nats', scale: 'diverging', cellDecimals: 1 })],
    ['atlas-kl', heatmapSvg({ ...axes, title: 'Mean next-token KL(model ‖ ablated)', panels: [{ title: 'KL, nats per token', values: grid((e) => e.meanKl) }], valueLabel: 'nats', scale: 'sequential', cellDecimals: 2 })],
  ]);
}

/** The atlas figures again from a saved `atlas --json` output (every entry, no --top), without running the model. */
async function atlasFromFile(values: Values, file: string) {
  const saved = parseJson(file, await readFile(file, 'utf8')) as { tokens?: unknown; entries?: unknown };
  const entries = saved.entries;
  if (!Array.isArray(entries) || typeof saved.tokens !== 'number') throw new Error(`${file}: not the JSON output of moescope analyze atlas (fields "tokens", "entries")`);
  entries.forEach((e: Partial<AtlasCell>, i) => {
    if (![e.layer, e.expert, e.deltaLogLikelihood, e.meanKl].every((v) => typeof v === 'number')) throw new Error(`${file}: entries[${i}] lacks layer, expert, deltaLogLikelihood or meanKl`);
  });
  const cells = entries as AtlasCell[];
  const layers = Math.max(...cells.map((e) => e.layer)) + 1;
  const experts = Math.max(...cells.map((e) => e.expert)) + 1;
  return { from: file, figures: await atlasFigures(values, cells, layers, experts, saved.tokens) };
}

async function corpusRun(session: Session, texts: CorpusText[], values: Values) {
  const acc = new CorpusAccumulator(session.config.numLayers, session.config.numExperts);
  const limit = Math.min(session.contextLength, textLimit(values));
  for (const t of texts) {
    const ids = session.tokenizer.encode(t.text).slice(0, limit);
    if (ids.length) acc.add(t.domain, await routingOf(session, ids));
  }
  const stats = acc.stats();
  return { stats, layers: specialisation(stats) };
}

/** Expert-bank tensors of every MoE layer of a model folder, for alignment. */
async function expertWeights(dir: string) {
  const model = await openModel(await nodeFolder(dir));
  const t = await planTensorsF32(model, (e) => e.role === 'expertsGateUp' || e.role === 'expertsDown');
  const c = model.config;
  return c.moeLayers.map((moe, l) =>
    moe ? { experts: c.numExperts, hidden: c.hiddenSize, intermediate: c.moeIntermediateSize, gateUp: t.get(`layers.${l}.expertsGateUp`)!, down: t.get(`layers.${l}.expertsDown`)! } : null,
  );
}

async function alignModels(a: string, b: string): Promise<(LayerAlignment | null)[]> {
  const [wa, wb] = await Promise.all([expertWeights(a), expertWeights(b)]);
  if (wa.length !== wb.length) throw new Error(`${a} has ${wa.length} layers, ${b} ${wb.length}`);
  return wa.map((x, l) => (x && wb[l] ? alignLayer(x, wb[l]) : null));
}

async function analyzeCorpus(gpu: Gpu, values: Values) {
  const dir = need(values, 'model');
  const samplesFile = values.samples ?? join(dir, 'samples.json');
  const texts = corpusFromJson(parseJson(samplesFile, await readFile(samplesFile, 'utf8')), samplesFile);
  const runs: { model: string; result: Awaited<ReturnType<typeof corpusRun>> }[] = [];
  for (const m of values.compare ? [dir, values.compare] : [dir]) {
    const session = await open(gpu, m, values);
    try {
      runs.push({ model: m, result: await corpusRun(session, texts, values) });
    } finally {
      session.destroy();
    }
  }
  const alignment = values.compare ? await alignModels(dir, values.compare) : null;
  const [first] = runs;
  const { domains, numLayers: L, numExperts: E } = first.result.stats;
  /** Load by domain of run r, experts in the first model's order (matched experts when aligned). */
  const load = (r: number) =>
    domains.map((_, d) => runs[r].result.layers.map((layer, l) => range(E).map((_, e) => layer.loadByDomain[d][r && alignment?.[l] ? alignment[l]!.match[e] : e])));
  const panels = (r: number) => domains.map((d, i) => ({ title: d, values: load(r)[i] }));
  const axes = { xLabel: 'expert', yLabel: 'layer', xTicks: range(E), yTicks: range(L), valueLabel: 'share of the domain’s assignments', scale: 'sequential' as const };
  const written = await figures(values, [
    ...runs.map((run, r): [string, string] => [`load-by-domain-${name(run.model)}`, heatmapSvg({
      ...axes, title: `Load by domain, ${name(run.model)}${r && alignment ? ` (experts matched to ${name(dir)})` : ''}`, panels: panels(r), cellDecimals: 2,
    })]),
    ['specialisation', barsSvg({
      title: 'Specialisation: MI(domain; expert) per layer', xLabel: 'layer', yLabel: 'mutual information, bits', groups: range(L),
      series: runs.map((run) => ({ name: name(run.model), values: run.result.layers.map((x) => x.mutualInformation) })),
    })],
  ]);
  return {
    domains,
    texts: texts.length,
    tokensByDomain: first.result.stats.tokens,
    models: runs.map((run, r) => ({
      model: run.model,
      mutualInformation: run.result.layers.map((x) => x.mutualInformation),
      loadByDomain: Object.fromEntries(domains.map((d, i) => [d, load(r)[i]])),
      domainMix: run.result.layers.map((x) => x.domainMix),
    })),
    alignment: alignment?.map((a, l) => (a ? { layer: l, match: a.match, matched: a.matched, meanUnmatched: a.meanUnmatched } : null)) ?? null,
    figures: written,
  };
}

/** The five likeliest next tokens after the last row of logits. */
function topNext(session: Session, logits: Float32Array) {
  const V = session.config.vocabSize;
  const lp = logSoftmaxRows(logits.subarray(logits.length - V), V);
  return Array.from(lp.keys()).sort((a, b) => lp[b] - lp[a]).slice(0, 5).map((id) => ({ id, text: session.tokenizer.piece(id).text, p: Math.exp(lp[id]) }));
}

async function predict(session: Session, ids: number[], maxTokens: number) {
  await session.reset();
  const logits = await session.feedWithLogits(ids);
  const V = session.config.vocabSize;
  const next = topNext(session, logits);
  const logLikelihood = ids.length > 1 ? tokenLogProbs(logSoftmaxRows(logits, V), V, ids).reduce((a, b) => a + b, 0) : null;
  const out: number[] = [];
  for (let i = 0; i < Math.min(maxTokens, session.contextLength - ids.length); i++) out.push(await session.generate());
  return { logLikelihood, next, continuation: session.tokenizer.decode(out, { skipSpecialTokens: true }) };
}

async function analyzeMerge(gpu: Gpu, values: Values) {
  const dir = need(values, 'model');
  const layer = count('layer', need(values, 'layer'));
  if (values.average === (values.copy !== undefined)) throw new Error('merge needs exactly one of --average and --copy E');
  const mode: MergeMode = values.average ? { kind: 'average' } : { kind: 'copy', expert: count('copy', values.copy) };
  const session = await open(gpu, dir, values);
  try {
    const text = await inputText(values);
    const ids = encode(session, text, 1, values);
    const maxTokens = count('max-tokens', values['max-tokens']);
    const before = await predict(session, ids, maxTokens);
    const merger = new ExpertMerger(session);
    await merger.merge(layer, mode);
    const after = await predict(session, ids, maxTokens);
    merger.restore();
    return { model: dir, text, layer, mode, before, after };
  } finally {
    session.destroy();
  }
}

async function analyzeAlign(values: Values) {
  const a = need(values, 'model');
  const b = need(values, 'other');
  const layers = await alignModels(a, b);
  const live = layers.filter((x): x is LayerAlignment => x !== null);
  const E = live[0]?.match.length ?? 0;
  const written = await figures(values, [['alignment', heatmapSvg({
    title: 'Expert similarity (cosine of W_down·W_up) between checkpoints', xLabel: `expert of ${name(b)}`, yLabel: `expert of ${name(a)}`,
    xTicks: range(E), yTicks: range(E), panels: live.map((x, i) => ({ title: `layer ${i}`, values: x.similarity })), valueLabel: 'cosine', scale: 'diverging',
  })]]);
  return { model: a, other: b, layers: layers.map((x, l) => (x ? { layer: l, ...x } : null)), figures: written };
}

/** The text fed up to its last token, then the last token as a decode step with the attention probe attached. */
async function analyzeAttention(gpu: Gpu, values: Values) {
  return onText(gpu, values, 1, async (session, ids, dir) => {
    const c = session.config;
    await session.feed(ids.slice(0, -1));
    const probe = session.openAttentionProbe();
    await session.feed(ids.slice(-1));
    const flow = await probe.read(ids.length - 1);
    probe.close();
    const T = ids.length, H = flow.heads;
    const pieces = ids.map((id) => session.tokenizer.piece(id).text);
    const row = (l: number, h: number) => Array.from(flow.weights.subarray((l * H + h) * T, (l * H + h + 1) * T));
    const layers = range(c.numLayers).map((_, l) => ({
      layer: l,
      heads: range(H).map((_, h) => {
        const w = row(l, h);
        const top = w.indexOf(Math.max(...w));
        return { head: h, sink: flow.sink[l * H + h], weights: w, top: { position: top, text: pieces[top], weight: w[top] } };
      }),
    }));
    // One panel per layer: a row per key (context token), a column per head.
    const written = await figures(values, [['attention', heatmapSvg({
      title: `Attention of the last token (#${T - 1} ${JSON.stringify(pieces[T - 1])}) over the text, per layer`,
      xLabel: 'head', yLabel: 'key (context token)', xTicks: range(H), yTicks: pieces.map((p, i) => `${i} ${JSON.stringify(p)}`),
      panels: range(c.numLayers).map((_, l) => ({ title: `layer ${l}`, values: range(T).map((_, k) => range(H).map((_, h) => row(l, h)[k])) })),
      valueLabel: 'softmax weight', scale: 'sequential', cellDecimals: 2,
    })]]);
    return { model: dir, tokens: T, pieces, layers, figures: written };
  });
}

function formatText(command: string, result: Record<string, unknown>): string {
  if (command === 'atlas') {
    const r = result as Awaited<ReturnType<typeof analyzeAtlas>>;
    return [
      `${r.model}: ${r.tokens} tokens, log-likelihood ${r.logLikelihood.toFixed(3)} nats; ${r.runs} runs in ${r.sweepSeconds.toFixed(2)} s (${r.sweepCpuSeconds.toFixed(1)} s CPU)`,
      'layer expert  Δ log-lik   mean KL  routed  most hurt tokens',
      ...r.entries.map((e) => `${String(e.layer).padStart(5)} ${String(e.expert).padStart(6)} ${e.deltaLogLikelihood.toFixed(3).padStart(10)} ${e.meanKl.toFixed(4).padStart(9)} ${String(e.tokensRouted).padStart(7)}  ${e.mostHurt.slice(0, 3).map((h) => JSON.stringify(h.text)).join(' ')}`),
    ].join('\n');
  }
  return JSON.stringify(result, null, 2);
}

export async function analyze(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const { values } = parseArgs({ args: rest, options: OPTIONS });
  if (command === 'align' || (command === 'atlas' && values.from !== undefined)) {
    const result = command === 'align' ? await analyzeAlign(values) : await atlasFromFile(values, values.from!);
    console.log(JSON.stringify(result, null, values.json ? 2 : undefined));
    return 0;
  }
  const commands = { pathways: analyzePathways, atlas: analyzeAtlas, corpus: analyzeCorpus, merge: analyzeMerge, attention: analyzeAttention } as const;
  if (!(command in commands)) {
    console.error(command ? `unknown analysis "${command}"\n${ANALYZE_USAGE}` : ANALYZE_USAGE);
    return 2;
  }
  const gpu = await requestNodeGpu('moescope-analyze');
  try {
    const result = await commands[command as keyof typeof commands](gpu, values);
    console.log(values.json ? JSON.stringify(result, null, 2) : formatText(command, result));
    return 0;
  } finally {
    releaseNodeGpu(gpu);
  }
}
