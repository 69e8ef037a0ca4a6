// Naive float64 reference of a whole MoE layer: router (src/reference/router.ts), capacity, SwiGLU experts in the
// fused transformers layout (with gpt-oss's expert biases and clamped SwiGLU), weighted combine, shared experts, and
// the step's routing statistics.
import type { ExpertActivation, RouterConfig } from '../model/config';
import { NO_EXPERT, assignCapacity, routerRef, type RouterRefOutput } from './router';

export interface MoeRefWeights {
  /** [E, H] */
  router: ArrayLike<number>;
  bias?: ArrayLike<number>;
  correction?: ArrayLike<number>;
  /** [E, 2I, H]: rows 0..I-1 gate, I..2I-1 up. */
  gateUp: ArrayLike<number>;
  /** [E, H, I] */
  down: ArrayLike<number>;
  /** gpt-oss: [E, 2I] gate then up bias, [E, H] down bias. */
  gateUpBias?: ArrayLike<number>;
  downBias?: ArrayLike<number>;
  /** Shared expert: gate_up [2Is, H], down [H, Is], optional gate vector [H] (sigmoid-gated when present). */
  shared?: { gateUp: ArrayLike<number>; down: ArrayLike<number>; gate?: ArrayLike<number>; intermediate: number };
}

export interface MoeRefInput {
  T: number;
  H: number;
  I: number;
  E: number;
  x: ArrayLike<number>;
  weights: MoeRefWeights;
  router: RouterConfig;
  groupScore?: 'max' | 'top2sum';
  layer: number;
  position: number;
  k: number;
  noiseStd: number;
  noiseSeed: number;
  temperature: number;
  ablated?: ArrayLike<number>;
  /** Per-expert capacity for this step (0 = unlimited). */
  capacity: number;
  overflow: 'drop' | 'reroute';
  /** The experts' activation (gpt-oss's clamped SwiGLU); absent: silu(g)·u. */
  activation?: ExpertActivation;
}

/**
 * The gated activation of one unit: g·σ(alpha·g)·(u + upOffset) with g = min(gate, limit) and u clamped to
 * [−limit, limit] (transformers' GptOssExperts._apply_gate); SwiGLU's silu(g)·u without an activation.
 */
export function gatedActivation(gate: number, up: number, a?: ExpertActivation): number {
  if (!a) return (gate / (1 + Math.exp(-gate))) * up;
  const g = Math.min(gate, a.limit);
  const u = Math.min(Math.max(up, -a.limit), a.limit);
  return (g / (1 + Math.exp(-a.alpha * g))) * (u + a.upOffset);
}

/** Biases and activation of one expert row (all optional: plain SwiGLU). */
export interface ExpertRowOptions {
  /** Bias vector holding [2I] gate then up biases at gateUpBiasOff, and [H] down biases at downBiasOff. */
  gateUpBias?: ArrayLike<number>;
  gateUpBiasOff?: number;
  downBias?: ArrayLike<number>;
  downBiasOff?: number;
  activation?: ExpertActivation;
}

export interface MoeRefOutput extends RouterRefOutput {
  /** [T, H] layer output. */
  out: Float64Array;
  /** [T, k] expert that processed each slot. */
  assigned: Uint32Array;
  /** [E] assignments processed, dropped from, re-routed to each expert this step. */
  counts: Uint32Array;
  dropped: Uint32Array;
  rerouted: Uint32Array;
  /** [E] Σ_t p[t, e] and Σ gate weights of processed assignments, this step. */
  probMass: Float64Array;
  gateSum: Float64Array;
  /** Σ_t lse². */
  zLossSum: number;
}

/**
 * One row through one expert: down · act(gate · x + bg, up · x + bu) + bd, weights at the given offsets (SwiGLU
 * without biases unless `o` says otherwise).
 */
export function swigluRef(
  x: ArrayLike<number>,
  xOff: number,
  gateUp: ArrayLike<number>,
  guOff: number,
  down: ArrayLike<number>,
  dOff: number,
  H: number,
  I: number,
  o: ExpertRowOptions = {},
): Float64Array {
  const act = new Float64Array(I);
  for (let j = 0; j < I; j++) {
    let g = o.gateUpBias ? o.gateUpBias[(o.gateUpBiasOff ?? 0) + j] : 0;
    let u = o.gateUpBias ? o.gateUpBias[(o.gateUpBiasOff ?? 0) + I + j] : 0;
    for (let h = 0; h < H; h++) {
      g += x[xOff + h] * gateUp[guOff + j * H + h];
      u += x[xOff + h] * gateUp[guOff + (I + j) * H + h];
    }
    act[j] = gatedActivation(g, u, o.activation);
  }
  const y = new Float64Array(H);
  for (let n = 0; n < H; n++) {
    let s = o.downBias ? o.downBias[(o.downBiasOff ?? 0) + n] : 0;
    for (let j = 0; j < I; j++) s += act[j] * down[dOff + n * I + j];
    y[n] = s;
  }
  return y;
}

export function moeLayerRef(inp: MoeRefInput): MoeRefOutput {
  const { T, H, I, E, k, x, weights } = inp;
  const r = routerRef({
    T, H, E, x, w: weights.router, bias: weights.bias, correction: weights.correction, router: inp.router,
    groupScore: inp.groupScore, layer: inp.layer, position: inp.position, k, noiseStd: inp.noiseStd,
    noiseSeed: inp.noiseSeed, temperature: inp.temperature, ablated: inp.ablated,
  });
  const cap = assignCapacity(r.chosen, r.choice, T, k, E, inp.capacity, inp.overflow);
  const out = new Float64Array(T * H);
  const gateSum = new Float64Array(E);
  for (let t = 0; t < T; t++) {
    for (let s = 0; s < k; s++) {
      const e = cap.assigned[t * k + s];
      if (e === NO_EXPERT) continue;
      const w = r.weights[t * k + s];
      gateSum[e] += w;
      const y = swigluRef(x, t * H, weights.gateUp, e * 2 * I * H, weights.down, e * H * I, H, I, {
        gateUpBias: weights.gateUpBias, gateUpBiasOff: e * 2 * I, downBias: weights.downBias, downBiasOff: e * H, activation: inp.activation,
      });
      for (let n = 0; n < H; n++) out[t * H + n] += w * y[n];
    }
    const sh = weights.shared;
    if (sh) {
      let g = 1;
      if (sh.gate) {
        let d = 0;
        for (let h = 0; h < H; h++) d += x[t * H + h] * sh.gate[h];
        g = 1 / (1 + Math.exp(-d));
      }
      const y = swigluRef(x, t * H, sh.gateUp, 0, sh.down, 0, H, sh.intermediate);
      for (let n = 0; n < H; n++) out[t * H + n] += g * y[n];
    }
  }
  const probMass = new Float64Array(E);
  let zLossSum = 0;
  for (let t = 0; t < T; t++) {
    for (let e = 0; e < E; e++) probMass[e] += r.probs[t * E + e];
    zLossSum += r.lse[t] * r.lse[t];
  }
  return { ...r, out, assigned: cap.assigned, counts: cap.counts, dropped: cap.dropped, rerouted: cap.rerouted, probMass, gateSum, zLossSum };
}
