import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MissingFileError, UnsupportedModelError } from '../../src/io/errors';
import { checkModelMemory, folderName, openConfigOnly, openModel } from '../../src/io/model';
import { nodeFolder } from '../../src/io/node-source';
import { memoryFolder, urlFolder } from '../../src/io/source';
import type { FetchFn, ModelFolder } from '../../src/io/source';
import { bufferSize, streamLoadPlan } from '../../src/io/weights';
import { byteLevelTokenizerJson, modelFiles, synthModel } from '../support/io-models';
import type { SynthModel } from '../support/io-models';

// vocab 300 ≥ the test tokenizer's 263 ids.
const VOCAB = { vocab_size: 300 };
const tokenizer = JSON.stringify(byteLevelTokenizerJson());
const files = (model: SynthModel, shards = 1, withTokenizer = true) =>
  modelFiles(model, { shards, extra: withTokenizer ? { 'tokenizer.json': tokenizer } : {} });

async function expectStreamsCanonical(folder: ModelFolder, model: SynthModel) {
  const opened = await openModel(folder);
  const got = new Map<string, Uint8Array>();
  for (const e of opened.plan.entries) got.set(e.name, new Uint8Array(bufferSize(e)));
  await streamLoadPlan(opened.checkpoint, opened.plan, (e, dst, bytes) => got.get(e.name)!.set(bytes, dst), { chunkBytes: 100 });
  for (const [name, want] of model.canonical) expect(got.get(name)!.subarray(0, want.byteLength)).toEqual(want);
  return opened;
}

/** Serves `files` like a static file server with Range support; a folder over it lists nothing (shards found by HEAD). */
function serve(files: Record<string, Uint8Array | string>): FetchFn {
  const enc = new TextEncoder();
  return async (url, init) => {
    const data = files[decodeURIComponent(url.slice(url.lastIndexOf('/') + 1))];
    if (data === undefined) return new Response(null, { status: 404 });
    const bytes = typeof data === 'string' ? enc.encode(data) : data;
    if (init?.method === 'HEAD') return new Response(null, { headers: { 'content-length': String(bytes.byteLength) } });
    const m = /bytes=(\d+)-(\d+)/.exec((init?.headers as Record<string, string> | undefined)?.Range ?? '');
    if (!m) return new Response(new Uint8Array(bytes));
    const a = Number(m[1]), b = Number(m[2]);
    return new Response(bytes.slice(a, b + 1), { status: 206, headers: { 'content-range': `bytes ${a}-${b}/${bytes.byteLength}` } });
  };
}

