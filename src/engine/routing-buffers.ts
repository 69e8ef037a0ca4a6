// The routing record the engine keeps on the GPU, and which viewers (the 3D scene, panels) read without readback.
//
// Source of truth is the per-token ring: for every processed token position p (p < ringCapacity), every layer and
// every slot s < K_MAX, which expert the router chose and where the token went after capacity/overflow.
// The cumulative [layers × experts] buffers are kept in step with it: added to after each forward step, rebuilt
// from the ring for positions [0, position) after a step back or a reset.

export { K_MAX, NO_EXPERT } from '../model/limits';

/** Flag bits in ringLse (moe_params.wgsl FLAG_*): a router logit, or a probability / selection score, was NaN or ±Inf. */
export const NONFINITE_LOGITS = 1;
export const NONFINITE_SCORES = 2;

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
   * [ringCapacity, layers, 2] words per token and layer: the logsumexp of its router logits (f32; zLossSum is rebuilt
   * from it after a step back, as the probabilities alone do not determine it), then its non-finite flags (u32:
   * NONFINITE_LOGITS | NONFINITE_SCORES; non-zero = the token was not routed in that layer).
   */
  ringLse: GPUBuffer;
}
