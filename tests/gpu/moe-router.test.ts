// The router's two variants against the float64 reference: the small-T pair (moe_router_logits over ⌈(E + gate) / EPW⌉
// × T workgroups, then moe_router_select, one workgroup per token) up to ROUTER_FEW_TOKENS, and the one-workgroup-per-
// RT-tokens moe_router above. Sizes come from the small-T kernels' tiles (software adapter: EPW 4, LANES 16, SEL_WG 64;
// GPU: EPW 2, LANES 128, SEL_WG 256): E not a multiple of EPW, E past SEL_WG, H with a partial last stride of the
// lanes, k = 1 and k = E, exact ties, ablated experts, NaN and Inf logits. Scratch records and probabilities and the
// ring rows are NaN-poisoned before each run.
import { describe, expect, it } from 'vitest';
import { expectMutantFails, mutation } from '../support/mutant';
import { readU32, uploadBuffer } from '../../src/engine/kernels/common';
import { POISON_BITS, expectClose, expectExact, hardwareTilesGpu, readF32, testGpu } from '../support/gpu';
import { randomF32 } from '../support/random';
import { applyPolicy, buildProblem, checkStep, checkStepStats, policyWith, refStep, runStep, type Family, type Problem, type ProblemSpec } from '../support/moe';
import type { Gpu } from '../../src/engine/gpu';
import type { RoutingPolicy } from '../../src/engine/session-api';
import type { WeightDtype } from '../../src/model/dtypes';
import { K_MAX } from '../../src/engine/routing-buffers';
import { LOGITS_SHAPE, LOGITS_SHAPE_SOFTWARE, ROUTER_FEW_TOKENS, SELECT_WG_SOFTWARE } from '../../src/engine/kernels/moe-router';

const NONE = 0xffffffff;
const FLAG_LOGITS = 1;
/** A step long enough for the one-kernel router (and one token short of a whole number of its RT = 4 workgroups). */
const WIDE_T = ROUTER_FEW_TOKENS + 3;

function poison(gpu: Gpu, p: Problem): void {
  const b = p.stats.buffers;
  for (const buf of [p.scratch.records, p.scratch.probs, b.ringChosen, b.ringAssigned, b.ringWeights, b.ringProbs, b.ringLse]) {
    gpu.device.queue.writeBuffer(buf, 0, new Uint32Array(buf.size / 4).fill(POISON_BITS));
  }
}

/** Ring rows of the layer for positions [0, T): probabilities [T, E], lse [T] and flags [T]. */
async function ringRouting(gpu: Gpu, p: Problem, T: number) {
  const L = p.config.numLayers, E = p.config.numExperts, l = p.layer.layer;
  const probs = await readF32(gpu, p.stats.buffers.ringProbs, T * L * E);
  const lse = await readU32(gpu, p.stats.buffers.ringLse, T * L * 2);
  const row = (t: number) => (t * L + l);
  return {
    probs: Array.from({ length: T }, (_, t) => Array.from(probs.subarray(row(t) * E, (row(t) + 1) * E))).flat(),
    lse: Array.from({ length: T }, (_, t) => new Float32Array(new Uint32Array([lse[row(t) * 2]]).buffer)[0]),
    flags: Array.from({ length: T }, (_, t) => lse[row(t) * 2 + 1]),
  };
}

/** checkStep (chosen, assigned, weights, output, normed) plus probabilities, choice scores, lse and flags. */
async function checkRouting(gpu: Gpu, p: Problem, T: number, policy: RoutingPolicy, seed: number) {
  poison(gpu, p);
  const ref = await checkStep(gpu, p, T, policy, seed);
  const E = p.config.numExperts;
  const what = `${p.config.source} T=${T}`;
  const ring = await ringRouting(gpu, p, T);
  const TOL = { atol: 1e-6, rtol: 1e-5 };
  expectClose(ring.probs, ref.probs, TOL, `${what} probs`);
  expectClose(ring.lse, ref.lse, TOL, `${what} lse`);
  expectExact(ring.flags, new Array(T).fill(0), `${what} flags`);
  const choice = await readF32(gpu, p.scratch.probs, p.scratch.shape.maxTokens * E + T * E);
  expectClose(choice.subarray(p.scratch.shape.maxTokens * E), ref.choice, TOL, `${what} choice scores`);
  return ref;
}