describe('openModel', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('from memory, a directory and a URL, single file and sharded', async () => {
    const model = synthModel('qwen2_moe', { layout: 'per-expert', dtype: 'bf16', overrides: VOCAB });
    const opened = await expectStreamsCanonical(memoryFolder(files(model), 'models/qwen-tiny'), model);
    expect(opened.name).toBe('qwen-tiny');
    expect(opened.config.source).toBe('models/qwen-tiny/config.json');
    expect(opened.tokenizer.decode(opened.tokenizer.encode('hello the world'))).toBe('hello the world');

    const dir = await mkdtemp(join(tmpdir(), 'moescope-model-'));
    dirs.push(dir);
    for (const [name, data] of Object.entries(files(model, 3))) await writeFile(join(dir, name), data);
    const fromDisk = await expectStreamsCanonical(await nodeFolder(dir), model);
    expect(fromDisk.checkpoint.sharded).toBe(true);

    const fromUrl = await expectStreamsCanonical(urlFolder('https://example.test/m/', { fetch: serve(files(model, 2)) }), model);
    expect(fromUrl.checkpoint.files.size).toBe(2);
  });

  it('a config without torch_dtype takes the checkpoint dtype, and every tensor must agree with it', async () => {
    const model = synthModel('mixtral', { dtype: 'f16', overrides: { ...VOCAB, torch_dtype: undefined } });
    const opened = await openModel(memoryFolder(files(model)));
    expect(opened.config.weightDtype).toBe('f16');
    const bad = synthModel('mixtral', { dtype: 'f16', overrides: { ...VOCAB, torch_dtype: undefined } });
    const i = bad.tensors.findIndex((t) => t.name === 'model.norm.weight');
    bad.tensors[i] = { ...bad.tensors[i], dtype: 'BF16' };
    await expect(openModel(memoryFolder(files(bad)))).rejects.toThrow(
      "model.safetensors: tensor \"model.norm.weight\": dtype BF16 but the checkpoint's embedding is F16 (config.json declares no torch_dtype) (expected F16)",
    );
  });

  it('missing files and mismatches name the file', async () => {
    const model = synthModel('olmoe', { overrides: VOCAB });
    const { 'config.json': _c, ...noConfig } = files(model);
    await expect(openModel(memoryFolder(noConfig, 'm'))).rejects.toThrow(MissingFileError);
    await expect(openModel(memoryFolder(noConfig, 'm'))).rejects.toThrow('config.json: not found in m');
    await expect(openModel(memoryFolder(files(model, 1, false), 'm'))).rejects.toThrow('tokenizer.json: not found in m');
    const small = synthModel('olmoe', { overrides: { vocab_size: 200 } });
    await expect(openModel(memoryFolder(files(small), 'm'))).rejects.toThrow(
      'tokenizer.json: has token ids up to 262 but m/config.json has vocab_size 200',
    );
    const unknown = synthModel('olmoe', { overrides: VOCAB });
    unknown.config.model_type = 'llama';
    await expect(openModel(memoryFolder(files(unknown), 'm'))).rejects.toThrow('m/config.json: field "model_type": unknown model type "llama"');
    const shardGone = files(model, 2);
    delete shardGone['model-00002-of-00002.safetensors'];
    await expect(openModel(memoryFolder(shardGone, 'm'))).rejects.toThrow(
      /^model\.safetensors\.index\.json: field "weight_map\[".+"\]": shard "model-00002-of-00002\.safetensors" \(\d+ tensors\) is not in m$/,
    );
  });

  it('models it cannot run are refused with the reason; config-only mode still reads them', async () => {
    const model = synthModel('qwen3_moe', { overrides: { ...VOCAB, rope_parameters: { rope_type: 'longrope', rope_theta: 1e6, factor: 4 } } });
    const folder = memoryFolder(files(model), 'models/q3');
    await expect(openModel(folder)).rejects.toThrow(UnsupportedModelError);
    await expect(openModel(folder)).rejects.toThrow('models/q3/config.json: this model can be drawn in config-only mode but not run: RoPE scaling "longrope"');
    const config = await openConfigOnly(folder);
    expect(config.unsupported).toMatch(/longrope/);
    expect(config.numExperts).toBe(5);
    // Config-only needs nothing but config.json.
    expect((await openConfigOnly(memoryFolder({ 'config.json': JSON.stringify(model.config) }))).family).toBe('qwen3_moe');
  });

  it('memory check from the opened model', async () => {
    const opened = await openModel(memoryFolder(files(synthModel('granitemoe', { overrides: VOCAB })), 'models/granite-tiny'));
    const fits = checkModelMemory(opened, { maxBufferSize: 2 ** 30, maxStorageBufferBindingSize: 2 ** 27, budgetBytes: 2 ** 30 }, { contextLength: 128 });
    expect(fits.fits).toBe(true);
    const tight = checkModelMemory(opened, { maxBufferSize: 2 ** 30, maxStorageBufferBindingSize: 2 ** 27, budgetBytes: 1000 }, { contextLength: 128 });
    expect(tight.message).toMatch(/^granite-tiny needs [\d.]+ kB of GPU memory/);
  });

  it('folder names', () => {
    expect(folderName('/models/Mixtral-8x7B-v0.1/')).toBe('Mixtral-8x7B-v0.1');
    expect(folderName('https://huggingface.co/org/OLMoE-1B-7B/resolve/main/')).toBe('main');
    expect(folderName('C:\\models\\olmoe')).toBe('olmoe');
  });
});
