// Load-balance metrics of one layer from the cumulative routing statistics (pure functions, no GPU).
import type { LayerMetrics } from '../session-api';

export interface LayerStats {
  /** [experts] assignments processed by each expert. */
  counts: ArrayLike<number>;
  /** [experts] summed router probability over tokens. */
  probMass: ArrayLike<number>;
  /** Σ over tokens of logsumexp(router logits)². */
  zLossSum: number;
  dropped: ArrayLike<number>;
  rerouted: ArrayLike<number>;
}

/**
 * Metrics over `tokens` routed tokens (the positions since reset):
 *   cv            std / mean of the per-expert load (population std; 0 without load)
 *   auxLoss       Switch aux loss E · Σ fᵢ · Pᵢ, fᵢ = loadᵢ / Σ load (share of assignments), Pᵢ = probMassᵢ / tokens
 *   zLoss         mean over tokens of logsumexp(logits)²
 *   entropy       −Σ fᵢ ln fᵢ (nats) of the load shares
 *   balancedness  mean load / max load (1 = perfectly balanced, 0 without load)
 *   deadExperts   experts with no load
 *   dropped, rerouted  summed over experts
 */
export function layerMetrics(s: LayerStats, tokens: number): LayerMetrics {
  const E = s.counts.length;
  let total = 0;
  let max = 0;
  let dead = 0;
  for (let e = 0; e < E; e++) {
    total += s.counts[e];
    max = Math.max(max, s.counts[e]);
    if (s.counts[e] === 0) dead++;
  }
  const mean = total / E;
  let variance = 0;
  let aux = 0;
  let entropy = 0;
  for (let e = 0; e < E; e++) {
    variance += (s.counts[e] - mean) ** 2;
    if (total > 0) {
      const f = s.counts[e] / total;
      if (tokens > 0) aux += f * (s.probMass[e] / tokens);
      if (f > 0) entropy -= f * Math.log(f);
    }
  }
  variance /= E;
  let dropped = 0;
  let rerouted = 0;
  for (let e = 0; e < E; e++) {
    dropped += s.dropped[e];
    rerouted += s.rerouted[e];
  }
  return {
    cv: mean > 0 ? Math.sqrt(variance) / mean : 0,
    auxLoss: E * aux,
    zLoss: tokens > 0 ? s.zLossSum / tokens : 0,
    entropy,
    balancedness: max > 0 ? mean / max : 0,
    deadExperts: dead,
    dropped,
    rerouted,
  };
}

/** Metrics of every layer from [layers, experts] arrays (dense layers come out with zero load). */
export function allLayerMetrics(
  a: { counts: Uint32Array; probMass: Float32Array; zLossSum: Float32Array; dropped: Uint32Array; rerouted: Uint32Array },
  numLayers: number,
  numExperts: number,
  tokens: number,
): LayerMetrics[] {
  const out: LayerMetrics[] = [];
  for (let l = 0; l < numLayers; l++) {
    const row = (x: Uint32Array | Float32Array) => x.subarray(l * numExperts, (l + 1) * numExperts);
    out.push(
      layerMetrics(
        { counts: row(a.counts), probMass: row(a.probMass), zLossSum: a.zLossSum[l], dropped: row(a.dropped), rerouted: row(a.rerouted) },
        tokens,
      ),
    );
  }
  return out;
}
