// Pathways through the experts, from the routing record's per-token ring (src/engine/routing-buffers.ts):
// per layer, how often two experts are chosen for the same token (co-activation); between consecutive layers, how
// often expert i at layer l is followed by expert j at layer l + 1 (transitions); and how much of a layer's top-1
// choice the previous layer's top-1 choice explains (cross-layer predictability). Counts are exact integers.
import { K_MAX, NO_EXPERT } from '../model/limits';

/** The ring rows this analysis reads: [tokens, layers, K_MAX] chosen experts (NO_EXPERT in unused slots). */
export interface RoutingRecord {
  tokens: number;
  numLayers: number;
  numExperts: number;
  chosen: Uint32Array;
}

export interface Pathways {
  tokens: number;
  numLayers: number;
  numExperts: number;
  /** Per layer, u32 [experts, experts], symmetric, zero diagonal: tokens that chose both i and j at that layer. */
  coactivation: Uint32Array[];
  /**
   * Per layer pair (l → l + 1), u32 [experts, experts]: (token, i, j) with i chosen at l and j chosen at l + 1;
   * a top-k token contributes k² pairs.
   */
  transitions: Uint32Array[];
  /** Per layer pair (l → l + 1): the previous layer's top-1 choice as a predictor of this layer's top-1 choice. */
  predictability: Predictability[];
}

export interface Predictability {
  /** Share of tokens whose top-1 at l + 1 is the most frequent successor of their top-1 at l. */
  accuracy: number;
  /** Share of tokens whose top-1 at l + 1 is that layer's most frequent top-1 (what knowing nothing gives). */
  baseline: number;
  /** Mutual information (bits) between the two top-1 choices, and divided by the entropy of the l + 1 choice. */
  mutualInformation: number;
  normalized: number;
}

/** The experts chosen by token t at layer l (slots up to the first NO_EXPERT). */
function choices(r: RoutingRecord, t: number, l: number): number[] {
  const out: number[] = [];
  const base = (t * r.numLayers + l) * K_MAX;
  for (let s = 0; s < K_MAX; s++) {
    const e = r.chosen[base + s];
    if (e === NO_EXPERT) break;
    if (e >= r.numExperts) throw new RangeError(`routing record: token ${t} layer ${l} slot ${s} names expert ${e} of ${r.numExperts}`);
    out.push(e);
  }
  return out;
}

export function pathways(r: RoutingRecord): Pathways {
  const { tokens: T, numLayers: L, numExperts: E } = r;
  if (r.chosen.length < T * L * K_MAX) throw new RangeError(`routing record: ${r.chosen.length} entries for ${T} tokens × ${L} layers × ${K_MAX}`);
  const coactivation = Array.from({ length: L }, () => new Uint32Array(E * E));
  const transitions = Array.from({ length: Math.max(0, L - 1) }, () => new Uint32Array(E * E));
  const top1 = Array.from({ length: L - 1 }, () => new Uint32Array(E * E));
  for (let t = 0; t < T; t++) {
    let prev: number[] = [];
    for (let l = 0; l < L; l++) {
      const cur = choices(r, t, l);
      const co = coactivation[l];
      for (let a = 0; a < cur.length; a++) {
        for (let b = a + 1; b < cur.length; b++) {
          co[cur[a] * E + cur[b]]++;
          co[cur[b] * E + cur[a]]++;
        }
      }
      if (l > 0) {
        for (const i of prev) for (const j of cur) transitions[l - 1][i * E + j]++;
        if (prev.length && cur.length) top1[l - 1][prev[0] * E + cur[0]]++;
      }
      prev = cur;
    }
  }
  return { tokens: T, numLayers: L, numExperts: E, coactivation, transitions, predictability: top1.map((m) => predictability(m, E)) };
}

/** Predictability of the column from the row of a joint count table [E, E]. */
export function predictability(joint: Uint32Array, E: number): Predictability {
  let n = 0;
  let hits = 0;
  const col = new Float64Array(E);
  const row = new Float64Array(E);
  for (let i = 0; i < E; i++) {
    let best = 0;
    for (let j = 0; j < E; j++) {
      const c = joint[i * E + j];
      n += c;
      row[i] += c;
      col[j] += c;
      best = Math.max(best, c);
    }
    hits += best;
  }
  if (n === 0) return { accuracy: 0, baseline: 0, mutualInformation: 0, normalized: 0 };
  let mi = 0;
  for (let i = 0; i < E; i++) {
    for (let j = 0; j < E; j++) {
      const c = joint[i * E + j];
      if (c > 0) mi += (c / n) * Math.log2((c * n) / (row[i] * col[j]));
    }
  }
  const h = entropyBits(col);
  return { accuracy: hits / n, baseline: Math.max(...col) / n, mutualInformation: mi, normalized: h > 0 ? mi / h : 0 };
}

/** Entropy (bits) of a distribution given by non-negative counts. */
export function entropyBits(counts: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i];
  let h = 0;
  for (let i = 0; i < counts.length; i++) if (counts[i] > 0) h -= (counts[i] / n) * Math.log2(counts[i] / n);
  return h;
}
