// The analyses on the engine's own buffers, each against a CPU computation on the Mixtral fixture: co-activation and
// transition counts from the routing ring against counts of the experts transformers chose (exact), and the ablation
// sweep's Δ log-likelihood and KL against the float64 reference decoder run with the expert removed; merged experts
// against the reference decoder on weights merged here.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { planTensorsF32 } from '../../src/loading/plan-f32';
import { nodeFolder } from '../../src/io/node-source';
import { openModel } from '../../src/io/model';
import { ablationSweep } from '../../src/engine/analysis/ablation-sweep';
import { ExpertMerger, type MergeMode } from '../../src/engine/analysis/expert-merge';
import { pathways } from '../../src/analysis/pathways';
import { AtlasBuilder } from '../../src/analysis/atlas';
import { decoderRef } from '../../src/reference/decoder';
import { relativeError, sessionOpener } from '../support/sessions';

const FIXTURE = join(__dirname, '..', 'fixtures', 'mixtral'); // 2 layers × 8 experts, top-2, f32
const golden = JSON.parse(readFileSync(join(FIXTURE, 'golden.json'), 'utf8')) as {
  input_ids: number[];
  prefill: { routing: { layer: number; ids: number[][] }[] };
};
const ids = golden.input_ids;

/** SwiftShader on a shared machine: a whole-model test may take minutes. */
const SLOW = 400_000;
// 16 tokens per step: the 27-token prompt runs in two steps.
const open = sessionOpener(FIXTURE, { contextLength: 64, maxTokensPerStep: 16 });

describe('pathways from the routing ring', () => {
  it('co-activation and transition counts equal counts of the experts transformers chose', async () => {
    const s = await open();
    await s.feed(ids);
    const snap = await s.snapshot();
    const p = pathways({ tokens: snap.position, numLayers: snap.numLayers, numExperts: snap.numExperts, chosen: snap.chosen });
    const E = snap.numExperts;
    const sets = golden.prefill.routing.map((r) => r.ids.map((pair) => new Set(pair)));
    for (let l = 0; l < sets.length; l++) {
      for (let i = 0; i < E; i++) {
        for (let j = 0; j < E; j++) {
          const together = i === j ? 0 : sets[l].filter((set) => set.has(i) && set.has(j)).length;
          expect(p.coactivation[l][i * E + j], `layer ${l} (${i}, ${j})`).toBe(together);
          if (l + 1 < sets.length) {
            const flow = sets[l].filter((set, t) => set.has(i) && sets[l + 1][t].has(j)).length;
            expect(p.transitions[l][i * E + j], `layers ${l}→${l + 1} (${i}, ${j})`).toBe(flow);
          }
        }
      }
    }
    // Top-1 predictability from transformers' first choices, counted here by a map of successor counts.
    const first = golden.prefill.routing.map((r) => r.ids.map((pair) => pair[0]));
    const successors = new Map<number, Map<number, number>>();
    first[0].forEach((a, t) => {
      const m = successors.get(a) ?? new Map<number, number>();
      m.set(first[1][t], (m.get(first[1][t]) ?? 0) + 1);
      successors.set(a, m);
    });
    const hits = [...successors.values()].reduce((n, m) => n + Math.max(...m.values()), 0);
    expect(p.predictability[0].accuracy).toBeCloseTo(hits / ids.length, 12);
  }, SLOW);
});

