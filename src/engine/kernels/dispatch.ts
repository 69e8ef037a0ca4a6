// Dispatch sizing and buffer checks shared by the element-wise kernels (embedding, rope, swiglu, residual, KV store).
import type { Gpu } from '../gpu';
import { ceilDiv } from './common';

/**
 * Workgroups for a grid-stride loop over `count` items with `workgroup` threads each: one item per thread where the
 * dispatch limit allows, otherwise the shader's loop (`i += num_workgroups.x · WORKGROUP`) covers the rest.
 */
export function gridStrideGroups(gpu: Gpu, count: number, workgroup: number): number {
  return Math.max(1, Math.min(ceilDiv(count, workgroup), gpu.limits.maxComputeWorkgroupsPerDimension));
}

/**
 * A 2D grid of at least `blocks` workgroups, numbered `y · x_count + x` by the shader: one dimension holds at most
 * maxComputeWorkgroupsPerDimension (65535) workgroups, and an lm head over a 151936-token vocabulary needs more.
 */
export function blockGrid(gpu: Gpu, blocks: number): [number, number] {
  const maxX = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (blocks <= maxX) return [Math.max(1, blocks), 1];
  const y = ceilDiv(blocks, maxX);
  return [ceilDiv(blocks, y), y];
}

/** Throws a clear error when `buffer` is smaller than a shape needs. */
export function requireBytes(owner: string, what: string, buffer: GPUBuffer, bytes: number): void {
  if (buffer.size < bytes) {
    throw new Error(`${owner}: ${what} needs ${bytes} bytes but buffer "${buffer.label}" has ${buffer.size}`);
  }
}

/** Throws unless `value` is an integer in [min, max]. */
export function requireInt(owner: string, what: string, value: number, min = 0, max = 0xffffffff): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${owner}: ${what} must be an integer in [${min}, ${max}], got ${value}`);
  }
}
