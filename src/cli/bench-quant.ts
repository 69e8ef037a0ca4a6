// Bandwidth of the quantised weight paths on this GPU: the decode GEMV (one row, shaders/gemv.wgsl) and the expert
// GEMVs of a decode step (k experts' gate/up then down, moe_expert_*_gemv.wgsl), for Q4_K, Q6_K, Q8_0 and MXFP4
// beside bf16, against the device's copy bandwidth (copyBufferToBuffer and a WGSL copy kernel). Each expert row has
// beside it the dense decode GEMV reading the same bytes (the same row lengths: [k·2I, H] then [k·H, I]).
//
//   npx tsx src/cli/bench-quant.ts [--trials 7] [--out FILE] [--quick] [--sweep] [--experts] [--tokens 1,2,4,8]
//                                  [--shapes mixtral,qwen3] [--formats bf16,q4_k]
//
// --sweep adds rows for other thread layouts of the quantised decode GEMV (gemv_quant's WG_K, WG_N, NT) and of the
// expert GEMVs (SWEEP_EXPERTS: rules of passes, threads and NT, see ExpertGemvRule) on the same weight buffers, and
// at T = 1 the larger row buckets' defaults, after the default rows; a last table names the fastest expert layout.
// --experts: the expert rows only. --tokens: the steps' token counts (all routed to the same k experts, so each
// expert has T rows; default 1, a decode step). --shapes: the expert shapes (default both). --formats: the weight
// formats (default all five; a sweep of every format and shape needs more than one 10-minute device call).
// Bytes counted are the weight bytes a call must read (blocks with their scales; x, y and the plan are < 0.1 %).
// Each configuration streams enough weight copies (≥ ROTATE_BYTES, 4× a 50 MB L2) that repetitions read device
// memory. Warm-up rounds over every row run until two agree within 5 %; trials are interleaved across configurations
// (trial t of every row before trial t + 1 of any) and each row reports the median per-call time with min and max over
// the trials, rows whose spread exceeds 10 % measured again once; GB/s and % of copy use the median.
// Shapes: dense N × K = 16384 × 4096 (a large attention or MLP projection); experts Mixtral-8x7B's (8 experts,
// H 4096, I 14336, k 2) and Qwen3-30B-A3B's (128 experts, H 2048, I 768, k 8). Correctness of these kernels is what tests/gpu/linear-quant and moe-layer check.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { releaseNodeGpu, requestNodeGpu } from '../engine/node/device-node';
import { GemvKernel, gemvBucket, type GemvBinding, type GemvTile } from '../engine/kernels/gemv';
import {
  ExpertMatmulKernel, GEMV_ROWS, GEMV_ROW_BUCKETS, alignedRows, defaultExpertGemvRule, expertGemvTile, gemvTileRows,
  type ExpertGemvRule, type ExpertGemvTile, type ExpertMatmulBinding,
} from '../engine/kernels/moe-expert';
import { planLayout, type PlanLayout } from '../engine/kernels/moe-layout';
import { storageBuffer, uploadBuffer } from '../engine/kernels/common';
import { benchCopy, benchCopyKernel } from '../bench/linear-bench';
import { GpuTimer, median, type EncodeWork } from '../bench/timing';
import { ROTATE_BYTES, filledBuffer } from '../bench/operands';

/** Most warm-up rounds over every row before the trials (they stop earlier once two rounds agree within 5 %). */
const WARMUP_ROUNDS = 6;
import { filledQuantBuffer } from '../bench/quant-operands';
import { K_MAX } from '../model/limits';
import { isQuantFormat, tensorBytes, type TensorFormat } from '../model/dtypes';
import type { Gpu } from '../engine/gpu';

const FORMATS: TensorFormat[] = ['bf16', 'q8_0', 'q6_k', 'q4_k', 'mxfp4'];

interface Row {
  kind: 'decode GEMV' | 'expert GEMV' | 'dense GEMV, same bytes';
  format: TensorFormat;
  shape: string;
  /** Expert rows and their dense peers: tokens of the step and rows per tile (GEMV row bucket). */
  tokens?: number;
  tileRows?: number;
  /** The thread layout (expert rows; decode GEMV rows where not the kernel's default, --sweep). */
  tile?: string;
  /** Weight bytes read per call. */
  bytes: number;
  /** Per-call ms of each trial (GPU timestamps, else wall clock). */
  ms: number[];
}

