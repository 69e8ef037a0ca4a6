// Pure read-outs of a RoutingSnapshot for the panels, tooltip, token strip and token paths. No DOM, no GPU.
// Ring rows are [tokens, layers, K_MAX]; `assigned` holds the expert that processed a slot (NO_EXPERT if dropped or
// past k), `chosen` the router's pick, `weights` the gate weight.
import { K_MAX, NO_EXPERT } from '../../engine/routing-buffers';
import type { LayerMetrics, RoutingSnapshot } from '../../engine/session-api';
import { atlasMax, type ViewMode } from '../instance-values';

type Ring = Pick<RoutingSnapshot, 'numLayers' | 'numExperts' | 'chosen' | 'assigned' | 'weights'>;

/** Token positions the snapshot's ring holds. */
export function ringTokens(s: Pick<RoutingSnapshot, 'numLayers' | 'assigned'>): number {
  return s.assigned.length / (s.numLayers * K_MAX);
}

const slot = (s: Pick<RoutingSnapshot, 'numLayers'>, position: number, layer: number, k: number) =>
  (position * s.numLayers + layer) * K_MAX + k;

export interface ExpertStat {
  count: number;
  /** count / all assignments in the layer (0 when the layer has none). */
  share: number;
  /** Mean gate weight over the expert's assignments (0 when it has none). */
  meanGate: number;
  dropped: number;
  rerouted: number;
  /** Summed router probability over all tokens / tokens (mean probability). */
  meanProb: number;
}

/** Tooltip figures for one (layer, expert) from the cumulative buffers. */
export function expertStat(s: RoutingSnapshot, layer: number, expert: number): ExpertStat {
  const E = s.numExperts;
  const i = layer * E + expert;
  let total = 0;
  for (let e = 0; e < E; e++) total += s.counts[layer * E + e];
  const count = s.counts[i];
  return {
    count,
    share: total > 0 ? count / total : 0,
    meanGate: count > 0 ? s.gateSum[i] / count : 0,
    dropped: s.dropped[i],
    rerouted: s.rerouted[i],
    meanProb: s.position > 0 ? s.probMass[i] / s.position : 0,
  };
}

export interface PathStep {
  layer: number;
  /** Experts that processed the token in this layer, in slot order, with their gate weights. */
  experts: { expert: number; weight: number; rerouted: boolean }[];
  /** Slots whose assignment was dropped (expert full). */
  dropped: number;
}

/** The route of one token through the MoE layers (dense layers give empty steps). */
export function tokenPath(s: Ring, position: number): PathStep[] {
  const out: PathStep[] = [];
  if (position < 0 || position >= ringTokens(s)) return out;
  for (let l = 0; l < s.numLayers; l++) {
    const step: PathStep = { layer: l, experts: [], dropped: 0 };
    for (let k = 0; k < K_MAX; k++) {
      const i = slot(s, position, l, k);
      const chosen = s.chosen[i];
      if (chosen === NO_EXPERT) continue;
      const assigned = s.assigned[i];
      if (assigned === NO_EXPERT) step.dropped++;
      else step.experts.push({ expert: assigned, weight: s.weights[i], rerouted: assigned !== chosen });
    }
    out.push(step);
  }
  return out;
}

/** The expert with the largest gate weight that processed the token in `layer`, or −1. */
export function topExpert(s: Ring, position: number, layer: number): number {
  let best = -1;
  let bestW = -Infinity;
  for (let k = 0; k < K_MAX; k++) {
    const i = slot(s, position, layer, k);
    const e = s.assigned[i];
    if (e !== NO_EXPERT && s.weights[i] > bestW) {
      best = e;
      bestW = s.weights[i];
    }
  }
  return best;
}

