// SGLang routing records.
//   - `--enable-return-routed-experts` with `"return_routed_experts": true` in the request: the response's
//     `meta_info.routed_experts` is base64 of int32 values, flattened [tokens, layers, k] with layers =
//     num_hidden_layers (SGLang's documented decode: np.frombuffer(b64decode(s), np.int32).reshape(-1, layers, k)),
//     covering prompt + completion tokens but the last; `meta_info.prompt_tokens` / `completion_tokens` give the
//     split and `output_ids` the generated ids when present.
//   - the expert-distribution recorder's dumps (`/start_expert_distribution_record`, `…/dump`, .pt files), turned
//     into JSON by tools/convert_sglang_dump.py with the recorder's own keys: `per_token` mode
//     `{"records": [{"forward_pass_id", "rank", "forward_mode"?, "input_ids"?, "topk_ids_of_layer": [layers][tokens][k]}]}`
//     (each forward pass one sequence; −1 = padding, unknown), and `stat` mode `{"logical_count": [steps][layers][experts]}`
//     (counts only: no per-token records).
import { ModelFileError, field } from '../io/errors';
import { buildTrace, checkTopK, layerRowsFor, moeLayersOf, type ParsedSequence } from './builder';
import { asRecord, base64Bytes, configOf, intList, parseJsonOrLines, type ImportOptions } from './import-common';
import { traceMeta } from './format';
import type { TraceArrays } from './writer';

const source = (o: ImportOptions, what: string) => ({ engine: 'sglang', version: null, dtype: null, parallelism: null, note: `${what} imported from ${o.file}`, ...o.source });

export function importSglang(bytes: Uint8Array, o: ImportOptions) {
  const docs = parseJsonOrLines(bytes, o.file);
  const first = docs[0] as Record<string, unknown> | undefined;
  if (first && typeof first === 'object' && 'logical_count' in first) return importStat(first, o);
  if (first && typeof first === 'object' && 'records' in first) return importPerToken(docs, o);
  return importResponses(docs, o);
}

function importResponses(docs: unknown[], o: ImportOptions) {
  const config = configOf(o), file = o.file, K = config.router.topK;
  const layers = config.numLayers;
  const sequences: ParsedSequence[] = docs.map((doc, i) => {
    const at = (f: string) => (docs.length === 1 ? f : `[${i}].${f}`);
    const r = asRecord(doc, file, `[${i}]`);
    const meta = asRecord(r.meta_info, file, at('meta_info'));
    const where = at('meta_info.routed_experts');
    if (typeof meta.routed_experts !== 'string') throw new ModelFileError(file, field(where), 'missing or not a base64 string (was the request sent with "return_routed_experts": true?)');
    const raw = base64Bytes(meta.routed_experts, file, where);
    if (raw.byteLength % 4 !== 0) throw new ModelFileError(file, field(where), `${raw.byteLength} bytes is not a whole number of int32 values`);
    const flat = new Int32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    if (flat.length % (layers * K) !== 0) {
      throw new ModelFileError(file, field(where), `${flat.length} values are not a whole number of tokens × ${layers} layers × k ${K}`);
    }
    const rowCount = flat.length / (layers * K);
    const prompt = Number(meta.prompt_tokens), completion = Number(meta.completion_tokens ?? 0);
    if (!Number.isInteger(prompt) || prompt < 0) throw new ModelFileError(file, field(at('meta_info.prompt_tokens')), 'must be a non-negative integer');
    const outIds = r.output_ids != null ? intList(r.output_ids, file, at('output_ids')) : null;
    const length = Math.max(prompt + completion, rowCount);
    const tokenIds = outIds ? [...new Array(prompt).fill(-1), ...outIds] : null;
    const id = typeof meta.id === 'string' ? meta.id : String(i);
    return { id, tokenIds, length, promptLength: prompt, rows: flat, rowCount, where };
  });
  return buildTrace({ file, config: o.config, configName: o.configName, tokenizer: o.tokenizer?.name ?? null, tokenText: o.tokenizer?.text ?? null, sequences, source: source(o, 'meta_info.routed_experts') }, layers);
}

