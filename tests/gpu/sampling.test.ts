import { describe, expect, it } from 'vitest';
import { SamplingKernel, decodeSampleResult, pcgHash, samplingUniform, samplingWorkgroup, type SamplingStep } from '../../src/engine/kernels/sampling';
import { readU32, submitPass, uploadBuffer } from '../../src/engine/kernels/common';
import { argmaxRef, sampleRef } from '../../src/reference/sampling';
import { expectClose, expectExact, POISON_BITS, poisonedBuffer, testGpu } from '../support/gpu';
import { randomF32 } from '../support/random';
import { expectMutantFails, mutation } from '../support/mutant';
import type { Gpu } from '../../src/engine/gpu';

// Below this margin (fraction of the mass) an f32 sum may put the draw or the cut on the other side of a boundary.
const FLIP_MARGIN = 1e-5;
// p_token: exp of f32 arguments and an f32 sum over the vocabulary.
const PROB_TOL = { atol: 1e-9, rtol: 1e-5 };

/** Each step gets its own binding; one submission runs them all, then every result buffer is read. */
async function sampleOnGpu(logits: Float32Array, steps: SamplingStep[], vocab = logits.length, gpu?: Gpu, workgroup?: number) {
  gpu ??= await testGpu();
  const kernel = new SamplingKernel(gpu, { workgroup });
  const logitsBuf = uploadBuffer(gpu, 'test.logits', logits);
  const bindings = steps.map((s, i) => {
    const b = kernel.bind(`test.sampling.${i}`, logitsBuf, null, vocab);
    kernel.setStep(b, s);
    return b;
  });
  submitPass(gpu, 'test', (pass) => bindings.forEach((b) => kernel.encode(pass, b)));
  const results = (await Promise.all(bindings.map((b) => readU32(gpu!, b.result, 3)))).map(decodeSampleResult);
  expect(gpu.recentErrors).toEqual([]);
  return results;
}

/** Many draws in one submission (one binding each, all appending to one token buffer): returns the tokens. */
async function sampleTokensOnGpu(logits: Float32Array, steps: SamplingStep[], gpu?: Gpu): Promise<Uint32Array> {
  gpu ??= await testGpu();
  const kernel = new SamplingKernel(gpu);
  const logitsBuf = uploadBuffer(gpu, 'batch.logits', logits);
  const tokens = poisonedBuffer(gpu, 'batch.tokens', steps.length);
  const bindings = steps.map((s, i) => {
    const b = kernel.bind(`batch.${i}`, logitsBuf, tokens, logits.length);
    kernel.setStep(b, { ...s, appendAt: i });
    return b;
  });
  submitPass(gpu, 'batch', (pass) => bindings.forEach((b) => kernel.encode(pass, b)));
  const out = await readU32(gpu, tokens, steps.length);
  expect(gpu.recentErrors).toEqual([]);
  return out;
}

/** Sampled tokens must equal the reference's for the same u, except where the reference says f32 could flip it. */
async function checkSampled(logits: Float32Array, temperature: number, topP: number, steps: number, seed: number, gpu?: Gpu, workgroup?: number) {
  const requests = Array.from({ length: steps }, (_, step) => ({ temperature, topP, seed, step }));
  const got = await sampleOnGpu(logits, requests, logits.length, gpu, workgroup);
  let compared = 0;
  got.forEach((g, step) => {
    const u = samplingUniform(seed, step);
    expect(g.u).toBe(u);
    const ref = sampleRef(logits, temperature, topP, u);
    if (ref.drawMargin < FLIP_MARGIN || ref.cutMargin < FLIP_MARGIN) return;
    compared++;
    const what = `V=${logits.length} T=${temperature} p=${topP} step ${step} (u=${u})`;
    expectExact([g.token], [ref.token], what);
    expectClose([g.prob], [ref.prob], PROB_TOL, `${what} p_token`);
  });
  expect(compared).toBeGreaterThan(0);
}

/**
 * For vocabularies so flat that single tokens hold ~1e-6 of the mass, f32 sums cannot pin the exact token; check
 * instead that the GPU's token is kept by the reference and that u lies in (or within `eps` of) its interval.
 */
async function checkConsistent(logits: Float32Array, temperature: number, topP: number, steps: number, seed: number, eps: number) {
  const requests = Array.from({ length: steps }, (_, step) => ({ temperature, topP, seed, step }));
  const got = await sampleOnGpu(logits, requests);
  got.forEach((g, step) => {
    const ref = sampleRef(logits, temperature, topP, g.u);
    const at = ref.intervals.get(g.token);
    const what = `V=${logits.length} step ${step}: token ${g.token} (reference ${ref.token}) for u=${g.u}`;
    expect(at, `${what} is not kept`).toBeDefined();
    expect(at!.from - eps <= g.u && g.u < at!.to + eps, `${what} lies at [${at!.from}, ${at!.to})`).toBe(true);
  });
}

