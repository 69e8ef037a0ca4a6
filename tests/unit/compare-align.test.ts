// Compare mode's "align experts by weights": a checkpoint whose experts (with their router rows) were only re-indexed
// routes every token to the "same" experts once its routing is read through the matching, and to different ones
// without it; a layer left in order is matched to itself.
import { describe, expect, it } from 'vitest';
import { K_MAX, NO_EXPERT } from '../../src/engine/routing-buffers';
import { alignCheckpoints } from '../../src/ui/compare-align';
import type { LoadedModel } from '../../src/ui/models';
import { relabelRing, routingAgreement } from '../../src/viz/panels/stats';
import type { ExpertWeights } from '../../src/viz/panels/inspector';
import { rng } from '../support/random';

const L = 2, E = 4, H = 6, I = 5, T = 3;
const PERM = [2, 0, 3, 1]; // layer 1: expert e of the first model is expert PERM[e] of the second

function weights(seed: number): ExpertWeights[] {
  const rnd = rng(seed);
  const rows = (n: number) => Array.from({ length: E }, () => Float32Array.from({ length: n }, () => rnd() * 2 - 1));
  return Array.from({ length: L }, () => ({ gateUp: rows(2 * I * H), down: rows(H * I), router: rows(H) }));
}

function model(layers: ExpertWeights[]): LoadedModel {
  const config = { numLayers: L, numExperts: E, hiddenSize: H, moeIntermediateSize: I, moeLayers: [true, true] };
  return { config, weights: { read: async (l: number) => layers[l] } } as unknown as LoadedModel;
}

describe('compare mode: align experts by weights', () => {
  it('matches re-indexed experts back; read through the matching, the routing agrees everywhere', async () => {
    const a = weights(7);
    const permute = <X>(xs: X[]) => xs.map((_, j) => xs[PERM.indexOf(j)]);
    const b = a.map((w, l) => (l === 1 ? { gateUp: permute(w.gateUp), down: permute(w.down), router: permute(w.router) } : w));
    const aligned = await alignCheckpoints(model(a), model(b));
    expect(aligned.layers[0]!.match).toEqual([0, 1, 2, 3]);
    expect(aligned.layers[1]!.match).toEqual(PERM);
    expect(aligned.moved).toBe(4); // PERM moves every expert of layer 1
    expect(aligned.meanMatched).toBeCloseTo(1, 12);
    const { a: ra, b: rb } = rings();
    expect(routingAgreement(ra, rb, T).perLayer[1]).toBeLessThan(1);
    expect(routingAgreement(ra, relabelRing(rb, aligned.relabel), T).perLayer).toEqual([1, 1]);
  });
});

// Routing of A (3 tokens, top-2) and the same routing as B names it (layer 1 re-indexed by PERM).
function rings() {
  const assignedA = new Uint32Array(T * L * K_MAX).fill(NO_EXPERT);
  const picks = [[[0, 1], [2, 3]], [[1, 2], [0, 3]], [[3, 0], [1, 2]]];
  picks.forEach((byLayer, t) => byLayer.forEach((ks, l) => ks.forEach((e, k) => (assignedA[(t * L + l) * K_MAX + k] = e))));
  const assignedB = assignedA.map((e, i) => (Math.floor(i / K_MAX) % L === 1 && e !== NO_EXPERT ? PERM[e] : e));
  const ring = (assigned: Uint32Array) => ({ numLayers: L, numExperts: E, chosen: assigned.slice(), assigned, weights: new Float32Array(assigned.length) });
  return { a: ring(assignedA), b: ring(assignedB) };
}

describe('relabelRing', () => {
  it('renames only the given layers’ expert ids, leaving empty slots empty', () => {
    const { a, b } = rings();
    const inverse = new Array<number>(E);
    PERM.forEach((j, i) => (inverse[j] = i));
    const back = relabelRing(b, [null, inverse]);
    expect(Array.from(back.assigned)).toEqual(Array.from(a.assigned));
    expect(Array.from(back.chosen)).toEqual(Array.from(a.chosen));
  });
});
