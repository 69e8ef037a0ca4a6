// The causal expert atlas: how much a text's log-likelihood and next-token distributions change when one expert is
// ablated, per (layer, expert), ranked by that change rather than by how often the expert fires. Pure: it scores
// logits the caller produced (the GPU sweep in src/engine/analysis/ablation-sweep.ts, or src/reference/decoder.ts).

/** Row-wise log-softmax of logits [rows, V], in float64. */
export function logSoftmaxRows(logits: ArrayLike<number>, V: number): Float64Array {
  const rows = logits.length / V;
  const out = new Float64Array(logits.length);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, logits[r * V + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[r * V + v] - m);
    const lse = m + Math.log(s);
    for (let v = 0; v < V; v++) out[r * V + v] = logits[r * V + v] - lse;
  }
  return out;
}

/** Log-probability of each next token: entry t = log p(ids[t + 1] | ids[0..t]), [ids.length − 1]. */
export function tokenLogProbs(logProbs: Float64Array, V: number, ids: readonly number[]): Float64Array {
  return Float64Array.from({ length: ids.length - 1 }, (_, t) => logProbs[t * V + ids[t + 1]]);
}

export interface HurtToken {
  /** Position of the predicted token in the text. */
  position: number;
  id: number;
  /** log p(token) ablated − as the model is (negative = the ablation made it less likely). */
  delta: number;
}

export interface AtlasEntry {
  layer: number;
  expert: number;
  /** Σ log p(text) ablated − as the model is, nats (negative = the expert helped the text). */
  deltaLogLikelihood: number;
  /** Mean over positions of KL(p as the model is ‖ p ablated) of the next-token distribution, nats. */
  meanKl: number;
  /** The largest KL at any position. */
  maxKl: number;
  /** The predicted tokens whose log-probability fell most. */
  mostHurt: HurtToken[];
}

export interface Atlas {
  /** Σ log p(text) as the model is, nats, over the ids.length − 1 predicted tokens. */
  logLikelihood: number;
  predictedTokens: number;
  /** Most harmful ablation first (lowest Δ log-likelihood; ties by mean KL, then layer, expert). */
  entries: AtlasEntry[];
}

/** Collects the unablated run, then one run per ablated expert, and ranks them. */
export class AtlasBuilder {
  private base: { logProbs: Float64Array; token: Float64Array } | null = null;
  private readonly entries: AtlasEntry[] = [];

  constructor(
    private readonly ids: readonly number[],
    private readonly V: number,
    private readonly hurtCount = 5,
  ) {
    if (ids.length < 2) throw new RangeError('the atlas needs a text of at least two tokens');
  }

  /** The model as it is: logits [ids.length, V]. */
  setBase(logits: ArrayLike<number>): void {
    const logProbs = logSoftmaxRows(logits, this.V);
    this.base = { logProbs, token: tokenLogProbs(logProbs, this.V, this.ids) };
  }

  /** One ablation's logits [ids.length, V]. */
  add(layer: number, expert: number, logits: ArrayLike<number>): AtlasEntry {
    if (!this.base) throw new Error('AtlasBuilder: setBase before add');
    const { V, ids } = this;
    const lp = logSoftmaxRows(logits, V);
    const token = tokenLogProbs(lp, V, ids);
    let delta = 0;
    const hurt: HurtToken[] = [];
    for (let t = 0; t < token.length; t++) {
      const d = token[t] - this.base.token[t];
      delta += d;
      hurt.push({ position: t + 1, id: ids[t + 1], delta: d });
    }
    hurt.sort((a, b) => a.delta - b.delta || a.position - b.position);
    let klSum = 0;
    let maxKl = 0;
    const rows = ids.length - 1; // the last row predicts past the text: scored for KL like the others
    for (let r = 0; r <= rows; r++) {
      let kl = 0;
      for (let v = 0; v < V; v++) {
        const p = this.base.logProbs[r * V + v];
        kl += Math.exp(p) * (p - lp[r * V + v]);
      }
      klSum += kl;
      maxKl = Math.max(maxKl, kl);
    }
    const entry = { layer, expert, deltaLogLikelihood: delta, meanKl: klSum / (rows + 1), maxKl, mostHurt: hurt.slice(0, this.hurtCount) };
    this.entries.push(entry);
    return entry;
  }

  build(): Atlas {
    if (!this.base) throw new Error('AtlasBuilder: no unablated run');
    const entries = [...this.entries].sort(
      (a, b) => a.deltaLogLikelihood - b.deltaLogLikelihood || b.meanKl - a.meanKl || a.layer - b.layer || a.expert - b.expert,
    );
    return { logLikelihood: this.base.token.reduce((a, b) => a + b, 0), predictedTokens: this.ids.length - 1, entries };
  }
}
