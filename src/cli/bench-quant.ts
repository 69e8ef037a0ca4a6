// Bandwidth of the quantised weight paths on this GPU: the decode GEMV (one row, shaders/gemv.wgsl) and the expert
// GEMVs of one decode token (k experts' gate/up then down, moe_expert_*_gemv.wgsl), for Q4_K, Q6_K, Q8_0 and MXFP4
// beside bf16, against the device's copy bandwidth (copyBufferToBuffer and a WGSL copy kernel).
//
//   npx tsx src/cli/bench-quant.ts [--trials 7] [--out FILE] [--quick] [--sweep]
//
// --sweep adds rows for other thread layouts of the quantised decode GEMV (gemv_quant's WG_K, WG_N, NT) and of the
// expert GEMVs (both kernels' WG_K, WG_N, NT) on the same weight buffers, after the default rows.
// Bytes counted are the weight bytes a call must read (blocks with their scales; x, y and the plan are < 0.1 %).
// Each configuration streams enough weight copies (≥ ROTATE_BYTES, 4× a 50 MB L2) that repetitions read device
// memory. Trials are interleaved across configurations (trial t of every row before trial t + 1 of any) and each
// row reports the median per-call time with min and max over the trials; GB/s and % of copy use the median.
// Shapes: dense N × K = 16384 × 4096 (a large attention or MLP projection); experts Qwen3-30B-A3B's: 128 experts,
// H 2048, I 768, k 8. Correctness of these kernels is what tests/gpu/linear-quant and moe-layer check.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { releaseNodeGpu, requestNodeGpu } from '../engine/node/device-node';
import { GemvKernel, type GemvBinding, type GemvTile } from '../engine/kernels/gemv';
import { ExpertMatmulKernel, GEMV_ROWS, type ExpertGemvTile, type ExpertMatmulBinding } from '../engine/kernels/moe-expert';
import { planLayout, type PlanLayout } from '../engine/kernels/moe-layout';
import { storageBuffer, uploadBuffer } from '../engine/kernels/common';
import { benchCopy, benchCopyKernel } from '../bench/linear-bench';
import { GpuTimer, median, type EncodeWork } from '../bench/timing';
import { ROTATE_BYTES, filledBuffer } from '../bench/operands';
import { filledQuantBuffer } from '../bench/quant-operands';
import { K_MAX } from '../model/limits';
import { isQuantFormat, tensorBytes, type TensorFormat } from '../model/dtypes';
import type { Gpu } from '../engine/gpu';

const FORMATS: TensorFormat[] = ['bf16', 'q8_0', 'q6_k', 'q4_k', 'mxfp4'];

