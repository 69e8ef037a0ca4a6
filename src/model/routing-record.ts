// Sizes of the routing record the engine keeps on the GPU (src/engine/routing-buffers.ts), in one place for the
// engine that allocates it and the memory check (src/io/memory.ts) that budgets it before a load.
import { K_MAX } from './limits';

/** Buffers of the routing record: the RoutingBuffers contract plus the ablation mask the routers read. */
export type RoutingRecordBuffer =
  | 'counts' | 'stepCounts' | 'probMass' | 'gateSum' | 'dropped' | 'rerouted' | 'ablation' | 'zLossSum'
  | 'ringChosen' | 'ringAssigned' | 'ringWeights' | 'ringProbs' | 'ringLse';

/** Bytes each routing-record buffer holds for `L` layers, `E` experts and a ring of `R` token positions. */
export function routingRecordBytes(L: number, E: number, R: number): Record<RoutingRecordBuffer, number> {
  const cells = L * E * 4; // u32/f32 [layers, experts]
  const slots = R * L * K_MAX * 4; // u32/f32 [positions, layers, K_MAX]
  return {
    counts: cells, stepCounts: cells, probMass: cells, gateSum: cells, dropped: cells, rerouted: cells, ablation: cells,
    zLossSum: L * 4, // f32 [layers]
    ringChosen: slots, ringAssigned: slots, ringWeights: slots,
    ringProbs: R * L * E * 4, // f32 [positions, layers, experts]
    ringLse: R * L * 2 * 4, // [positions, layers, 2]: logsumexp (f32), then the non-finite flags (u32)
  };
}

/** Bytes a buffer of `bytes` takes as the engine allocates it: rounded up to 16 (vec4 views), at least 16. */
export function allocatedBytes(bytes: number): number {
  return Math.max(16, Math.ceil(bytes / 16) * 16);
}

/** Ring bytes per token position (chosen, assigned, weights, probs, logsumexp and flags), for sizing the ring. */
export function ringBytesPerPosition(L: number, E: number): number {
  const one = routingRecordBytes(L, E, 1);
  return one.ringChosen + one.ringAssigned + one.ringWeights + one.ringProbs + one.ringLse;
}
