// The routing record the engine keeps on the GPU, and which viewers (the 3D scene, panels) read without readback.
//
// Source of truth is the per-token ring: for every processed token position p (p < ringCapacity), every layer and
// every slot s < K_MAX, which expert the router chose and where the token went after capacity/overflow.
// The cumulative [layers × experts] buffers are kept in step with it: added to after each forward step, rebuilt
// from the ring for positions [0, position) after a step back or a reset.

export { K_MAX, NO_EXPERT } from '../model/limits';

export interface RoutingBuffers {
  numLayers: number;
  numExperts: number;
  /** Token positions the ring holds; positions past it are counted but not recorded. */
  ringCapacity: number;

  /** u32 [layers, experts]: tokens assigned to each expert since reset (after capacity/overflow). */
  counts: GPUBuffer;
  /** u32 [layers, experts]: tokens assigned in the most recent step only. */
  stepCounts: GPUBuffer;
  /** f32 [layers, experts]: summed router probability (softmax or sigmoid score) of every token, chosen or not. */
  probMass: GPUBuffer;
  /** f32 [layers, experts]: summed gate weight of the assignments (for the mean gate weight per expert). */
  gateSum: GPUBuffer;
  /** u32 [layers, experts]: assignments dropped because this (the chosen) expert was full. */
  dropped: GPUBuffer;
  /** u32 [layers, experts]: assignments re-routed to this expert from a full one. */
  rerouted: GPUBuffer;

  /** f32 [layers]: summed (logsumexp of router logits)² over tokens, for the router z-loss (÷ tokens). */
  zLossSum: GPUBuffer;

  /** u32 [ringCapacity, layers, K_MAX]: the router's chosen experts per slot (NO_EXPERT past k). */
  ringChosen: GPUBuffer;
  /** u32 [ringCapacity, layers, K_MAX]: the expert that processed the slot (≠ chosen if re-routed; NO_EXPERT if dropped). */
  ringAssigned: GPUBuffer;
  /** f32 [ringCapacity, layers, K_MAX]: gate weight of the slot (after renormalisation and scaling). */
  ringWeights: GPUBuffer;
  /** f32 [ringCapacity, layers, experts]: the full router probability vector per token and layer. */
  ringProbs: GPUBuffer;
  /**
   * f32 [ringCapacity, layers]: logsumexp of the token's router logits (added for the MoE layer: zLossSum is
   * rebuilt from it after a step back, as the probabilities alone do not determine it).
   */
  ringLse: GPUBuffer;
}