interface Case {
  name: string;
  spec: ProblemSpec;
  T: number;
  policy?: (p: Problem) => Partial<RoutingPolicy>;
  routerWeight?: (spec: ProblemSpec) => Float32Array;
  inputNorm?: boolean;
}

const fam = (family: Family, H: number, E: number, k: number, dtype: WeightDtype = 'f32', seed = 1): ProblemSpec => ({ family, H, I: 8, E, k, dtype, seed });
/** Router rows repeating `distinct` random rows (row e = row e mod distinct): exact logit ties. */
const repeating = (distinct: number) => (s: ProblemSpec) => {
  const base = randomF32(distinct * s.H, s.seed + 50, 1.5 / Math.sqrt(s.H));
  return Float32Array.from({ length: s.E * s.H }, (_, i) => base[(Math.floor(i / s.H) % distinct) * s.H + (i % s.H)]);
};
const ablating = (experts: number[]) => (p: Problem) => {
  const E = p.config.numExperts, l = p.layer.layer;
  const m = new Uint8Array(p.config.numLayers * E);
  for (const e of experts) m[l * E + e] = 1;
  return { ablated: m };
};

const SW = LOGITS_SHAPE_SOFTWARE, HW = LOGITS_SHAPE;
const CASES: Case[] = [
  // E = 13: not a multiple of EPW (4 or 2); H = 100 f32: 16-byte loads, 25 units over 16 lanes (a partial stride).
  { name: 'E 13, aligned f32 H 100', spec: fam('olmoe', 100, 13, 3), T: 3 },
  // H = 33: element-wise, 16 lanes stride twice and one more; E + the gated shared expert's gate row = 14 rows.
  { name: 'unaligned H 33 with the shared-expert gate row, folded norm', spec: fam('qwen2_moe', 33, 13, 2), T: 2, inputNorm: true },
  // bf16 H = 600: 150 four-element steps, 128 lanes on a GPU (a partial second stride), 16 in software.
  { name: 'bf16 H 600, folded norm, grouped sigmoid', spec: fam('deepseek_v3', 600, 16, 4, 'bf16'), T: 1, inputNorm: true },
  // E = 70 > SEL_WG (64 in software): threads serve two experts; k = K_MAX.
  { name: `E 70 (over ${SELECT_WG_SOFTWARE} selection threads), k 8`, spec: fam('mixtral', 24, 70, 8), T: 2 },
  { name: 'k 1', spec: fam('olmoe', 24, 13, 1), T: 3 },
  { name: 'k = E = 7', spec: fam('mixtral', 24, 7, 7), T: 2 },
  // k = 2 and ≥ 3 copies of every row: the 2nd and 3rd candidates tie for every token.
  { name: 'exact ties (4 distinct router rows)', spec: fam('olmoe', 24, 13, 2), T: 3, routerWeight: repeating(4) },
  { name: 'exact ties between groups', spec: fam('deepseek_v2', 24, 16, 3), T: 2, routerWeight: repeating(4) },
  { name: 'ablated experts', spec: fam('mixtral', 24, 13, 3), T: 3, policy: ablating([0, 4, 12]) },
  { name: 'fewer experts left than k', spec: fam('mixtral', 24, 13, 3), T: 2, policy: ablating([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11]) },
  { name: 'every expert ablated', spec: fam('olmoe', 24, 7, 3), T: 1, policy: ablating([0, 1, 2, 3, 4, 5, 6]) },
  // moe_reroute (between the selection and the plan) reads the choice scores and masks the selection leaves.
  { name: 'capacity re-route', spec: fam('olmoe', 24, 13, 3), T: 20, policy: () => ({ capacityFactor: 0.8, overflow: 'reroute' }) },
  { name: 'capacity drop', spec: fam('mixtral', 24, 13, 3), T: 20, policy: () => ({ capacityFactor: 0.7, overflow: 'drop' }) },
  { name: 'noise, temperature and a router bias', spec: fam('gpt_oss', 24, 13, 3), T: 2, policy: () => ({ noiseStd: 0.7, noiseSeed: 9, temperature: 0.6 }) },
];

