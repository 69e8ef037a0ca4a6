import { describe, expect, it } from 'vitest';
import { uploadBuffer, readU32 } from '../../src/engine/kernels/common';
import { K_MAX, NO_EXPERT } from '../../src/engine/routing-buffers';
import { layerMetrics } from '../../src/engine/routing/metrics';
import { MoeScratch } from '../../src/engine/routing/scratch';
import { RoutingStats, ringCapacityFor } from '../../src/engine/routing/stats';
import { moeScratchShape } from '../../src/engine/routing/moe-layer';
import { expectClose, expectExact, readF32, testGpu } from '../support/gpu';
import { randomF32 } from '../support/random';
import { applyPolicy, buildProblem, makeConfig, policyWith, refStep, runStep } from '../support/moe';
import type { MoeRefOutput } from '../../src/reference/moe';
import { STATS_REBUILD_WG } from '../../src/engine/kernels/moe-stats';
import { expectMutantFails, mutation } from '../support/mutant';
import type { Gpu } from '../../src/engine/gpu';

const SUM_TOL = { atol: 1e-4, rtol: 1e-5 };

/** Cumulative per-expert statistics of a list of reference steps. */
function accumulate(steps: MoeRefOutput[], E: number) {
  const acc = {
    counts: new Float64Array(E), dropped: new Float64Array(E), rerouted: new Float64Array(E),
    probMass: new Float64Array(E), gateSum: new Float64Array(E), zLossSum: 0,
  };
  for (const r of steps) {
    for (let e = 0; e < E; e++) {
      acc.counts[e] += r.counts[e];
      acc.dropped[e] += r.dropped[e];
      acc.rerouted[e] += r.rerouted[e];
      acc.probMass[e] += r.probMass[e];
      acc.gateSum[e] += r.gateSum[e];
    }
    acc.zLossSum += r.zLossSum;
  }
  return acc;
}

