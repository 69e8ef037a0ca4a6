// `npm run bench`: matmul and GEMV throughput of our kernels over a sweep of shapes, next to TensorFlow.js's WebGPU
// backend on the same shapes in the same process, plus device-to-device copy bandwidth. Prints a table and writes
// bench/results/<device>.json (tools/bench_torch.py reads it to time cuBLAS on the same shapes).
//
//   npm run bench [-- --quick] [--tune [--tune-spec bench/tune.json]] [--no-tfjs] [--out FILE] [--skip-sweep]
//   npm run bench -- --diagnose [--tune-spec FILE]   (tuning points again on a device with Dawn's robustness off;
//                                                    a separate process: Dawn may abort on a second instance)
//   npm run bench -- --attention [--skip-sweep --no-tfjs]   (also decode attention on granite's shape at contexts
//                                                    512, 1024 and 4096, or 64 and 256 in the quick sweep;
//                                                    src/bench/attention-bench.ts: µs per call)
//
// On a CPU adapter (SwiftShader) the sweep shrinks to small shapes unless --full is given.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { Gpu, deviceDescriptor, summarizeAdapter } from '../engine/gpu';
import { dawnFlags, nodeShader, releaseNodeGpu, requestNodeGpu, SHADER_DIR } from '../engine/node/device-node';
import { MATMUL_LARGE, MATMUL_MID, type MatmulShader, type MatmulTile } from '../engine/kernels/matmul';
import { GEMV_TILE_NK, GEMV_TILE_NK_MANY_ROWS, type GemvTile } from '../engine/kernels/gemv';
import {
  benchCopy,
  benchCopyKernel,
  benchGemvTile,
  benchLinear,
  benchMatmulTile,
  caseKind,
  caseName,
  rates,
  type BenchCase,
  type OurResult,
} from '../bench/linear-bench';
import { TfjsPeer, type TfjsResult } from '../bench/tfjs-peer';
import { GpuTimer } from '../bench/timing';
import { ROTATE_BYTES } from '../bench/operands';
import { ATTENTION_CONTEXTS, ATTENTION_CONTEXTS_QUICK, ATTENTION_SHAPE, benchAttention, type AttentionRow } from '../bench/attention-bench';

const c = (M: number, K: number, N: number, dtype: BenchCase['dtype'] = 'f32', layout: BenchCase['layout'] = 'nk'): BenchCase => ({
  M,
  K,
  N,
  dtype,
  layout,
});

/** The sweep on a real GPU: square products, prefill-sized FFN products, decode GEMVs. */
const FULL_CASES: BenchCase[] = [
  c(4096, 4096, 4096),
  c(2048, 2048, 2048),
  c(1024, 1024, 1024),
  c(512, 4096, 4096),
  c(128, 4096, 14336),
  c(2048, 4096, 14336),
  c(2048, 14336, 4096),
  c(4096, 4096, 4096, 'f32', 'kn'),
  c(4096, 4096, 4096, 'bf16'),
  c(1, 4096, 14336),
  c(1, 14336, 4096),
  c(1, 4096, 4096),
  c(4, 4096, 14336),
  c(16, 4096, 14336),
  c(1, 4096, 14336, 'f32', 'kn'),
  c(1, 4096, 14336, 'bf16'),
  c(1, 14336, 4096, 'bf16'),
  c(16, 4096, 14336, 'bf16'),
];

/** Small enough for SwiftShader. */
const QUICK_CASES: BenchCase[] = [c(130, 200, 72), c(64, 256, 256), c(64, 256, 256, 'bf16'), c(1, 256, 512), c(4, 256, 512), c(1, 256, 512, 'bf16')];

/** What `--tune` measures: matmul tiles (and shader variants) and GEMV tiles on chosen shapes. */
interface TuneSpec {
  matmul: { shapes: [number, number, number][]; configs: { shader?: MatmulShader; tile: MatmulTile }[] }[];
  gemv: { shapes: [number, number, number, BenchCase['dtype']][]; tiles: GemvTile[] }[];
}

const DEFAULT_SPEC: TuneSpec = {
  matmul: [
    {
      shapes: [[4096, 4096, 4096], [512, 4096, 4096]],
      configs: [MATMUL_LARGE, MATMUL_MID, { shader: 'matmul', tile: { WG_M: 16, WG_N: 16, TILE_K: 8 } }],
    },
  ],
  gemv: [{ shapes: [[1, 4096, 14336, 'f32'], [1, 4096, 14336, 'bf16'], [16, 4096, 14336, 'f32']], tiles: [GEMV_TILE_NK, GEMV_TILE_NK_MANY_ROWS] }],
};