interface Config {
  row: Row;
  work: EncodeWork;
  /** Weight copies one repetition streams (one call each). */
  copies: number;
  reps: number;
}

function weightBuffer(gpu: Gpu, label: string, bytes: number, format: TensorFormat, seed: number): GPUBuffer {
  return isQuantFormat(format) ? filledQuantBuffer(gpu, label, bytes, format, seed) : filledBuffer(gpu, label, bytes, format as 'bf16', seed);
}

interface DenseWeights {
  format: TensorFormat;
  bytes: number;
  buffers: GPUBuffer[];
}

/** Enough copies of a [N, K] weight that one pass over them streams ≥ `rotate` bytes from device memory. */
function denseWeights(gpu: Gpu, format: TensorFormat, N: number, K: number, rotate: number): DenseWeights {
  const bytes = tensorBytes(format, [N, K])!;
  const copies = Math.max(1, Math.ceil(rotate / bytes));
  return { format, bytes, buffers: Array.from({ length: copies }, (_, c) => weightBuffer(gpu, `benchQuant.w${c}`, bytes, format, 10 + c)) };
}

/** Dense decode GEMV y[1, N] = x[1, K] · Wᵀ over the weight copies, one call per copy per repetition. */
function denseConfig(gpu: Gpu, wts: DenseWeights, N: number, K: number, tile?: GemvTile): Config {
  const { format, bytes } = wts;
  const kernel = new GemvKernel(gpu, { weightDtype: format, weightLayout: 'nk', rows: 1, aligned: true, K, tile });
  const x = filledBuffer(gpu, 'benchQuant.x', K * 4, 'f32', 1);
  const y = storageBuffer(gpu, 'benchQuant.y', N * 4);
  const bindings: GemvBinding[] = wts.buffers.map((w, c) => {
    const b = kernel.bind(`benchQuant.gemv${c}`, x, w, y);
    kernel.setShape(b, { rows: 1, N, K });
    return b;
  });
  const work: EncodeWork = (enc, reps) => {
    const pass = enc.beginComputePass({ label: 'benchQuant.gemv' });
    for (let r = 0; r < reps; r++) for (const b of bindings) kernel.encode(pass, b, N);
    pass.end();
  };
  const row: Row = { kind: 'decode GEMV', format, shape: `1 × ${K} → ${N}`, tile: tile && JSON.stringify(tile), bytes, ms: [] };
  return { row, work, copies: bindings.length, reps: 1 };
}

/** An MoE layer's expert shape: E experts of [2I, H] gate/up and [H, I] down, k per token. */
interface ExpertShape {
  name: string;
  E: number;
  H: number;
  I: number;
  k: number;
}

const EXPERT_SHAPES: Record<string, ExpertShape> = {
  mixtral: { name: 'Mixtral-8x7B', E: 8, H: 4096, I: 14336, k: 2 },
  qwen3: { name: 'Qwen3-30B-A3B', E: 128, H: 2048, I: 768, k: 8 },
};
const QUICK_SHAPE: ExpertShape = { name: 'quick', E: 16, H: 256, I: 256, k: 8 };

interface ExpertBanks {
  format: TensorFormat;
  shape: ExpertShape;
  /** Experts per bank (fewer than shape.E where one binding cannot hold them all; k stay k). */
  E: number;
  layout: PlanLayout;
  /** Per copy: the gate/up bank, the down bank and their plans by `${T}/${R}`. */
  copies: { gateUp: GPUBuffer; down: GPUBuffer; plans: Map<string, GPUBuffer> }[];
  readPerCall: number;
}

/** Expert banks of `shape` streaming ≥ `rotate` bytes per pass (each copy a pass over other weights). */
function expertBanks(gpu: Gpu, format: TensorFormat, shape: ExpertShape, rotate: number): ExpertBanks {
  const { H, I, k } = shape;
  const perExpert = tensorBytes(format, [2 * I, H])!;
  const E = Math.max(k, Math.min(shape.E, Math.floor(gpu.limits.maxStorageBufferBindingSize / perExpert)));
  const upBytes = tensorBytes(format, [E * 2 * I, H])!;
  const downBytes = tensorBytes(format, [E * H, I])!;
  const readPerCall = (k / E) * (upBytes + downBytes);
  const count = Math.max(1, Math.ceil(rotate / readPerCall));
  const copies = Array.from({ length: count }, (_, c) => ({
    gateUp: weightBuffer(gpu, `benchQuant.gateUp${c}`, upBytes, format, 20 + c),
    down: weightBuffer(gpu, `benchQuant.down${c}`, downBytes, format, 40 + c),
    plans: new Map<string, GPUBuffer>(),
  }));
  return { format, shape, E, layout: planLayout(E, GEMV_ROWS, K_MAX, GEMV_ROWS), copies, readPerCall };
}

