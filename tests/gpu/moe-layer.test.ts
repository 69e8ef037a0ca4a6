import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { expectMutantFails, mutation } from '../support/mutant';
import { uploadBuffer, readU32 } from '../../src/engine/kernels/common';
import { expectClose, expectExact, hardwareTilesGpu, readF32, testGpu } from '../support/gpu';
import { randomF32 } from '../support/random';
import {
  OUT_TOL, applyPolicy, buildProblem, checkStep, checkStepStats, policyWith, refStep, runStep, type Family, type Problem,
} from '../support/moe';
import type { RoutingPolicy } from '../../src/engine/session-api';
import type { Gpu } from '../../src/engine/gpu';
import type { ExpertVariant } from '../../src/engine/routing/moe-layer';
import type { WeightDtype } from '../../src/model/dtypes';
import { PLAN_BLOCK_WORDS } from '../../src/engine/kernels/moe-layout';
import { planWorkgroupSize } from '../../src/engine/kernels/moe-plan';
import { REROUTE_WG } from '../../src/engine/kernels/moe-reroute';
import { ROUTER_FEW_TOKENS } from '../../src/engine/kernels/moe-router';

const FAMILIES: Family[] = ['olmoe', 'mixtral', 'qwen2_moe', 'deepseek_v2', 'deepseek_v3', 'switch', 'gpt_oss'];

describe('MoE layer vs float64 reference', () => {
  for (const family of FAMILIES) {
    for (const [T, mode] of [[1, 'auto'], [7, 'gemv'], [33, 'tiled'], [20, 'tiled-narrow']] as [number, ExpertVariant | 'auto'][]) {
      it(`${family} T=${T} ${mode}`, async () => {
        const gpu = await testGpu();
        const p = buildProblem(gpu, { family, H: 33, I: 20, E: 16, k: family === 'switch' ? 1 : 3, seed: 10 + T }, { expertMode: mode });
        await checkStep(gpu, p, T, policyWith(p.config, {}), 100 + T, 5);
      });
    }
  }
});

describe('the residual add fused into the combine (out += scale · output)', () => {
  for (const [family, T, mode] of [['mixtral', 1, 'auto'], ['qwen2_moe', 7, 'gemv'], ['deepseek_v3', 33, 'tiled']] as [Family, number, ExpertVariant | 'auto'][]) {
    it(`${family} T=${T} ${mode}`, async () => {
      const gpu = await testGpu();
      const p = buildProblem(gpu, { family, H: 33, I: 20, E: 16, k: 3, seed: 40 + T }, { expertMode: mode, residualScale: 0.6 });
      await checkStep(gpu, p, T, policyWith(p.config, {}), 200 + T, 3);
    });
  }
});

describe('the input RMSNorm folded into the router (it writes the normalised rows the experts read)', () => {
  // Aligned (H = 32, 16-byte loads) and element-wise (H = 33) logits; with the residual add fused, x is the residual
  // stream and the output as in the decoder. The router's 256 threads (64 on a software adapter) stride over H = 600
  // in three passes (ten).
  for (const [family, T, H, dtype, mode, residual] of [
    ['mixtral', 1, 32, 'bf16', 'auto', true], ['qwen2_moe', 6, 33, 'f32', 'gemv', false], ['deepseek_v3', 9, 600, 'f16', 'auto', true],
    ['gpt_oss', 5, 40, 'f32', 'gemv', true],
  ] as [Family, number, number, WeightDtype, ExpertVariant | 'auto', boolean][]) {
    // The router's workgroup: 8 rows of routerLanes() threads, 32 on a GPU, 8 on a software adapter: both run.
    for (const hardware of [false, true]) {
      it(`${family} T=${T} H=${H} ${dtype}${residual ? ', residual fused' : ''}${hardware ? ', GPU router lanes' : ''}`, async () => {
        const gpu = hardware ? await hardwareTilesGpu() : await testGpu();
        const p = buildProblem(gpu, { family, H, I: 20, E: 16, k: 3, dtype, seed: 60 + T }, { expertMode: mode, inputNorm: true, ...(residual ? { residualScale: 0.6 } : {}) });
        await checkStep(gpu, p, T, policyWith(p.config, {}), 300 + T, 2);
      });
    }
  }
});