function loadSpec(path: string | undefined, quick: boolean): TuneSpec {
  const spec: TuneSpec = path ? JSON.parse(readFileSync(path, 'utf8')) : DEFAULT_SPEC;
  if (!quick) return spec;
  // SwiftShader: same configurations, shapes divided by 16.
  const s16 = (n: number) => Math.max(1, Math.ceil(n / 16));
  return {
    matmul: spec.matmul.map((g) => ({ ...g, shapes: g.shapes.map(([M, K, N]) => [s16(M), s16(K), s16(N)] as [number, number, number]) })),
    gemv: spec.gemv.map((g) => ({ ...g, shapes: g.shapes.map(([r, K, N, d]) => [r, s16(K), s16(N), d] as [number, number, number, BenchCase['dtype']]) })),
  };
}

async function runTune(gpu: Gpu, timer: GpuTimer, spec: TuneSpec, tag: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  const record = (bc: BenchCase, r: OurResult) => {
    out.push({ case: caseName(bc), kernel: r.kernel, gpuMs: r.timing.gpuMs, wallMs: r.timing.wallMs, ...r.rates, check: r.check, device: tag || undefined });
    console.log(
      `  ${caseName(bc).padEnd(26)} ${r.kernel.padEnd(52)} ${pad(fmt(r.timing.gpuMs, 3), 8)} ms ${pad(fmt(r.rates.gflops, 0), 6)} GFLOP/s ${pad(fmt(r.rates.gbps, 0), 5)} GB/s ${checkLabel(r)}${tag ? ` [${tag}]` : ''}`,
    );
  };
  console.log(`\ntuning${tag ? ` (${tag})` : ''}: matmul`);
  for (const group of spec.matmul) {
    for (const [M, K, N] of group.shapes) {
      for (const cfg of group.configs) {
        const bc = c(M, K, N);
        try {
          record(bc, await benchMatmulTile(gpu, timer, bc, cfg.tile, cfg.shader));
        } catch (e) {
          console.log(`  ${caseName(bc)} ${cfg.shader ?? 'matmul'} ${JSON.stringify(cfg.tile)}: ${String(e)}`);
        }
      }
    }
  }
  console.log(`tuning${tag ? ` (${tag})` : ''}: GEMV`);
  for (const group of spec.gemv) {
    for (const [M, K, N, dtype] of group.shapes) {
      for (const tile of group.tiles) {
        const bc = c(M, K, N, dtype);
        try {
          record(bc, await benchGemvTile(gpu, timer, bc, tile));
        } catch (e) {
          console.log(`  ${caseName(bc)} gemv ${JSON.stringify(tile)}: ${String(e)}`);
        }
      }
    }
  }
  return out;
}

/** The tuning points on a second device whose shaders keep no bounds clamping (Dawn's disable_robustness). */
async function diagnose(specPath: string | undefined): Promise<void> {
  const swiftshader = '/usr/lib/chromium/vk_swiftshader_icd.json';
  if (!process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES && existsSync(swiftshader)) process.env.VK_ICD_FILENAMES = swiftshader;
  const gpu = await diagnosticGpu('disable_robustness');
  const quick = /swiftshader/i.test(JSON.stringify(gpu.adapter));
  console.log(`diagnosis: ${JSON.stringify(gpu.adapter)}, Dawn robustness off (no bounds clamping in shaders)`);
  await runTune(gpu, new GpuTimer(gpu), loadSpec(specPath, quick), 'robustness off');
  gpu.destroy();
  process.exit(0);
}

interface Row {
  case: BenchCase;
  kind: 'matmul' | 'gemv';
  ours: OurResult;
  tfjs: (TfjsResult & { gflops: number }) | null;
}

const fmt = (v: number | null | undefined, digits = 1) => (v === null || v === undefined ? '—' : v.toFixed(digits));
const pad = (s: string, n: number) => s.padStart(n);

function deviceSlug(gpu: Gpu): string {
  const a = gpu.adapter;
  // Dawn puts the GPU's name in `device` ("nvidia-h100-80gb-hbm3") and the driver version in `description`.
  const name = a.device || a.description || `${a.vendor} ${a.architecture}`;
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'unknown-device';
}