/**
 * Copy c's plan for T ≤ GEMV_ROWS tokens that all chose the same k distinct experts, cut in tiles of R rows, as the
 * routing kernels would write it: expert slot s owns rows [s·T, (s + 1)·T), row s·T + t is token t's slot s.
 */
function expertPlan(gpu: Gpu, banks: ExpertBanks, c: number, T: number, R: number): GPUBuffer {
  const key = `${T}/${R}`;
  const copy = banks.copies[c];
  let buffer = copy.plans.get(key);
  if (buffer) return buffer;
  const { layout, E } = banks;
  const plan = new Uint32Array(layout.words);
  let tiles = 0;
  for (let s = 0; s < banks.shape.k; s++) {
    const e = (c * 37 + s * 13) % E; // distinct for s < k ≤ 8: 13 is coprime with E = 8 or 128
    plan[layout.offsets + e] = s * T;
    plan[layout.kept + e] = T;
    for (let r0 = 0; r0 < T; r0 += R, tiles++) {
      plan[layout.tileExpert + tiles] = e;
      plan[layout.tileRow + tiles] = s * T + r0;
    }
    for (let t = 0; t < T; t++) plan[layout.rowKey + s * T + t] = t * K_MAX + s;
  }
  plan[layout.header] = tiles;
  buffer = uploadBuffer(gpu, `benchQuant.plan${c}.${key}`, plan);
  copy.plans.set(key, buffer);
  return buffer;
}

/** Operands shared by every expert row of a shape: x [T, H] (or [T, I]), h [k·T, I], y [k·T, H] at T ≤ GEMV_ROWS. */
function expertIo(gpu: Gpu, s: ExpertShape) {
  const rows = s.k * GEMV_ROWS;
  const widest = Math.max(s.H, s.I);
  return {
    x: filledBuffer(gpu, 'benchQuant.x', GEMV_ROWS * widest * 4, 'f32', 2),
    h: storageBuffer(gpu, 'benchQuant.h', rows * s.I * 4),
    y: storageBuffer(gpu, 'benchQuant.y', rows * s.H * 4),
    /** The dense rows' output [T, k·2I] or [T, k·H]. */
    dense: storageBuffer(gpu, 'benchQuant.denseY', 2 * rows * widest * 4),
  };
}

/** A sweep candidate: one rule per kernel (same passes and threads, each its own NT). */
interface SweepRule {
  passes: number;
  threads: number;
  up: number;
  down: number;
}

const ruleText = (r: ExpertGemvRule) => `p${r.passes} t${r.threads} NT${r.NT}`;
const tileText = (t: ExpertGemvTile) => `${t.WG_K}×${t.WG_N}×${t.NT}`;

/**
 * T tokens (all routed to the same k experts) through gate/up then down, over the banks' copies, with tiles of R
 * rows (default gemvTileRows(T)) and the kernels' default layouts or `rule`.
 */