interface Row {
  kind: 'decode GEMV' | 'expert GEMV';
  format: TensorFormat;
  shape: string;
  /** The thread layout, where not the kernel's default (--sweep). */
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

interface ExpertBanks {
  format: TensorFormat;
  E: number;
  layout: PlanLayout;
  /** Per copy: the plan (k distinct experts), the gate/up bank and the down bank. */
  copies: { plan: GPUBuffer; gateUp: GPUBuffer; down: GPUBuffer }[];
  readPerCall: number;
}

/**
 * Expert banks of `experts` experts (H, I) streaming ≥ `rotate` bytes per pass, each copy with its own k experts (a
 * plan written here as the routing kernels would: one row per chosen expert, one tile per row).
 */
function expertBanks(gpu: Gpu, format: TensorFormat, experts: number, H: number, I: number, k: number, rotate: number): ExpertBanks {
  // A bank is one binding here: fewer experts where the device's binding limit cannot hold them all (k stay k).
  const perExpert = tensorBytes(format, [2 * I, H])!;
  const E = Math.max(k, Math.min(experts, Math.floor(gpu.limits.maxStorageBufferBindingSize / perExpert)));
  const upBytes = tensorBytes(format, [E * 2 * I, H])!;
  const downBytes = tensorBytes(format, [E * H, I])!;
  const readPerCall = (k / E) * (upBytes + downBytes);
  const count = Math.max(1, Math.ceil(rotate / readPerCall));
  const layout = planLayout(E, 1, K_MAX, GEMV_ROWS);
  const copies = [];
  for (let c = 0; c < count; c++) {
    const plan = new Uint32Array(layout.words);
    plan[layout.header] = k;
    for (let s = 0; s < k; s++) {
      const e = (c * 37 + s * 13) % E; // distinct for s < k ≤ 8 since 13 is coprime with E = 128
      plan[layout.tileExpert + s] = e;
      plan[layout.tileRow + s] = s;
      plan[layout.offsets + e] = s;
      plan[layout.kept + e] = 1;
      plan[layout.rowKey + s] = s; // token 0, slot s
    }
    copies.push({
      plan: uploadBuffer(gpu, `benchQuant.plan${c}`, plan),
      gateUp: weightBuffer(gpu, `benchQuant.gateUp${c}`, upBytes, format, 20 + c),
      down: weightBuffer(gpu, `benchQuant.down${c}`, downBytes, format, 40 + c),
    });
  }
  return { format, E, layout, copies, readPerCall };
}

/** One decode token through k of E experts (gate/up, then down), over the banks' copies. */
function expertConfig(gpu: Gpu, banks: ExpertBanks, H: number, I: number, k: number, tiles?: [ExpertGemvTile, ExpertGemvTile]): Config {
  const { format, E, layout } = banks;
  const up = new ExpertMatmulKernel(gpu, 'up', 'gemv', format, undefined, tiles?.[0]);
  const down = new ExpertMatmulKernel(gpu, 'down', 'gemv', format, undefined, tiles?.[1]);
  const x = filledBuffer(gpu, 'benchQuant.x', H * 4, 'f32', 2);
  const h = storageBuffer(gpu, 'benchQuant.h', K_MAX * I * 4);
  const y = storageBuffer(gpu, 'benchQuant.y', K_MAX * H * 4);
  const dims = { firstExpert: 0, numExperts: E };
  const pairs: [ExpertMatmulBinding, ExpertMatmulBinding][] = banks.copies.map((b, c) => [
    up.bind(`benchQuant.up${c}`, x, b.plan, layout, b.gateUp, h, { ...dims, k: H, n: I }),
    down.bind(`benchQuant.down${c}`, h, b.plan, layout, b.down, y, { ...dims, k: I, n: H }),
  ]);
  const work: EncodeWork = (enc, reps) => {
    const pass = enc.beginComputePass({ label: 'benchQuant.experts' });
    for (let r = 0; r < reps; r++) {
      for (const [u, d] of pairs) {
        up.encode(pass, u, I, k);
        down.encode(pass, d, H, k);
      }
    }
    pass.end();
  };
  const row: Row = { kind: 'expert GEMV', format, shape: `${k} of ${E} experts, H ${H}, I ${I}`, tile: tiles && JSON.stringify(tiles), bytes: banks.readPerCall, ms: [] };
  return { row, work, copies: pairs.length, reps: 1 };
}

/** Thread layouts tried by --sweep: the decode GEMV's (WG_K, WG_N, NT) and the expert kernels' ([up, down]). */
const SWEEP_GEMV: GemvTile[] = [
  [16, 4, 4], [32, 2, 2], [32, 2, 8], [32, 4, 4], [32, 8, 1], [64, 1, 4], [64, 2, 2], [64, 4, 1],
].map(([WG_K, WG_N, NT]) => ({ WG_K, WG_N, NT }));
const SWEEP_EXPERTS: [ExpertGemvTile, ExpertGemvTile][] = [
  [[16, 4, 2], [16, 4, 4]], [[32, 2, 1], [32, 2, 2]], [[32, 4, 2], [32, 4, 4]], [[64, 1, 2], [64, 1, 4]],
  [[64, 2, 1], [64, 2, 2]], [[128, 1, 1], [64, 2, 4]], [[32, 2, 4], [16, 4, 8]],
].map((pair) => pair.map(([WG_K, WG_N, NT]) => ({ WG_K, WG_N, NT })) as [ExpertGemvTile, ExpertGemvTile]);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { trials: { type: 'string', default: '7' }, out: { type: 'string' }, quick: { type: 'boolean', default: false }, sweep: { type: 'boolean', default: false } },
  });
  const trials = Math.max(5, Number(values.trials));
  const quick = values.quick!;
  const gpu = await requestNodeGpu('moescope-bench-quant');
  try {
    const timer = new GpuTimer(gpu);
    const copyBytes = quick ? 4 << 20 : Math.min(1 << 30, gpu.limits.maxBufferSize);
    const copy = await benchCopy(gpu, timer, copyBytes);
    const copyKernel = await benchCopyKernel(gpu, timer, copyBytes);
    console.log(`${gpu.adapter.description}; timing: ${timer.method}; ${trials} interleaved trials`);
    console.log(`copy ${copyBytes >> 20} MiB (read + write): copyBufferToBuffer ${copy.gbps.toFixed(0)} GB/s, WGSL copy kernel ${copyKernel.gbps.toFixed(0)} GB/s`);
    const [N, K] = quick ? [256, 512] : [16384, 4096];
    const [E, H, I, k] = quick ? [16, 256, 256, 8] : [128, 2048, 768, 8];
    const configs: Config[] = [];
    const rotate = quick ? 1 << 20 : ROTATE_BYTES; // --quick: a smoke run (SwiftShader), not a measurement
    const dense = FORMATS.map((f) => denseWeights(gpu, f, N, K, rotate));
    const banks = FORMATS.map((f) => expertBanks(gpu, f, E, H, I, k, rotate));
    for (const w of dense) configs.push(denseConfig(gpu, w, N, K));
    for (const b of banks) configs.push(expertConfig(gpu, b, H, I, k));
    if (values.sweep) {
      for (const w of dense) if (isQuantFormat(w.format)) for (const t of SWEEP_GEMV) configs.push(denseConfig(gpu, w, N, K, t));
      for (const b of banks) for (const t of SWEEP_EXPERTS) configs.push(expertConfig(gpu, b, H, I, k, t));
    }
    await gpu.device.queue.onSubmittedWorkDone();
    for (const c of configs) await timer.runOnce(c.work, 1); // compile and warm every pipeline first
    // One repetition streams every copy once; take enough for ~20 ms per trial.
    for (const c of configs) {
      const probe = await timer.runOnce(c.work, 1);
      c.reps = Math.max(2, Math.min(200, Math.round(20 / Math.max(probe.gpuMs ?? probe.wallMs, 1e-3))));
    }
    for (let t = 0; t < trials; t++) {
      for (const c of configs) {
        const r = await timer.runOnce(c.work, c.reps);
        c.row.ms.push((r.gpuMs ?? r.wallMs) / (c.reps * c.copies));
      }
    }
    // The copy kernel reads and writes: a kernel that only reads is held to the same bytes/s of traffic.
    const peer = copyKernel.gbps;
    console.log(`\n| kernel | format | shape | MB read/call | µs/call median (min–max) | GB/s | % of WGSL copy | % of copyBufferToBuffer |`);
    console.log(`|---|---|---|---|---|---|---|---|`);
    const out = [];
    for (const { row } of configs) {
      const med = median(row.ms);
      const gbps = row.bytes / med / 1e6;
      const us = (v: number) => (v * 1000).toFixed(1);
      console.log(`| ${row.kind} | ${row.format} | ${row.shape}${row.tile ? ` ${row.tile}` : ''} | ${(row.bytes / 1e6).toFixed(2)} | ${us(med)} (${us(Math.min(...row.ms))}–${us(Math.max(...row.ms))}) | ${gbps.toFixed(0)} | ${((100 * gbps) / peer).toFixed(0)} | ${((100 * gbps) / copy.gbps).toFixed(0)} |`);
      out.push({ ...row, medianMs: med, gbps });
    }
    // A sweep tile the device refuses shows up here (its rows' timings are then meaningless).
    for (const e of gpu.recentErrors) console.error(`GPU error during the run: ${e.message}`);
    if (values.out) {
      writeFileSync(values.out, JSON.stringify({ adapter: gpu.adapter, trials, copy: copy.gbps, copyKernel: copyKernel.gbps, rows: out, gpuErrors: gpu.recentErrors.map((e) => e.message) }, null, 1));
    }
  } finally {
    releaseNodeGpu(gpu);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
