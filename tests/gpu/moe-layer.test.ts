import { describe, expect, it } from 'vitest';
import { uploadBuffer, readU32 } from '../../src/engine/kernels/common';
import { K_MAX } from '../../src/engine/routing/buffers';
import { expectClose, expectExact, readF32, testGpu } from '../support/gpu';
import { randomF32 } from '../support/random';
import { applyPolicy, buildProblem, policyWith, refStep, runStep, type Family, type Problem } from '../support/moe';
import type { RoutingPolicy } from '../../src/engine/session-api';
import type { Gpu } from '../../src/engine/gpu';
import type { ExpertMode } from '../../src/engine/kernels/moe-expert';

const OUT_TOL = { atol: 3e-5, rtol: 3e-4 };

/** Chosen/assigned experts and weights of `layer` for ring positions [position, position + T). */
async function ringRows(gpu: Gpu, p: Problem, position: number, T: number) {
  const L = p.config.numLayers;
  const n = (position + T) * L * K_MAX;
  const chosen = await readU32(gpu, p.stats.buffers.ringChosen, n);
  const assigned = await readU32(gpu, p.stats.buffers.ringAssigned, n);
  const weights = await readF32(gpu, p.stats.buffers.ringWeights, n);
  return { chosen, assigned, weights, at: (t: number, s: number) => ((position + t) * L + p.layer.layer) * K_MAX + s };
}

/** Runs one step and checks output, routing ids and weights against the reference. */
export async function checkStep(gpu: Gpu, p: Problem, T: number, policy: RoutingPolicy, seed: number, position = 0) {
  applyPolicy(p, policy);
  const x = randomF32(T * p.config.hiddenSize, seed, 1);
  const out = runStep(gpu, p, uploadBuffer(gpu, 'test.x', x), T, position);
  const ref = refStep(p, x, T, position, policy);
  const k = ref.chosen.length / T;
  const ring = await ringRows(gpu, p, position, T);
  const got = { chosen: [] as number[], assigned: [] as number[], weights: [] as number[] };
  for (let t = 0; t < T; t++) {
    for (let s = 0; s < k; s++) {
      got.chosen.push(ring.chosen[ring.at(t, s)]);
      got.assigned.push(ring.assigned[ring.at(t, s)]);
      got.weights.push(ring.weights[ring.at(t, s)]);
    }
  }
  const what = `${p.config.source} T=${T}`;
  expectExact(got.chosen, ref.chosen, `${what} chosen (min gap ${Math.min(...ref.gap).toExponential(2)})`);
  expectExact(got.assigned, ref.assigned, `${what} assigned`);
  expectClose(got.weights, ref.weights, { atol: 1e-6, rtol: 1e-5 }, `${what} weights`);
  expectClose(await readF32(gpu, out, T * p.config.hiddenSize), ref.out, OUT_TOL, `${what} output`);
  expect(gpu.recentErrors).toEqual([]);
  return ref;
}

const FAMILIES: Family[] = ['olmoe', 'mixtral', 'qwen2_moe', 'deepseek_v2', 'deepseek_v3', 'switch'];

describe('MoE layer vs float64 reference', () => {
  for (const family of FAMILIES) {
    for (const [T, mode] of [[1, 'auto'], [7, 'gemv'], [33, 'tiled']] as [number, ExpertMode | 'auto'][]) {
      it(`${family} T=${T} ${mode}`, async () => {
        const gpu = await testGpu();
        const p = buildProblem(gpu, { family, H: 33, I: 20, E: 16, k: family === 'switch' ? 1 : 3, seed: 10 + T }, { expertMode: mode });
        await checkStep(gpu, p, T, policyWith(p.config, {}), 100 + T, 5);
      });
    }
  }
});
