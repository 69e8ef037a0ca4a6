// Naive float64 reference of the MoE router and of capacity assignment. Written from the transformers modules it
// mirrors (MixtralSparseMoeBlock, Qwen2MoeSparseMoeBlock, OlmoeSparseMoeBlock, GraniteMoeTopKGating, DeepseekV2Moe,
// DeepseekV3TopkRouter) and the what-if policy's definition, not from the WGSL. Top-k ties go to the lower index.
import type { RouterConfig } from '../model/config';
import { routerNoise } from '../model/routing-noise';

export const NO_EXPERT = 0xffffffff;

export interface RouterRefInput {
  T: number;
  H: number;
  E: number;
  /** [T, H] */
  x: ArrayLike<number>;
  /** [E, H] router weight (as the GPU sees it after dtype rounding). */
  w: ArrayLike<number>;
  /** [E] router bias (when router.hasBias). */
  bias?: ArrayLike<number>;
  /** [E] e_score_correction_bias (when router.hasCorrectionBias). */
  correction?: ArrayLike<number>;
  router: RouterConfig;
  /** 'max' for DeepSeek-V2's group_limited_greedy, 'top2sum' for DeepSeek-V3 (default: top2sum for sigmoid). */
  groupScore?: 'max' | 'top2sum';
  layer: number;
  /** Absolute position of token 0. */
  position: number;
  k: number;
  noiseStd: number;
  noiseSeed: number;
  temperature: number;
  /** [E] 1 = ablated in this layer. */
  ablated?: ArrayLike<number>;
}

export interface RouterRefOutput {
  /** [T, E] router probabilities (0 for ablated experts). */
  probs: Float64Array;
  /** [T, E] selection scores after correction bias and group masking (-1e30 for ablated experts). */
  choice: Float64Array;
  /** [T] logsumexp of the transformed logits over existing experts. */
  lse: Float64Array;
  /** [T, k] chosen experts by descending selection score (NO_EXPERT if fewer than k exist). */
  chosen: Uint32Array;
  /** [T, k] gate weights. */
  weights: Float64Array;
  /** [T] selection-score gap between the k-th and (k+1)-th expert (Infinity if none): near-ties can flip on a GPU. */
  gap: Float64Array;
}

const EXCLUDED = -1e30;

export function routerRef(inp: RouterRefInput): RouterRefOutput {
  const { T, H, E, x, w, router, k } = inp;
  const probs = new Float64Array(T * E);
  const choice = new Float64Array(T * E);
  const lse = new Float64Array(T);
  const chosen = new Uint32Array(T * k).fill(NO_EXPERT);
  const weights = new Float64Array(T * k);
  const gap = new Float64Array(T);
  const abl = (e: number) => (inp.ablated ? inp.ablated[e] !== 0 : false);
  const groupScore = inp.groupScore ?? (router.scoring === 'sigmoid' ? 'top2sum' : 'max');
  for (let t = 0; t < T; t++) {
    const z = new Float64Array(E);
    let m = -Infinity;
    for (let e = 0; e < E; e++) {
      if (abl(e)) continue;
      let s = 0;
      for (let h = 0; h < H; h++) s += x[t * H + h] * w[e * H + h];
      if (router.hasBias) s += inp.bias![e];
      if (inp.noiseStd !== 0) s += inp.noiseStd * routerNoise(inp.noiseSeed, inp.layer, inp.position + t, e);
      z[e] = s / inp.temperature;
      m = Math.max(m, z[e]);
    }
    let sum = 0;
    for (let e = 0; e < E; e++) if (!abl(e)) sum += Math.exp(z[e] - m);
    lse[t] = m === -Infinity ? 0 : m + Math.log(sum);
    const c = new Float64Array(E);
    for (let e = 0; e < E; e++) {
      if (abl(e)) {
        c[e] = EXCLUDED;
        continue;
      }
      const p = router.scoring === 'softmax' ? Math.exp(z[e] - m) / sum : 1 / (1 + Math.exp(-z[e]));
      probs[t * E + e] = p;
      c[e] = p + (router.hasCorrectionBias ? inp.correction![e] : 0);
    }
    if (router.nGroup > 1) {
      const size = E / router.nGroup;
      const gs: number[] = [];
      for (let g = 0; g < router.nGroup; g++) {
        const members = Array.from(c.subarray(g * size, (g + 1) * size)).sort((a, b) => b - a);
        gs.push(groupScore === 'max' ? members[0] : members[0] + members[1]);
      }
      const keep = topIndices(gs, router.topkGroup, () => false);
      for (let e = 0; e < E; e++) if (!keep.includes(Math.floor(e / size)) && !abl(e)) c[e] = 0;
    }
    choice.set(c, t * E);
    const picked = topIndices(Array.from(c), k + 1, abl);
    let wsum = 0;
    for (let s = 0; s < Math.min(k, picked.length); s++) {
      chosen[t * k + s] = picked[s];
      weights[t * k + s] = probs[t * E + picked[s]];
      wsum += weights[t * k + s];
    }
    for (let s = 0; s < k; s++) {
      if (router.normTopK && wsum > 0) weights[t * k + s] /= wsum;
      weights[t * k + s] *= router.routedScalingFactor;
    }
    gap[t] = picked.length > k ? c[picked[k - 1]] - c[picked[k]] : Infinity;
  }
  return { probs, choice, lse, chosen, weights, gap };
}

