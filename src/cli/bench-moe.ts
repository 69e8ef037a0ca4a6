// MoE layer benchmark: our MoeLayer (router → plan → grouped SwiGLU experts → combine) at Mixtral-style shapes,
// E = 8, k = 2, f32 weights, for several token counts; the routing/dispatch part (router + plan), the expert
// matmuls and the combine timed separately; device copy bandwidth in the same process; a float64 spot check of
// the outputs. With --torch FILE (written by tools/bench_moe_torch.py in the same device call) it prints the
// side-by-side table with transformers' MixtralSparseMoeBlock and the floor of every case. Cases on the tiled expert
// kernels also time the dense matmul on the same FLOPs and tile (src/bench/expert-rate.ts) and print the layer's and
// the experts' TFLOP/s beside it and beside cuBLAS on the same shapes (from --torch), the issue's "Mixtral T = 4096
// MoE layer ≥ 0.75× of cuBLAS-rate FLOPs". --tune sweeps the expert kernels' tile shapes (TILE_CANDIDATES, each with
// the dense matmul on the same tile) and the gemv kernels where they have a chance.
//
//   npx tsx src/cli/bench-moe.ts [--shapes small,mixtral] [--tokens 1,16,256,4096] [--torch FILE] [--out FILE]
//                                [--tune] [--markdown FILE] [--probe]
//
// On SwiftShader it runs a tiny shape unless --shapes is given.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Gpu } from '../engine/gpu';
import { releaseNodeGpu, requestNodeGpu } from '../engine/node/device-node';
import { readF32, readU32, storageBuffer, uploadBuffer } from '../engine/kernels/common';
import type { MoeConfig } from '../model/config';
import { MoeLayer, moeScratchShape, type ExpertBank, type MoeLayerWeights } from '../engine/routing/moe-layer';
import { MoeScratch } from '../engine/routing/scratch';
import { RoutingStats } from '../engine/routing/stats';
import { expertsPerBinding } from '../engine/routing/expert-bank';
import { defaultTiledShape, type TiledShape } from '../engine/kernels/moe-expert';
import type { ExpertVariant } from '../engine/routing/moe-layer';
import { GpuTimer, type Timing } from '../bench/timing';
import { routerRef } from '../reference/router';
import { Profiler } from '../engine/profiler';
import { TILE_CANDIDATES, denseEquivalent, tflops, tileLabel, type DenseEquivalent } from '../bench/expert-rate';

interface Shape {
  name: string;
  H: number;
  I: number;
  E: number;
  k: number;
}
const SHAPES: Record<string, Shape> = {
  tiny: { name: 'tiny', H: 64, I: 96, E: 8, k: 2 },
  small: { name: 'small', H: 1024, I: 2048, E: 8, k: 2 },
  mixtral: { name: 'mixtral', H: 4096, I: 14336, E: 8, k: 2 },
  // granite-3.1-1b-a400m's MoE layer (f32 here, bf16 in the checkpoint): many small experts, k = 8.
  granite: { name: 'granite', H: 1024, I: 512, E: 32, k: 8 },
};

export interface MoeBenchCase {
  shape: string;
  H: number;
  I: number;
  E: number;
  k: number;
  T: number;
  mode: ExpertVariant;
  /**
   * The step runs the down projection fused with the combine (MoeLayer.fusedDown): expertsUs is then the gate/up
   * half alone and combineUs the fused down + combine; unfusedUs the same step on the down GEMV and the combine.
   */
  fusedDown: boolean;
  unfusedUs?: number;
  dispatches: number;
  /** Experts that received tokens (the weights a step must read). */
  expertsHit: number;
  /** Per step, microseconds (GPU timestamps when available, else wall clock). */
  totalUs: number;
  routingUs: number;
  expertsUs: number;
  combineUs: number;
  wallUs: number;
  /** Bytes of expert weights the step reads, and its FLOPs (router + k experts per token). */
  weightBytes: number;
  flops: number;
  /** Largest |ours − float64 reference| / max |reference| over the checked tokens (null when not checked). */
  checkError: number | null;
  /** The expert matmuls' TFLOP/s (6·T·k·H·I over expertsUs) and the whole step's (flops over totalUs). */
  expertsTflops: number;
  layerTflops: number;
  /** Tiled cases: the dense matmul on the same FLOPs with the layer's tile. */
  dense?: DenseEquivalent;
  /**
   * Tiled cases: the step's k·T rows over its plan tiles' rows. Each expert's last tile is partial: its threads skip
   * the products of empty rows (lib/matmul_core) but it still loads a whole tile of weights.
   */
  tileFill?: number;
  tune?: { label: string; expertsUs: number; expertsTflops: number; denseTflops?: number }[];
  /** Per-kernel GPU µs inside a step (each kernel in its own timed pass). */
  kernels?: Record<string, number>;
}