describe('causal expert atlas', () => {
  it('Δ log-likelihood and KL of every ablation match the float64 reference with the expert removed', async () => {
    const s = await open();
    await s.feed(ids.slice(0, 5));
    const c = s.config;
    const V = c.vocabSize;
    const gpuAtlas = new AtlasBuilder(ids, V);
    let runs = 0;
    await ablationSweep(s, ids, {
      onRun: (cell, logits) => {
        runs++;
        if (cell) gpuAtlas.add(cell.layer, cell.expert, logits);
        else gpuAtlas.setBase(logits);
      },
    });
    expect(runs).toBe(1 + c.numLayers * c.numExperts);
    // The session's text and policy are back as they were.
    expect([...s.tokens]).toEqual(ids.slice(0, 5));
    expect(Array.from(s.getPolicy().ablated).every((a) => a === 0)).toBe(true);

    const model = await openModel(await nodeFolder(FIXTURE));
    const weights = await planTensorsF32(model);
    const refAtlas = new AtlasBuilder(ids, V);
    refAtlas.setBase(decoderRef(c, weights, ids));
    const E = c.numExperts;
    for (let l = 0; l < c.numLayers; l++) {
      for (let e = 0; e < E; e++) {
        const ablated = new Uint8Array(c.numLayers * E);
        ablated[l * E + e] = 1;
        refAtlas.add(l, e, decoderRef(c, weights, ids, { ablated }));
      }
    }
    const gpu = gpuAtlas.build();
    const ref = refAtlas.build();
    expect(Math.abs(gpu.logLikelihood - ref.logLikelihood)).toBeLessThan(1e-3);
    const byCell = new Map(ref.entries.map((x) => [`${x.layer}.${x.expert}`, x]));
    let worst = 0;
    for (const g of gpu.entries) {
      const r = byCell.get(`${g.layer}.${g.expert}`)!;
      worst = Math.max(worst, Math.abs(g.deltaLogLikelihood - r.deltaLogLikelihood));
      expect(Math.abs(g.deltaLogLikelihood - r.deltaLogLikelihood), `layer ${g.layer} expert ${g.expert}`).toBeLessThan(1e-4);
      expect(Math.abs(g.meanKl - r.meanKl)).toBeLessThan(1e-5);
      // The most hurt tokens: the same fall in log-probability (positions may swap where falls tie near 0).
      g.mostHurt.forEach((h, i) => expect(Math.abs(h.delta - r.mostHurt[i].delta)).toBeLessThan(1e-4));
    }
    // Every ablation changes something (the check is not vacuous), and the ranking is the reference's.
    expect(Math.min(...gpu.entries.map((x) => x.meanKl))).toBeGreaterThan(1e-6);
    expect(gpu.entries.map((x) => `${x.layer}.${x.expert}`)).toEqual(ref.entries.map((x) => `${x.layer}.${x.expert}`));
    console.log(`ablation sweep vs reference: worst |ΔΔLL| ${worst.toExponential(2)}`);
  }, SLOW);
});


describe('expert merging', () => {
  it('an averaged layer and a copied expert predict as the reference on merged weights; restore gives the model back', async () => {
    const s = await open();
    const c = s.config;
    const E = c.numExperts;
    const original = await s.feedWithLogits(ids);
    const weights = await planTensorsF32(await openModel(await nodeFolder(FIXTURE)));
    const merger = new ExpertMerger(s);
    const cases: [number, MergeMode][] = [[0, { kind: 'average' }], [1, { kind: 'copy', expert: 5 }]];
    for (const [layer, mode] of cases) {
      await merger.merge(layer, mode);
      expect(merger.mergedLayers).toEqual([layer]);
      await s.reset();
      const merged = await s.feedWithLogits(ids);
      // The same merge, done here on the CPU copy of the weights.
      const edited = new Map<string, ArrayLike<number>>(weights);
      for (const role of ['expertsGateUp', 'expertsDown']) {
        const w = weights.get(`layers.${layer}.${role}`)!;
        const n = w.length / E;
        const one = new Float64Array(n);
        for (let i = 0; i < n; i++) {
          if (mode.kind === 'copy') one[i] = w[mode.expert * n + i];
          else for (let e = 0; e < E; e++) one[i] += w[e * n + i] / E;
        }
        edited.set(`layers.${layer}.${role}`, Float64Array.from({ length: w.length }, (_, i) => one[i % n]));
      }
      const ref = decoderRef(c, edited, ids);
      expect(relativeError(merged, ref), `layer ${layer} ${mode.kind}`).toBeLessThan(1e-5);
      expect(relativeError(merged, original)).toBeGreaterThan(1e-3); // the merge changed the predictions
      merger.restore();
      expect(merger.mergedLayers).toEqual([]);
      await s.reset();
      expect(Array.from(await s.feedWithLogits(ids))).toEqual(Array.from(original));
    }
  }, SLOW);
});
