// Synthetic routing traces for tests: seeded, skewed expert popularity (so placements differ), distinct experts per
// token, optional weights / probabilities / texts / unknown positions. Built in the test, never committed.
import { traceMeta, UNKNOWN, type TraceMeta } from '../../src/trace/format';
import type { TraceArrays } from '../../src/trace/writer';
import { rng } from './random';

export interface SynthOptions {
  tokens: number;
  seed?: number;
  /** Sequences the tokens are split into (equal lengths, the last takes the rest); half of each is prompt. */
  sequences?: number;
  weights?: boolean;
  probs?: boolean;
  texts?: boolean;
  /** Every n-th token's routing is unknown (−1), as prefix-cached positions are in vLLM; 0 = none. */
  unknownEvery?: number;
  engine?: string;
  /** Draw this many tokens and repeat them (keeps generating large traces fast); 0 = all distinct. */
  period?: number;
}

const moeLayersOf = (config: Record<string, unknown>, layers: number): number[] => {
  const firstDense = Number(config.first_k_dense_replace ?? 0);
  const only = (config.mlp_only_layers as number[] | undefined) ?? [];
  return Array.from({ length: layers }, (_, l) => l).filter((l) => l >= firstDense && !only.includes(l));
};

export function synthTrace(config: Record<string, unknown>, o: SynthOptions): { meta: TraceMeta; arrays: TraceArrays } {
  const L0 = Number(config.num_hidden_layers);
  const E = Number(config.n_routed_experts ?? config.num_local_experts ?? config.num_experts);
  const K = Number(config.num_experts_per_tok);
  const moeLayers = moeLayersOf(config, L0);
  const L = moeLayers.length, T = o.tokens;
  const u = rng(o.seed ?? 1);
  // Popularity ∝ 1 / (rank + 1), a different permutation per layer.
  const perms = moeLayers.map(() => {
    const p = Array.from({ length: E }, (_, i) => i);
    for (let i = E - 1; i > 0; i--) {
      const j = Math.floor(u() * (i + 1));
      [p[i], p[j]] = [p[j], p[i]];
    }
    return p;
  });
  const cdf = new Float64Array(E);
  let acc = 0;
  for (let r = 0; r < E; r++) cdf[r] = acc += 1 / (r + 1);
  const draw = () => {
    const x = u() * acc;
    let lo = 0, hi = E - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const experts = new Int32Array(T * L * K);
  const weights = o.weights ? new Float32Array(T * L * K) : undefined;
  const router = o.probs ? new Float32Array(T * L * E) : undefined;
  const picked = new Uint8Array(E);
  const P = o.period || T;
  if (P < T && (o.weights || o.probs)) throw new Error('synthTrace: a period repeats ids only');
  for (let t = 0; t < T; t++) {
    const unknown = o.unknownEvery ? t % o.unknownEvery === o.unknownEvery - 1 : false;
    if (t >= P) {
      // A repeat of token t mod P (ids only: weights and probabilities need period 0); unknown where either is.
      experts.copyWithin(t * L * K, (t % P) * L * K, ((t % P) + 1) * L * K);
      if (unknown) experts.fill(UNKNOWN, t * L * K, (t + 1) * L * K);
      continue;
    }
    for (let l = 0; l < L; l++) {
      const base = (t * L + l) * K;
      picked.fill(0);
      let wsum = 0;
      for (let k = 0; k < K; k++) {
        let r = draw();
        while (picked[perms[l][r]]) r = (r + 1) % E;
        const e = perms[l][r];
        picked[e] = 1;
        experts[base + k] = unknown ? UNKNOWN : e;
        if (weights) wsum += weights[base + k] = unknown ? 0 : 1 / (k + 2);
      }
      if (weights && wsum > 0) for (let k = 0; k < K; k++) weights[base + k] /= wsum;
      if (router) for (let e = 0; e < E; e++) router[(t * L + l) * E + e] = picked[e] ? 0.5 / K : 0.5 / (E - K);
    }
  }
  const n = Math.max(1, o.sequences ?? 1);
  const len = Math.floor(T / n);
  const sequences = Array.from({ length: n }, (_, i) => {
    const length = i === n - 1 ? T - len * i : len;
    return { id: `r${i}`, start: len * i, length, promptLength: Math.ceil(length / 2) };
  });
  const meta = traceMeta({
    config,
    tokenizer: null,
    source: { engine: o.engine ?? 'synthetic', version: null, dtype: null, parallelism: null },
    moeLayers,
    numExperts: E,
    topK: K,
    numTokens: T,
    sequences,
    recorded: { tokenIds: true, tokenTexts: !!o.texts, weights: !!weights, router: router ? 'probs' : null },
  });
  const tokenIds = Int32Array.from({ length: T }, (_, t) => (t * 7) % 50);
  const tokenTexts = o.texts ? Array.from({ length: T }, (_, t) => (t % 3 === 0 ? ` tok${t}` : `é${t}`)) : undefined;
  return { meta, arrays: { experts, tokenIds, weights, router, tokenTexts } };
}