/** Sweep u over (0, 1) with replayed draws: every kept token and every boundary region is visited. */
async function checkSweep(logits: Float32Array, temperature: number, topP: number, draws: number, gpu?: Gpu) {
  const us = Array.from({ length: draws }, (_, i) => (i + 0.5) / draws);
  const got = await sampleTokensOnGpu(logits, us.map((u) => ({ temperature, topP, u })), gpu);
  const expected = us.map((u) => sampleRef(logits, temperature, topP, u));
  const keep = expected.map((r) => r.drawMargin >= FLIP_MARGIN && r.cutMargin >= FLIP_MARGIN);
  expect(keep.filter(Boolean).length).toBeGreaterThan(draws * 0.9);
  expectExact(Array.from(got).filter((_, i) => keep[i]), expected.filter((_, i) => keep[i]).map((r) => r.token), `sweep T=${temperature} p=${topP}`);
}

describe('sampling: the uniform', () => {
  it('pcg hash and u are pinned', () => {
    // Values of the C reference (uint32_t pcg_hash from Jarzynski & Olano, 2020).
    expect([pcgHash(0), pcgHash(1), pcgHash(0xffffffff)]).toEqual([129708002, 2831084092, 3861530882]);
    expect(samplingUniform(42, 7)).toBe(14044408 / 2 ** 24); // pcg_hash(pcg_hash(42) + 7) >> 8
  });
  it('u is a multiple of 2^-24 in [0, 1) and varies with seed and step', () => {
    const seen = new Set<number>();
    for (let seed = 0; seed < 20; seed++) {
      for (let step = 0; step < 20; step++) {
        const u = samplingUniform(seed, step);
        expect(u >= 0 && u < 1 && Number.isInteger(u * 2 ** 24)).toBe(true);
        seen.add(u);
      }
    }
    expect(seen.size).toBeGreaterThan(395);
  });
});

describe('sampling: greedy', () => {
  for (const vocab of [1, 7, 257, 152064]) {
    it(`argmax over ${vocab} logits`, async () => {
      const logits = randomF32(vocab, vocab, 3);
      const [g] = await sampleOnGpu(logits, [{ temperature: 0 }]);
      expectExact([g.token], [argmaxRef(logits)], `argmax V=${vocab}`);
      const max = logits[g.token];
      const z = logits.reduce((a, x) => a + Math.exp(x - max), 0);
      expectClose([g.prob], [1 / z], PROB_TOL, 'p_token at T=1');
    });
  }
  it('pinned: ties go to the lowest index, -inf is fine', async () => {
    const [g] = await sampleOnGpu(new Float32Array([1, 5, -Infinity, 5, 2, 5]), [{ temperature: 0 }]);
    expect(g.token).toBe(1);
    expectClose([g.prob], [Math.exp(0) / (Math.exp(-4) + 3 + Math.exp(-3))], PROB_TOL);
  });
  it('a broken kernel fails the check: ties to the highest index', async () => {
    const logits = new Float32Array(1000).fill(-1);
    for (const i of [3, 300, 700]) logits[i] = 4;
    await expectMutantFails(mutation('sampling', '(ov == red_f[lid] && oi < mi)', '(ov == red_f[lid] && oi > mi)'), async (broken) => {
      const [g] = await sampleOnGpu(logits, [{ temperature: 0 }], 1000, broken);
      expectExact([g.token], [argmaxRef(logits)], 'argmax');
    }, /differ/);
  });
});

