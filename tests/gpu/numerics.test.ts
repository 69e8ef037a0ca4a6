// Numerics: NaN or ±Inf reaching a router is flagged on the GPU in the routing record (which layer, which token),
// and the token is not routed there, so bad numbers never show as routing. Injected into copies of the Mixtral fixture.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../src/loading/load-model';
import { parseSafetensorsHeader } from '../../src/io/safetensors';
import { memoryFolder } from '../../src/io/source';
import type { Session } from '../../src/engine/model/session';
import { testGpu } from '../support/gpu';

const DIR = join(__dirname, '..', 'fixtures', 'mixtral'); // 2 layers × 8 experts, top-2, f32
const files = Object.fromEntries(['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'].map((f) => [f, readFileSync(join(DIR, f))]));
const golden = JSON.parse(readFileSync(join(DIR, 'golden.json'), 'utf8')) as { input_ids: number[]; top_k: number };
const T = golden.input_ids.length;

/** The fixture's files with `value` written into element `index` of an f32 tensor. */
function poisoned(tensor: string, index: number, value: number): Record<string, Uint8Array> {
  const bytes = new Uint8Array(files['model.safetensors']);
  const view = new DataView(bytes.buffer);
  const n = Number(view.getBigUint64(0, true));
  const header = parseSafetensorsHeader('model.safetensors', bytes.length, n, bytes.subarray(8, 8 + n));
  view.setFloat32(header.tensors.get(tensor)!.begin + index * 4, value, true);
  return { ...files, 'model.safetensors': bytes };
}

const sessions: Session[] = [];
afterAll(() => sessions.forEach((s) => s.destroy()));
async function run(folderFiles: Record<string, Uint8Array>): Promise<Session> {
  const s = await loadModel(await testGpu(), memoryFolder(folderFiles), { contextLength: 64, maxTokensPerStep: 16 });
  sessions.push(s);
  await s.feed(golden.input_ids);
  return s;
}
const layerSum = (counts: Uint32Array, l: number, E: number) => counts.subarray(l * E, (l + 1) * E).reduce((a, b) => a + b, 0);

describe('non-finite numbers in the routing record', () => {
  it('a clean model flags nothing', async () => {
    const snap = await (await run(files)).snapshot();
    expect(snap.nonFinite).toEqual([]);
  });

  it('a NaN router weight: every token flagged in that layer, nothing counted there, the other layer routed', async () => {
    const s = await run(poisoned('model.layers.1.block_sparse_moe.gate.weight', 5, NaN));
    const snap = await s.snapshot();
    const E = s.config.numExperts;
    expect(snap.nonFinite).toEqual(Array.from({ length: T }, (_, position) => ({ position, layer: 1, logits: true, scores: true })));
    expect(layerSum(snap.counts, 1, E)).toBe(0);
    expect(Array.from(snap.probMass.subarray(E, 2 * E)).every((v) => v === 0)).toBe(true);
    expect(Number.isFinite(snap.zLossSum[1])).toBe(true);
    expect(layerSum(snap.counts, 0, E)).toBe(T * golden.top_k);
    // The ring shows no expert for the flagged slots, so the heatmap draws nothing there.
    for (let p = 0; p < T; p++) expect(snap.assigned[(p * 2 + 1) * 8]).toBe(0xffffffff);
    // Stepping back rebuilds the statistics from the ring without bringing NaN back.
    await s.back(3);
    const back = await s.snapshot();
    expect(back.nonFinite).toHaveLength(T - 3);
    expect(Array.from(back.probMass).every(Number.isFinite)).toBe(true);
  });

  it('an Inf in one token\'s embedding: flagged from that token on, at layer 0 first', async () => {
    const id = golden.input_ids[6];
    const first = golden.input_ids.indexOf(id);
    const H = 64;
    const s = await run(poisoned('model.embed_tokens.weight', id * H + 3, Infinity));
    const snap = await s.snapshot();
    expect(snap.nonFinite.length).toBeGreaterThan(0);
    expect(snap.nonFinite[0]).toMatchObject({ position: first, layer: 0, logits: true });
    expect(snap.nonFinite.every((f) => f.position >= first)).toBe(true);
    expect(s.gpu.recentErrors).toEqual([]);
  });
});
