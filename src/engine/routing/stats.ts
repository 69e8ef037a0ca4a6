// RoutingStats: owns the routing record of every layer on the GPU (the RoutingBuffers contract, plus the ablation
// mask the routers read). MoE layers update the cumulative buffers on every step from the GPU (moe_plan) and write
// the per-token ring (moe_combine); nothing is read back on the per-token path. After a step back or a reset,
// rebuild() recomputes the cumulative buffers from the ring; snapshot() reads a small copy asynchronously.
import type { Gpu } from '../gpu';
import type { MoeConfig } from '../../model/config';
import type { NonFiniteToken, RoutingSnapshot } from '../session-api';
import { K_MAX, NONFINITE_LOGITS, NONFINITE_SCORES, type RoutingBuffers } from '../routing-buffers';
import { MoeStatsRebuildKernel } from '../kernels/moe-stats';
import { allLayerMetrics } from './metrics';
import { allocatedBytes, ringBytesPerPosition, routingRecordBytes, type RoutingRecordBuffer } from '../../model/routing-record';
import type { Uniforms } from '../kernels/common';

export interface RoutingStatsOptions {
  /** Token positions the ring keeps; defaults to what fits in ringBudgetBytes. */
  ringCapacity?: number;
  /** Memory the ring may take (all ring buffers together); default 64 MiB. */
  ringBudgetBytes?: number;
}

/** Positions that fit in `budgetBytes`, with each ring buffer also within the device's binding limit. */
export function ringCapacityFor(numLayers: number, numExperts: number, budgetBytes: number, maxBindingBytes: number): number {
  const byBudget = Math.floor(budgetBytes / ringBytesPerPosition(numLayers, numExperts));
  const byBinding = Math.floor(maxBindingBytes / (numLayers * Math.max(K_MAX, numExperts) * 4));
  return Math.max(1, Math.min(byBudget, byBinding));
}

/** Tokens whose router saw NaN or ±Inf, from the ring's [tokens, layers, 2] lse-and-flags rows, in position order. */
export function nonFiniteTokens(lseFlags: Uint32Array, numLayers: number): NonFiniteToken[] {
  const out: NonFiniteToken[] = [];
  for (let i = 1; i < lseFlags.length; i += 2) {
    const flags = lseFlags[i];
    if (flags === 0) continue;
    const row = (i - 1) / 2;
    out.push({ position: Math.floor(row / numLayers), layer: row % numLayers, logits: (flags & NONFINITE_LOGITS) !== 0, scores: (flags & NONFINITE_SCORES) !== 0 });
  }
  return out;
}

export class RoutingStats {
  readonly buffers: RoutingBuffers;
  /** u32 [layers, experts]: 1 = expert ablated (the routers never choose it). */
  readonly ablation: GPUBuffer;
  readonly numLayers: number;
  readonly numExperts: number;
  readonly ringCapacity: number;
  private readonly rebuildKernel: MoeStatsRebuildKernel;
  private readonly rebuildGroups: { uniforms: Uniforms; assign: GPUBindGroup; prob: GPUBindGroup };
  private readonly ablationWords: Uint32Array;