describe('sampling: temperature and top-p', () => {
  for (const vocab of [7, 257, 5000]) {
    for (const [temperature, topP] of [[1, 1], [0.7, 0.9], [1.3, 0.5]]) {
      it(`V=${vocab} T=${temperature} top-p ${topP}, 6 seeded steps`, () =>
        checkSampled(randomF32(vocab, vocab + 17, 2), temperature, topP, 6, vocab * 7 + topP * 10));
    }
  }
  it('a 152064-token vocabulary (Qwen) with a peaked distribution, T=0.8, top-p 0.95', () => {
    const logits = randomF32(152064, 99, 2);
    for (let i = 0; i < 60; i++) logits[(i * 2531 + 17) % 152064] += 12; // 60 likely tokens spread over the vocabulary
    return checkSampled(logits, 0.8, 0.95, 3, 5);
  });
  it('a flat 152064-token distribution, T=1, top-p 0.9: the draw lands within 1e-4 of its interval', () =>
    checkConsistent(randomF32(152064, 98, 1), 1, 0.9, 2, 6, 1e-4));
  it('u sweep: every token of a small distribution at T=1', () => checkSweep(randomF32(33, 3, 1.5), 1, 1, 100));
  // A threshold inside a group of 20 tied logits spread over 3000 tokens (several per thread's range).
  const tiedLogits = () => {
    const logits = new Float32Array(3000).fill(-6);
    logits[9] = 2;
    for (const i of [1, 5, 300, 301, 302, 303, 1000, 1001, 1500, 1777, 2000, 2001, 2002, 2500, 2600, 2700, 2800, 2900, 2998, 2999]) logits[i] = 0.5;
    return logits;
  };
  it('u sweep: nucleus cut in the middle of tied logits keeps the lowest indices', async () => {
    const ref = sampleRef(tiedLogits(), 1, 0.5, 0.5);
    expect(ref.kept.length).toBeGreaterThan(2); // τ lands on the tied logits …
    expect(ref.kept.length).toBeLessThan(21); // … and not all of them are kept
    await checkSweep(tiedLogits(), 1, 0.5, 120);
  });
  it('a broken kernel fails the check: every tie at the threshold kept', async () => {
    await expectMutantFails(mutation('sampling', 'if (n_ties > rank0) {', 'if (true) {'), (broken) => checkSweep(tiedLogits(), 1, 0.5, 60, broken), /differ/);
  });
  // The other tests run the adapter's default: 64 threads on a software adapter (SwiftShader), the device's largest elsewhere.
  it('a 64-thread workgroup and the device-limit one agree (V=5000, T=0.7, top-p 0.9)', async () => {
    const gpu = await testGpu();
    for (const wg of [64, samplingWorkgroup(gpu.limits)]) await checkSampled(randomF32(5000, 5017, 2), 0.7, 0.9, 4, 3, gpu, wg);
  });
  it('the workgroup follows the device limits', () => {
    const limits = { maxComputeInvocationsPerWorkgroup: 1024, maxComputeWorkgroupSizeX: 1024, maxComputeWorkgroupStorageSize: 49152 };
    expect(samplingWorkgroup(limits as GPUSupportedLimits)).toBe(1024);
    expect(samplingWorkgroup({ ...limits, maxComputeWorkgroupStorageSize: 16384 } as GPUSupportedLimits)).toBe(256);
    expect(samplingWorkgroup({ ...limits, maxComputeInvocationsPerWorkgroup: 256 } as GPUSupportedLimits)).toBe(256);
  });
  it('a tiny top-p keeps only the most likely token', async () => {
    const logits = randomF32(1000, 8, 2);
    const got = await sampleOnGpu(logits, [0.01, 0.5, 0.99].map((u) => ({ temperature: 1, topP: 1e-6, u })));
    expectExact(got.map((g) => g.token), [0, 0, 0].map(() => argmaxRef(logits)));
  });
  it('same seed and step give the same token; appendAt writes only its slot', async () => {
    const gpu = await testGpu();
    const logits = randomF32(500, 12, 2);
    const kernel = new SamplingKernel(gpu);
    const tokens = poisonedBuffer(gpu, 'test.tokens', 10);
    const b = kernel.bind('append', uploadBuffer(gpu, 'append.logits', logits), tokens, 500);
    const picks: number[] = [];
    for (let i = 0; i < 2; i++) {
      kernel.setStep(b, { temperature: 0.9, topP: 0.9, seed: 77, step: 6, appendAt: 6 });
      submitPass(gpu, 'append', (pass) => kernel.encode(pass, b));
      picks.push(decodeSampleResult(await readU32(gpu, b.result, 3)).token);
    }
    expect(picks[0]).toBe(picks[1]);
    const slots = await readU32(gpu, tokens, 10);
    const expected = new Array(10).fill(POISON_BITS);
    expected[6] = picks[0];
    expectExact(slots, expected, 'tokens buffer');
  });
  it('samples a second row of a [2, V] logits buffer', async () => {
    const logits = randomF32(2 * 300, 13, 2);
    const row1 = logits.slice(300);
    const u = 0.37;
    const got = await sampleOnGpu(logits, [{ temperature: 1.1, topP: 0.8, u, row: 1 }], 300);
    const ref = sampleRef(row1, 1.1, 0.8, u);
    expect(ref.drawMargin > FLIP_MARGIN && ref.cutMargin > FLIP_MARGIN).toBe(true);
    expect(got[0].token).toBe(ref.token);
  });
  it('rejects bad parameters', async () => {
    const gpu = await testGpu();
    const kernel = new SamplingKernel(gpu);
    const b = kernel.bind('bad', uploadBuffer(gpu, 'bad.logits', new Float32Array(8)), null, 8);
    expect(() => kernel.setStep(b, { temperature: 1, topP: 0 })).toThrow(/topP must be in \(0, 1\]/);
    expect(() => kernel.setStep(b, { temperature: -1 })).toThrow(/temperature/);
    expect(() => kernel.setStep(b, { temperature: 1, appendAt: 3 })).toThrow(/no tokens buffer/);
    expect(() => kernel.setStep(b, { temperature: 1, row: 1 })).toThrow(/logits row 1/);
  });
});