describe('router variants vs float64 reference', () => {
  it('the sizes cover the small-T tiles', () => {
    expect(13 % SW.EPW && 13 % HW.EPW && 70 % SW.EPW, 'E not a multiple of EPW').toBeTruthy();
    expect(70).toBeGreaterThan(SELECT_WG_SOFTWARE);
    expect(Math.ceil(100 / 4) % SW.LANES, 'aligned f32 H 100: a partial stride').not.toBe(0);
    expect(Math.ceil(600 / 4) % HW.LANES, 'bf16 H 600: a partial GPU stride').not.toBe(0);
    expect(WIDE_T).toBeGreaterThan(ROUTER_FEW_TOKENS);
  });
  for (const c of CASES) {
    for (const [variant, T] of [['small-T', c.T], ['one-kernel', WIDE_T]] as const) {
      for (const hardware of variant === 'small-T' ? [false, true] : [false]) {
        it(`${c.name} (${c.spec.family}, ${variant} T=${T}${hardware ? ', GPU tiles' : ''})`, async () => {
          const gpu = hardware ? await hardwareTilesGpu() : await testGpu();
          const p = buildProblem(gpu, c.spec, { maxTokens: WIDE_T, ringCapacity: WIDE_T, inputNorm: c.inputNorm, routerWeight: c.routerWeight?.(c.spec) });
          const policy = policyWith(p.config, c.policy?.(p) ?? {});
          const ref = await checkRouting(gpu, p, T, policy, c.spec.seed + T);
          if (c.name.includes('ties')) expect(Math.min(...ref.gap), 'the case has ties at the k-th choice').toBe(0);
        });
      }
    }
  }
});

/** `base` with a device limit of `storageBuffers` storage buffers per shader stage. */
function storageLimitedGpu(base: Gpu, storageBuffers: number): Gpu {
  const real = base.limits;
  const limits = new Proxy(real, {
    get: (_target, key) => (key === 'maxStorageBuffersPerShaderStage' ? storageBuffers : real[key as keyof GPUSupportedLimits]),
  });
  return Object.create(base, { limits: { value: limits } }) as Gpu;
}

