// The fused decode epilogue (shaders/moe_down_combine.wgsl) against its float64 reference (src/reference/
// moe-down-combine.ts), on records written here so that every kind of slot occurs: kept slots in shuffled rows, slots
// dropped by capacity (assigned and row NONE), a token not routed at all (every slot NONE), and records past top_k
// holding a live-looking slot the kernel must ignore. Activation rows no slot uses, and outputs the kernel must not
// store, are NaN-poisoned.
// Sizes from the kernel's tiling (downCombineTile): workgroups of NT output columns, so H = 4·NT + 1 leaves a
// partial last one; WG_N slot groups (the top-k), so k = 8 gives each group one slot and k = 1 one group; WG_K
// threads stride over a row's units (16-byte loads of f32/bf16/f16, 64-element units of block-quantised weights,
// single elements when I is not a multiple of the 16-byte unit), with I chosen so that every thread makes at least
// two passes and some make one more (a tail), at WG_K capped by the workgroup size; and rows of a few units, where
// the workgroup has fewer threads than (group, column) sums to add.
import { describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/engine/gpu';
import { MoeDownCombineKernel, downCombineTile } from '../../src/engine/kernels/moe-down-combine';
import { GEMV_ROWS, gemvRowUnits } from '../../src/engine/kernels/moe-expert';
import { MOE_LAYER_PARAMS, REC, planLayout } from '../../src/engine/kernels/moe-layout';
import { Uniforms, readU32, storageBuffer, uploadBuffer } from '../../src/engine/kernels/common';
import { uploadExpertBank } from '../../src/engine/routing/expert-bank';
import type { ExpertBank } from '../../src/engine/routing/moe-layer';
import { isQuantFormat, type TensorFormat } from '../../src/model/dtypes';
import { dequantRef } from '../../src/reference/dequant';
import { nodeShader } from '../../src/engine/node/device-node';
import { downCombineRef, type DownCombineSlot } from '../../src/reference/moe-down-combine';
import { padTo4, randomBlocks } from '../support/gguf-blocks';
import { POISON_BITS, expectClose, expectExact, testGpu } from '../support/gpu';
import { expectMutantFails, mutation } from '../support/mutant';
import { randomF32, rng } from '../support/random';

/** A u32 constant of the routing record's layout, read from shaders/lib/moe_params.wgsl (the host keeps no copy). */
function recordConst(name: string): number {
  const m = new RegExp(`const ${name}: u32 = (0x[0-9a-f]+|\\d+)u;`).exec(nodeShader('lib/moe_params'));
  if (!m) throw new Error(`lib/moe_params: no const ${name}`);
  return Number(m[1]);
}
const [NONE, REC_WEIGHT, REC_ASSIGNED, REC_ROW, REC_SGATE, REC_FLAGS] =
  ['NONE', 'REC_WEIGHT', 'REC_ASSIGNED', 'REC_ROW', 'REC_SGATE', 'REC_FLAGS'].map(recordConst);

interface Case {
  format: TensorFormat;
  /** Units per down row (16 bytes dense, 64 elements quantised; see rowLength). */
  units: number;
  odd?: boolean;
  /** A row shorter than the workgroup's threads (no loop-and-tail check). */
  short?: boolean;
  E: number;
  k: number;
  T: number;
  shared: 'none' | 'gated' | 'ungated';
  bias?: boolean;
  /** Experts per weight buffer (a split bank); default all in one. */
  perBuffer?: number;
  /** The residual add (out += scale · v); false: the layer's output alone. */
  accumulate: boolean;
  seed: number;
}

const ELEMENTS_PER_UNIT: Record<string, number> = { f32: 4, f16: 8, bf16: 8 };
/** I of the case: `odd` takes one element off dense rows (element-wise loads) and half a unit off quantised ones. */
const rowLength = (c: Case) => isQuantFormat(c.format) ? c.units * 64 - (c.odd ? 32 : 0) : c.units * ELEMENTS_PER_UNIT[c.format] - (c.odd ? 1 : 0);

function downBank(gpu: Gpu, c: Case, H: number, I: number): { bank: ExpertBank; rounded: Float32Array } {
  if (isQuantFormat(c.format)) {
    const blocks = randomBlocks(c.format, c.E * H, I, c.seed + 1, -13, 4);
    return { bank: { buffers: [uploadBuffer(gpu, 'test.down', padTo4(blocks))], expertsPerBuffer: c.E, format: c.format }, rounded: Float32Array.from(dequantRef(c.format, blocks, c.E * H * I)) };
  }
  const dtype = c.format as 'f32' | 'f16' | 'bf16';
  const bytes = c.perBuffer ? c.perBuffer * H * I * (dtype === 'f32' ? 4 : 2) : undefined;
  const up = uploadExpertBank(gpu, 'test.down', randomF32(c.E * H * I, c.seed + 1, 1 / Math.sqrt(I)), c.E, dtype, bytes);
  return { bank: { ...up.bank, format: dtype }, rounded: up.rounded };
}

/**
 * Records for T tokens: token 1 (when T > 1) not routed, one slot of token 0 dropped by capacity (k > 1), every
 * other slot a distinct expert in a shuffled row; slots past k hold expert 0 at row 0 with weight 1000.
 */
function makeRecords(c: Case): { words: Uint32Array; slots: DownCombineSlot[][]; rows: number; gateLogits: Float32Array } {
  const u = rng(c.seed + 2);
  const words = new Uint32Array(c.T * REC);
  const f = new Float32Array(words.buffer);
  const slots: DownCombineSlot[][] = [];
  const rows = c.T * c.k + 2;
  const order = Array.from({ length: rows }, (_, i) => i).sort(() => u() - 0.5);
  let next = 0;
  const gateLogits = randomF32(c.T, c.seed + 3, 2);
  for (let t = 0; t < c.T; t++) {
    const rec = t * REC;
    const experts = Array.from({ length: c.E }, (_, e) => e).sort(() => u() - 0.5);
    slots.push([]);
    for (let s = 0; s < 8; s++) {
      const weight = s < c.k ? 0.1 + u() : 1000;
      const dropped = s < c.k && ((t === 0 && s === 1) || (t === 1 && c.T > 1));
      const live = s < c.k && !dropped;
      const expert = s < c.k ? experts[s] : 0;
      const row = s < c.k ? order[next++] : 0;
      words[rec + s] = expert;
      f[rec + REC_WEIGHT + s] = weight;
      words[rec + REC_ASSIGNED + s] = live || s >= c.k ? expert : NONE;
      words[rec + REC_ROW + s] = live || s >= c.k ? row : NONE;
      if (s < c.k) slots[t].push({ expert, row: live ? row : null, weight });
    }
    f[rec + REC_SGATE] = gateLogits[t];
    words[rec + REC_FLAGS] = t === 1 ? 1 : 0;
  }
  return { words, slots, rows, gateLogits };
}

async function checkCase(gpu: Gpu, c: Case): Promise<void> {
  const I = rowLength(c);
  const tile = downCombineTile(gpu, c.format, I, c.k);
  const H = 4 * tile.NT + 1;
  const { bank, rounded } = downBank(gpu, c, H, I);
  const rec = makeRecords(c);
  // Activations: the rows slots use are random, the others NaN.
  const used = new Set(rec.slots.flat().filter((s) => s.row !== null).map((s) => s.row!));
  const act = randomF32(rec.rows * I, c.seed + 4, 1);
  const actWords = new Uint32Array(act.buffer);
  for (let r = 0; r < rec.rows; r++) if (!used.has(r)) actWords.fill(POISON_BITS, r * I, (r + 1) * I);
  const sharedY = randomF32(c.T * H, c.seed + 5, 1);
  const bias = c.bias ? randomF32(c.E * H, c.seed + 6, 0.5) : null;
  const residual = randomF32(c.T * H, c.seed + 7, 1);
  const scale = 0.7;
  // out holds T rows and one more that must stay poisoned; without the residual add, all of it starts poisoned.
  const outInit = new Float32Array((c.T + 1) * H);
  const outWords = new Uint32Array(outInit.buffer).fill(POISON_BITS);
  if (c.accumulate) outInit.set(residual);
  const out = uploadBuffer(gpu, 'test.out', outWords);

  const params = new Uniforms(gpu, 'test.layerParams', MOE_LAYER_PARAMS);
  params.set({ tokens: c.T, hidden: H, experts: c.E, top_k: c.k, shared_mode: { none: 0, ungated: 1, gated: 2 }[c.shared], residual_scale: scale });
  const kernel = new MoeDownCombineKernel(gpu, c.format, I, c.k, c.accumulate);
  expect(kernel.tile).toEqual(tile);
  const buffers = {
    params, records: uploadBuffer(gpu, 'test.records', rec.words), h: uploadBuffer(gpu, 'test.h', act),
    plan: storageBuffer(gpu, 'test.plan', 16), planLayout: planLayout(c.E, c.T, c.k, GEMV_ROWS),
    bias: bias ? uploadBuffer(gpu, 'test.bias', bias) : null, sharedY: uploadBuffer(gpu, 'test.sharedY', sharedY), out,
  };
  const per = bank.expertsPerBuffer;
  const bindings = bank.buffers.map((weights, i) =>
    kernel.bind(`test.downCombine${i}`, { ...buffers, weights }, { hidden: H, firstExpert: i * per, numExperts: Math.min(per, c.E - i * per) }, i === 0));
  if (c.perBuffer) expect(bindings.length, 'split bank').toBeGreaterThan(1);
  const enc = gpu.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  for (const b of bindings) kernel.encode(pass, b, H, c.T);
  pass.end();
  gpu.device.queue.submit([enc.finish()]);

  const ref = downCombineRef({
    T: c.T, H, I, slots: rec.slots, act, down: rounded, downBias: bias ?? undefined,
    shared: c.shared === 'none' ? undefined : { y: sharedY, gateLogits: c.shared === 'gated' ? rec.gateLogits : undefined },
    residual: c.accumulate ? { x: residual, scale } : undefined,
  });
  const got = await readU32(gpu, out, (c.T + 1) * H);
  const what = `${c.format} I=${I} (${gemvRowUnits(I, c.format)} units, WG_K ${tile.WG_K}, WG_N ${tile.WG_N}, NT ${tile.NT}) k=${c.k} T=${c.T}`;
  expectClose(new Float32Array(got.buffer, 0, c.T * H), ref, { atol: 2e-5, rtol: 2e-4 }, `${what} output`);
  expectExact(got.subarray(c.T * H), new Uint32Array(H).fill(POISON_BITS), `${what} row past the tokens`);
  expect(gpu.recentErrors).toEqual([]);
}

/** Units per row with every thread at ≥ 2 passes and WG_K ∤ units, for a workgroup of 256 / groups threads per row. */
const tailUnits = (groups: number) => 2 * Math.floor(256 / groups) + 5;

const CASES: [string, Case][] = [
  ['bf16, k = 8 (one slot per group), ungated shared expert, residual add',
    { format: 'bf16', units: tailUnits(8), E: 12, k: 8, T: 1, shared: 'ungated', accumulate: true, seed: 10 }],
  ['f32, k = 1 (one group of 256 threads), gated shared expert, residual add',
    { format: 'f32', units: tailUnits(1), E: 4, k: 1, T: 1, shared: 'gated', accumulate: true, seed: 20 }],
  ['f32 split over 3 buffers, biases by global expert, 3 tokens (one not routed), stored without the residual',
    { format: 'f32', units: tailUnits(2), E: 8, k: 2, T: 3, shared: 'gated', bias: true, perBuffer: 3, accumulate: false, seed: 30 }],
  ['f16 element-wise loads (I one less than whole units), k = 3',
    { format: 'f16', units: 2 * 32 + 3, odd: true, E: 6, k: 3, T: 2, shared: 'none', accumulate: true, seed: 40 }],
  ['q4_k, k = 8: 68 units over 32 threads',
    { format: 'q4_k', units: 68, E: 10, k: 8, T: 1, shared: 'none', accumulate: true, seed: 50 }],
  ['q8_0 rows of 5 units: WG_K = 3 < NT = 4, so some threads add two (group, column) sums',
    { format: 'q8_0', units: 5, short: true, E: 4, k: 3, T: 1, shared: 'ungated', accumulate: true, seed: 70 }],
  ['q8_0 ending on a half unit, k = 4, 2 tokens',
    { format: 'q8_0', units: 2 * 64 + 5, odd: true, E: 6, k: 4, T: 2, shared: 'ungated', accumulate: true, seed: 60 }],
];

const SLOW = { timeout: 240_000 };

describe('fused expert down projection + combine + residual (moe_down_combine)', SLOW, () => {
  for (const [name, c] of CASES) {
    it(name, async () => {
      const gpu = await testGpu();
      const I = rowLength(c);
      const { WG_K, WG_N, NT } = downCombineTile(gpu, c.format, I, c.k);
      const units = gemvRowUnits(I, c.format);
      if (c.short) {
        expect(WG_K * WG_N, 'fewer threads than (group, column) sums').toBeLessThan(WG_N * NT);
      } else {
        expect(units, `every thread runs the loop at least twice (WG_K ${WG_K})`).toBeGreaterThanOrEqual(2 * WG_K);
        expect(units % WG_K, `a tail pass for some threads (WG_K ${WG_K})`).not.toBe(0);
      }
      await checkCase(gpu, c);
    });
  }
});

describe('the fused epilogue checks can fail', SLOW, () => {
  it('a sum that leaves out the last slot group', () =>
    expectMutantFails(mutation('moe_down_combine', 'for (var g = 0u; g < WG_N; g++)', 'for (var g = 0u; g + 1u < WG_N; g++)'),
      (gpu) => checkCase(gpu, CASES[0][1]), /output/));
  it('the shared expert added by every weight binding, not only the first', () =>
    expectMutantFails(mutation('moe_down_combine', 'if (LEAD && L.shared_mode != 0u)', 'if (L.shared_mode != 0u)'),
      (gpu) => checkCase(gpu, CASES[2][1]), /output/));
  it('(group, column) sums taken by every other thread stride', () =>
    expectMutantFails(mutation('moe_down_combine', 'o < WG_N * NT; o += WG_SIZE)', 'o < WG_N * NT; o += 2u * WG_SIZE)'),
      (gpu) => checkCase(gpu, CASES.find(([, c]) => c.short)![1]), /output/));
});