/** Positions (in order) whose token was processed by `expert` in `layer`. */
export function tokensOfExpert(s: Ring, layer: number, expert: number): number[] {
  const out: number[] = [];
  const T = ringTokens(s);
  for (let p = 0; p < T; p++) {
    for (let k = 0; k < K_MAX; k++) {
      if (s.assigned[slot(s, p, layer, k)] === expert) {
        out.push(p);
        break;
      }
    }
  }
  return out;
}

/**
 * [tokens, experts] gate weight of each processed assignment in `layer` (0 elsewhere), for the heatmap; with
 * `weighted` false, 1 per assignment (traces without gate weights).
 */
export function gateMatrix(s: Ring, layer: number, weighted = true): Float32Array {
  const T = ringTokens(s);
  const out = new Float32Array(T * s.numExperts);
  for (let p = 0; p < T; p++) {
    for (let k = 0; k < K_MAX; k++) {
      const i = slot(s, p, layer, k);
      const e = s.assigned[i];
      if (e !== NO_EXPERT) out[p * s.numExperts + e] += weighted ? s.weights[i] : 1;
    }
  }
  return out;
}

/**
 * Assignments per (domain, expert) in `layer`, from the ring: `domains[p]` is the label of position p.
 * Returns the domain names in first-seen order and a [domains, experts] count matrix.
 */
export function domainLoad(s: Ring, layer: number, domains: readonly string[]): { names: string[]; counts: Uint32Array[] } {
  const names: string[] = [];
  const counts: Uint32Array[] = [];
  const T = Math.min(ringTokens(s), domains.length);
  for (let p = 0; p < T; p++) {
    let d = names.indexOf(domains[p]);
    if (d < 0) {
      d = names.push(domains[p]) - 1;
      counts.push(new Uint32Array(s.numExperts));
    }
    for (let k = 0; k < K_MAX; k++) {
      const e = s.assigned[slot(s, p, layer, k)];
      if (e !== NO_EXPERT) counts[d][e]++;
    }
  }
  return { names, counts };
}

/** [layers, experts] assignment counts recomputed from the ring (an independent check of the counts buffer). */
export function countsFromRing(s: Ring): Uint32Array {
  const out = new Uint32Array(s.numLayers * s.numExperts);
  const T = ringTokens(s);
  for (let p = 0; p < T; p++) {
    for (let l = 0; l < s.numLayers; l++) {
      for (let k = 0; k < K_MAX; k++) {
        const e = s.assigned[slot(s, p, l, k)];
        if (e !== NO_EXPERT) out[l * s.numExperts + e]++;
      }
    }
  }
  return out;
}

export const METRIC_KEYS = ['cv', 'auxLoss', 'zLoss', 'entropy', 'balancedness', 'deadExperts', 'dropped', 'rerouted'] as const;
export type MetricKey = (typeof METRIC_KEYS)[number];

/** Mean of one metric over the MoE layers (dense layers have no router and are skipped). */
export function meanMetric(metrics: readonly LayerMetrics[], moeLayers: readonly boolean[], key: MetricKey): number {
  let sum = 0;
  let n = 0;
  metrics.forEach((m, l) => {
    if (moeLayers[l]) {
      sum += m[key];
      n++;
    }
  });
  return n ? sum / n : 0;
}

/**
 * The heights the grid draws for a layer's columns in `mode`, from a snapshot: the same formula as
 * instance-values.wgsl, used on the CPU for picking and to place the token-path line on the bars (not per frame).
 * Column c sums experts [colFirst[c], colFirst[c + 1]) (default: one expert per column); its fair share is the
 * layer's total × its experts / all experts.
 */
