import { describe, expect, it } from 'vitest';
import { noiseSum, pcgHash, routerNoise } from '../../src/model/routing-noise';
import { layerMetrics } from '../../src/engine/routing/metrics';
import { defaultPolicy, expertCapacity, validatePolicy } from '../../src/engine/routing/policy';
import { PLAN_BLOCK_WORDS, planLayout } from '../../src/engine/kernels/moe-layout';
import { NO_EXPERT, assignCapacity, routerRef, type RouterRefInput } from '../../src/reference/router';
import type { RouterConfig } from '../../src/model/config';
import { makeConfig } from '../support/moe';

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

function router(o: Partial<RouterConfig>): RouterConfig {
  return { scoring: 'softmax', topK: 2, normTopK: false, hasBias: false, hasCorrectionBias: false, nGroup: 1, topkGroup: 1, routedScalingFactor: 1, capacityFactor: 0, ...o };
}

/** Routes one token whose logits are `z` (router = identity, x = z). */
function route(z: number[], r: RouterConfig, extra: Partial<RouterRefInput> = {}) {
  const E = z.length;
  const w = new Float64Array(E * E).map((_, i) => (i % (E + 1) === 0 ? 1 : 0));
  return routerRef({ T: 1, H: E, E, x: z, w, router: r, layer: 0, position: 0, k: r.topK, noiseStd: 0, noiseSeed: 0, temperature: 1, ...extra });
}

function softmax(z: number[]): number[] {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b);
  return e.map((v) => v / s);
}

describe('router reference: each family as transformers computes it', () => {
  const z = [1, 2, 3, 0, -1, 0.5];
  const p = softmax(z);
  it('softmax → top-k, not renormalised (OLMoE, Qwen2-MoE, DeepSeek-V2 greedy)', () => {
    const r = route(z, router({ topK: 2 }));
    expect(Array.from(r.chosen)).toEqual([2, 1]);
    expect(r.weights[0]).toBeCloseTo(p[2], 12);
    expect(r.weights[1]).toBeCloseTo(p[1], 12);
  });
  it('softmax → top-k → renormalise (Mixtral, Granite, Qwen3 norm_topk_prob)', () => {
    const r = route(z, router({ topK: 2, normTopK: true }));
    expect(Array.from(r.chosen)).toEqual([2, 1]);
    expect(r.weights[0]).toBeCloseTo(p[2] / (p[2] + p[1]), 12);
    expect(r.weights[0] + r.weights[1]).toBeCloseTo(1, 12);
  });
  it('DeepSeek-V2 group_limited_greedy: group score = max, then × routed_scaling_factor', () => {
    const zz = [0, 2.5, 1, 1.9, 2, 2.2, -1, 0];
    const pp = softmax(zz);
    const r = route(zz, router({ topK: 2, nGroup: 4, topkGroup: 1, routedScalingFactor: 16 }));
    // group 0 holds the best expert (1); expert 5 (2.2) is in a dropped group, so the second pick is expert 0
    expect(Array.from(r.chosen)).toEqual([1, 0]);
    expect(r.weights[0]).toBeCloseTo(16 * pp[1], 10);
    expect(r.weights[1]).toBeCloseTo(16 * pp[0], 10);
  });
  it('DeepSeek-V3: sigmoid, correction bias for selection only, top-2-sum group scores, renormalise, scale', () => {
    const zz = [2, -1, 0.5, 0.4, 1.5, 1.4, -2, 3];
    const r3 = router({ topK: 2, scoring: 'sigmoid', normTopK: true, hasCorrectionBias: true, nGroup: 4, topkGroup: 2, routedScalingFactor: 2.5 });
    const noBias = route(zz, r3, { correction: new Float64Array(8) });
    // groups (0,1) 1.15, (2,3) 1.22, (4,5) 1.62, (6,7) 1.07 → keep groups 2 and 1 → experts 4, 5
    expect(Array.from(noBias.chosen)).toEqual([4, 5]);
    const bias = new Float64Array(8);
    bias[7] = 0.5; // group (6,7) scores 0.12 + 1.45 = 1.57 → groups 2 and 3 → experts 7 (1.45) and 4 (0.82)
    const r = route(zz, r3, { correction: bias });
    expect(Array.from(r.chosen)).toEqual([7, 4]);
    const s7 = sigmoid(3), s4 = sigmoid(1.5); // weights use the raw sigmoid scores, not the biased ones
    expect(r.weights[0]).toBeCloseTo((2.5 * s7) / (s7 + s4), 10);
    expect(r.weights[1]).toBeCloseTo((2.5 * s4) / (s7 + s4), 10);
  });
  it('Switch: top-1, weight = the max probability', () => {
    const r = route(z, router({ topK: 1, capacityFactor: 1 }));
    expect(Array.from(r.chosen)).toEqual([2]);
    expect(r.weights[0]).toBeCloseTo(p[2], 12);
  });
  it('ties go to the lower expert index', () => {
    expect(Array.from(route([1, 1, 1, 1], router({ topK: 3 })).chosen)).toEqual([0, 1, 2]);
    expect(Array.from(route([0, 2, 0, 2], router({ topK: 2 })).chosen)).toEqual([1, 3]);
  });
});