describe('T = 1: the selection with the plan folded in (moe_router_select main_plan)', () => {
  // The plan's outputs feed the scatter and the experts (chosen, assigned, output) and the statistics.
  const FAMILIES: [Family, number, number][] = [['mixtral', 13, 3], ['deepseek_v3', 16, 4], ['qwen2_moe', 13, 2], ['gpt_oss', 13, 3], ['olmoe', 7, 7]];
  for (const [family, E, k] of FAMILIES) {
    it(`${family} E=${E} k=${k}: routing and statistics`, async () => {
      const gpu = await testGpu();
      const p = buildProblem(gpu, fam(family, 24, E, k), { maxTokens: 4, ringCapacity: 8 });
      // router logits, selection with the plan, scatter, gate/up, down with the combine (+ the shared expert's two)
      expect(p.layer.dispatchCount(1), 'no plan dispatch').toBe(5 + (p.config.sharedExpert ? 2 : 0));
      const ref = await checkRouting(gpu, p, 1, policyWith(p.config, {}), 3);
      await checkStepStats(gpu, p, ref);
    });
  }
  it('with capacity (drop) and ablation: nothing dropped at T = 1, ablated experts never counted', async () => {
    const gpu = await testGpu();
    const p = buildProblem(gpu, fam('mixtral', 24, 13, 3), { maxTokens: 4, ringCapacity: 8 });
    const policy = policyWith(p.config, { capacityFactor: 0.5, overflow: 'drop', ...ablating([1, 2, 3])(p) });
    const ref = await checkRouting(gpu, p, 1, policy, 4);
    await checkStepStats(gpu, p, ref);
  });
  it('with the re-route policy moe_reroute and moe_plan run after the selection', async () => {
    const gpu = await testGpu();
    const p = buildProblem(gpu, fam('olmoe', 24, 13, 3), { maxTokens: 4, ringCapacity: 8 });
    const policy = policyWith(p.config, { capacityFactor: 0.8, overflow: 'reroute' });
    applyPolicy(p, policy);
    expect(p.layer.dispatchCount(1), 'router logits, selection, re-route, plan, scatter, gate/up, down with the combine').toBe(7);
    const ref = await checkRouting(gpu, p, 1, policy, 5);
    await checkStepStats(gpu, p, ref);
  });
  it('a device with fewer storage buffers per stage runs moe_plan instead, with the same results', async () => {
    const gpu = storageLimitedGpu(await testGpu(), 10);
    const p = buildProblem(gpu, fam('deepseek_v3', 24, 16, 4), { maxTokens: 4, ringCapacity: 8 });
    expect(p.layer.dispatchCount(1), 'router logits, selection, plan, scatter, gate/up, down with the combine, shared expert').toBe(8);
    const ref = await checkRouting(gpu, p, 1, policyWith(p.config, {}), 3);
    await checkStepStats(gpu, p, ref);
  });
  it('without the routing record (record false): routed, counted, no probability statistics', async () => {
    const gpu = await testGpu();
    const p = buildProblem(gpu, fam('mixtral', 24, 13, 3), { maxTokens: 4, ringCapacity: 8, record: false });
    const policy = policyWith(p.config, {});
    const x = randomF32(24, 6, 1);
    const out = runStep(gpu, p, uploadBuffer(gpu, 'norec.x', x), 1, 0);
    const ref = refStep(p, x, 1, 0, policy);
    expectClose(await readF32(gpu, out, 24), ref.out, { atol: 3e-5, rtol: 3e-4 }, 'output');
    const n = p.config.numLayers * 13, l = p.layer.layer;
    expectExact((await readU32(gpu, p.stats.buffers.counts, n)).subarray(l * 13, (l + 1) * 13), ref.counts, 'counts');
    expectExact((await readF32(gpu, p.stats.buffers.probMass, n)).subarray(l * 13, (l + 1) * 13), new Array(13).fill(0), 'probMass');
    expect(gpu.recentErrors).toEqual([]);
  });
});

/**
 * Token 1 of 3 has a NaN in its input (every logit NaN) and token 2 an Inf (±Inf or NaN logits): both are flagged and
 * not routed; token 0 is routed as the reference says.
 */
async function checkNonFinite(gpu: Gpu, T: number): Promise<void> {
  const p = buildProblem(gpu, fam('mixtral', 24, 13, 3), { maxTokens: WIDE_T, ringCapacity: WIDE_T });
  poison(gpu, p);
  const H = 24, E = 13;
  const x = randomF32(T * H, 5, 1);
  x[H + 5] = NaN;
  x[2 * H + 7] = Infinity;
  const policy = policyWith(p.config, {});
  runStep(gpu, p, uploadBuffer(gpu, 'nan.x', x), T, 0);
  const clean = Float32Array.from(x.map((v) => (Number.isFinite(v) ? v : 0)));
  const ref = refStep(p, clean, T, 0, policy);
  const ring = await ringRouting(gpu, p, T);
  const L = p.config.numLayers, l = p.layer.layer;
  const chosen = await readU32(gpu, p.stats.buffers.ringChosen, T * L * K_MAX);
  const weights = await readF32(gpu, p.stats.buffers.ringWeights, T * L * K_MAX);
  const slots = (a: ArrayLike<number>, t: number) => Array.from({ length: 3 }, (_, s) => a[(t * L + l) * K_MAX + s]);
  expect(ring.flags[0], 'token 0 flags').toBe(0);
  expectExact(slots(chosen, 0), ref.chosen.subarray(0, 3), 'token 0 chosen');
  expectClose(ring.probs.slice(0, E), ref.probs.subarray(0, E), { atol: 1e-6, rtol: 1e-5 }, 'token 0 probs');
  for (const t of [1, 2]) {
    expect(ring.flags[t] & FLAG_LOGITS, `token ${t} flags`).toBe(FLAG_LOGITS);
    expectExact(slots(chosen, t), [NONE, NONE, NONE], `token ${t} chosen`);
    expectExact(slots(weights, t), [0, 0, 0], `token ${t} weights`);
    expectExact(ring.probs.slice(t * E, (t + 1) * E), new Array(E).fill(0), `token ${t} probs`);
    expect(ring.lse[t], `token ${t} lse`).toBe(0);
  }
  for (const t of [3, T - 1]) expectExact(slots(chosen, t), ref.chosen.subarray(t * 3, t * 3 + 3), `token ${t} chosen`);
  expect(gpu.recentErrors).toEqual([]);
}

