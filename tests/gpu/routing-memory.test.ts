// The memory check budgets the routing record before a load (src/io/memory.ts); the engine allocates it
// (src/engine/routing/stats.ts). Both must agree with the buffers actually made, the ring's logsumexp-and-flags rows
// and the ablation mask included (the estimate once left both out).
import { describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/engine/gpu';
import { RoutingStats, ringCapacityFor } from '../../src/engine/routing/stats';
import { estimateMemory } from '../../src/io/memory';
import { ringBytesPerPosition } from '../../src/model/routing-record';
import { makeConfig } from '../support/moe';
import { testGpu } from '../support/gpu';

/** RoutingStats built on a Gpu that records every buffer made: the record's buffers (labels Moe.routing*, Moe.ring*). */
async function madeBuffers(layers: number, experts: number, ringCapacity: number) {
  const gpu = await testGpu();
  const made: GPUBufferDescriptor[] = [];
  const spy = Object.create(gpu, {
    createBuffer: { value: (d: GPUBufferDescriptor) => (made.push(d), gpu.createBuffer(d)) },
  }) as Gpu;
  const config = makeConfig({ family: 'mixtral', H: 16, I: 8, E: experts, k: 2, layers, seed: 1 });
  const stats = new RoutingStats(spy, config, { ringCapacity });
  const record = made.filter((d) => /^Moe\.(routing|ring)/.test(d.label ?? ''));
  stats.destroy();
  return { config, stats, record, bytes: (re: RegExp) => record.filter((d) => re.test(d.label!)).reduce((s, d) => s + d.size, 0) };
}

describe('routing record memory', () => {
  it('the estimate and Session.memory() count every routing buffer the engine makes (odd sizes, padded to 16 bytes)', async () => {
    const { config, stats, record, bytes } = await madeBuffers(3, 5, 7);
    expect(record.map((d) => d.label).sort()).toEqual([
      'Moe.ringAssigned', 'Moe.ringChosen', 'Moe.ringLse', 'Moe.ringProbs', 'Moe.ringWeights', 'Moe.routingAblation',
      'Moe.routingCounts', 'Moe.routingDropped', 'Moe.routingGateSum', 'Moe.routingProbMass', 'Moe.routingRerouted',
      'Moe.routingStepCounts', 'Moe.routingZLossSum',
    ]);
    const total = bytes(/./);
    expect(estimateMemory(config, { contextLength: 64, ringCapacity: 7 }).routing).toBe(total);
    expect(stats.allocatedBytes).toBe(total);
  });

  it('ringBytesPerPosition, which sizes the ring from its budget, is what one ring position takes', async () => {
    // 8 positions × 3 layers: every ring buffer is a multiple of 16 bytes, so no padding hides a missing word.
    const { bytes } = await madeBuffers(3, 5, 8);
    expect(ringBytesPerPosition(3, 5) * 8).toBe(bytes(/^Moe\.ring/));
    const gpu = await testGpu();
    const capacity = ringCapacityFor(3, 5, 10_000, gpu.limits.maxStorageBufferBindingSize);
    expect(capacity * ringBytesPerPosition(3, 5)).toBeLessThanOrEqual(10_000);
    expect((capacity + 1) * ringBytesPerPosition(3, 5)).toBeGreaterThan(10_000);
  });
});
