// Turning what an importer parsed (sequences of token ids and per-token expert rows) into a trace: rows are mapped
// onto the config's MoE layers, ids checked against the expert count, and everything laid out token-major.
import { ModelFileError, field } from '../io/errors';
import { normalizeConfig } from '../io/config';
import type { MoeConfig } from '../model/config';
import { traceMeta, UNKNOWN, type TraceMeta, type TraceSource } from './format';
import type { TraceArrays } from './writer';

export interface ParsedSequence {
  id: string;
  /** Token ids per token, −1 where unknown; null when the source has none. */
  tokenIds: number[] | null;
  /** Tokens in the sequence (rows past `rows`' end are unknown: e.g. the last generated token is never forwarded). */
  length: number;
  promptLength: number;
  /** [rowCount, layersInSource, k] expert ids (−1 = unknown). */
  rows: Int32Array;
  rowCount: number;
  /** Where the rows came from, for errors: a field path like `choices[0].routed_experts`. */
  where: string;
}

export interface BuildInput {
  /** Input file name (errors name it). */
  file: string;
  config: Record<string, unknown>;
  configName: string;
  source: TraceSource;
  tokenizer: string | null;
  sequences: ParsedSequence[];
  /** Texts of token ids (from a tokenizer), or null. */
  tokenText?: ((id: number) => string) | null;
}

export function moeLayersOf(config: MoeConfig): number[] {
  return config.moeLayers.flatMap((m, l) => (m ? [l] : []));
}

/**
 * Rows per token in a source may cover every decoder layer (SGLang, vLLM on some models) or only the MoE layers;
 * returns, for each MoE layer, the row index to read. Throws naming the field if neither matches.
 */
export function layerRowsFor(config: MoeConfig, layersInSource: number, file: string, where: string): number[] {
  const moe = moeLayersOf(config);
  if (layersInSource === moe.length) return moe.map((_, i) => i);
  if (layersInSource === config.numLayers) return moe;
  throw new ModelFileError(
    file, field(where),
    `has ${layersInSource} layers per token; the config has ${config.numLayers} layers of which ${moe.length} are MoE`,
  );
}

export function buildTrace(input: BuildInput, layersInSource: number): { meta: TraceMeta; arrays: TraceArrays; config: MoeConfig } {
  const config = normalizeConfig(input.config, input.configName);
  const moe = moeLayersOf(config);
  const L = moe.length, K = config.router.topK, E = config.numExperts;
  const T = input.sequences.reduce((n, s) => n + s.length, 0);
  const experts = new Int32Array(T * L * K).fill(UNKNOWN);
  const hasIds = input.sequences.some((s) => s.tokenIds !== null);
  const tokenIds = new Int32Array(T).fill(-1);
  let at = 0;
  const sequences = input.sequences.map((s) => {
    const rowsOf = layerRowsFor(config, layersInSource, input.file, s.where);
    if (s.rowCount > s.length) {
      throw new ModelFileError(input.file, field(s.where), `${s.rowCount} rows of routing for a sequence of ${s.length} tokens`);
    }
    for (let t = 0; t < s.rowCount; t++) {
      for (let l = 0; l < L; l++) {
        for (let k = 0; k < K; k++) {
          const e = s.rows[(t * layersInSource + rowsOf[l]) * K + k];
          if (e !== UNKNOWN && !(Number.isInteger(e) && e >= 0 && e < E)) {
            throw new ModelFileError(input.file, field(s.where), `token ${t}, layer ${moe[l]}: expert id ${e} is outside [0, ${E}) (and not −1)`);
          }
          experts[((at + t) * L + l) * K + k] = e;
        }
      }
    }
    if (s.tokenIds) for (let t = 0; t < s.length; t++) tokenIds[at + t] = s.tokenIds[t] ?? -1;
    const seq = { id: s.id, start: at, length: s.length, promptLength: s.promptLength };
    at += s.length;
    return seq;
  });
  const tokenText = input.tokenText;
  const meta = traceMeta({
    config: input.config,
    tokenizer: input.tokenizer,
    source: input.source,
    moeLayers: moe,
    numExperts: E,
    topK: K,
    numTokens: T,
    sequences,
    recorded: { tokenIds: hasIds, tokenTexts: hasIds && !!tokenText, weights: false, router: null },
  });
  const arrays: TraceArrays = { experts };
  if (hasIds) arrays.tokenIds = tokenIds;
  if (hasIds && tokenText) arrays.tokenTexts = Array.from(tokenIds, (id) => (id >= 0 ? tokenText(id) : ''));
  return { meta, arrays, config };
}

/** Checks k of a source's rows against the config; the importers call it before reshaping. */
export function checkTopK(config: MoeConfig, k: number, file: string, where: string): void {
  if (k !== config.router.topK) {
    throw new ModelFileError(file, field(where), `has ${k} experts per token; the config's num_experts_per_tok is ${config.router.topK}`);
  }
}