function importPerToken(docs: unknown[], o: ImportOptions) {
  const config = configOf(o), file = o.file;
  const records = docs.flatMap((d, i) => {
    const r = asRecord(d, file, `[${i}]`);
    if (!Array.isArray(r.records)) throw new ModelFileError(file, field('records'), 'must be a list');
    return r.records.map((rec: unknown, j: number) => ({ rec: asRecord(rec, file, `records[${j}]`), where: `records[${j}]` }));
  });
  records.sort((a, b) => Number(a.rec.forward_pass_id) - Number(b.rec.forward_pass_id) || Number(a.rec.rank ?? 0) - Number(b.rec.rank ?? 0));
  let layers = -1;
  const sequences: ParsedSequence[] = [];
  for (const { rec, where } of records) {
    const w = `${where}.topk_ids_of_layer`;
    const v = rec.topk_ids_of_layer;
    if (!Array.isArray(v) || !Array.isArray(v[0])) throw new ModelFileError(file, field(w), 'must be a [layers][tokens][k] list');
    const L = v.length, T = (v[0] as unknown[]).length, K = T > 0 ? ((v[0] as unknown[][])[0]).length : config.router.topK;
    if (T === 0) continue;
    checkTopK(config, K, file, w);
    if (layers >= 0 && L !== layers) throw new ModelFileError(file, field(w), `has ${L} layers; earlier records had ${layers}`);
    layers = L;
    layerRowsFor(config, L, file, w);
    const rows = new Int32Array(T * L * K);
    (v as unknown[][][]).forEach((layer, l) => {
      if (!Array.isArray(layer) || layer.length !== T) throw new ModelFileError(file, field(w), `layer ${l}: expected ${T} tokens`);
      layer.forEach((ks, t) => {
        if (!Array.isArray(ks) || ks.length !== K) throw new ModelFileError(file, field(w), `layer ${l}, token ${t}: expected ${K} ids`);
        ks.forEach((e, k) => {
          if (!Number.isInteger(e)) throw new ModelFileError(file, field(w), `layer ${l}, token ${t}: ${JSON.stringify(e)} is not an integer`);
          rows[(t * L + l) * K + k] = e as number;
        });
      });
    });
    const ids = rec.input_ids != null ? intList(rec.input_ids, file, `${where}.input_ids`) : null;
    const decode = rec.forward_mode === 2;
    sequences.push({ id: `pass ${rec.forward_pass_id} rank ${rec.rank ?? 0}`, tokenIds: ids, length: T, promptLength: decode ? 0 : T, rows, rowCount: T, where: w });
  }
  if (layers < 0) throw new ModelFileError(file, field('records'), 'hold no tokens');
  return buildTrace({ file, config: o.config, configName: o.configName, tokenizer: o.tokenizer?.name ?? null, tokenText: o.tokenizer?.text ?? null, sequences, source: source(o, 'expert distribution (per_token)') }, layers);
}

function importStat(doc: Record<string, unknown>, o: ImportOptions) {
  const config = configOf(o), file = o.file, E = config.numExperts;
  const v = doc.logical_count;
  const where = 'logical_count';
  if (!Array.isArray(v) || v.length === 0 || !Array.isArray(v[0])) throw new ModelFileError(file, field(where), 'must be a [steps][layers][experts] list');
  const S = v.length, L = (v[0] as unknown[]).length;
  const rowsOf = layerRowsFor(config, L, file, where);
  const moe = moeLayersOf(config);
  const counts = new Uint32Array(S * moe.length * E);
  (v as unknown[][][]).forEach((step, s) => {
    if (!Array.isArray(step) || step.length !== L) throw new ModelFileError(file, field(where), `step ${s}: expected ${L} layers`);
    rowsOf.forEach((row, l) => {
      const cs = step[row];
      if (!Array.isArray(cs) || cs.length !== E) throw new ModelFileError(file, field(where), `step ${s}, layer ${moe[l]}: expected ${E} expert counts`);
      cs.forEach((c, e) => {
        if (!Number.isInteger(c) || (c as number) < 0) throw new ModelFileError(file, field(where), `step ${s}, layer ${moe[l]}, expert ${e}: ${JSON.stringify(c)} is not a count`);
        counts[(s * moe.length + l) * E + e] = c as number;
      });
    });
  });
  const meta = traceMeta({
    config: o.config, tokenizer: o.tokenizer?.name ?? null, source: source(o, 'expert distribution (stat)'),
    moeLayers: moe, numExperts: E, topK: config.router.topK, numTokens: 0, sequences: [],
    recorded: { tokenIds: false, tokenTexts: false, weights: false, router: null }, countSteps: S,
  });
  const arrays: TraceArrays = { experts: new Int32Array(0), stepCounts: counts };
  return { meta, arrays, config };
}
