// The dense GEMV's tile choice (gemvDenseTile), over random shapes: what the shader needs of it and what it promises.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GEMV_ROW_BUCKETS, GEMV_SOFTWARE, GEMV_TILE_NK, GEMV_TILE_NK_4ROWS, GEMV_TILE_NK_MANY_ROWS, gemvDenseTile } from '../../src/engine/kernels/gemv';

const isPow2 = (n: number) => Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0;
const problem = fc.record({
  rows: fc.constantFrom(...GEMV_ROW_BUCKETS),
  K: fc.integer({ min: 1, max: 20_000 }),
  N: fc.integer({ min: 1, max: 200_000 }),
  weightDtype: fc.constantFrom('f32' as const, 'f16' as const, 'bf16' as const),
  aligned: fc.boolean(),
  software: fc.boolean(),
});

describe('gemvDenseTile', () => {
  it('W [N, K]: power-of-two sides, no thread idle for lack of K on a GPU, ≥ 8 units per thread on a CPU', () => {
    fc.assert(
      fc.property(problem, (p) => {
        const t = gemvDenseTile({ ...p, weightLayout: 'nk' });
        const units = p.aligned ? Math.ceil(p.K / (p.weightDtype === 'f32' ? 4 : 8)) : p.K;
        const widest = p.rows <= 2 ? GEMV_TILE_NK : p.rows <= 4 ? GEMV_TILE_NK_4ROWS : GEMV_TILE_NK_MANY_ROWS;
        const threads = p.software ? GEMV_SOFTWARE.threads : widest.WG_K * widest.WG_N;
        expect(isPow2(t.WG_K) && isPow2(t.WG_N), JSON.stringify(t)).toBe(true);
        expect(t.WG_K * t.WG_N).toBeLessThanOrEqual(threads);
        expect(p.rows * t.NT).toBeLessThanOrEqual(64); // the shader's register array
        // Outputs: a full workgroup unless N needs fewer, and then less than two rounds of them.
        if (t.WG_K * t.WG_N < threads) expect(t.WG_N * t.NT).toBeLessThan(2 * p.N + 2 * t.NT);
        if (p.software) {
          // More than 4 units a thread (8+ but for rounding), unless one thread has the row or all 64 share it.
          if (t.WG_K > 1 && t.WG_K < GEMV_SOFTWARE.threads) expect(units / t.WG_K).toBeGreaterThan(GEMV_SOFTWARE.unitsPerThread / 2);
        } else {
          expect(t.WG_K).toBeLessThanOrEqual(widest.WG_K);
          // Fewer than twice as many threads as units: every thread but a power-of-two tail has a unit.
          expect(t.WG_K).toBeLessThan(2 * units);
          if (t.WG_K < widest.WG_K) expect(t.WG_K).toBeGreaterThanOrEqual(units);
        }
      }),
      { numRuns: 2000, seed: 16 },
    );
  });

  it('long rows on a GPU keep the widest tiles (the H100-tuned ones); the demo LM head gets 8 outputs per workgroup', () => {
    const big = { weightLayout: 'nk', K: 4096, N: 14336, weightDtype: 'bf16', aligned: true, software: false } as const;
    expect(gemvDenseTile({ ...big, rows: 1 })).toEqual(GEMV_TILE_NK);
    expect(gemvDenseTile({ ...big, rows: 4 })).toEqual(GEMV_TILE_NK_4ROWS);
    expect(gemvDenseTile({ ...big, rows: 16 })).toEqual(GEMV_TILE_NK_MANY_ROWS);
    expect(gemvDenseTile({ ...big, rows: 1, K: 256, N: 4096 })).toEqual({ WG_K: 32, WG_N: 8, NT: 2 });
    expect(gemvDenseTile({ ...big, rows: 1, K: 256, N: 4096, software: true })).toEqual({ WG_K: 4, WG_N: 16, NT: 4 });
  });
});
