// Shared test support for GPU kernel tests: one Dawn device per worker, poisoned outputs, tolerant comparison.
import { Gpu } from '../../src/engine/gpu';
import { requestNodeGpu } from '../../src/engine/node/device-node';
import { storageBuffer, readF32 } from '../../src/engine/kernels/common';

let shared: Promise<Gpu> | null = null;

/**
 * The worker's GPU (SwiftShader without a real GPU). A missing adapter is an error, never a skip: the kernel
 * tests exist to execute WGSL.
 */
export function testGpu(): Promise<Gpu> {
  shared ??= requestNodeGpu('moescope-test').then((gpu) => {
    gpu.onError((e) => {
      // Surface uncaptured GPU errors in the test log; tests also assert gpu.recentErrors is empty.
      console.error(`[uncaptured] ${e.message}`);
    });
    return gpu;
  });
  return shared;
}

/** Workgroups per dimension cappedGridGpu allows by default: grid-stride kernels then give each thread several elements. */
export const CAPPED_GRID = 2;

/**
 * `base` (default: the test device) seen through limits that allow only `cap` workgroups per dimension.
 * Grid-stride kernels size their grid from that limit, so here an element count past cap · WORKGROUP runs
 * their loops more than once (on the real limit, 65535, that takes tens of millions of elements). Everything else,
 * pipelines and shader source included, is base's own.
 */
export async function cappedGridGpu(base?: Gpu, cap = CAPPED_GRID): Promise<Gpu> {
  const gpu = base ?? (await testGpu());
  const limits = new Proxy(gpu.device.limits, {
    get: (target, key) => (key === 'maxComputeWorkgroupsPerDimension' ? cap : Reflect.get(target, key)),
  });
  return Object.create(gpu, { limits: { get: () => limits } }) as Gpu;
}

/**
 * `base` (default: the test device) seen as a hardware adapter (GpuAdapterSummary.software false): kernels that choose
 * other tiles for software adapters (SwiftShader, which runs these tests) pick their GPU tiles on it.
 */
export async function hardwareTilesGpu(base?: Gpu): Promise<Gpu> {
  const gpu = base ?? (await testGpu());
  return Object.create(gpu, { adapter: { value: { ...gpu.adapter, software: false } } }) as Gpu;
}

/** Elements for a grid-stride kernel of `workgroup` threads on cappedGridGpu: every thread 2 or 3 of them. */
export const cappedGridCount = (workgroup: number, cap = CAPPED_GRID) => Math.floor(2.5 * cap * workgroup) + 1;

/** NaN bit pattern written into outputs before each run, so a kernel that skips an element fails. */
export const POISON_BITS = 0x7fc0dead;

/** A storage buffer of `count` 32-bit words, filled with the poison pattern. */
export function poisonedBuffer(gpu: Gpu, label: string, count: number): GPUBuffer {
  const buffer = storageBuffer(gpu, label, count * 4);
  const fill = new Uint32Array(buffer.size / 4).fill(POISON_BITS);
  gpu.device.queue.writeBuffer(buffer, 0, fill);
  return buffer;
}

export interface Tolerance {
  atol: number;
  rtol: number;
}

/**
 * Checks |actual - expected| <= atol + rtol·|expected| everywhere (NaN never passes). Throws with the first
 * mismatches, their indices and the worst error.
 */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance,
  what = 'output',
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${what}: length ${actual.length} != expected ${expected.length}`);
  }
  const bad: string[] = [];
  let badCount = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const err = Math.abs(a - e);
    const ok = err <= tol.atol + tol.rtol * Math.abs(e);
    if (!ok || Number.isNaN(a)) {
      badCount++;
      if (!(err <= worst)) worst = err;
      if (bad.length < 8) bad.push(`  [${i}] got ${a}, expected ${e} (|err| ${err.toExponential(2)})`);
    }
  }
  if (badCount > 0) {
    throw new Error(
      `${what}: ${badCount} of ${expected.length} values outside atol ${tol.atol} + rtol ${tol.rtol}·|ref| ` +
        `(worst |err| ${worst}):\n${bad.join('\n')}`,
    );
  }
}

/** Checks integer outputs match exactly, printing the first mismatches. */
export function expectExact(actual: ArrayLike<number>, expected: ArrayLike<number>, what = 'output'): void {
  const bad: string[] = [];
  let badCount = 0;
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length} != ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) {
      badCount++;
      if (bad.length < 8) bad.push(`  [${i}] got ${actual[i]}, expected ${expected[i]}`);
    }
  }
  if (badCount) throw new Error(`${what}: ${badCount} of ${expected.length} differ:\n${bad.join('\n')}`);
}

export { readF32 };
