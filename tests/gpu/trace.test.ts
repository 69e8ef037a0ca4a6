// The engine's own recorder: a trace it writes reads back identical, and on the qwen3_moe golden fixture it is the
// trace tools/export_trace_transformers.py recorded from transformers for the same prompt (committed as
// tests/fixtures/traces/qwen3_moe-transformers.safetensors; how it was made: tests/fixtures/traces/README.md):
// ids exact, gate weights and router probabilities within 1e-5.
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadModel } from '../../src/loading/load-model';
import { recordSequence, traceFromRecording } from '../../src/loading/record-trace';
import type { Session } from '../../src/engine/model/session';
import { nodeFolder } from '../../src/io/node-source';
import { MemorySource } from '../../src/io/source';
import { TraceFile } from '../../src/trace/reader';
import { encodeTrace } from '../../src/trace/writer';
import { testGpu } from '../support/gpu';

const ROOT = join(__dirname, '..', '..');
const FIXTURE = join(ROOT, 'tests', 'fixtures', 'qwen3_moe');
const golden = JSON.parse(readFileSync(join(FIXTURE, 'golden.json'), 'utf8')) as { prompt: string; input_ids: number[] };
const openBytes = (name: string, bytes: Uint8Array) => TraceFile.open(new MemorySource(name, bytes));
const openFile = (path: string) => openBytes(path, new Uint8Array(readFileSync(path)));

const sessions: Session[] = [];
afterAll(() => sessions.forEach((s) => s.destroy()));

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('engine trace', () => {
  it('reads back identical, array by array', async () => {
    const session = await loadModel(await testGpu(), await nodeFolder(FIXTURE), { contextLength: 64, maxTokensPerStep: 16 });
    sessions.push(session);
    await session.feed(golden.input_ids);
    for (let i = 0; i < 3; i++) await session.generate();
    const rec = await recordSequence(session, 'a', golden.input_ids.length);
    const configJson = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8'));
    const source = { engine: 'moescope', version: 'test', dtype: 'f32', parallelism: null };
    const { meta, arrays } = traceFromRecording(session, configJson, [rec], source, null);
    const t = await openBytes('engine.trace', encodeTrace(meta, arrays));
    const T = session.tokens.length;
    expect(t.meta.sequences).toEqual([{ id: 'a', start: 0, length: T, promptLength: golden.input_ids.length }]);
    expect(await t.experts(0, T)).toEqual(rec.experts);
    expect(await t.weights(0, T)).toEqual(rec.weights);
    expect(await t.router(0, T)).toEqual(rec.probs);
    expect(Array.from(await t.tokenIds(0, T))).toEqual(session.tokens);
    expect(await t.tokenTexts(0, T)).toEqual(session.tokens.map((id) => session.tokenizer.piece(id).text));
    // Every token has k distinct experts in each MoE layer.
    for (let i = 0; i < T * 2; i++) expect(new Set(rec.experts.subarray(i * 4, i * 4 + 4)).size).toBe(4);
  }, 240_000);

  it('`moescope trace` gives the transformers exporter\'s trace of the same prompt', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'moescope-trace-')), 'q3.safetensors');
    await promisify(execFile)('node', [join(ROOT, 'bin', 'moescope.mjs'), 'trace', '--model', FIXTURE, '--prompt', golden.prompt, '--max-tokens', '4', '--out', out], {
      cwd: ROOT, timeout: 230_000,
    });
    const ours = await openFile(out);
    const theirs = await openFile(join(ROOT, 'tests', 'fixtures', 'traces', 'qwen3_moe-transformers.safetensors'));
    expect(theirs.meta.source.engine).toBe('transformers');
    const T = theirs.meta.numTokens;
    expect(ours.meta.numTokens).toBe(T);
    expect(ours.meta.sequences).toEqual(theirs.meta.sequences);
    expect(await ours.tokenIds(0, T)).toEqual(await theirs.tokenIds(0, T));
    expect(await ours.experts(0, T)).toEqual(await theirs.experts(0, T));
    expect(maxDiff((await ours.weights(0, T))!, (await theirs.weights(0, T))!)).toBeLessThan(1e-5);
    expect(maxDiff((await ours.router(0, T))!, (await theirs.router(0, T))!)).toBeLessThan(1e-5);
    // Token texts agree except for pieces of a multi-byte character: transformers decodes those to U+FFFD, the
    // engine shows the byte (⟨A9⟩).
    const [a, b] = [(await ours.tokenTexts(0, T))!, (await theirs.tokenTexts(0, T))!];
    const whole = b.flatMap((text, i) => (text.includes('\uFFFD') ? [] : [i]));
    expect(whole.length).toBeGreaterThan(T / 2);
    expect(whole.map((i) => a[i])).toEqual(whole.map((i) => b[i]));
  }, 240_000); // a CLI process compiles its pipelines afresh (SwiftShader), slow beside the rest of the suite
});
