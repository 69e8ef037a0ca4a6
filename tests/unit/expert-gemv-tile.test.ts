// The gemv expert kernels' host-side choices: the row bucket of a step and the plan tiles it can make (the grid must
// cover them and the plan buffer hold them), and the thread layout a rule gives (it must fit the device's limits).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  GEMV_ROWS, GEMV_ROW_BUCKETS, expertGemvTile, gemvRowUnits, gemvTileRows, maxPlanTiles, type ExpertOp,
} from '../../src/engine/kernels/moe-expert';
import { planLayout } from '../../src/engine/kernels/moe-layout';
import { K_MAX } from '../../src/model/limits';
import type { Gpu } from '../../src/engine/gpu';
import type { TensorFormat } from '../../src/model/dtypes';

/** Rows per expert for T tokens choosing k distinct experts of E each (token t's choices from the seed). */
function routedRows(T: number, E: number, k: number, seed: number): number[] {
  const rows = new Array<number>(E).fill(0);
  let s = seed >>> 0;
  for (let t = 0; t < T; t++) {
    const picked = new Set<number>();
    while (picked.size < k) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      picked.add(s % E);
    }
    for (const e of picked) rows[e]++;
  }
  return rows;
}

describe('row buckets and plan tiles', () => {
  it('a step of T tokens runs the smallest bucket ≥ T, GEMV_ROWS past the largest', () => {
    for (let T = 1; T <= 3 * GEMV_ROWS; T++) {
      const R = gemvTileRows(T);
      expect(GEMV_ROW_BUCKETS as readonly number[]).toContain(R);
      expect(R >= Math.min(T, GEMV_ROWS) && (R === 1 || R / 2 < T)).toBe(true);
    }
  });

  it('the tiles a step makes never exceed maxPlanTiles, nor the plan capacity sized for GEMV_ROWS-row tiles', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 256 }), fc.integer({ min: 1, max: K_MAX }), fc.integer(),
      (T, E, kWanted, seed) => {
        const k = Math.min(kWanted, E);
        const R = gemvTileRows(T);
        const tiles = routedRows(T, E, k, seed).reduce((n, rows) => n + Math.ceil(rows / R), 0);
        expect(tiles).toBeLessThanOrEqual(maxPlanTiles(T * k, E, R, T));
        expect(tiles).toBeLessThanOrEqual(planLayout(E, T, k, GEMV_ROWS).maxTiles);
      },
    ));
  });
});

describe('thread layouts from rules', () => {
  const limits = (storage: number, invocations: number) => ({ limits: { maxComputeWorkgroupStorageSize: storage, maxComputeInvocationsPerWorkgroup: invocations } }) as unknown as Gpu;
  const formats: TensorFormat[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_k', 'q6_k', 'mxfp4'];

  it('fit the workgroup memory and invocation limits, and no thread group is wider than the row', () => {
    fc.assert(fc.property(
      fc.constantFrom<ExpertOp>('up', 'down'), fc.constantFrom(...formats), fc.integer({ min: 1, max: 600 }),
      fc.constantFrom(...GEMV_ROW_BUCKETS), fc.integer({ min: 1, max: 8 }), fc.constantFrom(64, 128, 256), fc.integer({ min: 1, max: 8 }),
      fc.constantFrom(16384, 32768, 49152), fc.constantFrom(128, 256),
      (op, format, blocks, R, passes, threads, ntWanted, storage, invocations) => {
        const K = blocks * 256; // whole blocks of every format
        const NT = Math.min(ntWanted, op === 'up' ? 4 : 8, Math.floor(64 / (R * (op === 'up' ? 2 : 1))));
        const t = expertGemvTile(limits(storage, invocations), op, format, K, R, { passes, threads, NT });
        const weightRows = op === 'up' ? 2 * t.NT : t.NT;
        expect(R * t.WG_N * weightRows * (t.WG_K + 1) * 4).toBeLessThanOrEqual(storage);
        expect(t.WG_K * t.WG_N).toBeLessThanOrEqual(Math.min(threads, invocations));
        expect(t.WG_K).toBeLessThanOrEqual(gemvRowUnits(K, format));
        expect(t.NT).toBe(NT);
      },
    ));
  });

  it('refuse more accumulators than a thread keeps (rows · weight rows ≤ 64)', () => {
    const gpu = limits(49152, 256);
    expect(() => expertGemvTile(gpu, 'up', 'bf16', 4096, 8, { passes: 2, threads: 64, NT: 4 })).not.toThrow();
    expect(() => expertGemvTile(gpu, 'up', 'bf16', 4096, 8, { passes: 2, threads: 64, NT: 5 })).toThrow(/NT 5/);
    expect(() => expertGemvTile(gpu, 'down', 'bf16', 4096, 8, { passes: 2, threads: 64, NT: 16 })).toThrow(/NT 16/);
  });
});
