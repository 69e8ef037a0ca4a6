// Megatron-core RouterTracer (megatron/core/transformer/moe/router_trace; `--moe-routing-trace-path`): one JSONL file
// per rank, `router_trace_rank{rank}.jsonl`, one record per (step, block, layer):
//   {"step": 0, "stage": "pre_dispatch", "block": "decoder", "layer": 3, "rank": 0, "num_tokens": 128, "topk": 8,
//    "top_indices": [[12, 45, …], …]}
// `layer` is the index in the module name `decoder.layers.N` (0-based; with pipeline parallelism it is the stage's
// local index, so give the ranks of one stage at a time). MTP records (`block: "mtp"`) are not decoder layers and
// are skipped. Records of several ranks are merged: for each step, every layer's rows are concatenated in rank order
// (right for data/expert parallel ranks, which route different tokens; drop tensor-parallel duplicates with
// `ranks`). Each step becomes one sequence; Megatron records no token ids and no prompt/generated split.
import { ModelFileError, field } from '../io/errors';
import { buildTrace, moeLayersOf, type ParsedSequence } from './builder';
import { configOf, parseJsonOrLines, nestedRows, type ImportOptions } from './import-common';

interface Rec {
  step: number;
  layer: number;
  rank: number;
  rows: Int32Array;
  n: number;
  where: string;
}

/** `files`: the per-rank JSONL files' names and bytes; `ranks`: keep only these ranks (default all). */
export function importMegatron(files: { name: string; bytes: Uint8Array }[], o: ImportOptions, ranks?: number[]) {
  const config = configOf(o), K = config.router.topK;
  const moe = moeLayersOf(config);
  const recs: Rec[] = [];
  for (const f of files) {
    parseJsonOrLines(f.bytes, f.name).forEach((doc, i) => {
      const where = `line ${i + 1}`;
      const r = doc as Record<string, unknown>;
      const bad = (what: string, detail: string): never => {
        throw new ModelFileError(f.name, `${where}: ${field(what)}`, detail);
      };
      if (typeof r !== 'object' || r === null) bad('record', 'is not a JSON object');
      if ((r.block ?? 'decoder') !== 'decoder') return;
      for (const k of ['step', 'layer', 'rank', 'num_tokens', 'topk']) if (!Number.isInteger(r[k]) || (r[k] as number) < 0) bad(k, `must be a non-negative integer, got ${JSON.stringify(r[k])}`);
      if (ranks && !ranks.includes(r.rank as number)) return;
      if (!moe.includes(r.layer as number)) bad('layer', `${r.layer} is not a MoE layer of the config (MoE layers: ${moe.join(', ')})`);
      if (r.topk !== K) bad('topk', `${r.topk}, but the config's num_experts_per_tok is ${K}`);
      const rows = r.num_tokens === 0 ? { data: new Int32Array(0), count: 0, layers: 0, k: K } : nestedRows((r.top_indices as unknown[]).map((x) => [x]), f.name, `${where}: top_indices`);
      if (rows.count !== r.num_tokens) bad('top_indices', `${rows.count} rows but num_tokens is ${r.num_tokens}`);
      if (rows.count > 0 && rows.k !== K) bad('top_indices', `rows of ${rows.k} ids but topk is ${r.topk}`);
      recs.push({ step: r.step as number, layer: r.layer as number, rank: r.rank as number, rows: rows.data, n: rows.count, where: `${f.name} ${where}` });
    });
  }
  if (recs.length === 0) throw new ModelFileError(files.map((f) => f.name).join(', '), null, 'no decoder router records');
  const steps = [...new Set(recs.map((r) => r.step))].sort((a, b) => a - b);
  const L = moe.length;
  const sequences: ParsedSequence[] = steps.map((step) => {
    const mine = recs.filter((r) => r.step === step).sort((a, b) => a.rank - b.rank);
    const perLayer = moe.map((layer) => mine.filter((r) => r.layer === layer));
    const tokens = perLayer.map((rs) => rs.reduce((n, r) => n + r.n, 0));
    const T = tokens[0];
    tokens.forEach((n, l) => {
      if (n !== T) throw new ModelFileError(perLayer[l][0]?.where ?? `step ${step}`, field('num_tokens'), `step ${step}: layer ${moe[l]} routed ${n} tokens, layer ${moe[0]} ${T}`);
    });
    const rows = new Int32Array(T * L * K);
    perLayer.forEach((rs, l) => {
      let t = 0;
      for (const r of rs) {
        for (let i = 0; i < r.n; i++, t++) for (let k = 0; k < K; k++) rows[(t * L + l) * K + k] = r.rows[i * K + k];
      }
    });
    return { id: `step ${step}`, tokenIds: null, length: T, promptLength: T, rows, rowCount: T, where: `step ${step}` };
  });
  const seen = [...new Set(recs.map((r) => r.rank))].sort((a, b) => a - b);
  return buildTrace(
    {
      file: files.map((f) => f.name).join(', '), config: o.config, configName: o.configName, tokenizer: null, sequences,
      source: { engine: 'megatron', version: null, dtype: null, parallelism: `ranks ${seen.join(', ')} merged`, note: 'RouterTracer JSONL', ...o.source },
    },
    L,
  );
}