describe('routing statistics on the GPU', () => {
  it('two layers over prefill + decode steps: cumulative buffers, ring, snapshot metrics, rebuild after a step back', async () => {
    const gpu = await testGpu();
    const spec = { family: 'mixtral' as const, H: 20, I: 10, E: 8, k: 2, layers: 3, seed: 31 };
    const config = makeConfig(spec);
    const stats = new RoutingStats(gpu, config, { ringCapacity: 32 });
    const scratch = new MoeScratch(gpu, moeScratchShape(config, { maxTokens: 16 }));
    // layers 0 and 2 are MoE layers sharing stats and scratch; same weights seed, different layer index
    const layers = [0, 2].map((l) => buildProblem(gpu, spec, { layerIndex: l, stats, scratch }));
    const policy = policyWith(config, { capacityFactor: 0.9, overflow: 'reroute', noiseStd: 0.2, noiseSeed: 9 });
    for (const p of layers) applyPolicy(p, policy);

    const steps = [9, 1, 1, 3, 1]; // tokens per step
    const refs: MoeRefOutput[][] = [[], []];
    let position = 0;
    for (const T of steps) {
      const x = randomF32(T * spec.H, 1000 + position);
      for (const [i, p] of layers.entries()) {
        runStep(gpu, p, uploadBuffer(gpu, 'st.x', x), T, position);
        refs[i].push(refStep(p, x, T, position, policy));
      }
      position += T;
    }
    const snap = await stats.snapshot(position);
    const E = spec.E;
    expect(snap.position).toBe(15);
    for (const [i, p] of layers.entries()) {
      const l = p.layer.layer;
      const row = <A extends Uint32Array | Float32Array>(a: A) => a.subarray(l * E, (l + 1) * E);
      const acc = accumulate(refs[i], E);
      expectExact(row(snap.counts), acc.counts, `layer ${l} counts`);
      expectExact(row(snap.dropped), acc.dropped, `layer ${l} dropped`);
      expectExact(row(snap.rerouted), acc.rerouted, `layer ${l} rerouted`);
      expectExact(row(snap.stepCounts), refs[i][refs[i].length - 1].counts, `layer ${l} stepCounts`);
      expectClose(row(snap.probMass), acc.probMass, SUM_TOL, `layer ${l} probMass`);
      expectClose(row(snap.gateSum), acc.gateSum, SUM_TOL, `layer ${l} gateSum`);
      expectClose([snap.zLossSum[l]], [acc.zLossSum], SUM_TOL, `layer ${l} zLossSum`);
      expect(acc.rerouted.reduce((a, b) => a + b), 'the steps exercise re-routing').toBeGreaterThan(0);
      // metrics from the snapshot = metrics of the reference sums
      const want = layerMetrics({ counts: acc.counts, probMass: acc.probMass, zLossSum: acc.zLossSum, dropped: acc.dropped, rerouted: acc.rerouted }, position);
      for (const key of Object.keys(want) as (keyof typeof want)[]) {
        expect(snap.metrics[l][key], `layer ${l} ${key}`).toBeCloseTo(want[key], 4);
      }
      // ring rows: chosen / assigned / weights per position
      let pos = 0;
      for (const r of refs[i]) {
        const T = r.lse.length;
        for (let t = 0; t < T; t++, pos++) {
          for (let s = 0; s < K_MAX; s++) {
            const at = (pos * config.numLayers + l) * K_MAX + s;
            expect(snap.chosen[at]).toBe(s < 2 ? r.chosen[t * 2 + s] : NO_EXPERT);
            expect(snap.assigned[at]).toBe(s < 2 ? r.assigned[t * 2 + s] : NO_EXPERT);
            if (s < 2) expect(snap.weights[at]).toBeCloseTo(r.weights[t * 2 + s], 5);
          }
        }
      }
    }
    // the dense layer 1 stays empty
    expect(Array.from(snap.counts.subarray(E, 2 * E))).toEqual(new Array(E).fill(0));

    // step back to position 10 (after the first two steps) and rebuild from the ring
    const enc = gpu.device.createCommandEncoder();
    stats.rebuild(enc, 10);
    gpu.device.queue.submit([enc.finish()]);
    const back = await stats.snapshot(10);
    for (const [i, p] of layers.entries()) {
      const l = p.layer.layer;
      const row = <A extends Uint32Array | Float32Array>(a: A) => a.subarray(l * E, (l + 1) * E);
      const acc = accumulate(refs[i].slice(0, 2), E);
      expectExact(row(back.counts), acc.counts, `rebuilt layer ${l} counts`);
      expectExact(row(back.dropped), acc.dropped, `rebuilt layer ${l} dropped`);
      expectExact(row(back.rerouted), acc.rerouted, `rebuilt layer ${l} rerouted`);
      expectExact(row(back.stepCounts), refs[i][1].counts, `rebuilt layer ${l} stepCounts (the token at position 9)`);
      expectClose(row(back.probMass), acc.probMass, SUM_TOL, `rebuilt layer ${l} probMass`);
      expectClose(row(back.gateSum), acc.gateSum, SUM_TOL, `rebuilt layer ${l} gateSum`);
      expectClose([back.zLossSum[l]], [acc.zLossSum], SUM_TOL, `rebuilt layer ${l} zLossSum`);
    }
    // reset zeroes everything
    const enc2 = gpu.device.createCommandEncoder();
    stats.reset(enc2);
    gpu.device.queue.submit([enc2.finish()]);
    const zero = await stats.snapshot(0);
    expect(Math.max(...zero.counts, ...zero.probMass, ...zero.zLossSum, ...zero.gateSum)).toBe(0);
    expect(() => stats.rebuild(gpu.device.createCommandEncoder(), 33)).toThrow(/outside the ring/);
    expect(gpu.recentErrors).toEqual([]);
  });

  it(`a rebuild over more positions than its ${STATS_REBUILD_WG}-thread workgroup (each thread sums several)`, async () => {
    await checkLongRebuild(await testGpu());
  });
  it('a rebuild whose threads skip every other stride fails', () =>
    expectMutantFails(
      mutation('moe_stats_rebuild', /for \(var p = li; p < P\.positions; p \+= WG\) \{\n    let base/, 'for (var p = li; p < P.positions; p += 2u * WG) {\n    let base'),
      checkLongRebuild, /rebuilt counts/));

  it('positions past the ring are counted but not recorded', async () => {
    const gpu = await testGpu();
    const p = buildProblem(gpu, { family: 'olmoe', H: 12, I: 6, E: 8, k: 2, seed: 5 }, { ringCapacity: 4 });
    const policy = policyWith(p.config, {});
    applyPolicy(p, policy);
    const x = randomF32(6 * 12, 2);
    runStep(gpu, p, uploadBuffer(gpu, 'r.x', x), 6, 0); // positions 0..5; the ring holds 0..3
    const ref = refStep(p, x, 6, 0, policy);
    const l = p.layer.layer;
    const counts = await readU32(gpu, p.stats.buffers.counts);
    expectExact(counts.subarray(l * 8, l * 8 + 8), ref.counts, 'all 6 tokens counted');
    const chosen = await readU32(gpu, p.stats.buffers.ringChosen);
    expect(chosen.length).toBe(4 * p.config.numLayers * K_MAX);
    for (let t = 0; t < 4; t++) {
      for (let s = 0; s < 2; s++) expect(chosen[(t * p.config.numLayers + l) * K_MAX + s]).toBe(ref.chosen[t * 2 + s]);
    }
    expect(gpu.recentErrors).toEqual([]);
  });

  it('the ring capacity follows the memory budget and the binding limit', () => {
    // 64 layers × 256 experts: (3·8 + 256 + 2) · 4 bytes per layer and position (chosen, assigned and weights for
    // K_MAX = 8 slots, 256 probabilities, the logsumexp and its numerics flags)
    expect(ringCapacityFor(64, 256, 64 * 2 ** 20, 2 ** 30)).toBe(Math.floor((64 * 2 ** 20) / (64 * 282 * 4)));
    expect(ringCapacityFor(64, 256, 2 ** 40, 2 ** 20)).toBe(Math.floor(2 ** 20 / (64 * 256 * 4)));
  });
});

/**
 * Steps of 1.5·WG − 1, 1 and 20 tokens with capacity re-routing, then a step back to 1.5·WG (the end of the second
 * step): every rebuilt buffer against the reference sums of the first two steps; stepCounts is the last position's.
 */
async function checkLongRebuild(gpu: Gpu) {
  const WG = STATS_REBUILD_WG;
  const steps = [1.5 * WG - 1, 1, 20];
  const back = 1.5 * WG;
  const spec = { family: 'olmoe' as const, H: 12, I: 6, E: 8, k: 2, seed: 41 };
  const p = buildProblem(gpu, spec, { maxTokens: steps[0], ringCapacity: 2 * WG });
  const policy = policyWith(p.config, { capacityFactor: 0.9, overflow: 'reroute' });
  applyPolicy(p, policy);
  const refs: MoeRefOutput[] = [];
  let position = 0;
  for (const T of steps) {
    const x = randomF32(T * spec.H, 500 + position);
    runStep(gpu, p, uploadBuffer(gpu, 'lr.x', x), T, position);
    refs.push(refStep(p, x, T, position, policy));
    position += T;
  }
  const enc = gpu.device.createCommandEncoder();
  p.stats.rebuild(enc, back);
  gpu.device.queue.submit([enc.finish()]);
  const snap = await p.stats.snapshot(back);
  const E = spec.E;
  const l = p.layer.layer;
  const row = <A extends Uint32Array | Float32Array>(a: A) => a.subarray(l * E, (l + 1) * E);
  const acc = accumulate(refs.slice(0, 2), E);
  expect(acc.rerouted.reduce((a, b) => a + b), 'the steps exercise re-routing').toBeGreaterThan(0);
  expectExact(row(snap.counts), acc.counts, 'rebuilt counts');
  expectExact(row(snap.dropped), acc.dropped, 'rebuilt dropped');
  expectExact(row(snap.rerouted), acc.rerouted, 'rebuilt rerouted');
  expectExact(row(snap.stepCounts), refs[1].counts, 'rebuilt stepCounts');
  expectClose(row(snap.probMass), acc.probMass, SUM_TOL, 'rebuilt probMass');
  expectClose(row(snap.gateSum), acc.gateSum, SUM_TOL, 'rebuilt gateSum');
  expectClose([snap.zLossSum[l]], [acc.zLossSum], SUM_TOL, 'rebuilt zLossSum');
  expect(gpu.recentErrors).toEqual([]);
}
