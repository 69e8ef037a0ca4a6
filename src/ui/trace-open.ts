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
 * The picked files' trace, or null: a .safetensors file whose JSON header mentions the trace metadata key. Only
 * sniffed here (a damaged trace is still recognised); TraceFile.open checks it and names what is wrong.
 */
export async function findTrace(files: readonly File[]): Promise<File | null> {
  for (const f of files) {
    if (!f.name.endsWith('.safetensors') || f.size < 8) continue;
    const head = new DataView(await f.slice(0, 8).arrayBuffer());
    const n = head.getUint32(0, true);
    if (head.getUint32(4, true) !== 0 || n > MAX_HEADER_BYTES || 8 + n > f.size) continue;
    if ((await f.slice(8, 8 + n).text()).includes(`"${METADATA_KEY}"`)) return f;
  }
  return null;
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

export async function loadTrace(gpu: Gpu, traceFile: File, files: readonly File[], onProgress: Progress): Promise<LoadedModel> {
  const trace = await TraceFile.open(new BlobSource(traceFile.name, traceFile));
  try {
    const configFile = files.find((f) => f.name === 'config.json');
    if (configFile) checkConfig(trace, configFile.name, await configFile.text());
    const m = trace.meta;
    const range: TraceRange = m.numTokens <= WHOLE_TRACE_TOKENS || m.sequences.length === 0
      ? { start: 0, length: m.numTokens }
      : { start: m.sequences[0].start, length: m.sequences[0].length };
    const session = await TraceSession.open(gpu, trace, range, (done, total) => onProgress(done / total, `${trace.name}: indexing ${done} / ${total} tokens`));
    const texts = await trace.tokenTexts(range.start, range.length);
    const missing = {
      weights: m.recorded.weights ? null : `gate weights were not recorded by ${m.source.engine}`,
      probs: m.recorded.router ? 'router probabilities are not replayed' : `router probabilities were not recorded by ${m.source.engine}`,
    };
    const whole = range.length === m.numTokens ? `${m.numTokens} tokens in ${m.sequences.length} request(s)` : `request "${m.sequences[0].id}" (${range.length} of ${m.numTokens} tokens)`;
    const src = [m.source.engine, m.source.version, m.source.dtype].filter(Boolean).join(' ');
    const parameters = session.parameters;
    return {
      id: `trace:${trace.name}`,
      name: trace.name,
      config: trace.config,
      parameters,
      session,
      // The replay's "text" is the trace's own tokens: position i stands for itself, and its text is the recorded one.
      tokenizer: {
        encode: () => Array.from({ length: range.length }, (_, i) => i),
        tokenText: (i) => texts?.[i] ?? (session.rangeIds[i] >= 0 ? `[${session.rangeIds[i]}]` : "[?]"),
      },
      samples: [],
      note:
        `Trace from ${src}${m.source.parallelism ? ` (${m.source.parallelism})` : ''}: ${whole}; ${formatCount(parameters.total)} parameters, ` +
        `${trace.config.numLayers} layers × ${trace.config.numExperts} experts, k = ${m.topK}. Replay only: no what-ifs. ` +
        `Not recorded: ${[!m.recorded.tokenIds && 'token ids', !m.recorded.tokenTexts && 'token texts', missing.weights && 'gate weights', !m.recorded.router && 'router probabilities'].filter(Boolean).join(', ') || 'nothing'}.`,
      replay: missing,
      destroy: () => session.destroy(),
    };
  } catch (e) {
    await trace.close();
    throw e;
  }
}
