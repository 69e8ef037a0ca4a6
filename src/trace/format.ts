// The moescope routing-trace format (docs/trace-format.md): one safetensors file whose `__metadata__` holds a JSON
// description of the trace under the key "moescope_trace", and whose tensors hold the per-token records.
//
//   experts             U8 | U16 | I32  [tokens, moeLayers, k]     chosen expert ids in router order; unknown = the
//                                                                   dtype's UNKNOWN value (255, 65535, −1)
//   token_ids           I32             [tokens]                    −1 = not recorded
//   weights             F32             [tokens, moeLayers, k]      gate weights (optional)
//   router_probs        F32             [tokens, moeLayers, experts] router probabilities (optional; or router_logits)
//   router_logits       F32             [tokens, moeLayers, experts]
//   token_text          U8              [bytes]                     UTF-8 of every token's text, concatenated (optional)
//   token_text_offsets  U32             [tokens + 1]                token t's text is bytes [off[t], off[t + 1])
//   step_counts         U32             [steps, moeLayers, experts] counts-only sources (no per-token records)
//
// Everything here is pure (no I/O): the names, dtypes and the JSON metadata's shape and checks.

export const TRACE_FORMAT = 'moescope-trace';
export const TRACE_VERSION = 1;
/** Key of the trace description inside the safetensors `__metadata__` string map. */
export const METADATA_KEY = 'moescope_trace';

export const TENSORS = {
  experts: 'experts',
  tokenIds: 'token_ids',
  weights: 'weights',
  probs: 'router_probs',
  logits: 'router_logits',
  text: 'token_text',
  textOffsets: 'token_text_offsets',
  stepCounts: 'step_counts',
} as const;

/** Expert-id storage: the smallest integer type whose largest value is free to mean "unknown". */
export type ExpertDtype = 'U8' | 'U16' | 'I32';

export function expertDtypeFor(numExperts: number): ExpertDtype {
  return numExperts < 0xff ? 'U8' : numExperts < 0xffff ? 'U16' : 'I32';
}

/** The stored value that marks an unknown expert (prefix-cached, not forwarded, not recorded). */
export const UNKNOWN_STORED: Readonly<Record<ExpertDtype, number>> = { U8: 0xff, U16: 0xffff, I32: -1 };

/** In memory, every reader returns expert ids as Int32Array with this for unknown. */
export const UNKNOWN = -1;

/** A request: a contiguous run of tokens, prompt first, then generated. */
export interface TraceSequence {
  /** The source's request id, or its index. */
  id: string;
  /** First token of the sequence (index into the token axis). */
  start: number;
  length: number;
  /** Tokens [start, start + promptLength) are prompt; the rest were generated. */
  promptLength: number;
}

export interface TraceSource {
  /** 'moescope', 'transformers', 'vllm', 'sglang', 'megatron', or another engine's name. */
  engine: string;
  version: string | null;
  /** Compute dtype of the run (bf16, f32, …). */
  dtype: string | null;
  /** How the model was spread over devices, in words ("device_map=auto over 2 GPUs", "TP=8 EP=8"). */
  parallelism: string | null;
  /** The input the trace was imported from, and anything else worth keeping. */
  note?: string;
}

export interface TraceMeta {
  format: typeof TRACE_FORMAT;
  version: number;
  /** The model's config.json as the source had it. */
  config: Record<string, unknown>;
  /** Tokenizer name or path (informational), or null. */
  tokenizer: string | null;
  source: TraceSource;
  /** Decoder-layer index of each recorded MoE layer (axis 1 of `experts`), ascending. */
  moeLayers: number[];
  numExperts: number;
  /** Experts per token (axis 2 of `experts`). */
  topK: number;
  numTokens: number;
  sequences: TraceSequence[];
  /** What the source recorded; what it did not is said plainly wherever a view would need it. */
  recorded: {
    tokenIds: boolean;
    tokenTexts: boolean;
    weights: boolean;
    /** Full router output per token: probabilities, logits, or nothing. */
    router: 'probs' | 'logits' | null;
  };
  /** Counts-only traces: steps of `step_counts` (0 for per-token traces). */
  countSteps: number;
}

/** Builds the metadata with the defaults filled in (writers and importers). */
export function traceMeta(m: Omit<TraceMeta, 'format' | 'version' | 'countSteps'> & { countSteps?: number }): TraceMeta {
  return { format: TRACE_FORMAT, version: TRACE_VERSION, countSteps: 0, ...m };
}

/** Problems found in trace metadata, as [field, detail] pairs (empty = valid). Checked before any tensor is read. */
export function metaProblems(m: unknown): [string, string][] {
  const out: [string, string][] = [];
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return [[METADATA_KEY, 'is not a JSON object']];
  const o = m as Record<string, unknown>;
  const int = (k: string, min: number) => {
    if (!Number.isSafeInteger(o[k]) || (o[k] as number) < min) out.push([k, `must be an integer ≥ ${min}, got ${JSON.stringify(o[k])}`]);
  };
  if (o.format !== TRACE_FORMAT) out.push(['format', `must be "${TRACE_FORMAT}", got ${JSON.stringify(o.format)}`]);
  if (o.version !== TRACE_VERSION) out.push(['version', `this reader knows version ${TRACE_VERSION}, got ${JSON.stringify(o.version)}`]);
  if (typeof o.config !== 'object' || o.config === null || Array.isArray(o.config)) out.push(['config', 'must be the model\'s config.json object']);
  int('numExperts', 1);
  int('topK', 1);
  int('numTokens', 0);
  int('countSteps', 0);
  if (!Array.isArray(o.moeLayers) || !o.moeLayers.every((l, i, a) => Number.isSafeInteger(l) && l >= 0 && (i === 0 || l > a[i - 1]))) {
    out.push(['moeLayers', 'must be ascending non-negative layer indices']);
  }
  const src = o.source as Record<string, unknown> | undefined;
  if (typeof src !== 'object' || src === null || typeof src.engine !== 'string') out.push(['source.engine', 'must be a string']);
  const rec = o.recorded as Record<string, unknown> | undefined;
  if (
    typeof rec !== 'object' || rec === null || typeof rec.tokenIds !== 'boolean' || typeof rec.tokenTexts !== 'boolean' ||
    typeof rec.weights !== 'boolean' || !(rec.router === null || rec.router === 'probs' || rec.router === 'logits')
  ) {
    out.push(['recorded', 'must be {tokenIds, tokenTexts, weights: boolean, router: "probs" | "logits" | null}']);
  }
  if (!Array.isArray(o.sequences)) {
    out.push(['sequences', 'must be a list']);
  } else if (Number.isSafeInteger(o.numTokens)) {
    let next = 0;
    o.sequences.forEach((s: unknown, i) => {
      const q = s as Record<string, unknown>;
      const ok = typeof q === 'object' && q !== null && typeof q.id === 'string' &&
        [q.start, q.length, q.promptLength].every((v) => Number.isSafeInteger(v) && (v as number) >= 0);
      if (!ok) return out.push([`sequences[${i}]`, 'must be {id: string, start, length, promptLength: integers ≥ 0}']);
      if (q.start !== next) out.push([`sequences[${i}].start`, `is ${q.start}; sequences must tile the tokens in order (expected ${next})`]);
      if ((q.promptLength as number) > (q.length as number)) out.push([`sequences[${i}].promptLength`, `${q.promptLength} exceeds its length ${q.length}`]);
      next = (q.start as number) + (q.length as number);
    });
    if (out.length === 0 && next !== o.numTokens) out.push(['sequences', `cover ${next} tokens but numTokens is ${o.numTokens}`]);
  }
  return out;
}