let diagnosticInstance: GPU | null = null;

/** A second device with extra Dawn toggles (e.g. disable_robustness), for diagnosing where time goes. */
async function diagnosticGpu(enable: string): Promise<Gpu> {
  const dawn = (await import('webgpu')) as unknown as { create: (flags: string[]) => GPU; globals: object };
  Object.assign(globalThis, dawn.globals);
  const flags = dawnFlags().map((f) => (f.startsWith('enable-dawn-features=') ? `${f},${enable}` : f));
  diagnosticInstance = dawn.create(flags); // must stay referenced while the device is used
  const adapter = await diagnosticInstance.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no adapter for the diagnostic device');
  const device = await adapter.requestDevice(deviceDescriptor(adapter, `diagnostic-${enable}`));
  return new Gpu(device, summarizeAdapter(adapter), nodeShader);
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      full: { type: 'boolean', default: false },
      tune: { type: 'boolean', default: false },
      'no-tfjs': { type: 'boolean', default: false },
      out: { type: 'string' },
      'tune-spec': { type: 'string' },
      'skip-sweep': { type: 'boolean', default: false },
      diagnose: { type: 'boolean', default: false },
      attention: { type: 'boolean', default: false },
    },
  });
  if (args.diagnose) return diagnose(args['tune-spec']);
  const gpu = await requestNodeGpu('moescope-bench');
  const onCpu = /swiftshader|llvmpipe|lavapipe/i.test(JSON.stringify(gpu.adapter));
  const quick = args.quick || (onCpu && !args.full);
  const cases = quick ? QUICK_CASES : FULL_CASES;
  const timer = new GpuTimer(gpu);
  const slug = deviceSlug(gpu);
  console.log(`device: ${JSON.stringify(gpu.adapter)}  (${slug})`);
  console.log(`timing: ${timer.method}; median of 5 trials, each ~40 ms of repetitions; weights rotated over ≥ ${ROTATE_BYTES >> 20} MiB`);
  console.log(`features: ${[...gpu.device.features].join(', ')}`);
  console.log(`shaders: ${SHADER_DIR}${quick ? '\nquick sweep (CPU adapter or --quick): small shapes only' : ''}\n`);

  let tfjs: TfjsPeer | null = null;
  let tfjsError: string | null = null;
  if (!args['no-tfjs']) {
    try {
      tfjs = await TfjsPeer.load(dawnFlags());
    } catch (e) {
      tfjsError = String(e);
      console.log(`TensorFlow.js WebGPU unavailable: ${tfjsError}`);
    }
  }

  const copyBytes = quick ? 16 << 20 : Math.min(1 << 30, gpu.limits.maxBufferSize);
  const copy = await benchCopy(gpu, timer, copyBytes);
  console.log(`copyBufferToBuffer ${copyBytes >> 20} MiB: ${fmt(copy.gbps, 0)} GB/s (read + write)\n`);

  const copyKernel = await benchCopyKernel(gpu, timer, copyBytes);
  console.log(`copy by a WGSL kernel (16 bytes per thread) ${copyBytes >> 20} MiB: ${fmt(copyKernel.gbps, 0)} GB/s (read + write)\n`);

  const rows: Row[] = [];
  for (const bc of args['skip-sweep'] ? [] : cases) {
    const ours = await benchLinear(gpu, timer, bc);
    let peer: Row['tfjs'] = null;
    if (tfjs && bc.dtype === 'f32' && bc.layout === 'nk') {
      const copies = Math.max(1, Math.min(8, Math.ceil(ROTATE_BYTES / (bc.N * bc.K * 4))));
      const r = await tfjs.matmul(bc.M, bc.K, bc.N, copies);
      peer = { ...r, gflops: rates(bc, r.timing.wallMs).gflops };
    }
    const row: Row = { case: bc, kind: caseKind(bc), ours, tfjs: peer };
    rows.push(row);
    printRow(row, copy.gbps, rows.length === 1);
  }

  const tune = args.tune ? await runTune(gpu, timer, loadSpec(args['tune-spec'], quick), '') : [];
  const attention = args.attention ? await benchAttention(gpu, timer, quick ? ATTENTION_CONTEXTS_QUICK : ATTENTION_CONTEXTS) : [];
  if (attention.length) printAttention(attention);

  const out = args.out ?? join('bench', 'results', `${slug}.json`);
  mkdirSync(dirname(out), { recursive: true });
  const report = {
    date: new Date().toISOString(),
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    device: { ...gpu.adapter, slug, features: [...gpu.device.features] },
    timing: timer.method,
    tfjs: tfjs ? { version: tfjs.version, timing: 'wall clock (submit to onSubmittedWorkDone), kernelMs from tf.time()' } : { error: tfjsError ?? 'disabled' },
    copy: { bytes: copy.bytes, gpuMs: copy.timing.gpuMs, wallMs: copy.timing.wallMs, gbps: copy.gbps },
    copyKernel: { bytes: copyKernel.bytes, gpuMs: copyKernel.timing.gpuMs, wallMs: copyKernel.timing.wallMs, gbps: copyKernel.gbps },
    results: rows.map((r) => ({
      kind: r.kind,
      ...r.case,
      name: caseName(r.case),
      ours: { kernel: r.ours.kernel, ...r.ours.timing, ...r.ours.rates, check: r.ours.check },
      tfjs: r.tfjs ? { wallMs: r.tfjs.timing.wallMs, kernelMs: r.tfjs.kernelMs, reps: r.tfjs.timing.reps, gflops: r.tfjs.gflops } : null,
    })),
    tune,
    attention: attention.length ? { shape: ATTENTION_SHAPE, rows: attention } : undefined,
  };
  writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
  console.log(`\nwrote ${out}`);
  releaseNodeGpu(gpu);
  // tfjs keeps its own Dawn device alive; nothing else is pending.
  process.exit(0);
}

