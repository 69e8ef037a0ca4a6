// What the model predicts, from logits rows read back after a step: the next-token distribution's normaliser, top
// tokens and entropy, a token's surprisal, and the KL divergence between two distributions. Pure functions, float64
// accumulation, max-subtracted exponentials. No DOM, no GPU.

export interface Candidate {
  id: number;
  prob: number;
}

export interface RowSummary {
  /** log Σ exp(logits), natural log. */
  logSumExp: number;
  /** The most likely next tokens, most likely first (ties: lower id first). */
  top: Candidate[];
  /** Entropy of the distribution, nats. */
  entropy: number;
}

export function logSumExp(row: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return max + Math.log(sum);
}

/** Normaliser, top-k tokens and entropy of one logits row. */
export function summarizeRow(row: ArrayLike<number>, k: number): RowSummary {
  const lse = logSumExp(row);
  const best: number[] = [];
  let expected = 0;
  for (let i = 0; i < row.length; i++) {
    expected += Math.exp(row[i] - lse) * row[i];
    if (best.length < k || row[i] > row[best[best.length - 1]]) {
      let at = best.length < k ? best.length : best.length - 1;
      while (at > 0 && row[best[at - 1]] < row[i]) at--;
      best.splice(at, 0, i);
      if (best.length > k) best.pop();
    }
  }
  return { logSumExp: lse, top: best.map((id) => ({ id, prob: Math.exp(row[id] - lse) })), entropy: lse - expected };
}

/** Surprisal (nats) of token `id` under a logits row with normaliser `lse`: −log p(id). */
export function surprisal(row: ArrayLike<number>, lse: number, id: number): number {
  return lse - row[id];
}

/** KL(p ‖ q) in nats between the softmax distributions of two logits rows of one vocabulary. */
export function klDivergence(p: ArrayLike<number>, q: ArrayLike<number>): number {
  if (p.length !== q.length) throw new Error(`klDivergence: rows of ${p.length} and ${q.length} logits`);
  const lp = logSumExp(p);
  const lq = logSumExp(q);
  let kl = 0;
  for (let i = 0; i < p.length; i++) {
    const a = p[i] - lp;
    kl += Math.exp(a) * (a - (q[i] - lq));
  }
  return Math.max(0, kl);
}

/** Rank (0 = most likely) of token `id` under a logits row. */
export function rankOf(row: ArrayLike<number>, id: number): number {
  let rank = 0;
  for (let i = 0; i < row.length; i++) if (row[i] > row[id] || (row[i] === row[id] && i < id)) rank++;
  return rank;
}
