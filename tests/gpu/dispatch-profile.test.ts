// The per-dispatch profile (src/engine/dispatch-profiler.ts) on a granitemoe decode step: one timed row per dispatch,
// in the order and with the labels seen by the counting proxy of tests/support/recording.ts (outside the engine),
// each with its workgroups and the weight bytes it reads; the by-kernel summary adds up to the same total.
import { describe, expect, it } from 'vitest';
import { testGpu } from '../support/gpu';
import { countStep, tinySession } from '../support/recording';
import { timingsByKernel } from '../../src/engine/dispatch-profiler';

describe('per-dispatch profile', () => {
  it('times every dispatch of a decode step in step order, with workgroups and weight bytes', async () => {
    const gpu = await testGpu();
    const session = await tinySession(gpu, 'granitemoe', 3, {}, { profile: 'dispatch' });
    try {
      const profiler = session.dispatchProfiler!;
      expect(profiler.enabled).toBe(true); // SwiftShader has timestamp-query: the profile must really run here
      await session.feed([5, 6, 7]);
      await gpu.device.queue.onSubmittedWorkDone();
      profiler.reset();
      for (let i = 0; i < 3; i++) await session.generate();
      await gpu.device.queue.onSubmittedWorkDone();
      const rows = session.dispatchTimings();
      const seen = countStep(gpu, session.decoder, 1, session.position);

      expect(rows.map((r) => r.label)).toEqual(seen.labels);
      expect(rows.map((r) => r.index)).toEqual(seen.labels.map((_, i) => i));
      expect(rows.length).toBe(seen.perLayer.reduce((a, b) => a + b, 0) + seen.outside);
      for (const r of rows) {
        expect(r.samples, r.label).toBeGreaterThanOrEqual(1);
        expect(Number.isFinite(r.micros) && r.micros >= 0, `${r.label}: ${r.micros} µs`).toBe(true);
        expect(r.workgroups.every((n) => Number.isInteger(n) && n >= 1), r.label).toBe(true);
      }
      const total = rows.reduce((a, r) => a + r.micros, 0);
      expect(total).toBeGreaterThan(0);
      const kernels = timingsByKernel(rows);
      expect(kernels.reduce((a, k) => a + k.micros, 0)).toBeCloseTo(total, 6);
      expect(kernels.reduce((a, k) => a + k.dispatches, 0)).toBe(rows.length);
      // a one-token step's router: logits, then the selection with the plan folded in, in each of the 3 layers
      expect(kernels.find((k) => k.kernel === 'moe.routerLogits')?.dispatches).toBe(3);
      expect(kernels.find((k) => k.kernel === 'moe.routerSelectPlan')?.dispatches).toBe(3);
      expect(kernels.find((k) => k.kernel === 'moe.plan'), 'no plan dispatch at one token').toBeUndefined();

      // Weight bytes: the embedding gather reads one f32 row; an expert GEMV its k of E experts; the selection none.
      const c = session.config;
      const at = (label: string) => rows.find((r) => r.label === label)!;
      expect(at('Decoder.embed').weightBytes).toBe(c.hiddenSize * 4);
      expect(at('Layer1.moe.routerSelectPlan').weightBytes).toBeNull();
      const gateUpBytes = Math.ceil((c.numExperts * 2 * c.moeIntermediateSize * c.hiddenSize * 4) / 16) * 16;
      expect(at('Layer1.moe.gemv.gateUp0').weightBytes).toBeCloseTo((gateUpBytes * c.router.topK) / c.numExperts, 6);
    } finally {
      session.destroy();
    }
  });
});
