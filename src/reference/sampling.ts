// Naive float64 token choice with the same mathematical definitions as shaders/sampling.wgsl:
//   greedy: argmax, ties to the lowest index;
//   sampled: p_i ∝ exp((l_i − max) / T); the nucleus is the shortest prefix of tokens ordered by (logit desc, index
//   asc) whose probability reaches topP (topP >= 1 keeps all); its mass K is renormalised away by drawing
//   target = u · K and walking the kept tokens in index order to the first whose running mass exceeds target.
// This is transformers' TopPLogitsWarper cut (it removes tokens whose ascending cumulative probability is
// <= 1 − top_p, i.e. keeps each token whose higher-probability predecessors hold < top_p), with ties ordered by index.

export function argmaxRef(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

export interface SampleRef {
  token: number;
  /** p_token under softmax(logits / T), before the nucleus cut. */
  prob: number;
  /** Kept token ids in index order. */
  kept: number[];
  /** Each kept token's share of [0, 1) in the draw (index order): it is chosen iff from <= u < to. */
  intervals: Map<number, { from: number; to: number }>;
  /**
   * How far the result is from flipping, as a fraction of the mass involved: the distance of target from the ends
   * of the chosen token's interval (over K), and of the cut's cumulative mass from topP (over Z). An f32
   * implementation may legitimately differ when either is below ~1e-5.
   */
  drawMargin: number;
  cutMargin: number;
}

export function sampleRef(logits: ArrayLike<number>, temperature: number, topP: number, u: number): SampleRef {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[i]);
  const w = new Float64Array(n);
  let z = 0;
  for (let i = 0; i < n; i++) z += (w[i] = Math.exp((logits[i] - max) / temperature));

  const keep = new Uint8Array(n);
  let cutMargin = Infinity;
  if (topP >= 1) {
    keep.fill(1);
  } else {
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
    let cum = 0;
    for (const i of order) {
      keep[i] = 1;
      const before = cum;
      cum += w[i];
      if (cum >= topP * z) {
        cutMargin = Math.min(cum - topP * z, topP * z - before) / z;
        break;
      }
    }
  }
  const kept: number[] = [];
  let k = 0;
  for (let i = 0; i < n; i++) if (keep[i]) (kept.push(i), (k += w[i]));

  const target = u * k;
  let cum = 0;
  let token = -1;
  let drawMargin = Infinity;
  const intervals = new Map<number, { from: number; to: number }>();
  for (const i of kept) {
    const before = cum;
    cum += w[i];
    intervals.set(i, { from: before / k, to: cum / k });
    if (token < 0 && cum > target) {
      token = i;
      drawMargin = Math.min(cum - target, target - before) / k;
    }
  }
  if (token < 0) token = kept[kept.length - 1];
  return { token, prob: w[token] / z, kept, intervals, drawMargin, cutMargin };
}