describe('non-finite logits', () => {
  for (const T of [4, WIDE_T]) {
    it(`flag the token and route nothing for it (T=${T})`, async () => checkNonFinite(await testGpu(), T));
  }
  it('flag the token at T = 1 (the selection with the plan): nothing chosen, nothing added to the statistics', async () => {
    const gpu = await testGpu();
    const E = 13, k = 3;
    const p = buildProblem(gpu, fam('mixtral', 24, E, k), { maxTokens: 4, ringCapacity: 8 });
    expect(p.layer.dispatchCount(1), 'no plan dispatch').toBe(5);
    poison(gpu, p);
    const x = randomF32(24, 7, 1);
    x[5] = NaN;
    runStep(gpu, p, uploadBuffer(gpu, 'nan1.x', x), 1, 0);
    const ring = await ringRouting(gpu, p, 1);
    expect(ring.flags[0] & FLAG_LOGITS, 'flags').toBe(FLAG_LOGITS);
    expectExact(ring.probs, new Array(E).fill(0), 'probs');
    expect(ring.lse[0], 'lse').toBe(0);
    const b = p.stats.buffers, L = p.config.numLayers, l = p.layer.layer, n = L * E;
    const chosen = await readU32(gpu, b.ringChosen, L * K_MAX);
    expectExact(chosen.subarray(l * K_MAX, l * K_MAX + k), [NONE, NONE, NONE], 'chosen');
    const row = (a: Uint32Array | Float32Array) => a.subarray(l * E, (l + 1) * E);
    const zeros = new Array(E).fill(0);
    expectExact(row(await readU32(gpu, b.counts, n)), zeros, 'counts');
    expectExact(row(await readF32(gpu, b.probMass, n)), zeros, 'probMass');
    expectExact(row(await readF32(gpu, b.gateSum, n)), zeros, 'gateSum');
    expect((await readF32(gpu, b.zLossSum, L))[l], 'zLossSum').toBe(0);
    expect(gpu.recentErrors).toEqual([]);
  });
});