export interface MoeBenchResult {
  device: string;
  limits: { maxStorageBufferBindingSize: number; maxBufferSize: number };
  timing: string;
  copyGBs: number;
  cases: MoeBenchCase[];
}

const us = (t: Timing) => 1000 * (t.gpuMs ?? t.wallMs);

/** Values of a weight bank: element i is BLOCK[i mod P] (P prime), so the reference can rebuild any element. */
const PERIOD = 1_048_573;
function block(seed: number, scale: number): Float32Array {
  const b = new Float32Array(PERIOD);
  let s = seed >>> 0;
  for (let i = 0; i < PERIOD; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    b[i] = ((s >>> 8) / 16777216 - 0.5) * 2 * scale; // uniform in [-scale, scale)
  }
  return b;
}

/** Uploads E experts of `perExpert` f32 elements, element i (over the whole bank) = blk[i mod PERIOD]. */
function uploadBank(gpu: Gpu, label: string, blk: Float32Array, E: number, perExpert: number): ExpertBank {
  const n = Math.min(E, expertsPerBinding(gpu, perExpert, 'f32'));
  const chunk = 1 << 24; // elements per write
  const window = new Float32Array(PERIOD + chunk);
  for (let i = 0; i < window.length; i++) window[i] = blk[i % PERIOD];
  const buffers: GPUBuffer[] = [];
  for (let first = 0; first < E; first += n) {
    const count = Math.min(n, E - first) * perExpert;
    const buffer = gpu.device.createBuffer({ label: `${label}.${buffers.length}`, size: count * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    const base = first * perExpert;
    for (let at = 0; at < count; at += chunk) {
      const len = Math.min(chunk, count - at);
      const start = (base + at) % PERIOD;
      gpu.device.queue.writeBuffer(buffer, at * 4, window, start, len);
    }
    buffers.push(buffer);
  }
  return { buffers, expertsPerBuffer: n };
}

function benchConfig(s: Shape): MoeConfig {
  return {
    family: 'mixtral', source: `bench:${s.name}`, vocabSize: 32000, hiddenSize: s.H, numLayers: 1, numHeads: 32, numKvHeads: 8,
    headDim: 128, intermediateSize: 0, moeIntermediateSize: s.I, numExperts: s.E,
    router: { scoring: 'softmax', topK: s.k, normTopK: true, hasBias: false, hasCorrectionBias: false, nGroup: 1, topkGroup: 1, routedScalingFactor: 1, capacityFactor: 0 },
    sharedExpert: null, moeLayers: [true], rmsNormEps: 1e-5, ropeTheta: 1e6, maxPositions: 32768, slidingWindow: null,
    tieWordEmbeddings: false, qkNorm: 'none', attentionBias: false, embeddingMultiplier: 1, residualMultiplier: 1,
    attentionScale: 1 / Math.sqrt(128), logitsScaling: 1, weightDtype: 'f32',
  };
}

function randomX(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = (s >>> 8) / 16777216 - 0.5;
  }
  return x;
}

/** Copy bandwidth, counting bytes read plus bytes written. */
async function copyBandwidth(gpu: Gpu, timer: GpuTimer, bytes: number): Promise<number> {
  const a = storageBuffer(gpu, 'bench.copyA', bytes);
  const b = storageBuffer(gpu, 'bench.copyB', bytes);
  const t = await timer.measure((enc, reps) => {
    for (let i = 0; i < reps; i++) enc.copyBufferToBuffer(i % 2 ? b : a, 0, i % 2 ? a : b, 0, bytes);
  }, { targetMs: 100, maxReps: 200 });
  a.destroy();
  b.destroy();
  return (2 * bytes) / ((t.gpuMs ?? t.wallMs) * 1e6);
}

async function benchShape(gpu: Gpu, timer: GpuTimer, s: Shape, tokens: number[], tune: boolean): Promise<MoeBenchCase[]> {
  const config = benchConfig(s);
  const { H, I, E, k } = s;
  const maxT = Math.max(...tokens);
  const routerVals = randomX(E * H, 11).map((v) => (v * 3) / Math.sqrt(H));
  const guBlock = block(12, 1 / Math.sqrt(H));
  const dBlock = block(13, 1 / Math.sqrt(I));
  const weights: MoeLayerWeights = {
    router: uploadBuffer(gpu, 'bench.router', routerVals),
    gateUp: uploadBank(gpu, 'bench.gateUp', guBlock, E, 2 * I * H),
    down: uploadBank(gpu, 'bench.down', dBlock, E, H * I),
  };
  console.log(`${s.name}: gate_up in ${weights.gateUp.buffers.length} buffer(s) of ${weights.gateUp.expertsPerBuffer} experts, down in ${weights.down.buffers.length}`);
  const stats = new RoutingStats(gpu, config, { ringCapacity: maxT });
  const scratch = new MoeScratch(gpu, moeScratchShape(config, { maxTokens: maxT, maxK: k }));
  const layers: Partial<Record<ExpertVariant | 'auto', MoeLayer>> = {};
  // The tuned variants time the expert kernels alone: both halves on the grouped kernels (no fused decode epilogue).
  const layerFor = (mode: ExpertVariant | 'auto', tiledShape?: TiledShape) =>
    new MoeLayer(gpu, { layer: 0, config, weights, stats, scratch, expertMode: mode, tiledShape, fusedDecode: mode === 'auto' });
  let unfused: MoeLayer | null = null;
  layers.auto = layerFor('auto');
  const out: MoeBenchCase[] = [];
  {
    // Run steps touching every expert for a second before timing: right after a multi-GB upload the first
    // ~0.5 s of work ran up to 2.5× slower on the H100 (bench/results/moe-probe-h100.txt).
    const T = Math.min(maxT, 256);
    const x = uploadBuffer(gpu, 'bench.warm', randomX(T * H, 7));
    const y = storageBuffer(gpu, 'bench.warmOut', T * H * 4);
    for (const t0 = performance.now(); performance.now() - t0 < 1000; ) {
      const enc = gpu.device.createCommandEncoder();
      layers.auto.encode(enc, x, y, T, 0);
      gpu.device.queue.submit([enc.finish()]);
      await gpu.device.queue.onSubmittedWorkDone();
    }
    x.destroy();
    y.destroy();
  }
  for (const T of tokens) {
    const xVals = randomX(T * H, 100 + T);
    const x = uploadBuffer(gpu, 'bench.x', xVals);
    const y = storageBuffer(gpu, 'bench.out', T * H * 4);
    const layer = layers.auto!;
    const pass = (enc: GPUCommandEncoder, reps: number, f: (p: GPUComputePassEncoder) => void) => {
      const p = enc.beginComputePass({ label: 'bench.moe' });
      for (let i = 0; i < reps; i++) f(p);
      p.end();
    };
    const total = await timer.measure((enc, reps) => pass(enc, reps, (p) => layer.encode(p, x, y, T, 0)), { maxReps: 200 });
    const routing = await timer.measure((enc, reps) => pass(enc, reps, (p) => layer.encodeRouting(p, x, y, T, 0)), { maxReps: 400 });
    const experts = await timer.measure((enc, reps) => pass(enc, reps, (p) => layer.encodeExperts(p, x, y, T)), { maxReps: 200 });
    const combine = await timer.measure((enc, reps) => pass(enc, reps, (p) => layer.encodeCombine(p, x, y, T)), { maxReps: 400 });
    // one clean step for the routing facts and the spot check
    const enc = gpu.device.createCommandEncoder();
    layer.encode(enc, x, y, T, 0);
    gpu.device.queue.submit([enc.finish()]);
    const step = await readU32(gpu, stats.buffers.stepCounts, E);
    const expertsHit = Array.from(step).filter((c) => c > 0).length;
    let checkError: number | null = null;
    const checkTokens = Math.min(T, s.H * s.I > 1e7 ? 1 : 4);
    if (checkTokens > 0) {
      const got = await readF32(gpu, y, checkTokens * H);
      checkError = spotCheck(config, routerVals, guBlock, dBlock, xVals, got, checkTokens);
    }
    const mode = layer.modeFor(T);
    const expertFlops = 6 * T * k * H * I;
    const c: MoeBenchCase = {
      shape: s.name, H, I, E, k, T, mode, fusedDown: layer.fusedDown(T), dispatches: layer.dispatchCount(T), expertsHit,
      totalUs: us(total), routingUs: us(routing), expertsUs: us(experts), combineUs: us(combine), wallUs: 1000 * total.wallMs,
      weightBytes: expertsHit * 3 * H * I * 4, flops: 2 * T * H * E + expertFlops, checkError,
      expertsTflops: tflops(expertFlops, us(experts)), layerTflops: tflops(2 * T * H * E + expertFlops, us(total)),
    };
    if (c.fusedDown) {
      unfused ??= new MoeLayer(gpu, { layer: 0, config, weights, stats, scratch, fusedDecode: false });
      const plain = unfused;
      c.unfusedUs = us(await timer.measure((enc, reps) => pass(enc, reps, (p) => plain.encode(p, x, y, T, 0)), { maxReps: 200 }));
    }
    const denseW = { gateUp: weights.gateUp.buffers[0], down: weights.down.buffers[0] };
    if (mode !== 'gemv') {
      const wide = defaultTiledShape(gpu);
      const shape = mode === 'tiled-narrow' ? { ...wide, WG_M: 8 } : wide;
      c.dense = await denseEquivalent(gpu, timer, { ...s, T }, denseW, shape);
      const TM = 8 * shape.WG_M;
      c.tileFill = (k * T) / Array.from(step).reduce((sum, n) => sum + Math.ceil(n / TM) * TM, 0);
    }
    if (tune) {
      c.tune = [];
      const variants: [string, ExpertVariant, TiledShape | undefined][] = [
        ['gemv', 'gemv', undefined],
        ...TILE_CANDIDATES.map((t): [string, ExpertVariant, TiledShape] => [`tiled ${tileLabel(t)}`, 'tiled', t]),
      ];
      for (const [label, mode, shape] of variants) {
        if (mode === 'gemv' && T * k > 64 * E) continue; // re-reads the weights once per 8 rows: hopeless
        if (mode === 'tiled' && T === 1) continue;
        const v = layerFor(mode, shape);
        const e0 = gpu.device.createCommandEncoder();
        v.encode(e0, x, y, T, 0); // the plan, cut in this variant's tiles
        gpu.device.queue.submit([e0.finish()]);
        const t = await timer.measure((e, reps) => pass(e, reps, (p) => v.encodeExperts(p, x, y, T)), { maxReps: 200 });
        const dense = shape && c.dense ? await denseEquivalent(gpu, timer, { ...s, T }, denseW, shape) : null;
        c.tune.push({ label, expertsUs: us(t), expertsTflops: tflops(expertFlops, us(t)), ...(dense ? { denseTflops: dense.tflops } : {}) });
      }
    }
    // per-kernel GPU times inside a full step (one pass per kernel, timestamps per pass), mean of 10 steps
    const profiler = new Profiler(gpu, 64);
    if (profiler.enabled) {
      for (let i = 0; i < 12; i++) {
        profiler.beginStep();
        const e = gpu.device.createCommandEncoder();
        layer.encode(e, x, y, T, 0, profiler);
        profiler.resolve(e);
        gpu.device.queue.submit([e.finish()]);
        await profiler.collect();
        if (i === 1) profiler.reset(); // drop the first two (warm-up)
      }
      c.kernels = Object.fromEntries(profiler.timings().map((t) => [t.name.replace(/^Layer0\.moe\./, ''), t.micros]));
    }
    profiler.destroy();
    out.push(c);
    console.log(
      `${s.name} T=${T} ${mode}: total ${c.totalUs.toFixed(1)} µs (routing ${c.routingUs.toFixed(1)}, experts ${c.expertsUs.toFixed(1)}, ` +
        `${c.fusedDown ? 'fused down + ' : ''}combine ${c.combineUs.toFixed(1)}), ${c.dispatches} dispatches, ${expertsHit} experts hit, check ${checkError?.toExponential(2)}` +
        (c.unfusedUs !== undefined ? `\n   unfused (down GEMV, then combine): total ${c.unfusedUs.toFixed(1)} µs` : '') +
        `\n   TFLOP/s: layer ${c.layerTflops.toFixed(1)}, experts ${c.expertsTflops.toFixed(1)}` +
        (c.dense ? `, dense matmul same FLOPs ${tileLabel(c.dense.tile)} ${c.dense.tflops.toFixed(1)} (up ${c.dense.upUs.toFixed(0)} µs, down ${c.dense.downUs.toFixed(0)} µs)` : '') +
        (c.tileFill ? `, row tiles ${(100 * c.tileFill).toFixed(1)} % full (per expert: ${Array.from(step).join(' ')})` : '') +
        (c.kernels ? `\n   kernels: ${Object.entries(c.kernels).map(([n, v]) => `${n} ${v.toFixed(1)}`).join(' | ')}` : '') +
        (c.tune ? `\n   tune (experts µs, TFLOP/s, dense TFLOP/s): ${c.tune.map((t) => `${t.label} ${t.expertsUs.toFixed(1)} ${t.expertsTflops.toFixed(1)}${t.denseTflops ? ` ${t.denseTflops.toFixed(1)}` : ''}`).join(' | ')}` : ''),
    );
    x.destroy();
    y.destroy();
  }
  stats.destroy();
  scratch.destroy();
  for (const b of [...weights.gateUp.buffers, ...weights.down.buffers, weights.router]) b.destroy();
  return out;
}

/**
 * Float64 reference of the first `n` tokens of the step (routing of a token does not depend on the others): the
 * router from its real weights, then SwiGLU of each chosen expert with weights rebuilt as block[i mod PERIOD].
 * Returns max |ours − reference| / max |reference|.
 */
function spotCheck(config: MoeConfig, router: Float32Array, gu: Float32Array, d: Float32Array, x: Float32Array, got: Float32Array, n: number): number {
  const { hiddenSize: H, moeIntermediateSize: I, numExperts: E } = config;
  const k = config.router.topK;
  const r = routerRef({
    T: n, H, E, x, w: router, router: config.router, layer: 0, position: 0, k, noiseStd: 0, noiseSeed: 0, temperature: 1,
  });
  let maxRef = 0;
  let maxErr = 0;
  const act = new Float64Array(I);
  for (let t = 0; t < n; t++) {
    const out = new Float64Array(H);
    for (let s = 0; s < k; s++) {
      const e = r.chosen[t * k + s];
      const guBase = e * 2 * I * H;
      for (let j = 0; j < I; j++) {
        let g = 0;
        let u = 0;
        let gi = (guBase + j * H) % PERIOD;
        let ui = (guBase + (I + j) * H) % PERIOD;
        for (let h = 0; h < H; h++) {
          const xv = x[t * H + h];
          g += xv * gu[gi];
          u += xv * gu[ui];
          if (++gi === PERIOD) gi = 0;
          if (++ui === PERIOD) ui = 0;
        }
        act[j] = (g / (1 + Math.exp(-g))) * u;
      }
      const dBase = e * H * I;
      for (let c = 0; c < H; c++) {
        let acc = 0;
        let di = (dBase + c * I) % PERIOD;
        for (let j = 0; j < I; j++) {
          acc += act[j] * d[di];
          if (++di === PERIOD) di = 0;
        }
        out[c] += r.weights[t * k + s] * acc;
      }
    }
    for (let c = 0; c < H; c++) {
      maxRef = Math.max(maxRef, Math.abs(out[c]));
      maxErr = Math.max(maxErr, Math.abs(out[c] - got[t * H + c]));
    }
  }
  return maxErr / maxRef;
}

/**
 * Diagnostics: the same step cut differently, to see which neighbours slow a kernel down. Each variant repeats its
 * kernels `reps` times inside one pass (or one pass per repetition), GPU time per repetition.
 */
async function probe(gpu: Gpu, timer: GpuTimer, s: Shape, T: number): Promise<void> {
  const config = benchConfig(s);
  const { H, I, E, k } = s;
  const weights: MoeLayerWeights = {
    router: uploadBuffer(gpu, 'probe.router', randomX(E * H, 11).map((v) => (v * 3) / Math.sqrt(H))),
    gateUp: uploadBank(gpu, 'probe.gateUp', block(12, 1 / Math.sqrt(H)), E, 2 * I * H),
    down: uploadBank(gpu, 'probe.down', block(13, 1 / Math.sqrt(I)), E, H * I),
  };
  const stats = new RoutingStats(gpu, config, { ringCapacity: 256 });
  const scratch = new MoeScratch(gpu, moeScratchShape(config, { maxTokens: 256, maxK: k }));
  const layer = new MoeLayer(gpu, { layer: 0, config, weights, stats, scratch });
  const x = uploadBuffer(gpu, 'probe.x', randomX(T * H, 5));
  const y = storageBuffer(gpu, 'probe.y', T * H * 4);
  const warm = uploadBuffer(gpu, 'probe.warm', randomX(256 * H, 6));
  const warmY = storageBuffer(gpu, 'probe.warmY', 256 * H * 4);
  for (let i = 0; i < 3; i++) {
    const enc = gpu.device.createCommandEncoder();
    layer.encode(enc, warm, warmY, 256, 0);
    layer.encode(enc, x, y, T, 0);
    gpu.device.queue.submit([enc.finish()]);
    await gpu.device.queue.onSubmittedWorkDone();
  }
  type Part = 'routing' | 'experts' | 'combine';
  const run = (p: GPUComputePassEncoder, part: Part) => {
    if (part === 'routing') layer.encodeRouting(p, x, y, T, 0);
    else if (part === 'experts') layer.encodeExperts(p, x, y, T);
    else layer.encodeCombine(p, x, y, T);
  };
  const cases: [string, Part[], boolean][] = [
    ['routing', ['routing'], false],
    ['experts', ['experts'], false],
    ['combine', ['combine'], false],
    ['routing+experts', ['routing', 'experts'], false],
    ['experts+combine', ['experts', 'combine'], false],
    ['combine+routing', ['combine', 'routing'], false],
    ['full step, one pass for all reps', ['routing', 'experts', 'combine'], false],
    ['full step, one pass per rep', ['routing', 'experts', 'combine'], true],
  ];
  for (const [name, parts, passPerRep] of cases) {
    const t = await timer.measure((enc, reps) => {
      let p = enc.beginComputePass();
      for (let i = 0; i < reps; i++) {
        if (passPerRep && i > 0) { p.end(); p = enc.beginComputePass(); }
        for (const part of parts) run(p, part);
      }
      p.end();
    }, { maxReps: 200 });
    console.log(`probe ${s.name} T=${T}: ${name}: ${us(t).toFixed(1)} µs`);
  }
  // per-step uniform writes without the kernels (queue traffic only)
  stats.destroy();
  scratch.destroy();
  for (const b of [...weights.gateUp.buffers, ...weights.down.buffers, weights.router, x, y, warm, warmY]) b.destroy();
}

interface TorchResult {
  device: string;
  copyGBs: number;
  cublasTflops: number;
  experts_implementations: string[];
  cases: { shape: string; T: number; impl: string; us: number | null; error?: string }[];
  /** cuBLAS on the tiled steps' expert FLOPs as two dense products (tools/bench_moe_torch.py). */
  dense?: { shape: string; T: number; upUs: number; downUs: number; tflops: number }[];
}

/** The target of the tiled steps: layer FLOPs per second ≥ 0.75× cuBLAS's on the same FLOPs. */
const CUBLAS_TARGET = 0.75;

/** The tiled steps' rates: the layer and its expert matmuls beside the dense matmul and cuBLAS on the same FLOPs. */
export function ratesTable(ours: MoeBenchResult, torch: TorchResult | null): string {
  const lines = [
    `TFLOP/s of the steps on the tiled expert kernels; "same FLOPs": the experts' 6·T·k·H·I as the dense products ` +
      `[k·T, H]·[2I, H]ᵀ and [k·T, I]·[H, I]ᵀ (ours: shaders/matmul.wgsl on the experts' tile; cuBLAS f32, TF32 off). ` +
      `Target: layer ≥ ${CUBLAS_TARGET}× cuBLAS on the same FLOPs.`,
    '',
    '| shape | T | tile | row tiles full | layer | experts | dense matmul, same FLOPs | cuBLAS, same FLOPs | cuBLAS 8192³ | experts ÷ dense | layer ÷ cuBLAS | target |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  const f = (v: number | null | undefined) => (v == null ? '—' : v.toFixed(1));
  for (const c of ours.cases) {
    if (!c.dense) continue;
    const cublas = torch?.dense?.find((d) => d.shape === c.shape && d.T === c.T)?.tflops ?? null;
    const ratio = cublas ? c.layerTflops / cublas : null;
    lines.push(
      `| ${c.shape} H=${c.H} I=${c.I} | ${c.T} | ${tileLabel(c.dense.tile)} | ${c.tileFill ? (100 * c.tileFill).toFixed(1) + ' %' : '—'} | ${f(c.layerTflops)} | ${f(c.expertsTflops)} | ${f(c.dense.tflops)} | ` +
        `${f(cublas)} | ${f(torch?.cublasTflops)} | ${(c.expertsTflops / c.dense.tflops).toFixed(2)} | ${ratio === null ? '—' : ratio.toFixed(2)} | ` +
        `${ratio === null ? '—' : ratio >= CUBLAS_TARGET ? 'met' : 'missed'} |`,
    );
    for (const t of c.tune ?? []) {
      if (t.denseTflops === undefined) continue;
      lines.push(`| | | ${t.label} (tune) | | | ${f(t.expertsTflops)} | ${f(t.denseTflops)} | | | ${(t.expertsTflops / t.denseTflops).toFixed(2)} | | |`);
    }
  }
  return lines.join('\n');
}

/** The side-by-side table: ours, transformers eager and grouped_mm, and the floor. */
export function markdownTable(ours: MoeBenchResult, torch: TorchResult | null): string {
  const lines: string[] = [];
  const copy = torch?.copyGBs ?? ours.copyGBs;
  const rate = torch?.cublasTflops ?? null;
  lines.push(`Device: ${ours.device}. Copy bandwidth (read + write): ${copy.toFixed(0)} GB/s (torch) / ${ours.copyGBs.toFixed(0)} GB/s (Dawn); ` +
    `cuBLAS f32 (no TF32): ${rate ? rate.toFixed(1) + ' TFLOP/s' : 'n/a'}. Timing: ${ours.timing}.`);
  lines.push('');
  lines.push('| shape | T | ours µs | floor µs | ours / floor | eager µs | grouped_mm µs | eager / ours | routing+dispatch µs | combine µs | experts µs | dispatches | mode |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const c of ours.cases) {
    const bw = (c.weightBytes / (copy * 1e9)) * 1e6;
    const fl = rate ? (c.flops / (rate * 1e12)) * 1e6 : 0;
    const floor = Math.max(bw, fl);
    const t = (impl: string) => torch?.cases.find((x) => x.shape === c.shape && x.T === c.T && x.impl === impl)?.us ?? null;
    const eager = t('eager');
    const grouped = t('grouped_mm');
    const f = (v: number | null) => (v === null ? '—' : v < 100 ? v.toFixed(1) : v.toFixed(0));
    lines.push(
      `| ${c.shape} H=${c.H} I=${c.I} | ${c.T} | ${f(c.totalUs)} | ${f(floor)} (${bw >= fl ? 'bytes' : 'flops'}) | ${(c.totalUs / floor).toFixed(2)} | ` +
        `${f(eager)} | ${f(grouped)} | ${eager ? (eager / c.totalUs).toFixed(2) + '×' : '—'} | ${f(c.routingUs)} | ${f(c.combineUs)} | ${f(c.expertsUs)} | ${c.dispatches} | ${c.mode}${c.fusedDown ? ' + fused down' : ''} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      shapes: { type: 'string' },
      tokens: { type: 'string', default: '1,16,256,4096' },
      torch: { type: 'string' },
      out: { type: 'string' },
      markdown: { type: 'string' },
      tune: { type: 'boolean', default: false },
      probe: { type: 'boolean', default: false },
    },
  });
  const gpu = await requestNodeGpu('moescope-bench-moe');
  try {
    const cpu = gpu.adapter.architecture === 'swiftshader';
    const shapes = (values.shapes ?? (cpu ? 'tiny' : 'small,mixtral')).split(',').map((n) => {
      const s = SHAPES[n];
      if (!s) throw new Error(`--shapes: unknown shape "${n}" (known: ${Object.keys(SHAPES).join(', ')})`);
      return s;
    });
    const tokens = values.tokens!.split(',').map(Number);
    const limits = { maxStorageBufferBindingSize: gpu.limits.maxStorageBufferBindingSize, maxBufferSize: gpu.limits.maxBufferSize };
    const device = `${gpu.adapter.vendor} ${gpu.adapter.architecture} ${gpu.adapter.description}`.trim();
    console.log(`device: ${device}; limits ${JSON.stringify(limits)}; timestamps: ${gpu.features.timestampQuery}`);
    const timer = new GpuTimer(gpu);
    const copyGBs = await copyBandwidth(gpu, timer, cpu ? 64 << 20 : 1 << 30);
    console.log(`copy bandwidth (read + write): ${copyGBs.toFixed(0)} GB/s`);
    if (values.probe) {
      for (const s of shapes) for (const T of tokens) await probe(gpu, timer, s, T);
      return;
    }
    const cases: MoeBenchCase[] = [];
    const result: MoeBenchResult = { device, limits, timing: timer.method, copyGBs, cases };
    for (const s of shapes) {
      try {
        cases.push(...(await benchShape(gpu, timer, s, tokens, values.tune!)));
      } catch (e) {
        console.error(`shape ${s.name} failed:`, e); // keep the other shapes' numbers
      }
      if (values.out) writeFileSync(values.out, JSON.stringify(result, null, 2));
    }
    const torch = values.torch ? (JSON.parse(readFileSync(values.torch, 'utf8')) as TorchResult) : null;
    const table = `${markdownTable(result, torch)}\n\n${ratesTable(result, torch)}`;
    console.log(table);
    if (values.markdown) writeFileSync(values.markdown, table + '\n');
  } finally {
    releaseNodeGpu(gpu);
  }
}

if (process.argv[1] && /bench-moe\.(ts|mjs|js)$/.test(process.argv[1])) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
