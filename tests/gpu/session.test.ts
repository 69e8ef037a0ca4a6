// The session a person drives: stepping back, what-if policies, the per-token path's mappings, and failures that must
// leave a clear error (too-large models, a lost device).
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../src/loading/load-model';
import { nodeFolder } from '../../src/io/node-source';
import { memoryFolder } from '../../src/io/source';
import { OutOfMemoryError } from '../../src/io/errors';
import { GpuDeviceLostError } from '../../src/engine/gpu';
import { requestNodeGpu } from '../../src/engine/node/device-node';
import { testGpu } from '../support/gpu';
import { sessionOpener } from '../support/sessions';

const ROOT = join(__dirname, '..', '..');
const FIXTURE = join(ROOT, 'tests', 'fixtures', 'qwen3_moe'); // 16 experts, top-4
const golden = JSON.parse(readFileSync(join(FIXTURE, 'golden.json'), 'utf8')) as { input_ids: number[] };

const open = sessionOpener(FIXTURE, { contextLength: 64, maxTokensPerStep: 16 });

describe('session', () => {
  it('step back restores the earlier routing counts and the same next logits', async () => {
    const s = await open();
    await s.feed(golden.input_ids.slice(0, 10));
    const before = await s.snapshot();
    const logitsBefore = await s.lastLogits();
    await s.feed(golden.input_ids.slice(10, 20));
    const after = await s.snapshot();
    expect(Array.from(after.counts)).not.toEqual(Array.from(before.counts));
    await s.back(10);
    expect(s.position).toBe(10);
    const restored = await s.snapshot();
    expect(Array.from(restored.counts)).toEqual(Array.from(before.counts));
    expect(Array.from(restored.probMass)).toEqual(Array.from(before.probMass).map((v) => expect.closeTo(v, 4)));
    expect(Array.from(await s.lastLogits())).toEqual(Array.from(logitsBefore).map((v) => expect.closeTo(v, 4)));
  });

  it('feeding tokens maps no buffer (the per-token path stays on the GPU)', async () => {
    const s = await open();
    const proto = GPUBuffer.prototype as { mapAsync: (...a: unknown[]) => Promise<void> };
    const original = proto.mapAsync;
    let maps = 0;
    proto.mapAsync = function (this: GPUBuffer, ...args: unknown[]) {
      maps++;
      return original.apply(this, args);
    };
    try {
      for (const id of golden.input_ids.slice(0, 12)) await s.feed([id]);
      await s.gpu.device.queue.onSubmittedWorkDone();
      expect(maps).toBe(0);
      await s.snapshot(); // the snapshot path does map: the counter sees it
      expect(maps).toBeGreaterThan(0);
    } finally {
      proto.mapAsync = original;
    }
  });

  it('a k override changes routing; every token then takes k experts per layer', async () => {
    const s = await open();
    const ids = golden.input_ids.slice(0, 8);
    await s.feed(ids);
    const k4 = await s.snapshot();
    await s.reset();
    s.setPolicy({ ...s.getPolicy(), topK: 1 });
    await s.feed(ids);
    const k1 = await s.snapshot();
    const E = s.config.numExperts;
    for (let l = 0; l < s.config.numLayers; l++) {
      const sum = (c: Uint32Array) => c.subarray(l * E, (l + 1) * E).reduce((a, b) => a + b, 0);
      expect(sum(k4.counts)).toBe(ids.length * 4);
      expect(sum(k1.counts)).toBe(ids.length * 1);
    }
  });

  it('generateMany runs ahead without a readback per token and gives the ids and routing of n generate() calls', async () => {
    const one = await open();
    const many = await open();
    const sampling = { temperature: 0.8, topP: 0.9, seed: 5 };
    await one.feed(golden.input_ids.slice(0, 12));
    await many.feed(golden.input_ids.slice(0, 12));
    const stepwise: number[] = [];
    for (let i = 0; i < 6; i++) stepwise.push(await one.generate(sampling));
    const ahead = await many.generateMany(6, sampling);
    expect(ahead).toEqual(stepwise);
    expect(many.tokens).toEqual(one.tokens);
    expect(Array.from((await many.snapshot()).counts)).toEqual(Array.from((await one.snapshot()).counts));
    // The next token continues from the same state.
    expect(await many.generate(sampling)).toBe(await one.generate(sampling));
  });

  it('seeded sampling is reproducible', async () => {
    const s = await open();
    const run = async () => {
      await s.reset();
      await s.feed(golden.input_ids.slice(0, 5));
      const out: number[] = [];
      for (let i = 0; i < 4; i++) out.push(await s.generate({ temperature: 1, topP: 0.9, seed: 42 }));
      return out;
    };
    expect(await run()).toEqual(await run());
  });

  it('weights stream in bounded windows: the queue is awaited after each, and the model is the same', async () => {
    const gpu = await testGpu();
    const queue = gpu.device.queue;
    const original = queue.onSubmittedWorkDone.bind(queue);
    let waits = 0;
    const logits: Float32Array[] = [];
    const loadWaits: number[] = [];
    try {
      queue.onSubmittedWorkDone = () => { waits++; return original(); };
      for (const uploadWindowBytes of [undefined, 4096]) {
        waits = 0;
        const session = await open({ uploadWindowBytes }); // on the shared test device, whose queue is watched
        loadWaits.push(waits);
        await session.feed(golden.input_ids.slice(0, 10));
        logits.push(await session.stepLogits());
      }
    } finally {
      queue.onSubmittedWorkDone = original;
    }
    // The fixture's 1 MB fit one default window; with 4 kB windows every chunk past the window waits (16 here).
    expect(loadWaits[1] - loadWaits[0]).toBeGreaterThanOrEqual(10);
    expect(logits[1]).toEqual(logits[0]);
  });

  it('a model too large for the adapter is refused before anything is uploaded', async () => {
    const gpu = await testGpu();
    const config = readFileSync(join(ROOT, 'public', 'configs', 'mixtral-8x7b.json'), 'utf8');
    const folder = memoryFolder({ 'config.json': config }, 'Mixtral-8x7B');
    await expect(loadModel(gpu, folder)).rejects.toThrow(OutOfMemoryError);
    await expect(loadModel(gpu, folder)).rejects.toThrow(/Mixtral-8x7B needs [\d.]+ GB .*config-only mode/);
  });

  it('a lost device gives a typed error and no further work is submitted', async () => {
    const gpu = await requestNodeGpu('moescope-lost-device-test');
    const s = await loadModel(gpu, await nodeFolder(FIXTURE), { contextLength: 32, maxTokensPerStep: 8 });
    await s.feed(golden.input_ids.slice(0, 3));
    gpu.destroy();
    await gpu.device.lost;
    expect(gpu.isLost).toBe(true);
    await expect(s.feed([golden.input_ids[3]])).rejects.toThrow(GpuDeviceLostError);
    expect(s.position).toBe(3);
  });
});
