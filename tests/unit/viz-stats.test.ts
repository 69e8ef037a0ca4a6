import { describe, expect, it } from 'vitest';
import { K_MAX, NO_EXPERT } from '../../src/engine/routing-buffers';
import {
  countsFromRing,
  domainLoad,
  gateMatrix,
  ringTokens,
  tokenPath,
  tokensOfExpert,
  topExpert,
} from '../../src/viz/panels/stats';

// A hand-written ring: 3 tokens, 2 layers, 4 experts, k = 2.
// token 0: L0 chose 1 (0.7), 2 (0.3);     L1 chose 0 (0.6), 3 (0.4)
// token 1: L0 chose 2 (0.55), 1 (0.45);   L1 chose 3 (0.9) and 0 which was re-routed to 2 (0.1)
// token 2: L0 chose 1 (0.8) and 3 which was dropped; L1 chose 3 (0.5), 0 (0.5)
function ring() {
  const T = 3, L = 2, E = 4;
  const chosen = new Uint32Array(T * L * K_MAX).fill(NO_EXPERT);
  const assigned = new Uint32Array(T * L * K_MAX).fill(NO_EXPERT);
  const weights = new Float32Array(T * L * K_MAX);
  const put = (p: number, l: number, k: number, c: number, a: number, w: number) => {
    const i = (p * L + l) * K_MAX + k;
    chosen[i] = c;
    assigned[i] = a;
    weights[i] = w;
  };
  put(0, 0, 0, 1, 1, 0.7); put(0, 0, 1, 2, 2, 0.3);
  put(0, 1, 0, 0, 0, 0.6); put(0, 1, 1, 3, 3, 0.4);
  put(1, 0, 0, 2, 2, 0.55); put(1, 0, 1, 1, 1, 0.45);
  put(1, 1, 0, 3, 3, 0.9); put(1, 1, 1, 0, 2, 0.1);
  put(2, 0, 0, 1, 1, 0.8); put(2, 0, 1, 3, NO_EXPERT, 0.2);
  put(2, 1, 0, 3, 3, 0.5); put(2, 1, 1, 0, 0, 0.5);
  return { numLayers: L, numExperts: E, chosen, assigned, weights };
}

describe('snapshot read-outs', () => {
  it('counts assignments per (layer, expert) from the ring, dropped slots excluded', () => {
    const s = ring();
    expect(ringTokens(s)).toBe(3);
    expect(Array.from(countsFromRing(s))).toEqual([0, 3, 2, 0, 2, 0, 1, 3]);
  });

  it('traces a token through the layers with re-routes and drops', () => {
    const s = ring();
    const p1 = tokenPath(s, 1);
    expect(p1[1].experts).toEqual([
      { expert: 3, weight: expect.closeTo(0.9, 6), rerouted: false },
      { expert: 2, weight: expect.closeTo(0.1, 6), rerouted: true },
    ]);
    expect(tokenPath(s, 2)[0]).toMatchObject({ dropped: 1, experts: [{ expert: 1 }] });
    expect(tokenPath(s, 3)).toEqual([]);
  });

  it('finds the top expert and the tokens an expert took', () => {
    const s = ring();
    expect(topExpert(s, 1, 0)).toBe(2);
    expect(topExpert(s, 2, 1)).toBe(3); // tie 0.5/0.5: first slot wins
    expect(tokensOfExpert(s, 0, 1)).toEqual([0, 1, 2]);
    expect(tokensOfExpert(s, 1, 2)).toEqual([1]);
    expect(tokensOfExpert(s, 0, 3)).toEqual([]);
  });

  it('builds the gate heatmap and the domain split', () => {
    const s = ring();
    const m = gateMatrix(s, 1);
    expect(Array.from(m).map((x) => Math.round(x * 100))).toEqual([60, 0, 0, 40, 0, 0, 10, 90, 50, 0, 0, 50]);
    const d = domainLoad(s, 0, ['prose', 'code', 'prose']);
    expect(d.names).toEqual(['prose', 'code']);
    expect(Array.from(d.counts[0])).toEqual([0, 2, 1, 0]);
    expect(Array.from(d.counts[1])).toEqual([0, 1, 1, 0]);
  });
});

import { barHeights } from '../../src/viz/panels/stats';

describe('barHeights', () => {
  it('is half a unit at a fair share in load mode and caps at maxRatio; current mode scales by the layer max', () => {
    const s = {
      numExperts: 4,
      counts: new Uint32Array([2, 2, 2, 2, 0, 0, 0, 40]),
      stepCounts: new Uint32Array([0, 1, 0, 1, 0, 0, 0, 0]),
      probMass: new Float32Array(8),
      dropped: new Uint32Array(8),
      rerouted: new Uint32Array(8),
    };
    expect(barHeights(s, 0, 'load', 1)[1]).toBeCloseTo(0.5);
    expect(barHeights(s, 1, 'load', 2, 3)[3]).toBeCloseTo(2 * 0.5 * 3);
    expect(barHeights(s, 0, 'current', 1)[3]).toBeCloseTo(1.5);
    expect(barHeights(s, 0, 'current', 1)[0]).toBe(0);
    expect(barHeights(s, 1, 'dropped', 1)[0]).toBe(0);
  });

  it('gives a column of several experts their summed value against its share of the layer', () => {
    const s = {
      numExperts: 6,
      counts: new Uint32Array([1, 2, 3, 0, 0, 6]),
      stepCounts: new Uint32Array([0, 1, 0, 0, 1, 0]),
      probMass: new Float32Array(6),
      dropped: new Uint32Array(6),
      rerouted: new Uint32Array(6),
    };
    // Columns {0, 1, 2, 3} and {4, 5}: loads 6 and 6 of 12; fair shares 8 and 4.
    const load = barHeights(s, 0, 'load', 1, 6, null, [0, 4, 6]);
    expect([...load]).toEqual([0.5 * (6 / 8), 0.5 * (6 / 4)]);
    // An opened group (experts 4 and 5): the fair share stays one expert's of the whole layer (2).
    expect([...barHeights(s, 0, 'load', 1, 6, null, [4, 5, 6])]).toEqual([0, 0.5 * 3]);
    expect([...barHeights(s, 0, 'current', 1, 6, null, [0, 4, 6])]).toEqual([1.5, 1.5]);
  });
});

import { routingAgreement } from '../../src/viz/panels/stats';

describe('routingAgreement', () => {
  it('scores the overlap of two runs per token and layer', () => {
    const a = ring();
    const b = ring();
    // Change token 0 layer 0 in b: experts {1, 2} -> {1, 5}: half agree.
    b.assigned[(0 * 2 + 0) * K_MAX + 1] = 5;
    const r = routingAgreement(a, b, 3);
    expect(r.perToken[0]).toBe(0.5);
    expect(r.perToken[1]).toBe(1);
    expect(r.perLayer[0]).toBeCloseTo((0.5 + 1 + 1) / 3, 6);
    expect(r.perLayer[1]).toBe(1);
    expect(routingAgreement(a, a, 0).perLayer).toEqual([0, 0]);
  });
});
