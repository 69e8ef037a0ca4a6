// Importers on records written as each engine writes them (tests/fixtures/traces, made by
// tools/make_trace_fixtures.py with the engine version in each file name): ids land on the right tokens and MoE
// layers, −1 positions stay unknown, several requests become sequences, ids-only sources say so, and mismatches
// name the file and the field.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { importVllm } from '../../src/trace/import-vllm';
import { importSglang } from '../../src/trace/import-sglang';
import { importMegatron } from '../../src/trace/import-megatron';
import { encodeTrace } from '../../src/trace/writer';
import { TraceFile } from '../../src/trace/reader';
import { MemorySource } from '../../src/io/source';
import { UNKNOWN } from '../../src/trace/format';

const DIR = 'tests/fixtures/traces';
const bytes = (f: string) => new Uint8Array(readFileSync(`${DIR}/${f}`));
const json = (f: string) => JSON.parse(readFileSync(`${DIR}/${f}`, 'utf8'));
const qwen3 = JSON.parse(readFileSync('tests/fixtures/qwen3_moe/config.json', 'utf8'));
const qwen2 = JSON.parse(readFileSync('tests/fixtures/qwen2_moe/config.json', 'utf8'));
const opts = (file: string, config = qwen3) => ({ file, config, configName: 'config.json' });
const flat = (rows: number[][][]) => rows.flat(2);
/** Expert ids of tokens [a, b) of an imported trace, as a flat list. */
const tokens = (experts: Int32Array, a: number, b: number, slot: number) => Array.from(experts.subarray(a * slot, b * slot));

/** The .npy's int16 values, read by hand: magic, version 1.0, u16 header length, header, data. */
function npyInt16(b: Uint8Array): number[] {
  const view = new DataView(b.buffer, b.byteOffset);
  const start = 10 + view.getUint16(8, true);
  return Array.from({ length: (b.byteLength - start) / 2 }, (_, i) => view.getInt16(start + 2 * i, true));
}

describe('vLLM', () => {
  it('0.21 offline .npy (int16 [tokens, moe_layers, k]): one sequence, prefix-cached rows unknown, no ids', () => {
    const { meta, arrays } = importVllm(bytes('vllm-0.21-offline.npy'), opts('vllm-0.21-offline.npy'));
    expect(meta.numTokens).toBe(9);
    expect(meta.recorded.tokenIds).toBe(false);
    expect(arrays.tokenIds).toBeUndefined();
    expect(Array.from(arrays.experts)).toEqual(npyInt16(bytes('vllm-0.21-offline.npy')));
    expect(tokens(arrays.experts, 0, 3, 8).every((e) => e === UNKNOWN)).toBe(true);
  });

  it('0.21 /v1/completions, n = 2: the prompt once, each choice its own sequence, the last token unknown', () => {
    const doc = json('vllm-0.21-completions.json');
    const { meta, arrays } = importVllm(bytes('vllm-0.21-completions.json'), opts('vllm-0.21-completions.json'));
    expect(meta.sequences).toEqual([
      { id: 'cmpl-8f2c#0', start: 0, length: 10, promptLength: 6 },
      { id: 'cmpl-8f2c#1', start: 10, length: 3, promptLength: 0 },
    ]);
    expect(Array.from(arrays.tokenIds!)).toEqual([5, 17, 33, 2, 41, 9, 7, 8, 9, 10, 11, 12, 13]);
    expect(tokens(arrays.experts, 0, 6, 8)).toEqual(flat(doc.prompt_routed_experts));
    expect(tokens(arrays.experts, 0, 2, 8).every((e) => e === UNKNOWN)).toBe(true);
    expect(tokens(arrays.experts, 6, 9, 8)).toEqual(flat(doc.choices[0].routed_experts));
    expect(tokens(arrays.experts, 9, 10, 8)).toEqual(new Array(8).fill(UNKNOWN));
    expect(tokens(arrays.experts, 10, 12, 8)).toEqual(flat(doc.choices[1].routed_experts));
    expect(tokens(arrays.experts, 12, 13, 8)).toEqual(new Array(8).fill(UNKNOWN));
  });

  it('0.22 generate endpoint: base64 np.save rows from the first prompt token to the penultimate generated one', () => {
    const doc = json('vllm-0.22-generate.json');
    const { meta, arrays } = importVllm(bytes('vllm-0.22-generate.json'), opts('vllm-0.22-generate.json'));
    expect(meta.sequences).toEqual([{ id: '0', start: 0, length: 8, promptLength: 5 }]);
    expect(tokens(arrays.experts, 0, 7, 8)).toEqual(npyInt16(Buffer.from(doc.choices[0].routed_experts, 'base64')));
    expect(tokens(arrays.experts, 7, 8, 8)).toEqual(new Array(8).fill(UNKNOWN));
  });

  it('rows of another model are refused with the file and field', () => {
    expect(() => importVllm(bytes('vllm-0.21-completions.json'), opts('c.json', qwen2))).toThrow(
      /^c\.json: field "prompt_routed_experts": has 4 experts per token; the config's num_experts_per_tok is 3/,
    );
  });

  it('writes a trace that reads back', async () => {
    const { meta, arrays } = importVllm(bytes('vllm-0.21-completions.json'), opts('c.json'));
    const t = await TraceFile.open(new MemorySource('c.trace', encodeTrace(meta, arrays)));
    expect(await t.experts(0, 13)).toEqual(arrays.experts);
    expect(await t.weights(0, 13)).toBeNull();
  });
});

