// Decode attention on granite-3.1-1b-a400m's shape (16 query heads over 8 kv heads, d = 64, f32 KV cache): one query
// row at position `context` (context + 1 keys), under the engine's split policy and the earlier one (POLICIES). Each
// repetition is attend (and combine when the keys are split) back to back in one compute pass, so a call's time is
// its dispatches' latency without a pass's own overhead. Reported per call in µs: median, min and max over the trials,
// after warm-up trials repeated until two in a row agree within 10 %. One call is checked against float64 attentionRef.
import type { Gpu } from '../engine/gpu';
import { AttentionKernel, createKvCache, type AttentionSplitPolicy } from '../engine/kernels/attention';
import { readF32, storageBuffer, uploadBuffer } from '../engine/kernels/common';
import { attentionRef } from '../reference/attention';
import { randomBlock } from './operands';
import { median, type GpuTimer } from './timing';

export const ATTENTION_SHAPE = { heads: 16, kvHeads: 8, headDim: 64 };
export const ATTENTION_CONTEXTS = [512, 1024, 4096];
/** On a CPU adapter (SwiftShader), where a 4096-key call takes about a second. */
export const ATTENTION_CONTEXTS_QUICK = [64, 256];
/** Each context under the engine's split policy, then under the one before decode splits of 32 keys (for comparison). */
const POLICIES: { name: string; policy: Partial<AttentionSplitPolicy> }[] = [
  { name: 'engine', policy: {} },
  { name: 'split-256', policy: { splitKeys: 256, targetWorkgroups: 256 } },
];
/** The attention tests' tolerance: f32 dot products, exp and a weighted sum of values of magnitude ~1. */
const TOL = { atol: 2e-6, rtol: 2e-5 };

export interface AttentionRow {
  /** Keys before the query (its position); it sees context + 1. */
  context: number;
  /** Which split policy (POLICIES). */
  policy: string;
  splits: number;
  workgroups: number;
  reps: number;
  /** Per call (attend + combine): GPU timestamps, or wall clock on a device without them. */
  clock: 'gpu' | 'wall';
  us: { median: number; min: number; max: number; trials: number[] };
  /** Warm-up trials run (until two in a row agreed within 10 %, at most 10). */
  warmUps: number;
  /** Largest |GPU − float64| over the output, and whether every value is within the tests' tolerance. */
  maxError: number;
  ok: boolean;
}

/** `trials` timed trials of each context; a trial lasts about `targetMs`. */
export async function benchAttention(
  gpu: Gpu, timer: GpuTimer, contexts: number[], o: { trials?: number; targetMs?: number } = {},
): Promise<AttentionRow[]> {
  const rows: AttentionRow[] = [];
  for (const context of contexts) {
    for (const p of POLICIES) rows.push(await benchContext(gpu, timer, context, p, o.trials ?? 7, o.targetMs ?? 20));
  }
  return rows;
}

async function benchContext(
  gpu: Gpu, timer: GpuTimer, context: number, p: (typeof POLICIES)[number], trials: number, targetMs: number,
): Promise<AttentionRow> {
  const { heads, kvHeads, headDim: d } = ATTENTION_SHAPE;
  const maxSeq = context + 1;
  const label = `bench.attention${context}`;
  const q = randomBlock(heads * d, 11);
  const k = randomBlock(maxSeq * kvHeads * d, 12);
  const v = randomBlock(maxSeq * kvHeads * d, 13);
  const kernel = new AttentionKernel(gpu, p.policy);
  const cache = createKvCache(gpu, label, { maxSeq, kvHeads, headDim: d });
  gpu.device.queue.writeBuffer(cache.k, 0, k);
  gpu.device.queue.writeBuffer(cache.v, 0, v);
  const unusedRow = storageBuffer(gpu, `${label}.kvNew`, kvHeads * d * 4); // store_kv's input: the cache is filled above
  const out = storageBuffer(gpu, `${label}.out`, heads * d * 4);
  const b = kernel.bind(label, { q: uploadBuffer(gpu, `${label}.q`, q), kNew: unusedRow, vNew: unusedRow, kCache: cache.k, vCache: cache.v, out }, {
    heads, kvHeads, headDim: d, maxSeq,
  });
  kernel.setShape(b, { tokens: 1, startPos: context });
  const work = (enc: GPUCommandEncoder, reps: number) => {
    const pass = enc.beginComputePass({ label: `${label}.pass` });
    for (let r = 0; r < reps; r++) kernel.encodeAttend(pass, b, 1);
    pass.end();
  };

  const expected = attentionRef(q, k, v, { tokens: 1, startPos: context, heads, kvHeads, headDim: d, scale: 1 / Math.sqrt(d) });
  await timer.runOnce(work, 1);
  const got = await readF32(gpu, out, expected.length);
  let maxError = 0;
  let ok = true;
  got.forEach((x, i) => {
    const err = Math.abs(x - expected[i]);
    if (!(err <= maxError)) maxError = err;
    if (!(err <= TOL.atol + TOL.rtol * Math.abs(expected[i]))) ok = false;
  });

  const perCall = async (reps: number) => {
    const r = await timer.runOnce(work, reps);
    return ((r.gpuMs ?? r.wallMs) * 1000) / reps;
  };
  const each = await perCall(4);
  const reps = Math.max(4, Math.min(4000, Math.round((targetMs * 1000) / Math.max(each, 1))));
  let prev = await perCall(reps);
  let warmUps = 1;
  while (warmUps < 10) {
    const next = await perCall(reps);
    warmUps++;
    if (Math.abs(next - prev) <= 0.1 * Math.min(next, prev)) break;
    prev = next;
  }
  const times: number[] = [];
  for (let t = 0; t < trials; t++) times.push(await perCall(reps));
  return {
    context,
    policy: p.name,
    splits: b.splits,
    workgroups: heads * b.splits,
    reps,
    clock: gpu.features.timestampQuery ? 'gpu' : 'wall',
    us: { median: median(times), min: Math.min(...times), max: Math.max(...times), trials: times },
    warmUps,
    maxError,
    ok,
  };
}