function checkLabel(o: OurResult): string {
  const k = o.check;
  return k.failures === 0
    ? `(checked ${k.samples} outputs)`
    : `CHECK FAILED: ${k.failures}/${k.samples} outputs wrong, e.g. ${k.firstFailure}`;
}

function printAttention(rows: AttentionRow[]): void {
  const { heads, kvHeads, headDim } = ATTENTION_SHAPE;
  console.log(`\ndecode attention, ${heads} heads over ${kvHeads} kv heads, d = ${headDim}, f32 cache: attend (+ combine) back to back, µs per call`);
  console.log(['context', 'policy', 'splits', 'workgroups', 'median µs', 'min', 'max', 'reps', 'warm-ups', 'max |err|'].map((h) => h.padStart(10)).join(' '));
  for (const r of rows) {
    const cells = [r.context, r.policy, r.splits, r.workgroups, fmt(r.us.median, 2), fmt(r.us.min, 2), fmt(r.us.max, 2), r.reps, r.warmUps, r.maxError.toExponential(1)];
    console.log(`${cells.map((c) => String(c).padStart(10)).join(' ')} ${r.clock === 'gpu' ? '' : '(wall clock) '}${r.ok ? '' : 'CHECK FAILED'}`);
  }
}

function printRow(r: Row, copyGbps: number, header: boolean): void {
  if (header) {
    console.log(
      [
        'shape (M x K -> N) dtype layout'.padEnd(30),
        pad('ours ms', 9),
        pad('GFLOP/s', 8),
        pad('GB/s', 6),
        pad('%copy', 6),
        pad('wall ms', 9),
        pad('tfjs ms', 9),
        pad('tfjs GF/s', 9),
        pad('tfjs kern', 9),
        pad('speedup', 8),
        '  kernel',
      ].join(' '),
    );
  }
  const o = r.ours;
  const t = r.tfjs;
  console.log(
    [
      caseName(r.case).padEnd(30),
      pad(fmt(o.timing.gpuMs ?? o.timing.wallMs, 3), 9),
      pad(fmt(o.rates.gflops, 0), 8),
      pad(fmt(o.rates.gbps, 0), 6),
      pad(r.kind === 'gemv' ? fmt((100 * o.rates.gbps) / copyGbps, 0) : '', 6),
      pad(fmt(o.timing.wallMs, 3), 9),
      pad(fmt(t?.timing.wallMs, 3), 9),
      pad(fmt(t?.gflops, 0), 9),
      pad(fmt(t?.kernelMs, 3), 9),
      pad(t ? `${fmt(t.timing.wallMs / o.timing.wallMs, 2)}x` : '', 8),
      `  ${o.kernel} ${checkLabel(o)}`,
    ].join(' '),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
