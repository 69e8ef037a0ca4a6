// Naive float64 causal attention with grouped-query heads and an optional sliding window.
// q: [tokens, heads, d]; k, v: [>= startPos + tokens, kvHeads, d] (the whole cache, rows 0..startPos+tokens-1 used).
// Query t sits at position p = startPos + t and sees keys j <= p with p − j < window (window 0 = no limit),
// transformers' causal mask and sliding_window_overlay. Head h reads kv head floor(h / (heads / kvHeads)).
// With sinks (gpt-oss), head h's logit sinks[h] joins the softmax as one more score whose value is zero
// (transformers' eager_attention_forward: concatenated to the scores, softmaxed, then dropped).
export interface AttentionRefShape {
  tokens: number;
  startPos: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
  window?: number;
  /** [heads] sink logits, or absent. */
  sinks?: ArrayLike<number>;
}

/**
 * The attention weights of query row t, per head: [heads, 1 + p + 1] (p = startPos + t), slot 0 the sink's share of the
 * softmax (0 without sinks), slot 1 + j the weight of key j (0 for keys outside the window).
 */
export function attentionWeightsRef(q: ArrayLike<number>, k: ArrayLike<number>, s: AttentionRefShape, t: number): Float64Array {
  const d = s.headDim;
  const group = s.heads / s.kvHeads;
  const pos = s.startPos + t, width = pos + 2;
  const out = new Float64Array(s.heads * width);
  for (let h = 0; h < s.heads; h++) {
    const g = Math.floor(h / group);
    const visible: number[] = [];
    for (let j = 0; j <= pos; j++) if (!s.window || pos - j < s.window) visible.push(j);
    const scores = visible.map((j) => {
      let dot = 0;
      for (let i = 0; i < d; i++) dot += q[(t * s.heads + h) * d + i] * k[(j * s.kvHeads + g) * d + i];
      return s.scale * dot;
    });
    const sink = s.sinks ? s.sinks[h] : -Infinity;
    const max = Math.max(...scores, sink);
    const p = scores.map((x) => Math.exp(x - max));
    const sum = p.reduce((a, b) => a + b, 0) + Math.exp(sink - max);
    out[h * width] = Math.exp(sink - max) / sum;
    visible.forEach((j, n) => (out[h * width + 1 + j] = p[n] / sum));
  }
  return out;
}

export function attentionRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  s: AttentionRefShape,
): Float64Array {
  const d = s.headDim;
  const group = s.heads / s.kvHeads;
  const out = new Float64Array(s.tokens * s.heads * d);
  for (let t = 0; t < s.tokens; t++) {
    const pos = s.startPos + t, width = pos + 2;
    const w = attentionWeightsRef(q, k, s, t);
    for (let h = 0; h < s.heads; h++) {
      const g = Math.floor(h / group);
      for (let i = 0; i < d; i++) {
        let acc = 0;
        for (let j = s.window ? Math.max(0, pos + 1 - s.window) : 0; j <= pos; j++) acc += w[h * width + 1 + j] * v[(j * s.kvHeads + g) * d + i];
        out[(t * s.heads + h) * d + i] = acc;
      }
    }
  }
  return out;
}
