// A lost device and a failed upload: the engine comes back to the same token position with the same routing record
// on a new device, and a load that runs out of memory part-way leaves nothing behind and the loaded model working.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GpuDeviceLostError, GpuError } from '../../src/engine/gpu';
import { requestNodeGpu } from '../../src/engine/node/device-node';
import { nodeFolder } from '../../src/io/node-source';
import { loadModel } from '../../src/loading/load-model';
import { restoreSession } from '../../src/loading/restore';
import { testGpu } from '../support/gpu';

const FIXTURES = join(__dirname, '..', 'fixtures');
const OPTIONS = { contextLength: 48, maxTokensPerStep: 8 };
const PROMPT = [1, 397, 440, 496, 293, 317, 37, 292, 290, 295, 198, 172]; // the Mixtral fixture's golden prompt

describe('recovery', () => {
  it('a device destroyed mid-run: re-created, model re-uploaded, same position and routing record', async () => {
    const folder = await nodeFolder(join(FIXTURES, 'mixtral'));
    const first = await requestNodeGpu('moescope-recovery-1');
    const s = await loadModel(first, folder, OPTIONS);
    await s.feed(PROMPT); // 8 + 4 tokens: a prefill step and a shorter one
    const sampling = { temperature: 0.8, topP: 0.9, seed: 5 };
    for (let i = 0; i < 3; i++) await s.generate(sampling);
    await s.back(2);
    s.setPolicy({ ...s.getPolicy(), topK: 1 });
    await s.generate(sampling);
    const before = await s.snapshot();
    const logits = await s.lastLogits();
    const tokens = [...s.tokens];

    first.destroy();
    await first.device.lost;
    await expect(s.generate(sampling)).rejects.toThrow(GpuDeviceLostError);

    const second = await requestNodeGpu('moescope-recovery-2');
    const restored = await restoreSession(s, second, folder);
    expect(restored.tokens).toEqual(tokens);
    expect(restored.getPolicy().topK).toBe(1);
    const after = await restored.snapshot();
    for (const key of ['counts', 'stepCounts', 'dropped', 'rerouted', 'chosen', 'assigned'] as const) {
      expect(Array.from(after[key]), key).toEqual(Array.from(before[key]));
    }
    expect(Array.from(after.weights)).toEqual(Array.from(before.weights).map((v) => expect.closeTo(v, 6)));
    expect(Array.from(await restored.lastLogits())).toEqual(Array.from(logits).map((v) => expect.closeTo(v, 4)));
    // Sampling continues where it was: the restored session and a never-lost replay draw the same next token.
    const twin = await restoreSession(s, second, folder);
    expect(await restored.generate(sampling)).toBe(await twin.generate(sampling));
    expect(second.recentErrors).toEqual([]);
    restored.destroy();
    twin.destroy();
    second.destroy();
  }, 300_000);

  it('an upload that runs out of memory part-way frees what it made; the loaded model keeps working', async () => {
    const gpu = await testGpu();
    const loaded = await loadModel(gpu, await nodeFolder(join(FIXTURES, 'mixtral')), OPTIONS);
    await loaded.feed(PROMPT);
    const logits = await loaded.lastLogits();
    const live = gpu.liveBuffers;
    const create = gpu.createBuffer.bind(gpu);
    let calls = 0;
    gpu.createBuffer = (d) => {
      if (++calls === 25) throw new GpuError('out-of-memory', `injected at ${d.label}`);
      return create(d);
    };
    try {
      await expect(loadModel(gpu, await nodeFolder(join(FIXTURES, 'olmoe')), OPTIONS)).rejects.toThrow(/GPU out-of-memory error: injected/);
    } finally {
      gpu.createBuffer = create;
    }
    expect(calls).toBe(25); // part-way: 24 buffers had been made
    expect(gpu.liveBuffers).toBe(live);
    expect(Array.from(await loaded.lastLogits())).toEqual(Array.from(logits));
    await loaded.generate();
    expect(gpu.recentErrors).toEqual([]);
    loaded.destroy();
  }, 300_000);
});
