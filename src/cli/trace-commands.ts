// moescope trace | import — writing routing traces (docs/trace-format.md).
//   moescope trace --model DIR (--prompt TEXT … | --text FILE …) [--max-tokens N] --out FILE
//   moescope import vllm|sglang|megatron IN… --config config.json [--tokenizer tokenizer.json] [--ranks 0,1] --out FILE
import { parseArgs } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { requestNodeGpu, releaseNodeGpu } from '../engine/node/device-node';
import { loadModel } from '../loading/load-model';
import { recordSequence, traceFromRecording, type RecordedSequence } from '../loading/record-trace';
import { NodeFileSource, nodeFolder } from '../io/node-source';
import { TraceFile } from '../trace/reader';
import { reportData } from './report';
import { reportHtml } from './report-html';
import { parseJson, readJson } from '../io/source';
import { loadTokenizer } from '../io/tokenizer';
import { encodeTrace } from '../trace/writer';
import { importVllm } from '../trace/import-vllm';
import { importSglang } from '../trace/import-sglang';
import { importMegatron } from '../trace/import-megatron';
import type { ImportOptions } from '../trace/import-common';

export const TRACE_USAGE = `usage: moescope trace --model DIR (--prompt TEXT | --text FILE)… [--max-tokens N] --out FILE

  Runs each prompt (or text file) as one sequence from an empty cache, generates up to N tokens greedily
  (default 0) and writes every token's experts, gate weights and router probabilities as a trace.`;

export const IMPORT_USAGE = `usage: moescope import vllm|sglang|megatron IN… --config config.json [--tokenizer tokenizer.json]
                       [--ranks R,R…] [--engine-version V] [--dtype D] [--parallelism TEXT] --out FILE

  vllm       .npy (np.save of prompt_routed_experts / routed_experts) or the server's JSON responses
  sglang     responses with meta_info.routed_experts, or expert-distribution dumps converted by
             tools/convert_sglang_dump.py
  megatron   RouterTracer router_trace_rank*.jsonl files (merged; --ranks keeps some)`;


export async function traceCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      prompt: { type: 'string', multiple: true },
      text: { type: 'string', multiple: true },
      'max-tokens': { type: 'string', default: '0' },
      out: { type: 'string' },
    },
  });
  const prompts = [...(values.prompt ?? []), ...(values.text ?? []).map((f) => readFileSync(f, 'utf8'))];
  if (!values.model || !values.out || prompts.length === 0) {
    console.error(TRACE_USAGE);
    return 2;
  }
  const maxTokens = Number(values['max-tokens']);
  if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new Error(`--max-tokens must be a non-negative integer, got "${values['max-tokens']}"`);
  const gpu = await requestNodeGpu('moescope-trace');
  try {
    const folder = await nodeFolder(values.model);
    const configJson = (await readJson(folder, 'config.json')) as Record<string, unknown>;
    const session = await loadModel(gpu, folder, { name: values.model });
    const recorded: RecordedSequence[] = [];
    for (const [i, text] of prompts.entries()) {
      const ids = session.tokenizer.encode(text);
      if (ids.length === 0) throw new Error(`prompt ${i + 1} encodes to no tokens`);
      await session.reset();
      await session.feed(ids);
      const room = session.contextLength - ids.length;
      for (let g = 0; g < Math.min(maxTokens, room); g++) {
        if ((await session.generate()) === session.tokenizer.eosId) break;
      }
      recorded.push(await recordSequence(session, String(i), ids.length));
    }
    const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    const source = { engine: 'moescope', version, dtype: `${session.config.weightDtype} weights, f32 compute`, parallelism: 'one WebGPU device' };
    const { meta, arrays } = traceFromRecording(session, configJson, recorded, source, basename(values.model));
    writeFileSync(values.out, encodeTrace(meta, arrays));
    console.log(`${values.out}: ${meta.numTokens} tokens in ${meta.sequences.length} sequence(s), ${meta.moeLayers.length} MoE layers, k = ${meta.topK}`);
    session.destroy();
    return 0;
  } finally {
    releaseNodeGpu(gpu);
  }
}