export function barHeights(
  s: Pick<RoutingSnapshot, 'numExperts' | 'counts' | 'stepCounts' | 'probMass' | 'dropped' | 'rerouted'>,
  layer: number,
  mode: ViewMode,
  heightScale: number,
  maxRatio = 6,
  /** The causal atlas's Δ log-likelihood [layers, experts] (mode 'atlas'; NaN: not swept; null: none, flat bars). */
  atlas: Float32Array | null = null,
  colFirst: ArrayLike<number> = Array.from({ length: s.numExperts + 1 }, (_, e) => e),
): Float64Array {
  const E = s.numExperts;
  const C = colFirst.length - 1;
  const sum = (value: (e: number) => number, c: number) => {
    let v = 0;
    for (let e = colFirst[c]; e < colFirst[c + 1]; e++) v += value(e);
    return v;
  };
  if (mode === 'atlas') {
    // A group: the sum of its experts' Δ (an expert not swept, NaN, counts 0), capped at the largest single expert's
    // (as instance-values.wgsl).
    const max = atlas ? atlasMax(atlas) : 0;
    return Float64Array.from({ length: C }, (_, c) => (max > 0 ? heightScale * 1.5 * Math.min(1, Math.abs(sum((e) => atlas![layer * E + e] || 0, c)) / max) : 0));
  }
  const value = (e: number) => {
    const i = layer * E + e;
    return mode === 'load' ? s.counts[i] : mode === 'current' ? s.stepCounts[i] : mode === 'probability' ? s.probMass[i] : s.dropped[i] + s.rerouted[i];
  };
  let total = 0;
  for (let e = 0; e < E; e++) total += value(e);
  const values = Float64Array.from({ length: C }, (_, c) => sum(value, c));
  const peak = values.reduce((m, v) => Math.max(m, v), 0);
  return values.map((v, c) => {
    const fair = (total * (colFirst[c + 1] - colFirst[c])) / E;
    return heightScale * (mode === 'load' || mode === 'probability' ? 0.5 * Math.min(fair > 0 ? v / fair : 0, maxRatio) : 1.5 * (peak > 0 ? v / peak : 0));
  });
}

/**
 * A ring with its expert ids renamed per layer: `relabel[l][e]` is the new id of expert e of layer l (null: layer
 * unchanged). Compare mode uses it to read one checkpoint's routing in another's expert order.
 */
export function relabelRing<R extends Ring>(s: R, relabel: readonly (readonly number[] | null)[]): R {
  const L = s.numLayers;
  const rename = (ids: Uint32Array) =>
    ids.map((e, i) => {
      const map = relabel[Math.floor(i / K_MAX) % L];
      return map && e !== NO_EXPERT ? map[e] : e;
    });
  return { ...s, chosen: rename(s.chosen), assigned: rename(s.assigned) };
}

/**
 * How far two runs over the same tokens agree: for each (token, layer), the share of one run's experts the other also
 * used (|A ∩ B| / max(|A|, |B|); 1 when both are empty, as in a dense layer). Also the mean per layer.
 */
export function routingAgreement(a: Ring, b: Ring, tokens: number): { perToken: Float32Array; perLayer: number[] } {
  if (a.numLayers !== b.numLayers) throw new Error(`routingAgreement: ${a.numLayers} vs ${b.numLayers} layers`);
  const L = a.numLayers;
  const T = Math.min(tokens, ringTokens(a), ringTokens(b));
  const perToken = new Float32Array(T * L);
  const perLayer = new Array<number>(L).fill(0);
  for (let p = 0; p < T; p++) {
    for (let l = 0; l < L; l++) {
      const setA = new Set<number>();
      const setB = new Set<number>();
      for (let k = 0; k < K_MAX; k++) {
        const i = (p * L + l) * K_MAX + k;
        if (a.assigned[i] !== NO_EXPERT) setA.add(a.assigned[i]);
        if (b.assigned[i] !== NO_EXPERT) setB.add(b.assigned[i]);
      }
      let both = 0;
      for (const e of setA) if (setB.has(e)) both++;
      const size = Math.max(setA.size, setB.size);
      const agree = size === 0 ? 1 : both / size;
      perToken[p * L + l] = agree;
      perLayer[l] += agree / T;
    }
  }
  return { perToken, perLayer: T > 0 ? perLayer : perLayer.map(() => 0) };
}