describe('SGLang', () => {
  it('0.5 meta_info.routed_experts (base64 int32 [tokens, num_hidden_layers, k]): dense layer dropped, two requests', () => {
    const docs = json('sglang-0.5-generate.json');
    const { meta, arrays } = importSglang(bytes('sglang-0.5-generate.json'), opts('s.json', qwen2));
    expect(meta.moeLayers).toEqual([0, 2]);
    expect(meta.sequences).toEqual([
      { id: 'a1', start: 0, length: 8, promptLength: 5 },
      { id: 'b2', start: 8, length: 6, promptLength: 4 },
    ]);
    const raw = Buffer.from(docs[0].meta_info.routed_experts, 'base64');
    const src = new Int32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4); // [7, 3, 3]
    const want: number[] = [];
    for (let t = 0; t < 7; t++) for (const l of [0, 2]) for (let k = 0; k < 3; k++) want.push(src[(t * 3 + l) * 3 + k]);
    expect(tokens(arrays.experts, 0, 7, 6)).toEqual(want);
    expect(tokens(arrays.experts, 7, 8, 6)).toEqual(new Array(6).fill(UNKNOWN));
    // Generated ids are known, prompt ids are not (SGLang returns output_ids only).
    expect(Array.from(arrays.tokenIds!.subarray(0, 8))).toEqual([-1, -1, -1, -1, -1, 30, 31, 32]);
  });

  it('0.5 expert-distribution per_token dump: [layers, tokens, k] transposed, one sequence per forward pass', () => {
    const doc = json('sglang-0.5-per-token.json');
    const { meta, arrays } = importSglang(bytes('sglang-0.5-per-token.json'), opts('p.json'));
    expect(meta.sequences).toEqual([
      { id: 'pass 0 rank 0', start: 0, length: 4, promptLength: 4 },
      { id: 'pass 1 rank 0', start: 4, length: 1, promptLength: 0 },
    ]);
    const topk = doc.records[0].topk_ids_of_layer as number[][][];
    expect(tokens(arrays.experts, 2, 3, 8)).toEqual([...topk[0][2], ...topk[1][2]]);
    expect(Array.from(arrays.tokenIds!)).toEqual([1, 2, 3, 4, 5]);
  });

  it('0.5 stat dump: counts only, no per-token records', async () => {
    const doc = json('sglang-0.5-stat.json');
    const { meta, arrays } = importSglang(bytes('sglang-0.5-stat.json'), opts('st.json'));
    expect(meta.countSteps).toBe(3);
    expect(meta.numTokens).toBe(0);
    expect(Array.from(arrays.stepCounts!)).toEqual(doc.logical_count.flat(2));
    const t = await TraceFile.open(new MemorySource('st.trace', encodeTrace(meta, arrays)));
    expect(await t.stepCounts()).toEqual(arrays.stepCounts);
  });
});

describe('Megatron-core RouterTracer', () => {
  const files = [0, 1].map((r) => ({ name: `megatron-0.16-router_trace_rank${r}.jsonl`, bytes: bytes(`megatron-0.16-router_trace_rank${r}.jsonl`) }));
  const records = (r: number) => readFileSync(`${DIR}/megatron-0.16-router_trace_rank${r}.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

  it('merges ranks per step in rank order, skips MTP records, records no token ids', () => {
    const { meta, arrays } = importMegatron(files, opts('m'));
    expect(meta.sequences.map((s) => [s.id, s.length])).toEqual([['step 0', 7], ['step 1', 2]]);
    expect(meta.recorded.tokenIds).toBe(false);
    const r0 = records(0), r1 = records(1);
    // Step 0: rank 0's 3 tokens then rank 1's 4; token 4 is rank 1's second token.
    const layer0 = r1.find((r) => r.step === 0 && r.layer === 0 && r.block === 'decoder').top_indices[1];
    const layer1 = r1.find((r) => r.step === 0 && r.layer === 1 && r.block === 'decoder').top_indices[1];
    expect(tokens(arrays.experts, 4, 5, 8)).toEqual([...layer0, ...layer1]);
    expect(tokens(arrays.experts, 0, 1, 8)).toEqual([...r0[0].top_indices[0], ...r0[1].top_indices[0]]);
  });

  it('keeps only the ranks asked for', () => {
    const { meta } = importMegatron(files, opts('m'), [1]);
    expect(meta.sequences.map((s) => s.length)).toEqual([4, 1]);
  });

  it('another model\'s k, or a layer that is not MoE in the config, names the file, line and field', () => {
    expect(() => importMegatron(files, opts('m', qwen2))).toThrow(
      'megatron-0.16-router_trace_rank0.jsonl: line 1: field "topk": 4, but the config\'s num_experts_per_tok is 3',
    );
    const bad = { name: 'x.jsonl', bytes: new TextEncoder().encode('{"step":0,"block":"decoder","layer":5,"rank":0,"num_tokens":1,"topk":4,"top_indices":[[1,2,3,4]]}\n') };
    expect(() => importMegatron([bad], opts('m'))).toThrow('x.jsonl: line 1: field "layer": 5 is not a MoE layer of the config (MoE layers: 0, 1)');
  });
});
