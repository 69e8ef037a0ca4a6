// Next-token read-outs against direct definitions: softmax by sorting, entropy and KL by their sums.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { klDivergence, rankOf, summarizeRow, surprisal } from '../../src/viz/panels/predictions';

const softmax = (row: number[]) => {
  const m = Math.max(...row);
  const e = row.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
};
const logits = fc.array(fc.float({ min: -30, max: 30, noNaN: true, noDefaultInfinity: true }), { minLength: 2, maxLength: 60 });

describe('next-token read-outs', () => {
  it('top tokens, probabilities, entropy and surprisal match the softmax computed directly', () => {
    fc.assert(
      fc.property(logits, fc.integer({ min: 1, max: 8 }), (row, k) => {
        const p = softmax(row);
        const order = p.map((x, i) => i).sort((a, b) => row[b] - row[a] || a - b);
        const s = summarizeRow(Float32Array.from(row), k);
        expect(s.top.map((c) => c.id)).toEqual(order.slice(0, k));
        s.top.forEach((c) => expect(c.prob).toBeCloseTo(p[c.id], 9));
        const entropy = -p.reduce((a, x) => a + (x > 0 ? x * Math.log(x) : 0), 0);
        expect(s.entropy).toBeCloseTo(entropy, 6);
        const id = order[order.length - 1];
        if (p[id] > 1e-300) expect(surprisal(Float32Array.from(row), s.logSumExp, id)).toBeCloseTo(-Math.log(p[id]), 6);
        expect(rankOf(Float32Array.from(row), order[Math.min(2, order.length - 1)])).toBe(Math.min(2, order.length - 1));
      }),
    );
  });

  it('KL divergence is the sum Σ p log(p / q), zero for equal rows and for a shifted copy', () => {
    fc.assert(
      fc.property(logits, fc.integer(), (row, seed) => {
        const q = row.map((x, i) => x + (((seed + i * 7919) % 13) - 6) * 0.3);
        const pp = softmax(row);
        const qq = softmax(q);
        const direct = pp.reduce((a, x, i) => a + (x > 0 ? x * Math.log(x / qq[i]) : 0), 0);
        expect(klDivergence(row, q)).toBeCloseTo(direct, 6);
        expect(klDivergence(row, row.map((x) => x + 3))).toBeCloseTo(0, 9);
      }),
    );
  });
});