describe('router reference: what-if controls', () => {
  const z = [1, 2, 3, 0];
  it('an ablated expert does not exist: no softmax mass, never chosen', () => {
    const r = route(z, router({ topK: 2 }), { ablated: [0, 0, 1, 0] });
    expect(Array.from(r.chosen)).toEqual([1, 0]);
    const q = softmax([1, 2, 0]);
    expect(r.probs[2]).toBe(0);
    expect(r.probs[1]).toBeCloseTo(q[1], 12);
    expect(r.probs[0] + r.probs[1] + r.probs[3]).toBeCloseTo(1, 12);
  });
  it('k larger than the experts left leaves empty slots', () => {
    const r = route(z, router({ topK: 3 }), { ablated: [1, 1, 0, 1] });
    expect(Array.from(r.chosen)).toEqual([2, NO_EXPERT, NO_EXPERT]);
  });
  it('temperature divides the logits', () => {
    const r = route(z, router({ topK: 1 }), { temperature: 2 });
    expect(r.probs[2]).toBeCloseTo(softmax(z.map((v) => v / 2))[2], 12);
    expect(r.lse[0]).toBeCloseTo(Math.log(z.reduce((a, v) => a + Math.exp(v / 2), 0)), 12);
  });
  it('noise adds σ · routerNoise(seed, layer, position, expert) before the temperature', () => {
    const r = route(z, router({ topK: 1 }), { noiseStd: 0.5, noiseSeed: 3, temperature: 2, position: 7, layer: 2 });
    const zz = z.map((v, e) => (v + 0.5 * routerNoise(3, 2, 7, e)) / 2);
    expect(r.probs[0]).toBeCloseTo(softmax(zz)[0], 12);
  });
});

describe('router noise', () => {
  it('is a pure function of (seed, layer, position, expert)', () => {
    expect(routerNoise(1, 0, 0, 0)).toBe(-1.103489875793457); // pinned: the GPU computes the same bits
    expect(noiseSum(1, 0, 0, 0)).toBe(5134363);
    expect(routerNoise(42, 3, 17, 5)).toBe(-0.524022102355957);
    const keys = [[1, 0, 0, 0], [2, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1]];
    expect(new Set(keys.map((k) => routerNoise(k[0], k[1], k[2], k[3]))).size).toBe(keys.length);
  });
  it('has mean 0 and variance 1, within ±6', () => {
    let s = 0, s2 = 0, lo = 0, hi = 0;
    const n = 40000;
    for (let i = 0; i < n; i++) {
      const v = routerNoise(9, i % 7, Math.floor(i / 7), i % 13);
      s += v;
      s2 += v * v;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(Math.abs(s / n)).toBeLessThan(0.02);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.03);
    expect(lo).toBeGreaterThanOrEqual(-6);
    expect(hi).toBeLessThanOrEqual(6);
  });
  it('pcgHash matches published PCG hash outputs', () => {
    // pcg_hash(0) and pcg_hash(1), computed from the reference C (Jarzynski & Olano 2020)
    expect(pcgHash(0)).toBe(129708002);
    expect(pcgHash(1)).toBe(2831084092);
  });
});

describe('capacity', () => {
  // 10 tokens, top-1 over 4 experts: 7 choose expert 0, 2 expert 1, 1 expert 2; the overflow prefers expert 3
  const chosen = Uint32Array.from([0, 0, 1, 0, 2, 0, 0, 1, 0, 0]);
  const prefs = [[3, 1, 0, 2], [1, 3, 0, 2], [1, 0, 3, 2]];
  const choice = Float64Array.from([0, 0, 1, 0, 2, 0, 0, 1, 0, 0].flatMap((c) => prefs[c]));
  it('capacity = ceil(factor · tokens · k / experts)', () => {
    expect(expertCapacity(1.2, 10, 1, 4)).toBe(3);
    expect(expertCapacity(1, 16, 2, 8)).toBe(4);
    expect(expertCapacity(0, 16, 2, 8)).toBe(0);
    expect(expertCapacity(0.01, 1, 1, 64)).toBe(1);
  });
  it('the example: first choices 7/2/1/0 with capacity 3 → 3/2/1/4 re-routed', () => {
    const r = assignCapacity(chosen, choice, 10, 1, 4, 3, 'reroute');
    expect(Array.from(r.counts)).toEqual([3, 2, 1, 4]);
    expect(Array.from(r.assigned)).toEqual([0, 0, 1, 0, 2, 3, 3, 1, 3, 3]);
    expect(Array.from(r.rerouted)).toEqual([0, 0, 0, 4]);
    expect(Array.from(r.dropped)).toEqual([0, 0, 0, 0]);
  });
  it('… and 3/2/1/0 with 4 dropped from expert 0 under the drop policy', () => {
    const r = assignCapacity(chosen, choice, 10, 1, 4, 3, 'drop');
    expect(Array.from(r.counts)).toEqual([3, 2, 1, 0]);
    expect(Array.from(r.dropped)).toEqual([4, 0, 0, 0]);
    expect(r.assigned[5]).toBe(NO_EXPERT);
  });
  it('re-routing skips full experts and the token\'s own choices, and drops when nothing is left', () => {
    // k = 2 over 3 experts, capacity 1: token 0 takes 0 and 1; token 1 chose (0, 1) too → both full;
    // its slots go to the only expert that is not full (2) once, the other is dropped
    const ch = Uint32Array.from([0, 1, 0, 1]);
    const c = Float64Array.from([0.5, 0.4, 0.1, 0.5, 0.4, 0.1]);
    const r = assignCapacity(ch, c, 2, 2, 3, 1, 'reroute');
    expect(Array.from(r.assigned)).toEqual([0, 1, 2, NO_EXPERT]);
    expect(Array.from(r.dropped)).toEqual([0, 1, 0]);
  });
});