export async function importCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      tokenizer: { type: 'string' },
      ranks: { type: 'string' },
      'engine-version': { type: 'string' },
      dtype: { type: 'string' },
      parallelism: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const [engine, ...inputs] = positionals;
  if (!['vllm', 'sglang', 'megatron'].includes(engine) || inputs.length === 0 || !values.config || !values.out) {
    console.error(IMPORT_USAGE);
    return 2;
  }
  const config = parseJson(values.config, readFileSync(values.config, 'utf8')) as Record<string, unknown>;
  let tokenizer: ImportOptions['tokenizer'] = null;
  if (values.tokenizer) {
    const tok = await loadTokenizer(await nodeFolder(dirname(values.tokenizer)));
    tokenizer = { name: values.tokenizer, text: (id) => (id < tok.vocabSize ? tok.piece(id).text : '') };
  }
  const source = { version: values['engine-version'] ?? null, dtype: values.dtype ?? null, ...(values.parallelism ? { parallelism: values.parallelism } : {}) };
  const opts = (file: string): ImportOptions => ({ file: basename(file), config, configName: values.config!, tokenizer, source });
  const read = (f: string) => new Uint8Array(readFileSync(f));
  let result;
  if (engine === 'megatron') {
    const ranks = values.ranks ? values.ranks.split(',').map(Number) : undefined;
    result = importMegatron(inputs.map((f) => ({ name: basename(f), bytes: read(f) })), opts(inputs[0]), ranks);
  } else {
    if (inputs.length !== 1) throw new Error(`${engine}: give one input file (got ${inputs.length})`);
    result = (engine === 'vllm' ? importVllm : importSglang)(read(inputs[0]), opts(inputs[0]));
  }
  writeFileSync(values.out, encodeTrace(result.meta, result.arrays));
  const m = result.meta;
  const what = m.countSteps > 0 ? `${m.countSteps} steps of counts` : `${m.numTokens} tokens in ${m.sequences.length} sequence(s)`;
  console.log(`${values.out}: ${what}, ${m.moeLayers.length} MoE layers, k = ${m.topK} (from ${engine})`);
  return 0;
}

export const REPORT_USAGE = `usage: moescope report TRACE --out report.html [--gpus G] [--replicas R] [--capacity-factor C] [--step-tokens N]

  One static page (no server, opens offline): load heatmap, per-layer loads and balance metrics, and expert-parallel
  placements (contiguous, round-robin, balanced with R replicas; default G = 8, R = G, C = 1.25, N = 256).`;

export async function reportCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      gpus: { type: 'string', default: '8' },
      replicas: { type: 'string' },
      'capacity-factor': { type: 'string', default: '1.25' },
      'step-tokens': { type: 'string', default: '256' },
    },
  });
  if (positionals.length !== 1 || !values.out) {
    console.error(REPORT_USAGE);
    return 2;
  }
  const positive = (name: string, v: string, integer = true) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) throw new Error(`--${name} must be a non-negative ${integer ? 'integer' : 'number'}, got "${v}"`);
    return n;
  };
  const gpus = positive('gpus', values.gpus);
  const options = {
    gpus,
    replicas: values.replicas === undefined ? gpus : positive('replicas', values.replicas),
    capacityFactor: positive('capacity-factor', values['capacity-factor'], false),
    stepTokens: Math.max(1, positive('step-tokens', values['step-tokens'])),
  };
  const trace = await TraceFile.open(await NodeFileSource.open(basename(positionals[0]), positionals[0]));
  try {
    const data = await reportData(trace, options);
    writeFileSync(values.out, reportHtml(data));
    const best = [...data.placements].sort((a, b) => a.meanStraggler - b.meanStraggler)[0];
    console.log(`${values.out}: ${data.positions} ${data.unit}, ${data.trace.moeLayers.length} MoE layers; lowest mean straggler ratio on ${gpus} GPUs: ${best.kind} ${best.meanStraggler.toFixed(2)}`);
  } finally {
    await trace.close();
  }
  return 0;
}
