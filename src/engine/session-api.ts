// What the dashboard, the CLI and tests drive: one loaded model with its routing record on the GPU.
// Implemented by src/engine/model/session.ts.
import type { Gpu } from './gpu';
import type { MoeConfig, ParameterCounts } from '../model/config';
import type { RoutingBuffers } from './routing-buffers';

/** Live what-if routing controls; applied through uniforms (no pipeline rebuild). */
export interface RoutingPolicy {
  /** Experts per token; null keeps the model's own k. At most K_MAX (8). */
  topK: number | null;
  /** σ of seeded Gaussian noise added to router logits (noisy top-k); 0 = off. */
  noiseStd: number;
  noiseSeed: number;
  /** Router logits are divided by this before scoring; 1 = as trained. */
  temperature: number;
  /** capacity = ceil(capacityFactor · tokens · k / experts) per expert per step; 0 = unlimited. */
  capacityFactor: number;
  /** What happens to an assignment whose expert is full. */
  overflow: 'drop' | 'reroute';
  /** u8 [layers, experts]: 1 = expert ablated (never chosen). */
  ablated: Uint8Array;
}

/** Per-layer load-balance figures derived from a routing snapshot. */
export interface LayerMetrics {
  /** Coefficient of variation (std/mean) of per-expert load. */
  cv: number;
  /** Switch aux loss E·Σ fᵢ·Pᵢ (fᵢ share of assignments, Pᵢ mean router probability). */
  auxLoss: number;
  /** Router z-loss: mean over tokens of logsumexp(logits)². */
  zLoss: number;
  /** Entropy (nats) of the load distribution over experts. */
  entropy: number;
  /** mean load / max load (1 = perfectly balanced). */
  balancedness: number;
  /** Experts with zero load. */
  deadExperts: number;
  dropped: number;
  rerouted: number;
}

/** A token a layer's router could not route: NaN or ±Inf in its logits (input activations) or scores. */
export interface NonFiniteToken {
  position: number;
  layer: number;
  /** A router logit was NaN or ±Inf: the layer's input activations (or its router weights) went bad. */
  logits: boolean;
  /** A probability or selection score was NaN or ±Inf (overflow in scoring). */
  scores: boolean;
}

/** A session's CPU-side state: enough to rebuild its GPU state on another device (see model/session.ts Session.replay). */
export interface SessionState {
  tokens: number[];
  steps: ReplayStep[];
  policy: RoutingPolicy;
  /** Tokens sampled so far (the sampling seed's counter). */
  drawn: number;
}

/** One submitted step: its tokens and the routing policy it ran under. */
export interface ReplayStep {
  size: number;
  policy: RoutingPolicy;
}

/** A small CPU copy of the routing record, read asynchronously (never on the per-frame path). */
export interface RoutingSnapshot {
  position: number;
  numLayers: number;
  numExperts: number;
  counts: Uint32Array; // [layers, experts]
  stepCounts: Uint32Array; // [layers, experts]
  probMass: Float32Array; // [layers, experts]
  gateSum: Float32Array; // [layers, experts]
  dropped: Uint32Array; // [layers, experts]
  rerouted: Uint32Array; // [layers, experts]
  zLossSum: Float32Array; // [layers]
  /** Ring rows for positions [0, min(position, ringCapacity)): [tokens, layers, K_MAX]. */
  chosen: Uint32Array;
  assigned: Uint32Array;
  weights: Float32Array;
  /** Ring positions whose routing was not drawn because a router saw NaN or ±Inf, by position then layer. */
  nonFinite: NonFiniteToken[];
  metrics: LayerMetrics[];
}

export interface KernelTiming {
  name: string;
  /** Mean GPU time per step, microseconds. */
  micros: number;
  /** GPU time per token (steps differ in size), microseconds. */
  microsPerToken: number;
  /** Steps measured. */
  samples: number;
}

/** One step's next-token logits, read back after the step (see ModelSession.onStepLogits). */
export interface StepLogits {
  /** Position of the step's first token: row r holds the logits for the token after position start + r. */
  start: number;
  /** Token ids the step processed, [rows]. */
  ids: Uint32Array;
  /** [rows, vocab] f32. */
  logits: Float32Array;
}

/** One step's attention of its last token, read from the probe. */
export interface AttentionFlow {
  /** Position of the query token; it attends to keys [0, position]. */
  position: number;
  layers: number;
  heads: number;
  /** [layers, heads, position + 1] f32: the softmax weight of key j (0 outside a sliding window). */
  weights: Float32Array;
  /** [layers, heads] f32: the share of the softmax a learned sink took (gpt-oss; 0 for other families). */
  sink: Float32Array;
}

/** Called once per step, synchronously after its submit, with the read-back still in flight. */
export type StepLogitsListener = (pending: Promise<StepLogits>) => void;

export interface ModelSession {
  readonly config: MoeConfig;
  readonly gpu: Gpu;
  readonly routing: RoutingBuffers;
  readonly parameters: ParameterCounts;
  /** Most tokens one step runs (feed splits longer runs into steps of this size; capacity applies per step). */
  readonly maxTokensPerStep?: number;
  /** Token ids processed so far; position = tokens.length. */
  readonly tokens: readonly number[];
  /** Token positions the KV cache holds; feed and generate past it throw ContextFullError. */
  readonly contextLength: number;
  setPolicy(policy: RoutingPolicy): void;
  /** Teacher-forced: run these tokens through the model, recording their routing. */
  feed(ids: number[]): Promise<void>;
  /** Sample the next token from the last logits, run it, and return its id. */
  generate(sampling?: { temperature: number; topP: number; seed: number }): Promise<number>;
  /** Rewind n tokens: the KV cache is truncated and the routing record rebuilt from the ring. */
  back(n: number): Promise<void>;
  reset(): Promise<void>;
  snapshot(): Promise<RoutingSnapshot>;
  /**
   * The CPU-side state (tokens, the steps they ran in, each step's policy, the sampling counter) that replay() on
   * another session of the same model (e.g. on a re-created device) brings back. Absent where the steps are not
   * ours to replay (a replayed trace: feeding the tokens again is the same).
   */
  readonly state?: SessionState;
  replay?(state: SessionState): Promise<void>;
  /**
   * Have every later step's logits copied out after it (null: stop). The copy is queued behind the step and mapped
   * asynchronously: no step waits for it. Optional: a session without logits (a replayed trace) leaves it out.
   */
  onStepLogits?(fn: StepLogitsListener | null): void;
  /**
   * From the next step on, record each step's last-token attention weights (per layer and head, from the attention
   * kernels' own softmax) until the probe is closed. Optional: a replayed trace has no attention to show.
   */
  openAttentionProbe?(): { read(position: number): Promise<AttentionFlow>; close(): void };
  destroy(): void;
}

/** A session's CPU-side state: enough to rebuild its GPU state on another device (see Session.replay). */
export interface SessionState {
  tokens: number[];
  steps: ReplayStep[];
  policy: RoutingPolicy;
  /** Tokens sampled so far (the sampling seed's counter). */
  drawn: number;
}

/** One submitted step: its tokens and the routing policy it ran under. */
export interface ReplayStep {
  size: number;
  policy: RoutingPolicy;
}