function expertConfig(gpu: Gpu, banks: ExpertBanks, io: ReturnType<typeof expertIo>, T: number, R: number, rule?: SweepRule): Config {
  const { format, E, layout, shape } = banks;
  const { H, I, k } = shape;
  const rules = rule && ([{ ...rule, NT: rule.up }, { ...rule, NT: rule.down }] as const);
  const up = new ExpertMatmulKernel(gpu, 'up', 'gemv', format, undefined, rules?.[0]);
  const down = new ExpertMatmulKernel(gpu, 'down', 'gemv', format, undefined, rules?.[1]);
  const dims = { firstExpert: 0, numExperts: E };
  const pairs: [ExpertMatmulBinding, ExpertMatmulBinding][] = banks.copies.map((b, c) => {
    const plan = expertPlan(gpu, banks, c, T, R);
    return [
      up.bind(`benchQuant.up${c}`, io.x, plan, layout, b.gateUp, io.h, { ...dims, k: H, n: I }),
      down.bind(`benchQuant.down${c}`, io.h, plan, layout, b.down, io.y, { ...dims, k: I, n: H }),
    ];
  });
  const tiles = k * Math.ceil(T / R);
  const work: EncodeWork = (enc, reps) => {
    const pass = enc.beginComputePass({ label: 'benchQuant.experts' });
    for (let r = 0; r < reps; r++) {
      for (const [u, d] of pairs) {
        up.encode(pass, u, I, tiles, R);
        down.encode(pass, d, H, tiles, R);
      }
    }
    pass.end();
  };
  const upRule = rules?.[0] ?? defaultExpertGemvRule('up', format, R);
  const downRule = rules?.[1] ?? defaultExpertGemvRule('down', format, R);
  const layoutText = `${rule ? '' : 'default '}up ${ruleText(upRule)} = ${tileText(expertGemvTile(gpu, 'up', format, H, R, upRule))}, `
    + `down ${ruleText(downRule)} = ${tileText(expertGemvTile(gpu, 'down', format, I, R, downRule))}`;
  const row: Row = {
    kind: 'expert GEMV', format, shape: `${shape.name}: ${k} of ${E} experts, H ${H}, I ${I}`, tokens: T, tileRows: R, tile: layoutText,
    bytes: banks.readPerCall, ms: [],
  };
  return { row, work, copies: pairs.length, reps: 1 };
}

/**
 * The dense decode GEMV over the same bytes an expert row reads: T rows through [k·2I, H] then [k·H, I] (the first k
 * experts of each bank, read as one matrix), with GemvKernel's default tiles.
 */
function denseOnExpertBytes(gpu: Gpu, banks: ExpertBanks, io: ReturnType<typeof expertIo>, T: number): Config {
  const { format, shape } = banks;
  const { H, I, k } = shape;
  const rows = gemvBucket(T);
  const make = (K: number) => new GemvKernel(gpu, { weightDtype: format, weightLayout: 'nk', rows, aligned: alignedRows(K, format), K });
  const upKernel = make(H);
  const downKernel = make(I);
  const pairs = banks.copies.map((b, c) => {
    const u = upKernel.bind(`benchQuant.denseUp${c}`, io.x, b.gateUp, io.dense);
    upKernel.setShape(u, { rows: T, N: k * 2 * I, K: H });
    const d = downKernel.bind(`benchQuant.denseDown${c}`, io.x, b.down, io.dense);
    downKernel.setShape(d, { rows: T, N: k * H, K: I });
    return [u, d] as const;
  });
  const work: EncodeWork = (enc, reps) => {
    const pass = enc.beginComputePass({ label: 'benchQuant.denseSameBytes' });
    for (let r = 0; r < reps; r++) {
      for (const [u, d] of pairs) {
        upKernel.encode(pass, u, k * 2 * I);
        downKernel.encode(pass, d, k * H);
      }
    }
    pass.end();
  };
  const row: Row = {
    kind: 'dense GEMV, same bytes', format, shape: `${shape.name}: [${k * 2 * I}, ${H}] + [${k * H}, ${I}]`, tokens: T, tileRows: rows,
    bytes: banks.readPerCall, ms: [],
  };
  return { row, work, copies: pairs.length, reps: 1 };
}

/** Thread layouts tried by --sweep: the decode GEMV's (WG_K, WG_N, NT) and the expert kernels' rules. */
const SWEEP_GEMV: GemvTile[] = [
  [16, 4, 4], [32, 2, 2], [32, 2, 8], [32, 4, 4], [32, 8, 1], [64, 1, 4], [64, 2, 2], [64, 4, 1],
].map(([WG_K, WG_N, NT]) => ({ WG_K, WG_N, NT }));
const SWEEP_EXPERTS: SweepRule[] = [
  [1, 256, 1, 2], [2, 256, 1, 2], [2, 256, 2, 4], [4, 256, 1, 2], [8, 256, 1, 1], [1, 256, 4, 8],
  [1, 128, 2, 4], [2, 128, 2, 4], [2, 64, 2, 4],
].map(([passes, threads, up, down]) => ({ passes, threads, up, down }));

/**
 * Expert rows of one bank: per T, the dense GEMV on the same bytes and the default layout at R = gemvTileRows(T);
 * with `sweep`, every SWEEP_EXPERTS rule at that R, and at T = 1 the default layouts of the larger row buckets too
 * (what compiling rows a decode step does not have costs).
 */
