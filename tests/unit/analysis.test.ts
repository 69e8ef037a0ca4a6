// The pure analyses: pathway counts on routing records with known totals, predictability on tables with a known
// answer, and the atlas's log-likelihood and KL on distributions worked out by hand.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { pathways, predictability } from '../../src/analysis/pathways';
import { AtlasBuilder } from '../../src/analysis/atlas';
import { K_MAX, NO_EXPERT } from '../../src/model/limits';

/** A routing record from per-token, per-layer expert lists. */
function record(tokens: number[][][], E: number) {
  const L = tokens[0]?.length ?? 0;
  const chosen = new Uint32Array(tokens.length * L * K_MAX).fill(NO_EXPERT);
  tokens.forEach((layers, t) => layers.forEach((list, l) => list.forEach((e, s) => (chosen[(t * L + l) * K_MAX + s] = e))));
  return { tokens: tokens.length, numLayers: L, numExperts: E, chosen };
}

const sum = (a: ArrayLike<number>) => Array.from(a).reduce((x, y) => x + y, 0);

describe('pathways', () => {
  it('counts a hand-made record', () => {
    // 3 tokens, 2 layers, 4 experts, top-2.
    const p = pathways(record([[[0, 1], [2, 3]], [[1, 0], [2, 1]], [[3, 2], [3, 2]]], 4));
    const E = 4;
    expect(p.coactivation[0][0 * E + 1]).toBe(2);
    expect(p.coactivation[0][1 * E + 0]).toBe(2);
    expect(p.coactivation[0][2 * E + 3]).toBe(1);
    expect(p.coactivation[1][2 * E + 3]).toBe(2);
    expect(p.coactivation[1][1 * E + 2]).toBe(1);
    expect(p.transitions[0][0 * E + 2]).toBe(2); // tokens 0 and 1
    expect(p.transitions[0][1 * E + 1]).toBe(1); // token 1
    expect(p.transitions[0][3 * E + 3]).toBe(1); // token 2
    // Top-1 pairs: 0→2, 1→2, 3→3: every successor is its top-1's only one.
    expect(p.predictability[0].accuracy).toBe(1);
    expect(p.predictability[0].baseline).toBeCloseTo(2 / 3, 12);
  });

  it('totals follow from tokens and k (random records)', () => {
    const E = 6;
    const arb = fc.integer({ min: 1, max: 4 }).chain((k) =>
      fc.array(fc.array(fc.shuffledSubarray([0, 1, 2, 3, 4, 5], { minLength: k, maxLength: k }), { minLength: 3, maxLength: 3 }), { minLength: 1, maxLength: 20 })
        .map((tokens) => ({ k, tokens })),
    );
    fc.assert(
      fc.property(arb, ({ k, tokens }) => {
        const p = pathways(record(tokens, E));
        for (let l = 0; l < 3; l++) {
          const co = p.coactivation[l];
          expect(sum(co)).toBe(tokens.length * k * (k - 1));
          for (let i = 0; i < E; i++) {
            expect(co[i * E + i]).toBe(0);
            for (let j = 0; j < E; j++) expect(co[i * E + j]).toBe(co[j * E + i]);
          }
        }
        for (let l = 0; l < 2; l++) {
          expect(sum(p.transitions[l])).toBe(tokens.length * k * k);
          for (let i = 0; i < E; i++) {
            const row = sum(p.transitions[l].subarray(i * E, (i + 1) * E));
            expect(row).toBe(k * tokens.filter((t) => t[l].includes(i)).length);
          }
        }
      }),
    );
  });

  it('predictability: a one-to-one successor is fully explained; independent choices not at all', () => {
    const E = 4;
    const bijection = new Uint32Array(E * E);
    [2, 0, 3, 1].forEach((j, i) => (bijection[i * E + j] = 5 + i));
    const b = predictability(bijection, E);
    expect(b.accuracy).toBe(1);
    expect(b.normalized).toBeCloseTo(1, 12);
    const product = new Uint32Array(E * E).map((_, x) => [1, 2, 3, 4][Math.floor(x / E)] * [4, 1, 1, 2][x % E]);
    const ind = predictability(product, E);
    expect(ind.mutualInformation).toBeCloseTo(0, 12);
    expect(ind.accuracy).toBeCloseTo(ind.baseline, 12);
  });

  it('refuses an expert id past the model', () => {
    expect(() => pathways(record([[[0, 9]]], 4))).toThrow(/expert 9 of 4/);
  });
});

describe('atlas scoring', () => {
  it('Δ log-likelihood, KL and the most hurt token of hand-worked distributions', () => {
    // Vocabulary of 2, text [0, 1, 0]: rows 0 and 1 predict tokens 1 and 0; row 2 predicts past the text.
    const atlas = new AtlasBuilder([0, 1, 0], 2, 1);
    atlas.setBase([0, 0, 0, 0, 0, 0]); // uniform everywhere
    const e = atlas.add(1, 3, [Math.log(3), 0, 0, 0, 0, 0]); // row 0 now gives token 1 a probability of 1/4
    expect(e.deltaLogLikelihood).toBeCloseTo(Math.log(0.25) - Math.log(0.5), 12);
    expect(e.maxKl).toBeCloseTo(0.5 * Math.log(4 / 3), 12);
    expect(e.meanKl).toBeCloseTo((0.5 * Math.log(4 / 3)) / 3, 12);
    expect(e.mostHurt).toEqual([{ position: 1, id: 1, delta: expect.closeTo(Math.log(0.5), 12) }]);
    atlas.add(0, 0, [0, 0, 0, 0, 0, 0]);
    const built = atlas.build();
    expect(built.logLikelihood).toBeCloseTo(2 * Math.log(0.5), 12);
    expect(built.entries.map((x) => [x.layer, x.expert])).toEqual([[1, 3], [0, 0]]);
  });
});