describe('the router checks can fail', () => {
  const run = (c: Case) => async (gpu: Gpu) => {
    const p = buildProblem(gpu, c.spec, { maxTokens: WIDE_T, ringCapacity: WIDE_T, inputNorm: c.inputNorm, routerWeight: c.routerWeight?.(c.spec) });
    await checkRouting(gpu, p, c.T, policyWith(p.config, c.policy?.(p) ?? {}), c.spec.seed + c.T);
  };
  const byName = (name: string) => CASES.find((c) => c.name.startsWith(name))!;
  it('one-kernel router: the second unit of each logits-loop iteration dropped fails', () =>
    expectMutantFails(mutation('moe_router', 'dot_units(w1, t0, h + step, ntok);', ''), run({ ...byName('E 13'), T: WIDE_T }), /chosen|weights|output/));
  it('logits: the lanes tree that skips its last level fails', () =>
    expectMutantFails(mutation('moe_router_logits', 'for (var s = LANES / 2u; s > 0u; s >>= 1u) {', 'for (var s = LANES / 2u; s > 1u; s >>= 1u) {'),
      run(byName('E 13')), /chosen|probs|output/));
  it('logits: a folded norm whose normalised rows forget the norm weight fails', () =>
    expectMutantFails(mutation('moe_router_logits', '* inv0 * norm_weight(h);', '* inv0;'), run(byName('unaligned H 33')), /normed/));
  it('selection: ties ranked toward the higher index fail', () =>
    expectMutantFails(mutation('moe_router_select', '(d == c && f < e)', '(d == c && f > e)'), run(byName('exact ties (4')), /chosen/));
  it('selection: tied groups ranked toward the higher index fail', () =>
    expectMutantFails(mutation('moe_router_select', '(u == v && h < g)', '(u == v && h > g)'), run(byName('exact ties between')), /chosen|choice/));
  it('selection with the plan: an expert chosen in slot 0 left out of the plan fails', () =>
    expectMutantFails(mutation('moe_router_select', 'let member = select(0u, 1u, ch.slot != NONE);', 'let member = select(0u, 1u, ch.slot != NONE && ch.slot > 0u);'),
      run({ ...byName('k 1'), T: 1 }), /assigned|output/));
  it('selection with the plan: a count of the chosen experts that skips slot 0 fails', () =>
    expectMutantFails(mutation('moe_router_select', 'for (var s = 0u; s < K_MAX; s++) {\n      let c = slot_expert[s];', 'for (var s = 1u; s < K_MAX; s++) {\n      let c = slot_expert[s];'),
      run({ ...byName('E 13'), T: 1 }), /assigned|output/));
  it('selection with the plan: probability mass from the gate weights fails', async () =>
    expectMutantFails(mutation('moe_router_select', 'prob_mass[se] = old_mass + ch.prob;', 'prob_mass[se] = old_mass + gate;'), async (gpu) => {
      const p = buildProblem(gpu, fam('mixtral', 24, 13, 3), { maxTokens: 4, ringCapacity: 8 });
      await checkStepStats(gpu, p, await checkRouting(gpu, p, 1, policyWith(p.config, {}), 3));
    }, /probMass/));
  it('scatter: threads that map to half the workgroup\'s tokens fail', () =>
    expectMutantFails(mutation('moe_scatter', 'let t = t0 + li / K_MAX;', 'let t = t0 + li / (2u * K_MAX);'), run({ ...byName('E 13'), T: WIDE_T }), /chosen|assigned/));
  it('selection: trees whose serial part skips every other element of a class fail', () =>
    expectMutantFails(mutation('moe_router_select', 'for (var j = li; j < s; j += TREE_G)', 'for (var j = li; j < s; j += 2u * TREE_G)'),
      run(byName('E 70')), /weights|probs|lse/));
  it('selection: trees whose serial part stops a level early fail', () =>
    expectMutantFails(mutation('moe_router_select', 'for (var s = span / 2u; s >= TREE_G; s >>= 1u)', 'for (var s = span / 2u; s > TREE_G; s >>= 1u)'),
      run(byName('E 70')), /weights|probs|lse/));
  it('selection: trees that load half of the register part fail', () =>
    expectMutantFails(mutation('moe_router_select', 'for (var i = 0u; i < TREE_G; i++) { v[i] = red[base + i]; }', 'for (var i = 0u; i < TREE_G / 2u; i++) { v[i] = red[base + i]; }'),
      run(byName('E 13')), /weights|probs|lse/));
  it('selection: trees whose register part skips its last level fail', () =>
    expectMutantFails(mutation('moe_router_select', 'for (var s = TREE_G / 2u; s > 0u; s >>= 1u)', 'for (var s = TREE_G / 2u; s > 1u; s >>= 1u)'),
      run(byName('E 13')), /weights|probs|lse/));
  it('selection: a normalising sum of the chosen weights that skips slot 0 fails', () =>
    expectMutantFails(mutation('moe_router_select', 'for (var s = 0u; s < K_MAX; s++) {\n    let ce = slot_expert[s];', 'for (var s = 1u; s < K_MAX; s++) {\n    let ce = slot_expert[s];'),
      run(byName('ablated experts')), /weights|output/));
  it('selection: a sum of exp that leaves out the experts past the first SEL_WG fails', () =>
    expectMutantFails(mutation('moe_router_select', 'if (out_of[e] == 0u) { s_part += exp(zs[e] - m); }', 'if (out_of[e] == 0u && e < SEL_WG) { s_part += exp(zs[e] - m); }'),
      run(byName('E 70')), /weights|probs|lse/));
});