function expertConfigs(gpu: Gpu, banks: ExpertBanks, tokens: number[], sweep: boolean): Config[] {
  const io = expertIo(gpu, banks.shape);
  const out: Config[] = [];
  for (const T of tokens) {
    const R = gemvTileRows(T);
    out.push(denseOnExpertBytes(gpu, banks, io, T), expertConfig(gpu, banks, io, T, R));
    if (!sweep) continue;
    for (const rule of SWEEP_EXPERTS) out.push(expertConfig(gpu, banks, io, T, R, rule));
    if (T === 1) for (const r of GEMV_ROW_BUCKETS.filter((b) => b > R)) out.push(expertConfig(gpu, banks, io, T, r));
  }
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      trials: { type: 'string', default: '7' }, out: { type: 'string' }, quick: { type: 'boolean', default: false },
      sweep: { type: 'boolean', default: false }, experts: { type: 'boolean', default: false }, tokens: { type: 'string', default: '1' },
      shapes: { type: 'string', default: Object.keys(EXPERT_SHAPES).join(',') },
      formats: { type: 'string', default: FORMATS.join(',') },
    },
  });
  const trials = Math.max(5, Number(values.trials));
  const quick = values.quick!;
  const tokens = values.tokens!.split(',').map(Number);
  if (!tokens.every((t) => Number.isInteger(t) && t >= 1 && t <= GEMV_ROWS)) throw new Error(`--tokens: integers in 1..${GEMV_ROWS}, got ${values.tokens}`);
  const shapes = values.shapes!.split(',').map((name) => {
    if (!Object.hasOwn(EXPERT_SHAPES, name)) throw new Error(`--shapes: ${name} is not one of ${Object.keys(EXPERT_SHAPES).join(', ')}`);
    return EXPERT_SHAPES[name];
  });
  const formats = values.formats!.split(',').map((f) => {
    if (!FORMATS.includes(f as TensorFormat)) throw new Error(`--formats: ${f} is not one of ${FORMATS.join(', ')}`);
    return f as TensorFormat;
  });
  const gpu = await requestNodeGpu('moescope-bench-quant');
  try {
    const timer = new GpuTimer(gpu);
    const copyBytes = quick ? 4 << 20 : Math.min(1 << 30, gpu.limits.maxBufferSize);
    const copy = await benchCopy(gpu, timer, copyBytes);
    const copyKernel = await benchCopyKernel(gpu, timer, copyBytes);
    console.log(`${gpu.adapter.description}; timing: ${timer.method}; ${trials} interleaved trials`);
    console.log(`copy ${copyBytes >> 20} MiB (read + write): copyBufferToBuffer ${copy.gbps.toFixed(0)} GB/s, WGSL copy kernel ${copyKernel.gbps.toFixed(0)} GB/s`);
    const [N, K] = quick ? [256, 512] : [16384, 4096];
    const configs: Config[] = [];
    const rotate = quick ? 1 << 20 : ROTATE_BYTES; // --quick: a smoke run (SwiftShader), not a measurement
    if (!values.experts) {
      const dense = formats.map((f) => denseWeights(gpu, f, N, K, rotate));
      for (const w of dense) configs.push(denseConfig(gpu, w, N, K));
      if (values.sweep) for (const w of dense) if (isQuantFormat(w.format)) for (const t of SWEEP_GEMV) configs.push(denseConfig(gpu, w, N, K, t));
    }
    for (const shape of quick ? [QUICK_SHAPE] : shapes) {
      for (const f of formats) configs.push(...expertConfigs(gpu, expertBanks(gpu, f, shape, rotate), tokens, values.sweep!));
    }
    await gpu.device.queue.onSubmittedWorkDone();
    for (const c of configs) await timer.runOnce(c.work, 1); // compile and warm every pipeline first
    // One repetition streams every copy once; take enough for ~20 ms per trial.
    for (const c of configs) {
      const probe = await timer.runOnce(c.work, 1);
      c.reps = Math.max(2, Math.min(200, Math.round(20 / Math.max(probe.gpuMs ?? probe.wallMs, 1e-3))));
    }
    const perCall = async (c: Config) => {
      const r = await timer.runOnce(c.work, c.reps);
      return (r.gpuMs ?? r.wallMs) / (c.reps * c.copies);
    };
    // Warm-up checked, not assumed: whole rounds over every row until two rounds agree within 5 % on every row (the
    // GPU's clocks ramp up under load), at most WARMUP_ROUNDS.
    let last: number[] = [];
    for (const c of configs) last.push(await perCall(c));
    for (let round = 1; round < WARMUP_ROUNDS; round++) {
      const now: number[] = [];
      for (const c of configs) now.push(await perCall(c));
      const settled = now.every((v, i) => Math.abs(v - last[i]) <= 0.05 * last[i]);
      last = now;
      if (settled) break;
    }
    const measure = async (rows: Config[]) => {
      for (const c of rows) c.row.ms = [];
      for (let t = 0; t < trials; t++) for (const c of rows) c.row.ms.push(await perCall(c));
    };
    await measure(configs);
    // A row whose spread (max − min) / median exceeds 10 % is measured again once (its trials interleaved with the
    // other such rows'); the spread is printed either way.
    const wide = configs.filter((c) => (Math.max(...c.row.ms) - Math.min(...c.row.ms)) / median(c.row.ms) > 0.1);
    if (wide.length) {
      console.log(`${wide.length} row(s) with a spread above 10 %: measured again`);
      await measure(wide);
    }
    // The copy kernel reads and writes: a kernel that only reads is held to the same bytes/s of traffic.
    const peer = copyKernel.gbps;
    const results = configs.map(({ row }) => {
      const medianMs = median(row.ms);
      const gbps = row.bytes / medianMs / 1e6;
      return { ...row, medianMs, gbps, copyPct: (100 * gbps) / peer };
    });
    const group = (r: (typeof results)[number]) => `${r.shape.split(':')[0]}/${r.format}/${r.tokens}`;
    const denseOf = new Map(results.filter((r) => r.kind === 'dense GEMV, same bytes').map((r) => [group(r), r]));
    console.log(`\n| kernel | format | shape | T | R | layout (rule = WG_K×WG_N×NT) | MB read/call | µs/call median (min–max) | GB/s | % of WGSL copy | % of copyBufferToBuffer | dense GEMV on the same bytes, % of WGSL copy |`);
    console.log(`|---|---|---|---|---|---|---|---|---|---|---|---|`);
    const us = (v: number) => (v * 1000).toFixed(1);
    for (const r of results) {
      const dense = r.kind === 'expert GEMV' ? denseOf.get(group(r))?.copyPct.toFixed(0) ?? '' : '';
      console.log(`| ${r.kind} | ${r.format} | ${r.shape} | ${r.tokens ?? ''} | ${r.tileRows ?? ''} | ${r.tile ?? ''} | ${(r.bytes / 1e6).toFixed(2)} | `
        + `${us(r.medianMs)} (${us(Math.min(...r.ms))}–${us(Math.max(...r.ms))}) | ${r.gbps.toFixed(0)} | ${r.copyPct.toFixed(0)} | ${((100 * r.gbps) / copy.gbps).toFixed(0)} | ${dense} |`);
    }
    // The fastest expert layout per shape, format and T (at the step's own row bucket), beside the default's.
    console.log(`\n| expert shape / format / T | default layout, % of copy | fastest layout | its % of copy | dense GEMV same bytes, % |`);
    console.log(`|---|---|---|---|---|`);
    for (const [g, dense] of denseOf) {
      const own = results.filter((r) => r.kind === 'expert GEMV' && group(r) === g && r.tileRows === gemvTileRows(r.tokens!));
      const best = own.reduce((a, b) => (b.medianMs < a.medianMs ? b : a));
      const def = own.find((r) => r.tile!.startsWith('default'))!;
      console.log(`| ${g} | ${def.copyPct.toFixed(0)} | ${best.tile} | ${best.copyPct.toFixed(0)} | ${dense.copyPct.toFixed(0)} |`);
    }
    // A sweep tile the device refuses shows up here (its rows' timings are then meaningless).
    for (const e of gpu.recentErrors) console.error(`GPU error during the run: ${e.message}`);
    if (values.out) {
      writeFileSync(values.out, JSON.stringify({ adapter: gpu.adapter, trials, copy: copy.gbps, copyKernel: copyKernel.gbps, rows: results, gpuErrors: gpu.recentErrors.map((e) => e.message) }, null, 1));
    }
  } finally {
    releaseNodeGpu(gpu);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