describe('what-if policies vs reference', () => {
  const cases: [string, Family, number, (c: Problem['config']) => Partial<RoutingPolicy>][] = [
    ['k override 1', 'mixtral', 9, () => ({ topK: 1 })],
    ['k override 5', 'olmoe', 9, () => ({ topK: 5 })],
    // One-token steps run the fused down projection + combine, compiled with one slot group per configured slot (3):
    // k = 5 gives two groups a second slot.
    ['k override 5 at decode', 'olmoe', 1, () => ({ topK: 5 })],
    ['ablation at decode', 'mixtral', 1, (c) => ({ ablated: ablate(c, 1, [2, 5, 11], [[0, 3]]) })],
    ['noise σ 0.7', 'olmoe', 9, () => ({ noiseStd: 0.7, noiseSeed: 42 })],
    ['noise on sigmoid groups', 'deepseek_v3', 9, () => ({ noiseStd: 0.5, noiseSeed: 7 })],
    ['temperature 0.5', 'mixtral', 9, () => ({ temperature: 0.5 })],
    ['temperature 3', 'qwen2_moe', 9, () => ({ temperature: 3 })],
    ['ablation', 'mixtral', 9, (c) => ({ ablated: ablate(c, 1, [2, 5, 11], [[0, 3]]) })],
    ['ablation, grouped sigmoid', 'deepseek_v3', 9, (c) => ({ ablated: ablate(c, 1, [0, 1, 2, 9], []) })],
    ['capacity drop', 'mixtral', 33, () => ({ capacityFactor: 0.7, overflow: 'drop' })],
    ['capacity reroute', 'olmoe', 33, () => ({ capacityFactor: 0.8, overflow: 'reroute' })],
    ['capacity reroute, grouped sigmoid', 'deepseek_v3', 33, () => ({ capacityFactor: 0.9, overflow: 'reroute' })],
    ['capacity reroute + ablation', 'mixtral', 33, (c) => ({ capacityFactor: 0.6, overflow: 'reroute', ablated: ablate(c, 1, [4], []) })],
    ['switch reroute', 'switch', 33, () => ({ capacityFactor: 1, overflow: 'reroute' })],
  ];
  for (const [name, family, T, make] of cases) {
    it(`${name} (${family}, T=${T})`, async () => {
      const gpu = await testGpu();
      const p = buildProblem(gpu, { family, H: 24, I: 12, E: 16, k: family === 'switch' ? 1 : 3, seed: name.length }, { maxTokens: 40 });
      const ref = await checkStep(gpu, p, T, policyWith(p.config, make(p.config)), 7 * T, 3);
      if (name.startsWith('capacity') || name.startsWith('switch')) {
        const moved = ref.dropped.reduce((a, b) => a + b, 0) + ref.rerouted.reduce((a, b) => a + b, 0);
        expect(moved, 'the case exercises overflow').toBeGreaterThan(0);
      }
    });
  }

  it('pinned capacity example: 4 experts, capacity 3, first choices 7/2/1/0 → 3/2/1/4 (reroute), 3/2/1/0 (drop)', async () => {
    const gpu = await testGpu();
    // Router = identity over H = 4, so x rows are the logits. Preferences: "zero" tokens rank 0 > 3 > 1 > 2.
    const Z = [3, 1, 0, 2], O = [1, 3, 0, 2], W = [1, 0, 3, 2];
    const rows = [Z, Z, O, Z, W, Z, Z, O, Z, Z];
    const x = new Float32Array(rows.flat());
    const identity = new Float32Array(16).map((_, i) => (i % 5 === 0 ? 1 : 0));
    const p = buildProblem(gpu, { family: 'switch', H: 4, I: 8, E: 4, seed: 3 }, { routerWeight: identity, maxTokens: 16 });
    for (const [overflow, expected] of [['reroute', [3, 2, 1, 4]], ['drop', [3, 2, 1, 0]]] as const) {
      const policy = policyWith(p.config, { capacityFactor: 1.2, overflow });
      applyPolicy(p, policy);
      const before = await readU32(gpu, p.stats.buffers.counts);
      const out = runStep(gpu, p, uploadBuffer(gpu, 'pin.x', x), 10, 0);
      const after = await readU32(gpu, p.stats.buffers.counts);
      const E = 4, l = p.layer.layer;
      const step = Array.from({ length: E }, (_, e) => after[l * E + e] - before[l * E + e]);
      expect(step, overflow).toEqual(expected);
      const ref = refStep(p, x, 10, 0, policy);
      expect(Array.from(ref.counts), `reference ${overflow}`).toEqual(expected);
      expectClose(await readF32(gpu, out, 40), ref.out, OUT_TOL, `capacity example ${overflow}`);
    }
  });
});

