// LoadOptions.routingRecord false (bench-model --record-cost): the same logits, no ring rows and no probability /
// gate sums written, while the plan's count statistics still run.
import { describe, expect, it } from 'vitest';
import { testGpu } from '../support/gpu';
import { tinySession } from '../support/recording';

describe('routing record off', () => {
  it('gives the same logits and writes neither the ring nor the probability and gate sums', async () => {
    const gpu = await testGpu();
    const on = await tinySession(gpu, 'granitemoe', 2, { seed: 4 });
    const off = await tinySession(gpu, 'granitemoe', 2, { seed: 4 }, { routingRecord: false });
    try {
      const ids = [5, 6, 7, 8];
      for (const step of [ids, [9]]) {
        const [a, b] = [await on.feedWithLogits(step), await off.feedWithLogits(step)];
        expect(Array.from(b)).toEqual(Array.from(a));
      }
      const [x, y] = [await on.snapshot(), await off.snapshot()];
      const nonzero = (v: ArrayLike<number>) => Array.from(v).filter((n) => n !== 0).length;
      expect(nonzero(x.probMass)).toBeGreaterThan(0);
      expect(nonzero(x.gateSum)).toBeGreaterThan(0);
      expect(nonzero(x.chosen)).toBeGreaterThan(0);
      expect(nonzero(y.probMass)).toBe(0);
      expect(nonzero(y.gateSum)).toBe(0);
      expect(nonzero(y.chosen)).toBe(0);
      expect(Array.from(y.counts)).toEqual(Array.from(x.counts));
      expect(gpu.recentErrors).toEqual([]);
    } finally {
      on.destroy();
      off.destroy();
    }
  });
});
