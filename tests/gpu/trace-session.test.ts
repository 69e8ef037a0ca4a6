// Replay: a TraceSession fills the same routing buffers a running model does, from a trace. Its snapshots (read
// back from the GPU) must equal counts taken from the trace by hand, at every position reached forward or back,
// over a range that starts mid-trace; unknown (−1) positions are counted nowhere and stored as NO_EXPERT.
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { MemorySource } from '../../src/io/source';
import { TraceFile } from '../../src/trace/reader';
import { encodeTrace } from '../../src/trace/writer';
import { TraceSession } from '../../src/loading/trace-session';
import { K_MAX, NO_EXPERT } from '../../src/model/limits';
import { synthTrace } from '../support/trace';
import { testGpu } from '../support/gpu';

const qwen2 = JSON.parse(readFileSync('tests/fixtures/qwen2_moe/config.json', 'utf8')); // 3 layers, layer 1 dense, 8 experts, k 3
const sessions: TraceSession[] = [];
afterAll(() => sessions.forEach((s) => s.destroy()));

describe('trace replay session', () => {
  const { meta, arrays } = synthTrace(qwen2, { tokens: 300, sequences: 3, weights: true, unknownEvery: 5 });
  const L = 3, M = 2, E = 8, K = 3;
  /** Counts [layers, experts] of trace tokens [a, b), by hand. */
  const counts = (a: number, b: number) => {
    const out = new Uint32Array(L * E);
    for (let t = a; t < b; t++) {
      [0, 2].forEach((layer, m) => {
        for (let k = 0; k < K; k++) {
          const e = arrays.experts[(t * M + m) * K + k];
          if (e >= 0) out[layer * E + e]++;
        }
      });
    }
    return out;
  };

  it('snapshots equal the trace counted by hand, forward and back, over a range', async () => {
    const gpu = await testGpu();
    const trace = await TraceFile.open(new MemorySource('t.safetensors', encodeTrace(meta, arrays)));
    const s = await TraceSession.open(gpu, trace, { start: 100, length: 200 });
    sessions.push(s);
    const ids = Array.from(arrays.tokenIds!.subarray(100, 300));
    await s.feed(ids.slice(0, 37));
    let snap = await s.snapshot();
    expect(snap.position).toBe(37);
    expect(snap.counts).toEqual(counts(100, 137));
    expect(snap.stepCounts).toEqual(counts(136, 137)); // the last token of a batch, as after single steps
    await s.feed(ids.slice(37, 150));
    await s.back(20);
    snap = await s.snapshot();
    expect(snap.counts).toEqual(counts(100, 230));
    expect(snap.stepCounts).toEqual(counts(229, 230)); // after a step back: the last token, as the engine rebuilds it
    expect(s.tokens).toEqual(ids.slice(0, 130));
    // Ring rows: the chosen experts of token 104 (the trace's 105th: every 5th is unknown) and 105.
    for (const [p, unknown] of [[4, true], [5, false]] as const) {
      for (const [m, layer] of [[0, 0], [1, 2]]) {
        const row = Array.from(snap.chosen.subarray((p * L + layer) * K_MAX, (p * L + layer) * K_MAX + K_MAX));
        const want = Array.from(arrays.experts.subarray(((100 + p) * M + m) * K, ((100 + p) * M + m) * K + K));
        expect(row).toEqual([...(unknown ? [NO_EXPERT, NO_EXPERT, NO_EXPERT] : want), ...new Array(K_MAX - K).fill(NO_EXPERT)]);
      }
      expect(snap.chosen[(p * L + 1) * K_MAX]).toBe(NO_EXPERT); // the dense layer
    }
    // Gate sums follow the weights; the metrics see the known tokens.
    expect(snap.gateSum[2 * E + arrays.experts[(105 * M + 1) * K]]).toBeGreaterThan(0);
    await s.reset();
    expect((await s.snapshot()).counts.every((c) => c === 0)).toBe(true);
    await expect(s.generate()).rejects.toThrow(/replays the tokens it recorded/);
    await expect(s.feed(new Array(201).fill(0))).rejects.toThrow(/range ends at 200 tokens/);
    // Another range (a request) from the next reset on.
    s.selectRange({ start: 10, length: 20 });
    await s.reset();
    await s.feed(new Array(5).fill(0));
    snap = await s.snapshot();
    expect(snap.counts).toEqual(counts(10, 15));
    expect(s.tokens).toEqual(Array.from(arrays.tokenIds!.subarray(10, 15)));
    expect(() => s.selectRange({ start: 290, length: 20 })).toThrow(/range \[290, 310\) outside the 300 tokens/);
  });
});