  constructor(
    private readonly gpu: Gpu,
    config: MoeConfig,
    options: RoutingStatsOptions = {},
  ) {
    const L = config.numLayers;
    const E = config.numExperts;
    this.numLayers = L;
    this.numExperts = E;
    this.ringCapacity =
      options.ringCapacity ??
      ringCapacityFor(L, E, options.ringBudgetBytes ?? 64 * 2 ** 20, gpu.limits.maxStorageBufferBindingSize);
    const R = this.ringCapacity;
    const bytes = routingRecordBytes(L, E, R);
    const make = (name: string, key: RoutingRecordBuffer) =>
      gpu.createBuffer({
        label: `Moe.${name}`,
        size: allocatedBytes(bytes[key]),
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
    this.buffers = {
      numLayers: L,
      numExperts: E,
      ringCapacity: R,
      counts: make('routingCounts', 'counts'),
      stepCounts: make('routingStepCounts', 'stepCounts'),
      probMass: make('routingProbMass', 'probMass'),
      gateSum: make('routingGateSum', 'gateSum'),
      dropped: make('routingDropped', 'dropped'),
      rerouted: make('routingRerouted', 'rerouted'),
      zLossSum: make('routingZLossSum', 'zLossSum'),
      ringChosen: make('ringChosen', 'ringChosen'),
      ringAssigned: make('ringAssigned', 'ringAssigned'),
      ringWeights: make('ringWeights', 'ringWeights'),
      ringProbs: make('ringProbs', 'ringProbs'),
      ringLse: make('ringLse', 'ringLse'),
    };
    this.ablation = make('routingAblation', 'ablation');
    this.ablationWords = new Uint32Array(L * E);
    this.rebuildKernel = new MoeStatsRebuildKernel(gpu);
    this.rebuildGroups = this.rebuildKernel.bind('Moe.rebuild', this.buffers);
  }

  /** Bytes of every buffer of the record (the RoutingBuffers and the ablation mask), as allocated. */
  get allocatedBytes(): number {
    const buffers = [...Object.values(this.buffers), this.ablation].filter((b): b is GPUBuffer => typeof b === 'object');
    return buffers.reduce((n, b) => n + b.size, 0);
  }

  /** u8 [layers, experts] 1 = ablated; written through the queue (no pipeline rebuild). */
  setAblation(mask: Uint8Array): void {
    if (mask.length !== this.ablationWords.length) {
      throw new RangeError(`ablation mask has ${mask.length} entries, expected layers × experts = ${this.ablationWords.length}`);
    }
    for (let i = 0; i < mask.length; i++) this.ablationWords[i] = mask[i] ? 1 : 0;
    this.gpu.device.queue.writeBuffer(this.ablation, 0, this.ablationWords);
  }

  /**
   * Recompute counts, stepCounts (the token at position - 1), probMass, gateSum, dropped, rerouted and zLossSum from
   * the ring rows [0, position). position 0 zeroes them (a reset). Throws past the ring: those tokens were counted
   * but not recorded, so their statistics cannot be restored.
   */
  rebuild(encoder: GPUCommandEncoder, position: number): void {
    if (!Number.isInteger(position) || position < 0 || position > this.ringCapacity) {
      throw new RangeError(
        `RoutingStats.rebuild: position ${position} is outside the ring [0, ${this.ringCapacity}]; ` +
          'statistics past the ring cannot be rebuilt (reset instead)',
      );
    }
    this.rebuildGroups.uniforms.set({ positions: position, num_layers: this.numLayers, experts: this.numExperts, _pad: 0 });
    const pass = encoder.beginComputePass({ label: 'Moe.rebuild' });
    this.rebuildKernel.encode(pass, this.rebuildGroups, this.numLayers, this.numExperts);
    pass.end();
  }

  /** Zero every statistic (the ring rows are left; they are overwritten as tokens arrive). */
  reset(encoder: GPUCommandEncoder): void {
    this.rebuild(encoder, 0);
  }

  /**
   * A CPU copy of the record after `position` tokens (one copy into one staging buffer, mapped asynchronously):
   * the cumulative buffers, ring rows [0, min(position, ringCapacity)) and per-layer metrics. Not for the
   * per-token path.
   */
  async snapshot(position: number): Promise<RoutingSnapshot> {
    const b = this.buffers;
    const L = this.numLayers;
    const E = this.numExperts;
    const rows = Math.min(position, this.ringCapacity);
    const cells = L * E * 4;
    const slots = rows * L * K_MAX * 4;
    const parts: [GPUBuffer, number][] = [
      [b.counts, cells], [b.stepCounts, cells], [b.probMass, cells], [b.gateSum, cells],
      [b.dropped, cells], [b.rerouted, cells], [b.zLossSum, L * 4],
      [b.ringChosen, slots], [b.ringAssigned, slots], [b.ringWeights, slots], [b.ringLse, rows * L * 2 * 4],
    ];
    const offsets: number[] = [];
    let size = 0;
    for (const [, bytes] of parts) {
      offsets.push(size);
      size += Math.ceil(bytes / 4) * 4;
    }
    const staging = this.gpu.createBuffer({ label: 'Moe.snapshot', size: Math.max(4, size), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.gpu.device.createCommandEncoder({ label: 'Moe.snapshot' });
    parts.forEach(([buf, bytes], i) => {
      if (bytes > 0) enc.copyBufferToBuffer(buf, 0, staging, offsets[i], bytes);
    });
    this.gpu.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const data = staging.getMappedRange().slice(0);
    staging.unmap();
    staging.destroy();
    const u32 = (i: number) => new Uint32Array(data, offsets[i], parts[i][1] / 4);
    const f32 = (i: number) => new Float32Array(data, offsets[i], parts[i][1] / 4);
    const snap = {
      position,
      numLayers: L,
      numExperts: E,
      counts: u32(0),
      stepCounts: u32(1),
      probMass: f32(2),
      gateSum: f32(3),
      dropped: u32(4),
      rerouted: u32(5),
      zLossSum: f32(6),
      chosen: u32(7),
      assigned: u32(8),
      weights: f32(9),
      nonFinite: nonFiniteTokens(u32(10), L),
    };
    return { ...snap, metrics: allLayerMetrics(snap, L, E, position) };
  }

  destroy(): void {
    for (const v of Object.values(this.buffers)) if (typeof v === 'object') (v as GPUBuffer).destroy();
    this.ablation.destroy();
  }
}
