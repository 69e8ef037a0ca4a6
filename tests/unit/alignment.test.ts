// Expert alignment between checkpoints: a layer whose experts were re-indexed, and whose hidden units were
// permuted and rescaled inside each expert (changes that leave the model's function alone), is matched back.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { alignLayer, linearPart, type LayerExperts } from '../../src/analysis/alignment';
import { rng } from '../support/random';

function randomLayer(E: number, H: number, I: number, seed: number): LayerExperts {
  const rnd = rng(seed);
  const gateUp = Float32Array.from({ length: E * 2 * I * H }, () => rnd() * 2 - 1);
  const down = Float32Array.from({ length: E * H * I }, () => rnd() * 2 - 1);
  return { experts: E, hidden: H, intermediate: I, gateUp, down };
}

/** Expert perm[e] of the result is expert e of x, its hidden units reordered by `units` and up/down rescaled. */
function reindex(x: LayerExperts, perm: number[], units: number[], scale: number[], overall: number): LayerExperts {
  const { experts: E, hidden: H, intermediate: I } = x;
  const gateUp = new Float32Array(x.gateUp.length);
  const down = new Float32Array(x.down.length);
  for (let e = 0; e < E; e++) {
    const to = perm[e];
    for (let j = 0; j < I; j++) {
      const u = units[j];
      for (let h = 0; h < H; h++) {
        gateUp[to * 2 * I * H + u * H + h] = x.gateUp[e * 2 * I * H + j * H + h]; // gate row: moved, not scaled
        gateUp[to * 2 * I * H + (I + u) * H + h] = overall * scale[j] * x.gateUp[e * 2 * I * H + (I + j) * H + h];
        down[to * H * I + h * I + u] = x.down[e * H * I + h * I + j] / scale[j];
      }
    }
  }
  return { ...x, gateUp, down };
}

describe('expert alignment', () => {
  it('the linear part is unchanged by permuting and rescaling hidden units', () => {
    const a = randomLayer(2, 6, 5, 1);
    const b = reindex(a, [0, 1], [3, 0, 4, 1, 2], [2, 0.5, 3, 1, 0.25], 1);
    const ma = linearPart(a, 1);
    const mb = linearPart(b, 1);
    ma.forEach((v, i) => expect(mb[i]).toBeCloseTo(v, 4));
  });

  it('recovers a permutation of the experts', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1e6 }),
        fc.shuffledSubarray([0, 1, 2, 3, 4, 5], { minLength: 6, maxLength: 6 }),
        fc.shuffledSubarray([0, 1, 2, 3, 4, 5, 6], { minLength: 7, maxLength: 7 }),
        (seed, perm, units) => {
          const a = randomLayer(6, 8, 7, seed);
          const scale = units.map((u) => 0.5 + u / 4);
          const r = alignLayer(a, reindex(a, perm, units, scale, 1.7));
          expect(r.match).toEqual(perm);
          r.matched.forEach((s) => expect(s).toBeCloseTo(1, 5));
          expect(r.meanUnmatched).toBeLessThan(0.5);
        },
      ),
      { numRuns: 20 },
    );
  });

  it('refuses layers of different shapes', () => {
    expect(() => alignLayer(randomLayer(4, 8, 5, 1), randomLayer(4, 8, 6, 1))).toThrow(/differ in shape/);
  });
});