/** Ablation mask with `experts` ablated in `layer` and [layer, expert] pairs elsewhere. */
function ablate(c: Problem['config'], layer: number, experts: number[], others: [number, number][]): Uint8Array {
  const m = new Uint8Array(c.numLayers * c.numExperts);
  for (const e of experts) m[layer * c.numExperts + e] = 1;
  for (const [l, e] of others) m[l * c.numExperts + e] = 1;
  return m;
}

describe('weights and kernels', () => {
  for (const dtype of ['f16', 'bf16'] as const) {
    for (const mode of ['gemv', 'tiled'] as const) {
      // 33 × 19: element-wise loads; 32 × 24: 16-byte loads of 8 weights
      for (const [H, I] of [[33, 19], [32, 24]]) {
        it(`${dtype} weights, ${mode}, H=${H} I=${I}`, async () => {
          const gpu = await testGpu();
          const p = buildProblem(gpu, { family: 'qwen2_moe', H, I, E: 8, k: 2, dtype, seed: 21 }, { expertMode: mode });
          await checkStep(gpu, p, 13, policyWith(p.config, {}), 5);
        });
      }
    }
  }
  // Quantised expert banks (lib/quant_unit in the expert GEMV, lib/quant in the tiled staging), against the float64
  // reference on the dequantised weights. H and I of 2 or 3 blocks (Q8_0, MXFP4: a whole 64-element unit and one
  // ending on a half unit) or 1 block (Q4_K: 256); a mutant that skips the last segment of every GEMV unit fails.
  for (const [format, H, I] of [['q8_0', 64, 96], ['mxfp4', 96, 64], ['q4_k', 256, 256], ['q6_k', 256, 256]] as const) {
    for (const mode of ['gemv', 'tiled'] as const) {
      it(`${format} expert banks, ${mode}, H=${H} I=${I}`, async () => {
        const gpu = await testGpu();
        const p = buildProblem(gpu, { family: 'mixtral', H, I, E: 4, k: 2, seed: 31 }, { expertMode: mode, quantExperts: format });
        await checkStep(gpu, p, 9, policyWith(p.config, {}), 6);
      });
    }
  }
  it('a quantised expert GEMV mutant (last segment of each unit dropped) fails', async () => {
    await expectMutantFails(mutation('lib/gemv_core', 'if (seg < segs) {', 'if (seg < segs && seg != 3u) {'), (broken) => {
      const p = buildProblem(broken, { family: 'mixtral', H: 64, I: 96, E: 4, k: 2, seed: 31 }, { expertMode: 'gemv', quantExperts: 'q8_0' });
      return checkStep(broken, p, 9, policyWith(p.config, {}), 6);
    }, /output/);
  });

  it('router bias (x·Wᵀ + b), with a correction bias too', async () => {
    const gpu = await testGpu();
    for (const family of ['mixtral', 'deepseek_v3'] as const) {
      const p = buildProblem(gpu, { family, routerBias: true, H: 20, I: 12, E: 16, k: 3, seed: 6 });
      await checkStep(gpu, p, 9, policyWith(p.config, {}), 4);
    }
  });
  it('expert banks split over several buffers (3 experts each); gpt-oss biases indexed by global expert; T = 21 and 1 (fused down)', async () => {
    const gpu = await testGpu();
    for (const family of ['mixtral', 'gpt_oss'] as const) {
      const spec = { family, H: 24, I: 16, E: 8, k: 2, seed: 4 };
      const bytes = 3 * 2 * spec.I * spec.H * 4;
      for (const mode of ['gemv', 'tiled'] as const) {
        const p = buildProblem(gpu, spec, { expertMode: mode, maxBindingBytes: bytes });
        expect(p.gpuWeights.gateUp.buffers.length).toBe(3);
        expect(p.gpuWeights.down.buffers.length).toBeGreaterThan(1);
        await checkStep(gpu, p, 21, policyWith(p.config, {}), 9);
        await checkStep(gpu, p, 1, policyWith(p.config, {}), 10, 21);
      }
    }
  });
  it('gpt-oss experts with bf16 weights, element-wise (H=33, I=19) and 16-byte loads (H=32, I=24)', async () => {
    const gpu = await testGpu();
    for (const mode of ['gemv', 'tiled'] as const) {
      for (const [H, I] of [[33, 19], [32, 24]]) {
        const p = buildProblem(gpu, { family: 'gpt_oss', H, I, E: 8, k: 2, dtype: 'bf16', seed: 31 }, { expertMode: mode });
        await checkStep(gpu, p, 13, policyWith(p.config, {}), 6);
      }
    }
  });
  it('a prefill over 1024 tokens (flattened prefix scan in the plan) with capacity cut-offs deep in the masks', async () => {
    const gpu = await testGpu();
    const p = buildProblem(gpu, { family: 'olmoe', H: 8, I: 4, E: 4, k: 2, seed: 12 }, { maxTokens: 1100, ringCapacity: 1100 });
    const ref = await checkStep(gpu, p, 1100, policyWith(p.config, { capacityFactor: 0.9 }), 13);
    expect(ref.dropped.reduce((a, c) => a + c), 'capacity drops tokens').toBeGreaterThan(0);
    await checkStepStats(gpu, p, ref);
  });
  it('the two-pass plan (T > 256) with a partial last block, E = 12 and capacity cut-offs: rows and statistics', async () => {
    const gpu = await testGpu();
    const p = buildProblem(gpu, { family: 'mixtral', H: 12, I: 4, E: 12, k: 3, seed: 21 }, { maxTokens: 300, ringCapacity: 300 });
    const ref = await checkStep(gpu, p, 300, policyWith(p.config, { capacityFactor: 0.8 }), 22);
    expect(ref.dropped.reduce((a, c) => a + c), 'capacity drops tokens').toBeGreaterThan(0);
    await checkStepStats(gpu, p, ref);
  });
  it('the two-pass plan without a capacity limit: statistics', async () => {
    const gpu = await testGpu();
    const p = buildProblem(gpu, { family: 'olmoe', H: 8, I: 4, E: 8, k: 2, seed: 23 }, { maxTokens: 520, ringCapacity: 520 });
    await checkStepStats(gpu, p, await checkStep(gpu, p, 520, policyWith(p.config, {}), 24));
  });
  it('the two-pass plan with more (expert, block) totals than its PLAN_WG threads: each scans several', async () => {
    const gpu = await testGpu();
    await checkManyBlocks(gpu);
  });
  it(`capacity re-routing over more tokens than its ${REROUTE_WG} threads: each handles two`, async () => {
    await checkLongReroute(await testGpu());
  });
  it('a long prefill over many tiles (T = 200, E = 64, k = 6)', async () => {
    const gpu = await testGpu();
    const p = buildProblem(gpu, { family: 'olmoe', H: 16, I: 8, E: 64, k: 6, seed: 8 }, { maxTokens: 200, expertMode: 'tiled', ringCapacity: 256 });
    await checkStep(gpu, p, 200, policyWith(p.config, {}), 11);
  });
});