/** Indices of the n largest values (descending, ties to the lower index), skipping excluded ones. */
export function topIndices(values: number[], n: number, excluded: (i: number) => boolean): number[] {
  const order = values.map((_, i) => i).filter((i) => !excluded(i));
  order.sort((a, b) => (values[b] !== values[a] ? values[b] - values[a] : a - b));
  return order.slice(0, n);
}

export interface CapacityResult {
  /** [T, k] expert that processes each slot (NO_EXPERT = dropped or empty). */
  assigned: Uint32Array;
  /** [E] assignments dropped from each (chosen) expert. */
  dropped: Uint32Array;
  /** [E] assignments re-routed to each expert. */
  rerouted: Uint32Array;
  /** [E] assignments each expert processes. */
  counts: Uint32Array;
}

/**
 * Capacity in token order. 'drop': an expert keeps the first `capacity` tokens that chose it (tokens in order, slots
 * in rank order); later assignments to it are dropped. 'reroute': an expert is full when more than `capacity` tokens
 * chose it; each overflowing assignment (token order, slot order) moves to the token's best-scoring expert (selection
 * score, ties to the lower index) among experts that are not full and that the token neither chose nor was already
 * given, or is dropped if there is none. One round: arrivals are not limited again, so 4 experts with capacity 3 and
 * first choices 7/2/1/0 end at 3/2/1/4 when the overflow prefers expert 3. capacity 0 = unlimited.
 */
export function assignCapacity(
  chosen: Uint32Array,
  choice: Float64Array,
  T: number,
  k: number,
  E: number,
  capacity: number,
  overflow: 'drop' | 'reroute',
): CapacityResult {
  const assigned = new Uint32Array(chosen);
  const dropped = new Uint32Array(E);
  const rerouted = new Uint32Array(E);
  const counts = new Uint32Array(E);
  const cap = capacity > 0 ? capacity : Infinity;
  const demand = new Uint32Array(E);
  for (const e of chosen) if (e !== NO_EXPERT) demand[e]++;
  const seen = new Uint32Array(E);
  for (let t = 0; t < T; t++) {
    for (let s = 0; s < k; s++) {
      const e = chosen[t * k + s];
      if (e === NO_EXPERT) continue;
      if (seen[e]++ < cap) {
        counts[e]++;
        continue;
      }
      let to = NO_EXPERT;
      if (overflow === 'reroute') {
        const used = new Set<number>();
        for (let j = 0; j < k; j++) {
          used.add(chosen[t * k + j]);
          used.add(assigned[t * k + j]);
        }
        let best = -Infinity;
        for (let c = 0; c < E; c++) {
          const v = choice[t * E + c];
          if (used.has(c) || demand[c] >= cap || v <= -1e29) continue;
          if (v > best) {
            best = v;
            to = c;
          }
        }
      }
      assigned[t * k + s] = to;
      if (to === NO_EXPERT) dropped[e]++;
      else {
        counts[to]++;
        rerouted[to]++;
      }
    }
  }
  return { assigned, dropped, rerouted, counts };
}