describe('metrics', () => {
  it('hand-computed layer', () => {
    const m = layerMetrics({ counts: [4, 0, 2, 2], probMass: [2, 1, 0.5, 0.5], zLossSum: 6, dropped: [1, 0, 0, 2], rerouted: [0, 0, 3, 0] }, 4);
    expect(m.cv).toBeCloseTo(Math.SQRT2 / 2, 12);
    expect(m.auxLoss).toBeCloseTo(4 * (0.5 * 0.5 + 0.25 * 0.125 + 0.25 * 0.125), 12);
    expect(m.zLoss).toBe(1.5);
    expect(m.entropy).toBeCloseTo(-(0.5 * Math.log(0.5) + 0.5 * Math.log(0.25)), 12);
    expect(m.balancedness).toBe(0.5);
    expect(m.deadExperts).toBe(1);
    expect(m.dropped).toBe(3);
    expect(m.rerouted).toBe(3);
  });
  it('perfect balance and an empty layer', () => {
    const m = layerMetrics({ counts: [3, 3, 3], probMass: [1, 1, 1], zLossSum: 0, dropped: [0, 0, 0], rerouted: [0, 0, 0] }, 3);
    expect(m.cv).toBe(0);
    expect(m.balancedness).toBe(1);
    expect(m.auxLoss).toBeCloseTo(1, 12); // E · Σ (1/E)(1/E) = 1 at perfect balance
    expect(m.entropy).toBeCloseTo(Math.log(3), 12);
    const empty = layerMetrics({ counts: [0, 0], probMass: [0, 0], zLossSum: 0, dropped: [0, 0], rerouted: [0, 0] }, 0);
    expect(empty).toMatchObject({ cv: 0, auxLoss: 0, zLoss: 0, entropy: 0, balancedness: 0, deadExperts: 2 });
  });
});

describe('policy and plan layout', () => {
  it('rejects policies the kernels cannot run, naming the field', () => {
    const c = makeConfig({ family: 'mixtral', H: 8, I: 4, E: 4, seed: 0 });
    expect(() => validatePolicy(c, { ...defaultPolicy(c), topK: 5 })).toThrow(/topK/);
    expect(() => validatePolicy(c, { ...defaultPolicy(c), temperature: 0 })).toThrow(/temperature/);
    expect(() => validatePolicy(c, { ...defaultPolicy(c), ablated: new Uint8Array(3) })).toThrow(/ablated/);
    expect(() => validatePolicy(c, defaultPolicy(c))).not.toThrow();
  });
  it('plan regions do not overlap and hold the worst-case tiles', () => {
    const p = planLayout(8, 100, 8, 8);
    const regions = [
      [0, 8 * p.maskWords], [p.maskCopy, 8 * p.maskWords], [p.prefix, 8 * p.maskWords], [p.header, 4], [p.offsets, 8], [p.kept, 8], [p.starts, 8],
      [p.tileExpert, p.maxTiles], [p.tileRow, p.maxTiles], [p.rowKey, p.maxRows], [p.dropStep, 8], [p.rerouteStep, 8],
      [p.partials, 3 * 8 * Math.ceil(p.maskWords / PLAN_BLOCK_WORDS) + Math.ceil(p.maskWords / PLAN_BLOCK_WORDS)],
    ];
    for (let i = 1; i < regions.length; i++) expect(regions[i][0]).toBe(regions[i - 1][0] + regions[i - 1][1]);
    expect(p.words).toBe(regions[regions.length - 1][0] + regions[regions.length - 1][1]);
    // 800 rows over 8 experts in tiles of 8: at most 100 + 8 tiles
    expect(p.maxTiles).toBeGreaterThanOrEqual(108);
  });
});
