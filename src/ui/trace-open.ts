// Opening a routing trace (docs/trace-format.md) in the dashboard: picked or dropped with an optional config.json
// (checked against the config the trace carries). The trace replays through a TraceSession, so the 3D view, panels
// and metrics work as for a running model; what the source did not record is named in the header and where a view
// would need it.
import type { Gpu } from '../engine/gpu';
import { BlobSource, MAX_HEADER_BYTES, normalizeConfig, parseJson, ModelFileError, field } from '../io';
import { TraceSession, type TraceRange } from '../loading/trace-session';
import { METADATA_KEY } from '../trace/format';
import { TraceFile } from '../trace/reader';
import { formatCount } from '../viz/panels/model-info';
import type { LoadedModel, Progress } from './models';

/** Whole traces up to this many tokens replay as one range; longer ones open on their first sequence. */
const WHOLE_TRACE_TOKENS = 200_000;

/**
 * The picked files' traces, in order: .safetensors files whose JSON header mentions the trace metadata key. Only
 * sniffed here (a damaged trace is still recognised); TraceFile.open checks it and names what is wrong.
 */
export async function findTraces(files: readonly File[]): Promise<File[]> {
  const out: File[] = [];
  for (const f of files) {
    if (!f.name.endsWith('.safetensors') || f.size < 8) continue;
    const head = new DataView(await f.slice(0, 8).arrayBuffer());
    const n = head.getUint32(0, true);
    if (head.getUint32(4, true) !== 0 || n > MAX_HEADER_BYTES || 8 + n > f.size) continue;
    if ((await f.slice(8, 8 + n).text()).includes(`"${METADATA_KEY}"`)) out.push(f);
  }
  return out;
}

/** Checks a separately given config.json against the trace's own. */
function checkConfig(trace: TraceFile, file: string, text: string): void {
  const given = normalizeConfig(parseJson(file, text), file);
  const own = trace.config;
  const pairs: [string, unknown, unknown][] = [
    ['num_hidden_layers', given.numLayers, own.numLayers],
    ['experts', given.numExperts, own.numExperts],
    ['num_experts_per_tok', given.router.topK, own.router.topK],
    ['MoE layers', given.moeLayers.join(','), own.moeLayers.join(',')],
  ];
  for (const [name, a, b] of pairs) {
    if (a !== b) throw new ModelFileError(file, field(name), `${a} does not match the trace ${trace.name} (${b})`);
  }
}

/** Opens `traceFile` for replay; `other`, a second trace picked with it, becomes what compare mode compares with. */
export async function loadTrace(gpu: Gpu, traceFile: File, files: readonly File[], onProgress: Progress, other?: File): Promise<LoadedModel> {
  const trace = await TraceFile.open(new BlobSource(traceFile.name, traceFile));
  try {
    const configFile = files.find((f) => f.name === 'config.json');
    if (configFile) checkConfig(trace, configFile.name, await configFile.text());
    const m = trace.meta;
    // What can be replayed: the whole trace (unless very long) and each request; offered as the page's samples.
    const whole = m.numTokens <= WHOLE_TRACE_TOKENS || m.sequences.length === 0;
    const ranges: { key: string; title: string; range: TraceRange }[] = [
      ...(whole ? [{ key: 'trace', title: `whole trace (${m.numTokens} tokens)`, range: { start: 0, length: m.numTokens } }] : []),
      ...m.sequences.map((s, i) => ({
        key: `request ${i}`,
        title: `request ${s.id}: ${s.promptLength} prompt + ${s.length - s.promptLength} generated`,
        range: { start: s.start, length: s.length },
      })),
    ];
    let current = ranges[0];
    const session = await TraceSession.open(gpu, trace, current.range, (done, total) => onProgress(done / total, `${trace.name}: indexing ${done} / ${total} tokens`));
    const texts = whole ? await trace.tokenTexts(0, m.numTokens) : null;
    const ids = whole ? await trace.tokenIds(0, m.numTokens) : new Int32Array(0);
    const missing = {
      weights: m.recorded.weights ? null : `gate weights were not recorded by ${m.source.engine}`,
      probs: m.recorded.router ? 'router probabilities are not replayed' : `router probabilities were not recorded by ${m.source.engine}`,
    };
    const span = `${m.numTokens} tokens in ${m.sequences.length} request(s)${whole ? '' : `, opened on the first (pick others under samples)`}`;
    const src = [m.source.engine, m.source.version, m.source.dtype].filter(Boolean).join(' ');
    const parameters = session.parameters;
    return {
      id: `trace:${trace.name}`,
      name: trace.name,
      config: trace.config,
      parameters,
      session,
      // The replay's "text" names a range (a sample's text is its key); its tokens are positions in the range, shown
      // with the recorded text, else the id. The session switches to the range at the reset that follows.
      tokenizer: {
        encode: (text) => {
          current = ranges.find((r) => r.key === text) ?? current;
          session.selectRange(current.range);
          return Array.from({ length: current.range.length }, (_, i) => i);
        },
        tokenText: (i) => {
          const t = current.range.start + i;
          if (!whole) return `#${i}`;
          return texts?.[t] ?? (ids[t] >= 0 ? `[${ids[t]}]` : '[?]');
        },
        // Prompt or generated, from the request the token belongs to (for the load bars' split).
        domainOf: (i) => {
          const t = current.range.start + i;
          let lo = 0, hi = m.sequences.length - 1; // the last sequence starting at or before t
          while (lo < hi) {
            const mid = (lo + hi + 1) >> 1;
            if (m.sequences[mid].start <= t) lo = mid;
            else hi = mid - 1;
          }
          const s = m.sequences[lo];
          return s && t - s.start >= s.promptLength ? 'generated' : 'prompt';
        },
      },
      samples: ranges.map((r) => ({ text: r.key, domain: 'trace', title: r.title })),
      note:
        `Trace from ${src}${m.source.parallelism ? ` (${m.source.parallelism})` : ''}: ${span}; ${formatCount(parameters.total)} parameters, ` +
        `${trace.config.numLayers} layers × ${trace.config.numExperts} experts, k = ${m.topK}. Replay only: no what-ifs. ` +
        `Not recorded: ${[!m.recorded.tokenIds && 'token ids', !m.recorded.tokenTexts && 'token texts', missing.weights && 'gate weights', !m.recorded.router && 'router probabilities'].filter(Boolean).join(', ') || 'nothing'}.`,
      replay: missing,
      compareWith: other && { name: other.name, load: (p) => loadTrace(gpu, other, [], p) },
      destroy: () => session.destroy(),
    };
  } catch (e) {
    await trace.close();
    throw e;
  }
}