describe('determinism and the per-token path', () => {
  it('repeated runs give bit-identical outputs', async () => {
    const gpu = await testGpu();
    // T = 1: the fused down projection + combine.
    for (const [mode, T] of [['gemv', 37], ['tiled', 37], ['gemv', 1]] as const) {
      const p = buildProblem(gpu, { family: 'qwen2_moe', H: 40, I: 24, E: 16, k: 4, seed: 77 }, { expertMode: mode });
      applyPolicy(p, policyWith(p.config, { capacityFactor: 0.8, overflow: 'reroute', noiseStd: 0.3, noiseSeed: 5 }));
      const x = uploadBuffer(gpu, 'det.x', randomF32(T * 40, 3));
      const runs: Uint32Array[] = [];
      for (let i = 0; i < 3; i++) runs.push(await readU32(gpu, runStep(gpu, p, x, T, 0), T * 40));
      expectExact(runs[1], runs[0], `${mode} T=${T} run 2 vs run 1 (bits)`);
      expectExact(runs[2], runs[0], `${mode} T=${T} run 3 vs run 1 (bits)`);
    }
  });

  it('encode and submit of decode steps perform no buffer mapping', async () => {
    const gpu = await testGpu();
    const p = buildProblem(gpu, { family: 'qwen2_moe', H: 24, I: 12, E: 8, k: 2, seed: 2 });
    applyPolicy(p, policyWith(p.config, { capacityFactor: 1, overflow: 'reroute' }));
    const x = uploadBuffer(gpu, 'map.x', randomF32(24, 1));
    const out = uploadBuffer(gpu, 'map.out', new Float32Array(24));
    runStep(gpu, p, x, 1, 0, out); // first use makes the (x, out) bind groups
    await gpu.device.queue.onSubmittedWorkDone();
    const proto = Object.getPrototypeOf(out) as { mapAsync: (...a: unknown[]) => Promise<void> };
    const original = proto.mapAsync;
    let maps = 0;
    proto.mapAsync = function (this: unknown, ...args: unknown[]) {
      maps++;
      return original.apply(this, args);
    };
    try {
      for (let step = 1; step <= 20; step++) runStep(gpu, p, x, 1, step, out);
      await gpu.device.queue.onSubmittedWorkDone();
      expect(maps, 'mapAsync calls on the per-token path').toBe(0);
      await p.stats.snapshot(21); // the async snapshot does map: the counter sees it
      expect(maps).toBeGreaterThan(0);
    } finally {
      proto.mapAsync = original;
    }
    expect(gpu.recentErrors).toEqual([]);
  });

  it('decode records 5 dispatches per MoE layer without a shared expert (the down projection fused with the combine)', async () => {
    const gpu = await testGpu();
    const mixtral = buildProblem(gpu, { family: 'mixtral', H: 16, I: 8, E: 8, k: 2, seed: 1 });
    expect(mixtral.layer.dispatchCount(1), 'router logits, selection with the plan, scatter, gate/up, down with combine').toBe(5);
    expect(mixtral.layer.dispatchCount(2), 'router logits, selection, plan; down GEMV and combine past FUSED_DOWN_TOKENS').toBe(7);
    expect(mixtral.layer.dispatchCount(ROUTER_FEW_TOKENS), 'two router kernels up to ROUTER_FEW_TOKENS').toBe(7);
    expect(mixtral.layer.dispatchCount(ROUTER_FEW_TOKENS + 1), 'one above').toBe(6);
    expect(mixtral.layer.dispatchCount(256), 'one-pass plan up to 256 tokens').toBe(6);
    expect(mixtral.layer.dispatchCount(257), 'two-pass plan above').toBe(7);
    const unfused = buildProblem(gpu, { family: 'mixtral', H: 16, I: 8, E: 8, k: 2, seed: 1 }, { fusedDecode: false });
    expect(unfused.layer.dispatchCount(1)).toBe(6);
    const qwen = buildProblem(gpu, { family: 'qwen2_moe', H: 16, I: 8, E: 8, k: 2, seed: 1 });
    expect(qwen.layer.dispatchCount(1)).toBe(7);
    // count what encode() actually records
    let dispatches = 0;
    const enc = gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    const counting = new Proxy(pass, {
      get(target, prop) {
        const v = Reflect.get(target, prop);
        if (prop === 'dispatchWorkgroups') return (...a: number[]) => { dispatches++; return (v as (...a: number[]) => void).apply(target, a); };
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    mixtral.layer.encode(counting, uploadBuffer(gpu, 'd.x', randomF32(16, 1)), uploadBuffer(gpu, 'd.o', new Float32Array(16)), 1, 0);
    pass.end();
    gpu.device.queue.submit([enc.finish()]);
    expect(dispatches).toBe(5);
  });
});

describe('expert numbering is arbitrary', () => {
  it('permuting experts (router rows and expert weights together) keeps the output and permutes the counts', async () => {
    const gpu = await testGpu();
    const H = 20, I = 12, E = 8, T = 11;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<Family>('mixtral', 'olmoe', 'qwen2_moe'),
        fc.shuffledSubarray([0, 1, 2, 3, 4, 5, 6, 7], { minLength: 8, maxLength: 8 }),
        fc.integer({ min: 1, max: 1000 }),
        async (family, perm, seed) => {
          const router = randomF32(E * H, seed, 1.5 / Math.sqrt(H));
          const gateUp = randomF32(E * 2 * I * H, seed + 1, 1 / Math.sqrt(H));
          const down = randomF32(E * H * I, seed + 2, 1 / Math.sqrt(I));
          const permute = (v: Float32Array) => {
            const n = v.length / E;
            const out = new Float32Array(v.length);
            for (let e = 0; e < E; e++) out.set(v.subarray(e * n, (e + 1) * n), perm[e] * n);
            return out;
          };
          const spec = { family, H, I, E, k: 2, seed };
          const a = buildProblem(gpu, spec, { routerWeight: router, gateUpWeight: gateUp, downWeight: down });
          const b = buildProblem(gpu, spec, { routerWeight: permute(router), gateUpWeight: permute(gateUp), downWeight: permute(down) });
          const x = uploadBuffer(gpu, 'perm.x', randomF32(T * H, seed + 9));
          const outA = await readF32(gpu, runStep(gpu, a, x, T, 0), T * H);
          const outB = await readF32(gpu, runStep(gpu, b, x, T, 0), T * H);
          expectClose(outB, outA, { atol: 1e-6, rtol: 1e-5 }, `permuted ${family} [${perm}]`);
          const l = a.layer.layer;
          const countsA = (await readU32(gpu, a.stats.buffers.counts)).subarray(l * E, (l + 1) * E);
          const countsB = (await readU32(gpu, b.stats.buffers.counts)).subarray(l * E, (l + 1) * E);
          for (let e = 0; e < E; e++) expect(countsB[perm[e]]).toBe(countsA[e]);
          for (const pr of [a, b]) { pr.stats.destroy(); pr.scratch.destroy(); }
        },
      ),
      { numRuns: 6, seed: 20261123 },
    );
    expect(gpu.recentErrors).toEqual([]);
  });
});

describe('the checks can fail', () => {
  type Spec = Parameters<typeof buildProblem>[1];
  const MIXTRAL: Spec = { family: 'mixtral', H: 16, I: 8, E: 8, k: 2, seed: 3 };
  /** One step of a fresh problem on `gpu` against the reference; with `stats`, the layer's statistics too. */
  const step = (spec: Spec, T: number, policy: Partial<RoutingPolicy>, stats = false) => async (gpu: Gpu) => {
    const p = buildProblem(gpu, spec, { maxTokens: Math.max(T, 64), ringCapacity: Math.max(T, 128) });
    const ref = await checkStep(gpu, p, T, policyWith(p.config, policy), 1);
    if (stats) await checkStepStats(gpu, p, ref);
  };

  it('a combine that ignores the gate weights fails', () =>
    expectMutantFails(mutation('moe_combine', 'acc += w[s] * y[rows[s] * H + c]', 'acc += y[rows[s] * H + c]'), step(MIXTRAL, 5, {}), /output/));
  it('a fused residual combine that ignores the residual scale fails', () =>
    expectMutantFails(mutation('moe_combine', 'out[t * H + c] += P.residual_scale * acc', 'out[t * H + c] += acc'), async (gpu) => {
      const p = buildProblem(gpu, MIXTRAL, { residualScale: 0.6 });
      await checkStep(gpu, p, 3, policyWith(p.config, {}), 1);
    }, /output/));
  it('a folded router norm that forgets the norm weight in the logits fails', () =>
    expectMutantFails(mutation('moe_router', 'return v * inv_rms[i] * norm_weight(h);', 'return v * inv_rms[i];'), async (gpu) => {
      const p = buildProblem(gpu, { ...MIXTRAL, H: 15 }, { inputNorm: true });
      await checkStep(gpu, p, ROUTER_FEW_TOKENS + 3, policyWith(p.config, {}), 1);
    }, /normed|output|chosen/));
  it('a folded router norm that sums squares for all but the last of a workgroup\'s tokens fails', () =>
    expectMutantFails(mutation('moe_router', 'for (var i = 0u; i < ntok; i++) {\n    var ss = 0.0;', 'for (var i = 0u; i + 1u < ntok; i++) {\n    var ss = 0.0;'), async (gpu) => {
      const p = buildProblem(gpu, { ...MIXTRAL, H: 32 }, { inputNorm: true });
      await checkStep(gpu, p, ROUTER_FEW_TOKENS + 6, policyWith(p.config, {}), 1);
    }, /normed|output|chosen/));
  it('a scatter that keeps one token too many per expert fails the capacity check', () =>
    expectMutantFails(mutation('moe_scatter', 'if (rank < plan[P.off_kept + e])', 'if (rank <= plan[P.off_kept + e])'),
      step(MIXTRAL, 33, { capacityFactor: 0.6 }), /assigned/));
  it('a router that breaks ties and ranks toward the higher index fails', () =>
    expectMutantFails(mutation('moe_router', 'if (best == NONE || c > bv) { best = e; bv = c; }', 'if (best == NONE || c < bv) { best = e; bv = c; }'),
      step({ ...MIXTRAL, family: 'olmoe' }, ROUTER_FEW_TOKENS + 5, {}), /chosen/));
  it('a re-route to the worst-scoring free expert fails', () =>
    expectMutantFails(mutation('moe_reroute', 'if (best == NONE || v > bv) { best = c; bv = v; }', 'if (best == NONE || v < bv) { best = c; bv = v; }'),
      step({ family: 'olmoe', H: 24, I: 12, E: 16, k: 3, seed: 16 }, 33, { capacityFactor: 0.8, overflow: 'reroute' }), /assigned/));
  it('a one-pass plan that keeps only the last share of each expert\'s probability mass fails', () =>
    expectMutantFails(mutation('moe_plan', 'ps += facc[g * E + li];', 'ps = facc[g * E + li];'), step(MIXTRAL, 33, {}, true), /probMass/));
  it('a two-pass plan that counts one member too many per block fails', () =>
    expectMutantFails(mutation('moe_plan_partials', 'var run = 0u;', 'var run = 1u;'), step(MIXTRAL, 300, {}, true), /counts/));
  it('a re-route whose threads skip every other token stride fails', () =>
    expectMutantFails(mutation('moe_reroute', 't += WG', 't += 2u * WG'), checkLongReroute, /assigned/));
  it('a two-pass plan whose threads sum only the first of their block totals fails', () =>
    expectMutantFails(mutation('moe_plan_finish', 'for (var i = lo; i < hi; i++) { run += plan[op + i]; }', 'for (var i = lo; i < min(hi, lo + 1u); i++) { run += plan[op + i]; }'),
      checkManyBlocks, /assigned/));
  it('a two-pass plan whose block scan skips the neighbour at each stride fails', () =>
    expectMutantFails(mutation('moe_plan_finish', 'if (li >= off) { add = scan_buf[li - off]; }', 'if (li > off) { add = scan_buf[li - off]; }'),
      step(MIXTRAL, 300, {}), /output/));

  // gpt-oss's expert biases and clamped activation, one mutant per place they enter (T = 33 tiled, T = 7 gemv).
  const GPT_OSS_MUTANTS: [string, string, string, number, ExpertVariant][] = [
    ['moe_expert_up', 'bg[j] = expert_bias(tile_info.x, n + j);', 'bg[j] = 0.0;', 33, 'tiled'],
    ['moe_expert_up_gemv', '+ expert_bias(info.x, I + j);', '+ expert_bias(info.x, j);', 7, 'gemv'],
    ['moe_expert_down', 'if (n + j < N) { v[j] += expert_bias(tile_info.x, n + j); }', 'if (n + j < N) { v[j] += expert_bias(0u, n + j); }', 33, 'tiled'],
    ['moe_expert_down_gemv', 'col % NT) + expert_bias(info.x, n);', 'col % NT);', 7, 'gemv'],
    ['lib/moe_expert_params', 'let g = min(gate, vec4<f32>(P.act_limit));', 'let g = gate;', 33, 'tiled'],
    ['lib/moe_expert_params', '(u + vec4<f32>(P.act_up_offset))', 'u', 7, 'gemv'],
  ];
  for (const [shader, from, to, T, mode] of GPT_OSS_MUTANTS) {
    it(`gpt-oss experts: ${shader} with "${to}" fails`, () =>
      expectMutantFails(mutation(shader, from, to), async (gpu) => {
        const p = buildProblem(gpu, { family: 'gpt_oss', H: 33, I: 20, E: 16, k: 3, seed: 10 + T }, { expertMode: mode });
        await checkStep(gpu, p, T, policyWith(p.config, {}), 100 + T, 5);
      }, /output/));
  }
});

/**
 * moe_plan_finish scans E · blocks block totals with PLAN_WG threads, ceil(E · blocks / PLAN_WG) each: with E = 64
 * and blocks = 2 · PLAN_WG / E + 1 (of PLAN_BLOCK_WORDS mask words, 32 tokens each) every thread has two or three.
 */
async function checkManyBlocks(gpu: Gpu) {
  const E = 64;
  const blocks = (2 * planWorkgroupSize(gpu)) / E + 1;
  const T = blocks * PLAN_BLOCK_WORDS * 32 - 5;
  const p = buildProblem(gpu, { family: 'olmoe', H: 8, I: 4, E, k: 2, seed: 19 }, { maxTokens: T, ringCapacity: T });
  await checkStepStats(gpu, p, await checkStep(gpu, p, T, policyWith(p.config, { capacityFactor: 0.9 }), 20));
}

/** moe_reroute walks tokens strided by its REROUTE_WG threads: T = REROUTE_WG + 44 with capacity re-routing. */
async function checkLongReroute(gpu: Gpu) {
  const T = REROUTE_WG + 44;
  const p = buildProblem(gpu, { family: 'mixtral', H: 8, I: 4, E: 8, k: 2, seed: 25 }, { maxTokens: T, ringCapacity: T });
  const ref = await checkStep(gpu, p, T, policyWith(p.config, { capacityFactor: 0.9, overflow: 'reroute' }), 26);
  expect(ref.rerouted.reduce((a, b) => a + b), 'assignments re-routed').toBeGreaterThan(0);
  await checkStepStats(gpu, p, ref);
}
