// Naive float64 rotary embedding ("rotate_half"), for x: [tokens, heads, headDim] contiguous.
// Angle of token t, pair i: (startPos + t) · invFreq[i]. With `f32Angles` the product is rounded to f32 first, as
// transformers forms it; cos, sin and the rotation are float64. Without it the angle is exact (float64), which shows
// how far any f32 implementation (transformers included) is from the ideal rotation at large positions.
// `interleaved` pairs elements (2i, 2i + 1) (DeepSeek's complex form) instead of (i, i + headDim/2).
export function ropeRef(
  x: ArrayLike<number>,
  tokens: number,
  heads: number,
  headDim: number,
  startPos: number,
  invFreq: ArrayLike<number>,
  opts: { f32Angles: boolean; scaling?: number; interleaved?: boolean },
): Float64Array {
  const half = headDim / 2;
  const scaling = opts.scaling ?? 1;
  const out = new Float64Array(tokens * heads * headDim);
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const exact = (startPos + t) * invFreq[i];
        const angle = opts.f32Angles ? Math.fround(exact) : exact;
        const c = Math.cos(angle) * scaling;
        const s = Math.sin(angle) * scaling;
        const a = base + (opts.interleaved ? 2 * i : i);
        const b = opts.interleaved ? a + 1 : a + half;
        const x1 = x[a];
        const x2 = x[b];
        out[a] = x1 * c - x2 * s;
        out[b] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}
